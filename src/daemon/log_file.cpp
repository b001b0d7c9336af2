#include "daemon/log_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "daemon/log_lines.hpp"
#include "daemon/paths.hpp"

namespace corral::daemon {

// Touched only on the loop's thread, except `path` and `options`, which never
// change and which the job reads on the threadpool.
struct log_file::shared {
  uv_loop_t* loop;
  const std::string path;
  const log_options options;
  int fd;
  log_buffer buf;
  bool busy = false;    // a job is in flight: it owns fd until it is done
  bool closed = false;  // the owner is gone: close fd after the last job
  bool reopen = false;  // the last write failed: open the path afresh first
  std::vector<std::function<void()>> flush_waiters;
  std::vector<std::function<void()>> reopen_waiters;  // reopen(): the path afresh
  uint64_t path_checked = 0;                           // (uv_now) the path last compared with the file
  bool path_missing = false;   // the last check found no file at the path, ours still named elsewhere
  bool reopen_reported = false;  // a failed reopen said in the daemon's log (once until one works)
  std::string reopen_error;      // the last reopen's failure, "" if it worked
  std::vector<std::function<void()>> room_waiters;
  uint64_t appended = 0;  // lines given to write_line, ever
  uint64_t settled = 0;   // of those, the first this many are written or dropped
  std::vector<std::pair<uint64_t, std::function<void()>>> written_waiters;  // (line count, waiter)
  int failing = 0;            // errno of the write failure in progress, 0 if none
  uint64_t failed_lines = 0;  // lost since the last marker that made it to disk
  bool mid_line = false;      // a failed write stopped inside a line
  uint64_t write_dropped = 0;
  bool rotate_reported = false;
  uint64_t rotations = 0;
};

// One batch for the threadpool. The thread reads the inputs and the shared
// state's constant path and options; it writes only the outputs.
struct log_file::job {
  uv_work_t req;
  std::shared_ptr<shared> st;
  int fd;  // in and out: a reopen or a rotation replaces it
  bool reopen = false;
  bool check_path = false;    // whether the path still names the file open
  bool path_missing = false;  // in: the last check found none at the path; out: this one
  bool moved = false;         // it did not: the file was moved or removed
  int open_errno = 0;         // a reopen that failed
  bool truncate = false;
  std::vector<std::function<void()>> reopened;
  std::string data;
  std::size_t prefix = 0;  // bytes of failure marker at the front of data
  uint64_t marked = 0;     // the count in the buffer's drop marker ending data
  std::vector<std::function<void()>> flushed;
  uint64_t upto = 0;  // shared::appended when the job was made: settled by its end
  std::size_t written = 0;
  int write_errno = 0;
  int rotate_errno = 0;
  std::string rotate_what;
  uint64_t rotations = 0;
};

namespace {

int open_log(const std::string& path, bool truncate) {
  // O_NONBLOCK for the open only: a FIFO at the path with no reader would
  // block the open (and the daemon's loop) for good; it fails with ENXIO.
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NONBLOCK | (truncate ? O_TRUNC : 0), 0600);
  if (fd >= 0) {
    int flags = ::fcntl(fd, F_GETFL);
    if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  }
  return fd;
}

std::string errno_text(int err) { return std::string(std::strerror(err)) + " (" + uv_err_name(-err) + ")"; }

// Runs `fns` on `loop`'s next turn, off the caller's stack.
void later(uv_loop_t* loop, std::vector<std::function<void()>> fns) {
  struct req {
    uv_work_t work;
    std::vector<std::function<void()>> fns;
  };
  auto* r = new req{{}, std::move(fns)};
  r->work.data = r;
  uv_queue_work(
      loop, &r->work, [](uv_work_t*) {},
      [](uv_work_t* w, int) {
        std::unique_ptr<req> r(static_cast<req*>(w->data));
        for (auto& f : r->fns) f();
      });
}

// `flush`: the rotated files go, however many there are.
void remove_rotated(const std::string& path, int retain) {
  for (int k = 1; k <= 1000; ++k)
    if (::unlink((path + "." + std::to_string(k)).c_str()) != 0 && errno == ENOENT && k > retain) break;
}

}  // namespace

result<std::unique_ptr<log_file>> log_file::open(uv_loop_t* loop, std::string path, log_options options,
                                                 std::size_t capacity) {
  int fd = open_log(path, false);
  if (fd < 0) {
    int e = errno;
    return error(std::error_code(e, std::generic_category()),
                 "open log " + path + (e == ENXIO ? " (a FIFO that no process reads)" : ""));
  }
  auto st = std::make_shared<shared>(shared{loop, path, options, fd, log_buffer(capacity)});
  return std::unique_ptr<log_file>(new log_file(std::move(path), std::move(st)));
}

std::unique_ptr<log_file> log_file::create(uv_loop_t* loop, std::string path, log_options options,
                                           std::size_t capacity) {
  auto st = std::make_shared<shared>(shared{loop, path, options, -1, log_buffer(capacity)});
  return std::unique_ptr<log_file>(new log_file(std::move(path), std::move(st)));
}

log_file::log_file(std::string path, std::shared_ptr<shared> st) : path_(std::move(path)), st_(std::move(st)) {}

log_file::~log_file() {
  st_->closed = true;
  if (!st_->busy) finish_closed(*st_);
}

namespace {
// Half the buffer waits for the disk: its writers pause until it is taken.
bool half_full(const log_buffer& b) { return b.size() >= b.capacity() / 2; }
}  // namespace

bool log_file::behind() const noexcept { return half_full(st_->buf); }

void log_file::on_room(std::function<void()> room) {
  st_->room_waiters.push_back(std::move(room));
  kick(st_);
}

void log_file::wake_writers(shared& st) {
  if (st.room_waiters.empty() || half_full(st.buf)) return;
  auto waiters = std::move(st.room_waiters);
  st.room_waiters.clear();
  for (auto& w : waiters) w();
}

void log_file::finish_closed(shared& st) {
  // A flush asked for while the last job ran is done here, as a job would
  // have done it: its waiter (a `corral flush` reply) must run, once.
  auto flushed = std::move(st.flush_waiters);
  st.flush_waiters.clear();
  auto reopened = std::move(st.reopen_waiters);  // (closed: nothing to reopen)
  st.reopen_waiters.clear();
  if (!flushed.empty()) {
    remove_rotated(st.path, st.options.retain);
    if (st.fd >= 0) ::close(st.fd);
    st.fd = open_log(st.path, true);
  }
  // Whatever is still queued goes out synchronously: the daemon is deleting
  // the app or exiting, and a log must not lose its last lines.
  std::string rest = st.buf.take();
  if (st.fd >= 0) {
    if (!rest.empty()) (void)!::write(st.fd, rest.data(), rest.size());
    ::close(st.fd);
  }
  st.fd = -1;
  st.settled = st.appended;
  // Their readers may outlive this file (its app's logs reopened): they read
  // on, into whatever takes its place. On the next turn of the loop, not
  // from the destructor of this file's owner.
  std::vector<std::function<void()>> waiters = std::move(st.room_waiters);
  st.room_waiters.clear();
  for (auto& w : st.written_waiters) waiters.push_back(std::move(w.second));
  st.written_waiters.clear();
  if (!waiters.empty()) later(st.loop, std::move(waiters));
  for (auto& f : flushed) f();
  for (auto& f : reopened) f();
}

uint64_t log_file::dropped_total() const noexcept { return st_->buf.dropped_total() + st_->write_dropped; }
std::string log_file::failing() const { return st_->failing ? errno_text(st_->failing) : std::string(); }
const std::string& log_file::reopen_error() const noexcept { return st_->reopen_error; }
uint64_t log_file::rotations_for_test() const noexcept { return st_->rotations; }

void log_file::write_line(std::string_view line) {
  queue_line(line);
  kick(st_);
}

void log_file::queue_line(std::string_view line) {
  st_->buf.append(line);
  ++st_->appended;
}

void log_file::when_written(std::function<void()> done) {
  if (st_->settled == st_->appended) return done();
  st_->written_waiters.emplace_back(st_->appended, std::move(done));
  kick(st_);
}

void log_file::flush(std::function<void()> done) {
  st_->buf.clear();
  st_->flush_waiters.push_back(std::move(done));
  kick(st_);
}

void log_file::reopen(std::function<void()> done) {
  st_->reopen_waiters.push_back(std::move(done));
  kick(st_);
}

void log_file::kick(const std::shared_ptr<shared>& st) {
  if (st->busy || (st->buf.empty() && st->flush_waiters.empty() && st->reopen_waiters.empty())) return;
  auto* j = new job{};
  j->st = st;
  j->fd = st->fd;
  // (A file never opened yet, fd -1, is left to its first line.)
  j->reopen = st->reopen || (!st->reopen_waiters.empty() && st->fd >= 0);
  j->reopened.swap(st->reopen_waiters);
  j->path_missing = st->path_missing;
  // Once a second at most (a stat per batch otherwise): a file that
  // logrotate moved, or someone removed, is not written on unseen.
  if (uint64_t now = uv_now(st->loop); !j->reopen && now - st->path_checked >= st->options.path_check_ms) {
    j->check_path = true;
    st->path_checked = now;
  }
  j->truncate = !st->flush_waiters.empty();
  j->flushed.swap(st->flush_waiters);
  j->upto = st->appended;
  if (!st->buf.empty()) {
    // Lines lost to a failed write are said before the first line that makes it.
    if (st->failing && st->failed_lines > 0) {
      if (st->mid_line) j->data = "\n";
      j->data += drop_marker(st->failed_lines, errno_text(st->failing));
      j->prefix = j->data.size();
    }
    j->marked = st->buf.dropped_pending();
    j->data += st->buf.take();
  }
  st->busy = true;
  j->req.data = j;
  uv_queue_work(
      st->loop, &j->req, [](uv_work_t* r) { run(*static_cast<job*>(r->data)); },
      [](uv_work_t* r, int) {
        std::unique_ptr<job> j(static_cast<job*>(r->data));
        done(*j);
      });
}

namespace {

// On the threadpool: the whole of `bytes`, through short writes and EINTR.
bool write_all(int fd, std::string_view bytes, std::size_t& written, int& err) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      err = n < 0 ? errno : EIO;
      return false;
    }
    written += static_cast<std::size_t>(n);
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

}  // namespace

void log_file::run(job& j) {
  const std::string& path = j.st->path;
  const log_options& opt = j.st->options;
  if (j.check_path && j.fd >= 0) {
    // A regular file only: /dev/null or a FIFO is the same whatever its inode.
    struct stat open_file {}, at_path {};
    const bool was_missing = j.path_missing;
    j.path_missing = false;
    if (::fstat(j.fd, &open_file) == 0 && S_ISREG(open_file.st_mode)) {
      if (::stat(path.c_str(), &at_path) == 0) {
        if (!same_file(at_path, open_file)) j.reopen = j.moved = true;
      } else if (errno == ENOENT) {
        // Removed (no name left): at once. Moved (logrotate's rename): the
        // path stays logrotate's to create, with the mode and owner it is
        // told, until the next check.
        if (open_file.st_nlink == 0 || was_missing) j.reopen = j.moved = true;
        else j.path_missing = true;
      }
    }
  }
  if (j.truncate) remove_rotated(path, opt.retain);
  if (j.truncate || j.reopen || (j.fd < 0 && !j.data.empty())) {
    int fd = open_log(path, j.truncate);
    if (fd >= 0) {
      if (j.fd >= 0) ::close(j.fd);
      j.fd = fd;
    } else {
      j.open_errno = errno;
      // A file with no name left (its directory removed, say): what would go
      // on into it is lost, so it is not written, and counts as dropped
      // until the path can be opened. One moved elsewhere is written on.
      struct stat st {};
      if (j.fd >= 0 && ::fstat(j.fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 0) {
        ::close(j.fd);
        j.fd = -1;
      }
    }
  }
  if (j.data.empty()) return;
  if (j.fd < 0) {
    j.write_errno = j.open_errno;
    return;
  }
  struct stat sb {};
  bool rotate = opt.max_size > 0 && ::fstat(j.fd, &sb) == 0 && S_ISREG(sb.st_mode);  // not /dev/null
  uint64_t size = rotate ? static_cast<uint64_t>(sb.st_size) : 0;
  std::string_view rest(j.data);
  while (!rest.empty()) {
    std::size_t n = rotate ? bytes_that_fit(rest, size, opt.max_size) : rest.size();
    if (n > 0) {
      if (!write_all(j.fd, rest.substr(0, n), j.written, j.write_errno)) return;
      size += n;
      rest.remove_prefix(n);
      continue;
    }
    // The next line would pass max_size: rotate between two lines.
    bool moved = true;
    for (const auto& step : rotation_plan(path, opt.retain)) {
      int r = step.to.empty() ? ::unlink(step.from.c_str()) : ::rename(step.from.c_str(), step.to.c_str());
      if (r == 0 || errno == ENOENT) continue;
      j.rotate_errno = errno;
      j.rotate_what = step.to.empty() ? "unlink " + step.from : "rename " + step.from + " to " + step.to;
      moved = false;
      break;
    }
    if (!moved) {
      rotate = false;  // keep every line: they go on in the full file
      continue;
    }
    int fd = open_log(path, false);
    if (fd < 0) {  // the old file is gone from the path: as a failed write
      j.write_errno = errno;
      return;
    }
    ::close(j.fd);
    j.fd = fd;
    size = 0;
    ++j.rotations;
  }
}

void log_file::done(job& j) {
  shared& st = *j.st;
  st.busy = false;
  st.fd = j.fd;
  st.reopen = false;
  st.rotations += j.rotations;
  st.path_missing = j.path_missing;
  if (j.reopen) st.reopen_error = j.open_errno ? errno_text(j.open_errno) : std::string();
  if (j.moved && !j.open_errno) {
    std::fprintf(stderr, "corral daemon: %s was moved or removed (logrotate?): writing to the path afresh\n",
                 st.path.c_str());
    st.reopen_reported = false;
  } else if (j.moved && !st.reopen_reported) {
    std::fprintf(stderr, "corral daemon: %s was moved or removed, and cannot be opened afresh: %s; %s\n",
                 st.path.c_str(), errno_text(j.open_errno).c_str(),
                 j.fd >= 0 ? "writing on to the moved file" : "its lines are dropped (counted) until it can be");
    st.reopen_reported = true;
  }
  if (j.rotate_errno && !st.rotate_reported)
    std::fprintf(stderr, "corral daemon: cannot rotate %s (%s): %s; writing on past max_log_size\n", st.path.c_str(),
                 j.rotate_what.c_str(), errno_text(j.rotate_errno).c_str());
  if (j.rotate_errno) st.rotate_reported = true;
  else if (j.rotations > 0) st.rotate_reported = false;
  if (!j.data.empty() && j.write_errno == 0 && st.failing) {
    std::fprintf(stderr, "corral daemon: %s is written again (the log marks the lines dropped meanwhile)\n",
                 st.path.c_str());
    st.failing = 0;
    st.failed_lines = 0;
    st.mid_line = false;
  }
  if (!j.data.empty() && j.write_errno != 0) {
    // What did not reach the disk: the lines after `written` (a line cut
    // short counts as lost), and the count of the buffer's own marker.
    std::string_view lost(j.data);
    lost.remove_prefix(std::max(j.written, j.prefix));
    auto lines = static_cast<uint64_t>(std::count(lost.begin(), lost.end(), '\n'));
    if (j.marked > 0) --lines;  // that marker's line ends data
    if (j.written >= j.prefix) st.failed_lines = 0;  // our marker made it
    st.failed_lines += lines + j.marked;
    st.write_dropped += lines;
    if (j.written > 0) st.mid_line = j.data[j.written - 1] != '\n';
    if (!st.failing)
      std::fprintf(stderr, "corral daemon: cannot write %s: %s; dropping its lines (counted) until a write succeeds\n",
                   st.path.c_str(), errno_text(j.write_errno).c_str());
    st.failing = j.write_errno;
    st.reopen = true;
  }
  st.settled = j.upto;
  for (auto& f : j.flushed) f();
  for (auto& f : j.reopened) f();
  if (st.closed) return finish_closed(st);
  settle_waiters(st);
  kick(j.st);
  wake_writers(st);
}

void log_file::settle_waiters(shared& st) {
  // In the order they came, each once: a waiter may add waiters.
  auto& w = st.written_waiters;
  std::size_t due = 0;
  while (due < w.size() && w[due].first <= st.settled) ++due;
  if (due == 0) return;
  std::vector<std::function<void()>> run;
  for (std::size_t k = 0; k < due; ++k) run.push_back(std::move(w[k].second));
  w.erase(w.begin(), w.begin() + static_cast<std::ptrdiff_t>(due));
  for (auto& f : run) f();
}

}  // namespace corral::daemon
