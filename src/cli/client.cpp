#include "client.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <thread>

#include "daemon/launch.hpp"

namespace corral::cli {

namespace {

error sys(int err, const std::string& what) {
  return error(std::error_code(err, std::generic_category()), what + ": " + std::strerror(err));
}

}  // namespace

result<client> client::connect(const daemon::home_paths& home) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (home.socket.size() >= sizeof addr.sun_path)
    return error(std::make_error_code(std::errc::filename_too_long), "socket path too long: " + home.socket);
  std::memcpy(addr.sun_path, home.socket.c_str(), home.socket.size() + 1);
  unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return sys(errno, "socket");
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return sys(errno, "cannot reach the daemon at " + home.socket);
  return client(std::move(fd));
}

result<client> client::connect_or_start(const daemon::home_paths& home, pid_t& started) {
  started = 0;
  auto c = connect(home);
  if (c) return c;
  int err = c.err().code().value();
  if (err != ECONNREFUSED && err != ENOENT) return c;
  auto pid = daemon::launch_daemon(home, daemon::self_exe_path(), {});
  if (!pid) return pid.err();
  started = *pid;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    auto again = connect(home);
    if (again) return again;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return error(std::make_error_code(std::errc::timed_out),
               "started a daemon but it does not answer on " + home.socket + " (see " + home.daemon_log + ")");
}

result<json> client::call(const std::string& cmd, json args) {
  unheard_ = false;
  daemon::request req{next_id_++, cmd, std::move(args)};
  std::string line = daemon::encode_line(daemon::encode(req));
  size_t off = 0;
  while (off < line.size()) {
    ssize_t n = ::send(fd_.get(), line.data() + off, line.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      // The daemon may have refused us (another uid) and hung up before our
      // request arrived: its one-line reason is still waiting to be read.
      int err = errno;
      error send_error = sys(err, "daemon connection");
      char buf[4096];
      ssize_t got = ::recv(fd_.get(), buf, sizeof buf, MSG_DONTWAIT);
      if (got <= 0) {
        unheard_ = err == EPIPE || err == ECONNRESET;
        return send_error;
      }
      in_.append(buf, static_cast<size_t>(got));
      break;
    }
    off += static_cast<size_t>(n);
  }
  for (;;) {
    auto nl = in_.find('\n');
    if (nl != std::string::npos) {
      std::string doc = in_.substr(0, nl);
      in_.erase(0, nl + 1);
      auto j = daemon::parse_line(doc);
      if (!j) return j.err();
      auto resp = daemon::decode_response(*j);
      if (!resp) return resp.err();
      if (!resp->ok) return error(std::make_error_code(std::errc::operation_not_permitted), resp->error);
      if (resp->id != req.id) continue;
      return std::move(resp->result);
    }
    char buf[65536];
    ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      // A Unix socket resets only when its peer closed with our bytes
      // unread: the daemon died (or its last thread did) before it read
      // this request, and did nothing with it.
      unheard_ = errno == ECONNRESET && in_.empty();
      return sys(errno, "daemon connection");
    }
    if (n == 0) return error(std::make_error_code(std::errc::connection_reset), "the daemon closed the connection");
    in_.append(buf, static_cast<size_t>(n));
  }
}

result<uint64_t> client::send(const std::string& cmd, json args) {
  daemon::request req{next_id_++, cmd, std::move(args)};
  std::string line = daemon::encode_line(daemon::encode(req));
  for (size_t off = 0; off < line.size();) {
    ssize_t n = ::send(fd_.get(), line.data() + off, line.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys(errno, "daemon connection");
    off += static_cast<size_t>(n);
  }
  return req.id;
}

result<json> client::next(int timeout_ms) {
  for (;;) {
    if (auto nl = in_.find('\n'); nl != std::string::npos) {
      std::string doc = in_.substr(0, nl);
      in_.erase(0, nl + 1);
      return daemon::parse_line(doc);
    }
    pollfd p{fd_.get(), POLLIN, 0};
    int r = ::poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR) return json();
    if (r < 0) return sys(errno, "poll");
    if (r == 0) return json();
    char buf[65536];
    ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) return json();
    if (n < 0) return sys(errno, "daemon connection");
    if (n == 0) return error(std::make_error_code(std::errc::connection_reset), "the daemon closed the connection");
    in_.append(buf, static_cast<size_t>(n));
  }
}

}  // namespace corral::cli
