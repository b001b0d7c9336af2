#include "logs.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <set>

#include "daemon/paths.hpp"

namespace corral::cli {

namespace {

// The last `n` lines of an open file, reading backwards in blocks so a huge
// log costs only its tail; `count` says how many it found (fewer than `n` when
// the file is short). Reads only up to `end`.
std::string tail_of(int fd, off_t end, int n, int& count) {
  count = 0;
  if (n <= 0) return "";
  std::string data;
  off_t pos = end;
  int newlines = 0;
  while (pos > 0 && newlines <= n) {
    off_t step = std::min<off_t>(pos, 65536);
    pos -= step;
    std::string block(static_cast<size_t>(step), '\0');
    if (::pread(fd, block.data(), static_cast<size_t>(step), pos) != step) break;
    newlines += static_cast<int>(std::count(block.begin(), block.end(), '\n'));
    data.insert(0, block);
  }
  // Keep the last n complete lines.
  size_t cut = data.size();
  if (!data.empty() && data.back() == '\n') --cut;
  int seen = 0;
  while (cut > 0) {
    if (data[cut - 1] == '\n' && ++seen == n) break;
    --cut;
  }
  std::string out = data.substr(cut);
  count = static_cast<int>(std::count(out.begin(), out.end(), '\n'));
  if (!out.empty() && out.back() != '\n') ++count;
  return out;
}

void print_lines(const std::string& label, const std::string& text) {
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    std::fwrite(label.data(), 1, label.size(), stdout);
    std::fwrite(text.data() + start, 1, nl - start, stdout);
    std::fputc('\n', stdout);
    start = nl + 1;
  }
}

using daemon::same_file;

// Last written strictly before `b` was (a file rotated after `b` was written to after it).
bool written_before(const struct stat& a, const struct stat& b) {
  return a.st_mtim.tv_sec != b.st_mtim.tv_sec ? a.st_mtim.tv_sec < b.st_mtim.tv_sec
                                              : a.st_mtim.tv_nsec < b.st_mtim.tv_nsec;
}

// One file being followed. It keeps its descriptor, so when the daemon
// rotates the file away (rename, or unlink with log_retain 0) what was
// written there last is still read before the new file is.
struct follower {
  const log_source* src;
  int fd = -1;
  struct stat st {};
  off_t offset = 0;
  std::string partial;

  follower() = default;
  follower(const follower&) = delete;
  follower& operator=(const follower&) = delete;
  ~follower() { close_file(); }

  bool open_file(const std::string& path) {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {  // /dev/full and the like: nothing to read
      close_file();
      return false;
    }
    offset = 0;
    return true;
  }
  void close_file() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }

  // Reads what was appended; prints the complete lines.
  bool read_new() {
    struct stat now {};
    if (fd < 0 || ::fstat(fd, &now) != 0) return false;
    if (now.st_size < offset) offset = 0;  // flushed: start over
    bool any = false;
    while (offset < now.st_size) {
      std::string chunk(static_cast<size_t>(std::min<off_t>(now.st_size - offset, 1 << 20)), '\0');
      ssize_t n = ::pread(fd, chunk.data(), chunk.size(), offset);
      if (n <= 0) break;
      chunk.resize(static_cast<size_t>(n));
      offset += n;
      partial += chunk;
      if (auto last = partial.rfind('\n'); last != std::string::npos) {
        print_lines(src->label, partial.substr(0, last));
        partial.erase(0, last + 1);
        any = true;
      }
    }
    return any;
  }

  std::string rotated_path(int k) const { return src->path + "." + std::to_string(k); }

  // The rest of the open file, then it is closed.
  bool finish_file() {
    bool any = read_new();
    if (!partial.empty()) print_lines(src->label, partial);
    any |= !partial.empty();
    partial.clear();
    close_file();
    return any;
  }

  bool pump() {
    bool any = read_new();
    struct stat now {};
    bool gone = ::stat(src->path.c_str(), &now) != 0;
    if (fd >= 0 && !gone && same_file(now, st)) return any;
    if (fd >= 0) {
      // Rotated away. If we slept through several rotations, ours is now
      // <path>.k and <path>.k-1 .. <path>.1 came after it: read those too.
      // After more than log_retain rotations ours is gone (we still hold
      // it), and every rotated file written since came after it; the lines
      // of those removed meanwhile are lost.
      int ours = 0, oldest = 0;
      for (int k = 1; k <= 1000 && ours == 0; ++k) {
        struct stat rotated {};
        if (::stat(rotated_path(k).c_str(), &rotated) != 0) break;
        oldest = k;
        if (same_file(rotated, st)) ours = k;
      }
      struct stat last {};
      ::fstat(fd, &last);
      any |= finish_file();
      for (int k = ours > 0 ? ours - 1 : oldest; k >= 1; --k) {
        struct stat rotated {};
        // Not one from before ours (the path was removed by hand, not rotated).
        if (ours == 0 && (::stat(rotated_path(k).c_str(), &rotated) != 0 || written_before(rotated, last))) continue;
        if (open_file(rotated_path(k))) any |= finish_file();
      }
    }
    if (!gone && open_file(src->path)) any |= read_new();
    return any;
  }
};

// Following without polling: one inotify watch per directory; any event on
// a followed name (written, truncated, renamed, created, deleted) wakes us.
struct watcher {
  int fd = -1;
  std::set<std::string> names;

  explicit watcher(const std::vector<log_source>& sources) {
    fd = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (fd < 0) return;
    std::set<std::string> dirs;
    for (auto& s : sources) {
      auto slash = s.path.rfind('/');
      dirs.insert(slash == std::string::npos ? "." : s.path.substr(0, slash == 0 ? 1 : slash));
      names.insert(slash == std::string::npos ? s.path : s.path.substr(slash + 1));
    }
    for (auto& d : dirs)
      if (::inotify_add_watch(fd, d.c_str(), IN_MODIFY | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO |
                                                  IN_CLOSE_WRITE | IN_ATTRIB) < 0) {
        ::close(fd);  // out of watches: poll instead
        fd = -1;
        return;
      }
  }
  ~watcher() {
    if (fd >= 0) ::close(fd);
  }

  // Drains the queued events; true if one concerns a followed file.
  bool relevant() {
    alignas(inotify_event) char buf[16384];
    bool hit = false;
    for (;;) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0) return hit;
      for (char* p = buf; p < buf + n;) {
        auto* ev = reinterpret_cast<inotify_event*>(p);
        hit |= (ev->mask & IN_Q_OVERFLOW) || (ev->len > 0 && names.count(ev->name) > 0);
        p += sizeof(inotify_event) + ev->len;
      }
    }
  }
};

}  // namespace

void drop_repeated_paths(std::vector<log_source>& sources) {
  std::vector<log_source> kept;
  for (auto& s : sources)
    if (std::none_of(kept.begin(), kept.end(), [&](const log_source& k) { return k.path == s.path; }))
      kept.push_back(std::move(s));
  sources = std::move(kept);
}

int show_logs(const std::vector<log_source>& sources, int lines, bool follow) {
  std::vector<follower> followers(sources.size());
  for (size_t k = 0; k < sources.size(); ++k) {
    follower& f = followers[k];
    f.src = &sources[k];
    int found = 0;
    std::string text;
    if (f.open_file(sources[k].path)) {
      f.offset = f.st.st_size;
      text = tail_of(f.fd, f.offset, lines, found);
    }
    if (found < lines) {
      // The current file is short (it was just rotated): the rest comes from
      // the previous one, unless a rotation in between made them the same.
      int older = ::open((sources[k].path + ".1").c_str(), O_RDONLY | O_CLOEXEC);
      struct stat st {};
      if (older >= 0 && ::fstat(older, &st) == 0 && S_ISREG(st.st_mode) && (f.fd < 0 || !same_file(st, f.st))) {
        int more = 0;
        text = tail_of(older, st.st_size, lines - found, more) + text;
      }
      if (older >= 0) ::close(older);
    }
    print_lines(sources[k].label, text);
  }
  std::fflush(stdout);
  if (!follow) return 0;
  watcher w(sources);
  for (;;) {
    bool any = false;
    for (auto& f : followers) any |= f.pump();
    if (any) std::fflush(stdout);
    if (std::ferror(stdout)) return 0;  // the reader went away
    // Wait for the files to change, or for the reader of a pipe to go
    // (POLLERR on our stdout). Without inotify, look again every 50 ms.
    pollfd fds[2] = {{w.fd, POLLIN, 0}, {STDOUT_FILENO, 0, 0}};
    int r = ::poll(fds, 2, w.fd >= 0 ? -1 : 50);
    if (r > 0 && (fds[1].revents & (POLLERR | POLLHUP))) return 0;
    while (r > 0 && (fds[0].revents & POLLIN) && !w.relevant()) {
      r = ::poll(fds, 2, -1);
      if (r > 0 && (fds[1].revents & (POLLERR | POLLHUP))) return 0;
    }
  }
}

}  // namespace corral::cli
