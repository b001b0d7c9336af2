// Internal: accepts connections from a listening socket on the loop.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "corral/fd.hpp"

namespace corral::net::detail {

/// Watches a listening socket and accepts with accept4() in batches. On
/// EMFILE/ENFILE it pauses briefly instead of spinning. Destruction stops at
/// once; the listening fd is not closed (the owner holds it).
class acceptor {
 public:
  /// `on_batch` gets the connections accepted in one wakeup (never empty);
  /// the vector is not the acceptor's, so on_batch may destroy the acceptor
  /// and still go on with it. Connections left in it are closed on return.
  using batch_fn = std::function<void(std::vector<unique_fd>& conns)>;
  acceptor(int listen_fd, batch_fn on_batch);
  ~acceptor();
  acceptor(const acceptor&) = delete;
  acceptor& operator=(const acceptor&) = delete;
  void pause();
  void resume();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace corral::net::detail
