// Test support: small blocking socket clients with timeouts.
#pragma once

#include <optional>
#include <string>

namespace support {

/// Connects to 127.0.0.1:port (or a Unix path); returns the fd or -errno.
int connect_tcp(int port, int timeout_ms = 2000);
int connect_unix(const std::string& path);
/// Reads until `\n` (returned without it), EOF or timeout: nullopt on error/timeout/EOF without data.
std::optional<std::string> read_line(int fd, int timeout_ms = 2000);
/// Reads until EOF or timeout; returns all bytes.
std::string read_all(int fd, int timeout_ms = 2000);
bool write_all(int fd, const std::string& data);
/// A listening TCP socket on 127.0.0.1:0; returns fd, sets port.
int listen_tcp(int& port);
/// The port in the first "listening <id> 127.0.0.1:<port>" line a cluster
/// test program printed; 0 if none yet.
int listening_port_of(const std::string& out);

}  // namespace support
