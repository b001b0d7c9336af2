// Internal: sockets for listening, and the primary/worker protocol of the net layer.
#pragma once

#include <sys/socket.h>

#include <string>
#include <vector>

#include "corral/channel.hpp"
#include "corral/error.hpp"
#include "corral/fd.hpp"
#include "corral/net.hpp"

namespace corral::net::detail {

/// Creates a non-blocking, close-on-exec socket bound to `addr`; listening
/// (with `backlog`) unless `listen_now` is false. `reuseport` sets SO_REUSEPORT.
/// Errors name the address: "listen 0.0.0.0:80: permission denied".
/// TCP_NODELAY on a listening socket: the sockets it accepts inherit it.
void set_tcp_nodelay(int fd);
/// TCP_DEFER_ACCEPT on a listening TCP socket (see listen_options::defer_accept);
/// nothing on other sockets.
void set_defer_accept(int fd, bool on);
result<unique_fd> bind_socket(const address& addr, int backlog, bool reuseport, bool listen_now = true);
/// The address a socket is bound to.
result<address> local_address_of(int fd);
/// Unique name of what a listen request asks for: "tcp:0.0.0.0:3000" or "unix:/path".
std::string key_of(const address& addr);
/// Address from listen options.
address address_of(const listen_options& o);

/// Address from JSON {"host":..,"port":..,"path":..} and back.
json address_to_json(const address& a);
address address_from_json(const json& j);

/// systemd socket activation: the sockets this process inherited (fds 3..,
/// LISTEN_PID == our pid). Parsed once; the variables are then removed from
/// the environment so children do not take them for theirs.
struct inherited_socket {
  int fd;
  std::string name;
  address addr;
};
const std::vector<inherited_socket>& inherited_sockets();
/// Which of `have` (addresses of sockets a deployer opened) serves `want`:
/// the same path, or the same port and host (a wildcard host matching any);
/// else, if exactly one is of the same kind (TCP or Unix), that one (the
/// deployer chose the port). -1: none.
int pick_socket(const std::vector<address>& have, const address& want);
/// A duplicate of the inherited socket that matches `want` (same path, or same
/// port and host, a wildcard host matching any); else, if exactly one
/// inherited socket of the same kind (TCP or Unix) exists, that one.
result<unique_fd> take_inherited(const address& want, bool& found);

/// Best socket for a key: an inherited one, else a new one.
result<unique_fd> open_listening(const address& addr, int backlog, bool reuseport, bool listen_now);

}  // namespace corral::net::detail
