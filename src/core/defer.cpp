#include "core/defer.hpp"

#include <uv.h>

#include <vector>

#include "core/handle.hpp"

namespace corral::detail {
namespace {

struct queue {
  uv_handle_ptr<uv_timer_t> timer;
  std::vector<std::function<void()>> fns;
};

queue& q() {
  static auto* instance = new queue;  // lives for the whole process
  return *instance;
}

}  // namespace

void defer(std::function<void()> fn) {
  auto& s = q();
  s.fns.push_back(std::move(fn));
  if (!s.timer) {
    s.timer = uv_handle_ptr<uv_timer_t>::make();
    uv_timer_init(uv_default_loop(), s.timer.get());
  }
  uv_timer_start(s.timer.get(), [](uv_timer_t*) {
    auto fns = std::move(q().fns);
    q().fns.clear();
    for (auto& f : fns) f();
  }, 0, 0);
}

}  // namespace corral::detail
