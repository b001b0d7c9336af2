// Internal: the servers of this process that can close gracefully. A worker's
// disconnect and the shutdown helper both close them all and wait.
#pragma once

#include <functional>

namespace corral::detail {

/// `close(done)` stops accepting, finishes in-flight work, then calls done.
using closer = std::function<void(std::function<void()> done)>;

int add_closer(closer fn);
void remove_closer(int token);
/// Closes every registered server; `done` runs once all have called back
/// (at once, if none is registered).
void close_all(std::function<void()> done);

}  // namespace corral::detail
