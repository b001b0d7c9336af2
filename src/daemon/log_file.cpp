#include "daemon/log_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "daemon/log_lines.hpp"

namespace corral::daemon {

struct log_file::shared {
  uv_loop_t* loop;
  int fd;
  log_buffer buf;
  bool writing = false;
  bool closed = false;  // the owner is gone: close fd after the last write
};

namespace {

struct write_op {
  uv_fs_t req;
  std::shared_ptr<void> keep;  // the file's shared state, alive until done
  std::string data;
  uv_buf_t iov;
};

}  // namespace

result<std::unique_ptr<log_file>> log_file::open(uv_loop_t* loop, std::string path, std::size_t capacity) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return error(std::error_code(errno, std::generic_category()), "open log " + path);
  auto st = std::make_shared<shared>(shared{loop, fd, log_buffer(capacity)});
  return std::unique_ptr<log_file>(new log_file(loop, std::move(path), std::move(st)));
}

log_file::log_file(uv_loop_t* loop, std::string path, std::shared_ptr<shared> st)
    : loop_(loop), path_(std::move(path)), st_(std::move(st)) {}

log_file::~log_file() {
  st_->closed = true;
  if (!st_->writing) {
    // Whatever is still buffered goes out synchronously: the daemon is
    // deleting the app or exiting, and a log must not lose its last lines.
    std::string rest = st_->buf.take();
    if (!rest.empty()) (void)!::write(st_->fd, rest.data(), rest.size());
    ::close(st_->fd);
  }
}

uint64_t log_file::dropped_total() const noexcept { return st_->buf.dropped_total(); }

void log_file::write_line(std::string_view line) {
  st_->buf.append(line);
  kick(st_);
}

void log_file::truncate() {
  if (::ftruncate(st_->fd, 0) != 0) {
    // Nothing to report to: the flush reply says done either way.
  }
}

void log_file::kick(const std::shared_ptr<shared>& st) {
  if (st->writing || st->buf.empty()) return;
  auto* op = new write_op{};
  op->keep = st;
  op->data = st->buf.take();
  op->iov = uv_buf_init(op->data.data(), static_cast<unsigned>(op->data.size()));
  op->req.data = op;
  st->writing = true;
  int r = uv_fs_write(st->loop, &op->req, st->fd, &op->iov, 1, -1, [](uv_fs_t* req) {
    auto* op = static_cast<write_op*>(req->data);
    auto st = std::static_pointer_cast<shared>(op->keep);
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    // A short write to a regular file means the disk is full: the rest is
    // lost, as the next lines would be; the loop must go on regardless.
    (void)n;
    delete op;
    st->writing = false;
    if (st->closed) {
      std::string rest = st->buf.take();
      if (!rest.empty()) (void)!::write(st->fd, rest.data(), rest.size());
      ::close(st->fd);
      return;
    }
    kick(st);
  });
  if (r < 0) {
    st->writing = false;
    delete op;
  }
}

}  // namespace corral::daemon
