#include "corral/loop.hpp"

namespace corral {

uv_loop_t* default_loop() noexcept { return uv_default_loop(); }

int run() {
  uv_run(uv_default_loop(), UV_RUN_DEFAULT);
  return 0;
}

void stop() noexcept { uv_stop(uv_default_loop()); }

}  // namespace corral
