// corral/event.hpp — a list of listeners, Node's EventEmitter for one event.
#pragma once

#include <functional>
#include <vector>

namespace corral {

/// Listeners for one event, called in the order they were added. A listener
/// may add listeners (they first run at the next emit).
template <class... Args>
class event {
 public:
  using listener = std::function<void(Args...)>;
  void add(listener fn) { listeners_.push_back(std::move(fn)); }
  bool empty() const noexcept { return listeners_.empty(); }
  void clear() noexcept { listeners_.clear(); }
  /// Calls every listener. Copies the list first, so that a listener may
  /// destroy the event's owner only if it is the last to run.
  void emit(Args... args) const {
    if (listeners_.size() == 1) {
      auto fn = listeners_.front();
      fn(args...);
      return;
    }
    auto copy = listeners_;
    for (auto& fn : copy) fn(args...);
  }

 private:
  std::vector<listener> listeners_;
};

}  // namespace corral
