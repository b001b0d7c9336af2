// Internal: the primary's side of shared listening sockets.
#pragma once

#include <string>
#include <vector>

namespace corral {
class worker;
}

namespace corral::net::detail {

/// The keys (listening addresses) a worker is being served.
std::vector<std::string> keys_of(const corral::worker& w);

/// Starts answering workers' listen requests (idempotent). The cluster calls
/// this on its first fork().
void serve_workers();

}  // namespace corral::net::detail
