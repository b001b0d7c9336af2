#include "core/closers.hpp"

#include <map>
#include <memory>

namespace corral::detail {
namespace {

struct registry {
  int next = 1;
  std::map<int, closer> closers;
};

registry& reg() {
  static auto* r = new registry;  // lives for the whole process
  return *r;
}

}  // namespace

int add_closer(closer fn) {
  int token = reg().next++;
  reg().closers.emplace(token, std::move(fn));
  return token;
}

void remove_closer(int token) { reg().closers.erase(token); }

void close_all(std::function<void()> done) {
  auto closers = reg().closers;  // a closer may unregister itself
  if (closers.empty()) {
    done();
    return;
  }
  // Shared by every closer's callback; the last one to answer calls done.
  auto pending = std::make_shared<std::size_t>(closers.size());
  auto finish = std::make_shared<std::function<void()>>(std::move(done));
  for (auto& [token, fn] : closers) {
    fn([pending, finish] {
      if (--*pending == 0) (*finish)();
    });
  }
}

}  // namespace corral::detail
