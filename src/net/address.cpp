#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "net/socket.hpp"

namespace corral::net {

std::optional<sched_policy> parse_policy(std::string_view s) {
  if (s == "round_robin" || s == "rr" || s == "round-robin") return sched_policy::round_robin;
  if (s == "shared" || s == "none") return sched_policy::shared;
  if (s == "reuseport") return sched_policy::reuseport;
  return std::nullopt;
}

const char* to_string(sched_policy p) {
  switch (p) {
    case sched_policy::round_robin: return "round_robin";
    case sched_policy::shared: return "shared";
    case sched_policy::reuseport: return "reuseport";
  }
  return "?";
}

sched_policy default_policy() {
  const char* env = std::getenv("CORRAL_SCHED_POLICY");
  if (!env || !*env) return sched_policy::round_robin;
  if (auto p = parse_policy(env)) return *p;
  std::fprintf(stderr, "corral: CORRAL_SCHED_POLICY=%s is not one of round_robin, shared, reuseport; using round_robin\n", env);
  return sched_policy::round_robin;
}

std::string address::to_string() const {
  if (is_unix()) return "unix:" + path;
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

namespace detail {
namespace {

error sys_error(int err, const std::string& what) {
  return error(std::error_code(err, std::generic_category()), what + ": " + std::strerror(err));
}

struct sockaddr_any {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_UNSPEC;
};

result<sockaddr_any> resolve(const address& a) {
  sockaddr_any out;
  if (a.is_unix()) {
    auto* un = reinterpret_cast<sockaddr_un*>(&out.ss);
    if (a.path.size() >= sizeof(un->sun_path))
      return error(std::make_error_code(std::errc::filename_too_long),
                   "listen " + a.to_string() + ": path longer than " + std::to_string(sizeof(un->sun_path) - 1) + " bytes");
    un->sun_family = AF_UNIX;
    std::memcpy(un->sun_path, a.path.c_str(), a.path.size() + 1);
    out.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + a.path.size() + 1);
    out.family = AF_UNIX;
    return out;
  }
  if (a.port < 0 || a.port > 65535)
    return error(std::make_error_code(std::errc::invalid_argument),
                 "listen " + a.to_string() + ": port out of range 0-65535");
  std::string host = a.host.empty() ? "0.0.0.0" : a.host;
  if (host == "localhost") host = "127.0.0.1";
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  auto* in4 = reinterpret_cast<sockaddr_in*>(&out.ss);
  if (::inet_pton(AF_INET, host.c_str(), &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons(static_cast<uint16_t>(a.port));
    out.len = sizeof(sockaddr_in);
    out.family = AF_INET;
    return out;
  }
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&out.ss);
  if (::inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(static_cast<uint16_t>(a.port));
    out.len = sizeof(sockaddr_in6);
    out.family = AF_INET6;
    return out;
  }
  return error(std::make_error_code(std::errc::invalid_argument),
               "listen " + a.to_string() + ": not an IP address (use a numeric IPv4/IPv6 address or localhost)");
}

// A Unix socket file left by a process that died: nobody accepts on it.
bool is_stale_unix_socket(const sockaddr_any& sa, const std::string& path) {
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return false;
  int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (probe < 0) return false;
  bool stale = ::connect(probe, reinterpret_cast<const sockaddr*>(&sa.ss), sa.len) != 0 && errno == ECONNREFUSED;
  ::close(probe);
  return stale;
}

}  // namespace

std::string key_of(const address& a) {
  return a.is_unix() ? "unix:" + a.path : "tcp:" + a.to_string();
}

address address_of(const listen_options& o) {
  address a;
  a.host = o.host.empty() ? "0.0.0.0" : o.host;
  a.port = o.port;
  a.path = o.path;
  return a;
}

json address_to_json(const address& a) {
  if (a.is_unix()) return {{"path", a.path}};
  return {{"host", a.host}, {"port", a.port}};
}

address address_from_json(const json& j) {
  address a;
  if (!j.is_object()) return a;
  if (auto it = j.find("path"); it != j.end() && it->is_string()) a.path = it->get<std::string>();
  if (auto it = j.find("host"); it != j.end() && it->is_string()) a.host = it->get<std::string>();
  if (auto it = j.find("port"); it != j.end() && it->is_number_integer()) a.port = it->get<int>();
  return a;
}

void set_tcp_nodelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // fails harmlessly on non-TCP sockets
}

void set_defer_accept(int fd, bool on) {
  // The kernel counts in seconds of SYN-ACK retransmits; 1 is nginx's
  // `deferred`. Fails harmlessly (ENOPROTOOPT / EOPNOTSUPP) on a Unix socket.
  int secs = on ? 1 : 0;
  (void)::setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof secs);
}

result<unique_fd> bind_socket(const address& addr, int backlog, bool reuseport, bool listen_now) {
  auto sa = resolve(addr);
  if (!sa) return sa.err();
  std::string what = "listen " + addr.to_string();
  unique_fd fd(::socket(sa->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return sys_error(errno, what);
  int one = 1;
  if (sa->family != AF_UNIX) {
    // As Node and nginx do: a restarted server can bind while old
    // connections sit in TIME_WAIT.
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport && ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
      return sys_error(errno, what + " (SO_REUSEPORT)");
    // Accepted sockets inherit it (Linux): servers need no setsockopt per
    // connection, and so do apps that accept from a socket we hand them.
    set_tcp_nodelay(fd.get());
  }
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&sa->ss), sa->len) != 0) {
    int err = errno;
    if (!(err == EADDRINUSE && sa->family == AF_UNIX && is_stale_unix_socket(*sa, addr.path)))
      return sys_error(err, what);
    ::unlink(addr.path.c_str());
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&sa->ss), sa->len) != 0) return sys_error(errno, what);
  }
  if (listen_now && ::listen(fd.get(), backlog) != 0) return sys_error(errno, what);
  return fd;
}

result<address> local_address_of(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return sys_error(errno, "getsockname");
  address a;
  char buf[INET6_ADDRSTRLEN] = {};
  switch (ss.ss_family) {
    case AF_INET: {
      auto* in = reinterpret_cast<sockaddr_in*>(&ss);
      ::inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf);
      a.host = buf;
      a.port = ntohs(in->sin_port);
      break;
    }
    case AF_INET6: {
      auto* in = reinterpret_cast<sockaddr_in6*>(&ss);
      ::inet_ntop(AF_INET6, &in->sin6_addr, buf, sizeof buf);
      a.host = buf;
      a.port = ntohs(in->sin6_port);
      break;
    }
    case AF_UNIX: {
      auto* un = reinterpret_cast<sockaddr_un*>(&ss);
      a.host.clear();
      a.path = len > offsetof(sockaddr_un, sun_path) ? std::string(un->sun_path) : std::string();
      if (a.path.empty()) a.path = "(unnamed)";
      break;
    }
    default:
      return error(std::make_error_code(std::errc::address_family_not_supported), "getsockname: not an inet or unix socket");
  }
  return a;
}

const std::vector<inherited_socket>& inherited_sockets() {
  static const std::vector<inherited_socket> list = [] {
    std::vector<inherited_socket> out;
    const char* pid_env = std::getenv("LISTEN_PID");
    const char* fds_env = std::getenv("LISTEN_FDS");
    if (!pid_env || !fds_env) return out;
    if (std::strtol(pid_env, nullptr, 10) != ::getpid()) return out;  // meant for another process
    long n = std::strtol(fds_env, nullptr, 10);
    std::vector<std::string> names;
    if (const char* names_env = std::getenv("LISTEN_FDNAMES")) {
      std::string all(names_env);
      std::size_t start = 0;
      for (;;) {
        auto colon = all.find(':', start);
        names.push_back(all.substr(start, colon - start));
        if (colon == std::string::npos) break;
        start = colon + 1;
      }
    }
    for (long i = 0; i < n && i < 1024; ++i) {
      int fd = 3 + static_cast<int>(i);  // SD_LISTEN_FDS_START
      ::fcntl(fd, F_SETFD, FD_CLOEXEC);
      auto a = local_address_of(fd);
      if (!a) continue;
      if (!a->is_unix()) set_tcp_nodelay(fd);  // as for sockets we bind ourselves
      out.push_back({fd, i < static_cast<long>(names.size()) ? names[static_cast<std::size_t>(i)] : "", *a});
    }
    ::unsetenv("LISTEN_PID");
    ::unsetenv("LISTEN_FDS");
    ::unsetenv("LISTEN_FDNAMES");
    return out;
  }();
  return list;
}

int pick_socket(const std::vector<address>& have, const address& want) {
  auto wildcard = [](const std::string& h) { return h.empty() || h == "0.0.0.0" || h == "::"; };
  for (std::size_t i = 0; i < have.size(); ++i) {
    const address& a = have[i];
    if (want.is_unix() ? a.path == want.path
                       : (!a.is_unix() && want.port != 0 && a.port == want.port &&
                          (wildcard(want.host) || a.host == want.host)))
      return static_cast<int>(i);
  }
  int only = -1, same_kind = 0;
  for (std::size_t i = 0; i < have.size(); ++i)
    if (have[i].is_unix() == want.is_unix()) {
      ++same_kind;
      only = static_cast<int>(i);
    }
  return same_kind == 1 ? only : -1;  // the deployer chose the port
}

result<unique_fd> take_inherited(const address& want, bool& found) {
  found = false;
  const auto& list = inherited_sockets();
  std::vector<address> have;
  for (const auto& s : list) have.push_back(s.addr);
  int at = pick_socket(have, want);
  if (at < 0) return unique_fd();
  const inherited_socket* match = &list[static_cast<std::size_t>(at)];
  int dup = ::fcntl(match->fd, F_DUPFD_CLOEXEC, 3);
  if (dup < 0) return sys_error(errno, "listen " + want.to_string() + " (inherited fd " + std::to_string(match->fd) + ")");
  // Inherited sockets may be blocking; ours are not.
  ::fcntl(dup, F_SETFL, ::fcntl(dup, F_GETFL) | O_NONBLOCK);
  found = true;
  return unique_fd(dup);
}

result<unique_fd> open_listening(const address& addr, int backlog, bool reuseport, bool listen_now) {
  bool found = false;
  auto inherited = take_inherited(addr, found);
  if (!inherited) return inherited.err();
  if (found) return std::move(inherited.value());
  return bind_socket(addr, backlog, reuseport, listen_now);
}

}  // namespace detail
}  // namespace corral::net
