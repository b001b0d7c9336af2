// Test support for the http_* tests: a blocking HTTP/1.1 client on a raw
// socket, with deadlines on every read, that parses responses strictly
// enough to catch framing bugs (Content-Length, chunked, HEAD, EOF).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <string>

namespace http_test {

struct response {
  int status = 0;
  std::string version;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

class client {
 public:
  /// Connects to 127.0.0.1:port; check ok(). `rcvbuf`: a receive buffer
  /// of about that size, set before connecting (a small one keeps a large
  /// answer from fitting in the kernel's buffers: the server must wait).
  explicit client(int port, int rcvbuf = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (rcvbuf > 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(port));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~client() {
    if (fd_ >= 0) ::close(fd_);
  }
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  bool ok() const { return fd_ >= 0; }

  bool send(const std::string& data) {
    std::size_t off = 0;
    while (off < data.size()) {
      ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<std::size_t>(n);
    }
    return true;
  }

  /// Reads one response; nullopt on timeout, EOF or reset before it is complete.
  std::optional<response> read(bool head = false, int timeout_ms = 5000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    std::size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos)
      if (!fill(deadline)) return std::nullopt;
    response r;
    std::string head_text = buf_.substr(0, end);
    buf_.erase(0, end + 4);
    std::size_t line_end = head_text.find("\r\n");
    std::string status_line = head_text.substr(0, line_end);
    r.version = status_line.substr(0, status_line.find(' '));
    r.status = std::atoi(status_line.c_str() + status_line.find(' ') + 1);
    std::size_t pos = line_end == std::string::npos ? head_text.size() : line_end + 2;
    while (pos < head_text.size()) {
      std::size_t e = head_text.find("\r\n", pos);
      if (e == std::string::npos) e = head_text.size();
      std::string line = head_text.substr(pos, e - pos);
      pos = e + 2;
      std::size_t colon = line.find(':');
      std::string name = line.substr(0, colon);
      for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      std::string value = colon == std::string::npos ? "" : line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      r.headers[name] = value;
    }
    if (head || r.status < 200 || r.status == 204 || r.status == 304) return r;
    if (r.header("transfer-encoding") == "chunked") {
      for (;;) {
        std::size_t le;
        while ((le = buf_.find("\r\n")) == std::string::npos)
          if (!fill(deadline)) return std::nullopt;
        std::size_t size = std::strtoul(buf_.c_str(), nullptr, 16);
        buf_.erase(0, le + 2);
        while (buf_.size() < size + 2)
          if (!fill(deadline)) return std::nullopt;
        r.body += buf_.substr(0, size);
        buf_.erase(0, size + 2);
        if (size == 0) return r;
      }
    }
    if (r.headers.count("content-length")) {
      std::size_t n = std::strtoul(r.header("content-length").c_str(), nullptr, 10);
      while (buf_.size() < n)
        if (!fill(deadline)) return std::nullopt;
      r.body = buf_.substr(0, n);
      buf_.erase(0, n);
      return r;
    }
    while (fill(deadline)) {
    }
    r.body = std::move(buf_);
    buf_.clear();
    return r;
  }

  /// Reads raw bytes until `needle` is buffered (then consumes through it).
  bool expect_raw(const std::string& needle, int timeout_ms = 5000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    std::size_t at;
    while ((at = buf_.find(needle)) == std::string::npos)
      if (!fill(deadline)) return false;
    buf_.erase(0, at + needle.size());
    return true;
  }

  /// True once the server has closed (EOF or reset) within the timeout, with
  /// no further bytes.
  bool closed_by_peer(int timeout_ms = 5000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (fill(deadline)) {
    }
    return eof_ && buf_.empty();
  }
  bool saw_eof() const { return eof_; }

 private:
  // Reads more into buf_; false on EOF, error or deadline.
  bool fill(std::chrono::steady_clock::time_point deadline) {
    if (eof_) return false;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char tmp[65536];
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    buf_.append(tmp, static_cast<std::size_t>(n));
    return true;
  }

  int fd_ = -1;
  std::string buf_;
  bool eof_ = false;
};

/// VmRSS of `pid` in KiB, or -1.
inline long rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  return -1;
}

/// True once `pid` is asleep with the same VmRSS on two looks in a row
/// (a server waiting for its client, its memory as it will stay), within
/// `timeout_ms`.
inline bool wait_settled(pid_t pid, int timeout_ms = 10000) {
  auto asleep = [pid] {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), {});
    auto p = stat.rfind(')');
    return p != std::string::npos && stat.size() > p + 2 && stat[p + 2] == 'S';
  };
  long last = -1;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    long now = rss_kib(pid);
    if (asleep() && now == last) return true;
    last = now;
    ::poll(nullptr, 0, 20);
  }
  return false;
}

}  // namespace http_test
