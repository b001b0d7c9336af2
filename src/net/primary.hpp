// Internal: the primary's side of shared listening sockets.
#pragma once

namespace corral::net::detail {

/// Starts answering workers' listen requests (idempotent). The cluster calls
/// this on its first fork().
void serve_workers();

}  // namespace corral::net::detail
