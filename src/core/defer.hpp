// Internal: run a function on the next loop iteration.
#pragma once

#include <functional>

namespace corral::detail {

/// Runs `fn` on the default loop's next iteration (callbacks promised to run
/// "on the loop" never run inside the call that promised them).
void defer(std::function<void()> fn);

}  // namespace corral::detail
