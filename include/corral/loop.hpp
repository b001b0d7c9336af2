// corral/loop.hpp — the event loop every Corral object runs on.
//
// Corral uses libuv's default loop, as Node does: all callbacks of channels,
// workers, listeners and servers run on it, on the thread that calls run().
#pragma once

#include <uv.h>

namespace corral {

/// The loop Corral's objects attach to (libuv's default loop).
uv_loop_t* default_loop() noexcept;

/// Runs the loop until no handle or request keeps it alive; returns 0.
/// A program's main typically ends with `return corral::run();`.
int run();

/// Asks run() to return at the next iteration even if handles are alive.
void stop() noexcept;

}  // namespace corral
