#include "daemon/control_server.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>
#include <cstdio>
#include <cstring>

#include "daemon/protocol.hpp"

namespace corral::daemon {

namespace {

error sys(int err, const std::string& what) {
  return error(std::error_code(err, std::generic_category()), what + ": " + std::strerror(err));
}

}  // namespace

result<std::unique_ptr<control_server>> control_server::listen(uv_loop_t* loop, const std::string& path,
                                                               request_fn fn) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path)
    return error(std::make_error_code(std::errc::filename_too_long),
                 "control socket path too long (" + std::to_string(path.size()) + " bytes): " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return sys(errno, "socket");
  ::unlink(path.c_str());
  // The socket is created 0600 by the umask, so there is no window where
  // another user could connect before the chmod.
  mode_t old = ::umask(077);
  int r = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  int err = errno;
  ::umask(old);
  if (r != 0) return sys(err, "bind " + path);
  if (::listen(fd.get(), 128) != 0) return sys(errno, "listen " + path);
  auto srv = std::unique_ptr<control_server>(new control_server(loop, path, std::move(fd), std::move(fn)));
  return srv;
}

control_server::control_server(uv_loop_t* loop, std::string path, unique_fd fd, request_fn fn)
    : loop_(loop), path_(std::move(path)), fd_(std::move(fd)), on_request_(std::move(fn)) {
  poll_ = detail::uv_handle_ptr<uv_poll_t>::make();
  uv_poll_init(loop_, poll_.get(), fd_.get());
  poll_->data = this;
  accept_timer_ = detail::uv_handle_ptr<uv_timer_t>::make();
  uv_timer_init(loop_, accept_timer_.get());
  accept_timer_->data = this;
  watch_listener();
}

control_server::~control_server() {
  accept_timer_.reset();
  poll_.reset();
  conns_.clear();
  ::unlink(path_.c_str());
}

void control_server::watch_listener() {
  uv_poll_start(poll_.get(), UV_READABLE, [](uv_poll_t* p, int, int) {
    if (auto* self = static_cast<control_server*>(p->data)) self->on_acceptable();
  });
}

void control_server::on_acceptable() {
  for (int k = 0; k < 64; ++k) {
    int fd = ::accept4(fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      accept_paused_said_ = false;
      accept_one(fd);
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) pause_accepting(errno);
    return;  // EAGAIN: nothing more now
  }
}

void control_server::pause_accepting(int err) {
  // The connection stays in the backlog, so the socket stays readable: a
  // poll left on would fire again at once and spin on a core. As libuv and
  // nginx do, stop watching it for a while (the clients we have are served
  // meanwhile) and look again; said once until an accept works again.
  if (!accept_paused_said_)
    std::fprintf(stderr, "corral daemon: control socket: cannot accept: %s (%s); accepting paused, retried every %d ms\n",
                 std::strerror(err), uv_err_name(-err), accept_retry_ms);
  accept_paused_said_ = true;
  uv_poll_stop(poll_.get());
  uv_timer_start(accept_timer_.get(), [](uv_timer_t* t) {
    auto* self = static_cast<control_server*>(t->data);
    if (self && self->poll_) self->watch_listener();
  }, accept_retry_ms, 0);
}

void control_server::accept_one(int raw) {
  unique_fd fd(raw);
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != ::geteuid()) {
    ++rejected_;
    std::string line = encode_line(encode(response{
        0, false, json(),
        "permission denied: the corral daemon of uid " + std::to_string(::geteuid()) +
            " does not accept commands from uid " + std::to_string(cred.uid)}));
    // Best effort, non-blocking: a fresh socket's buffer takes one line.
    (void)!::send(fd.get(), line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    return;
  }
  uint64_t id = next_conn_++;
  channel_options co;
  co.peer = "control client (pid " + std::to_string(cred.pid) + ")";
  co.max_line = 1u << 20;
  int raw_fd = fd.get();
  auto ch = channel::open(fd.release(), co, loop_);
  if (!ch) return;
  auto& c = conns_[id] = std::move(ch.value());
  c->on_message([this, id](json&& msg, std::vector<unique_fd>&&) { on_request_(id, std::move(msg)); });
  c->on_error([this, id, raw_fd](const error& e) { on_protocol_error(id, raw_fd, e); });
  c->on_close([this, id] {
    // Freed on the next turn: the channel is inside its own callback.
    auto it = conns_.find(id);
    if (it == conns_.end()) return;
    auto* dead = it->second.release();
    conns_.erase(it);
    if (on_disconnect_) on_disconnect_(id);
    auto* t = new uv_timer_t;
    uv_timer_init(loop_, t);
    t->data = dead;
    uv_timer_start(t, [](uv_timer_t* tt) {
      delete static_cast<channel*>(tt->data);
      uv_close(reinterpret_cast<uv_handle_t*>(tt), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    }, 0, 0);
    maybe_done();
  });
}

// The channel closes right after this, dropping what it has queued; its
// socket is still open here. A line that is not JSON, or too long, is
// answered (best effort, as a rejected peer is) so the client learns why it
// is cut off, in the protocol's reply shape with id 0 (docs/manager-protocol.md).
void control_server::on_protocol_error(uint64_t conn, int fd, const error& e) {
  if (e.code() != std::errc::protocol_error && e.code() != std::errc::message_size) return;  // I/O: the peer went
  auto it = conns_.find(conn);
  std::string why = e.message();
  if (it != conns_.end()) {
    // "channel to control client (pid N): " names the peer, not the fault.
    std::string prefix = "channel to " + it->second->peer() + ": ";
    if (why.rfind(prefix, 0) == 0) why.erase(0, prefix.size());
  }
  std::fprintf(stderr, "corral daemon: %s: malformed request: %s; disconnected\n",
               it != conns_.end() ? it->second->peer().c_str() : "control client", why.c_str());
  // Replies still queued would come first: the line would land inside one.
  if (it != conns_.end() && it->second->queued_bytes() > 0) return;
  std::string line = encode_line(encode(response{0, false, json(), "malformed request: " + why}));
  (void)!::send(fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

bool control_server::send(uint64_t conn, const json& doc) {
  auto it = conns_.find(conn);
  if (it == conns_.end()) return false;
  bool below_high_water = it->second->send(doc);
  if (it->second->queued_bytes() <= max_unread_bytes) return below_high_water;
  // A client that keeps asking and never reads would make the daemon queue
  // its replies without bound.
  std::fprintf(stderr, "corral daemon: %s: more than %zu MiB of replies unread; disconnected\n",
               it->second->peer().c_str(), max_unread_bytes >> 20);
  drop(conn);
  return false;
}

void control_server::drop(uint64_t conn) {
  auto it = conns_.find(conn);
  if (it == conns_.end()) return;
  // Not called from inside this channel's callbacks (a stream's timer), so
  // it may be destroyed here; destruction runs no callback.
  auto doomed = std::move(it->second);
  conns_.erase(it);
  doomed.reset();
  if (on_disconnect_) on_disconnect_(conn);
  maybe_done();
}

void control_server::shutdown(std::function<void()> done) {
  shutting_down_ = true;
  on_done_ = std::move(done);
  accept_timer_.reset();
  poll_.reset();
  ::unlink(path_.c_str());
  fd_.reset();
  std::vector<channel*> open;
  for (auto& [id, c] : conns_) open.push_back(c.get());
  for (auto* c : open) c->close();
  maybe_done();
}

void control_server::maybe_done() {
  if (!shutting_down_ || !conns_.empty() || !on_done_) return;
  auto fn = std::move(on_done_);
  on_done_ = nullptr;
  fn();
}

}  // namespace corral::daemon
