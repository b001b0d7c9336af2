// Internal: how many round-robin connections a worker has taken, counted in
// a page of memory the primary and the worker share (a memfd the primary
// creates and sends with its `listening` answer).
//
// The primary passes connections to the worker with the fewest taken-but-
// not-yet-served ones. Counting them with an "ack" message per batch cost
// each connection a send in the worker and a wakeup, a read and a JSON parse
// in the primary: on 2 cores with one connection per request, 15% of the
// throughput and twice the p99. A shared counter costs one atomic add.
#pragma once

#include <cstdint>

#include "corral/error.hpp"
#include "corral/fd.hpp"

namespace corral::net::detail {

class delivered_counter {
 public:
  delivered_counter() = default;
  delivered_counter(delivered_counter&& o) noexcept : cell_(o.cell_) { o.cell_ = nullptr; }
  delivered_counter& operator=(delivered_counter&& o) noexcept;
  ~delivered_counter();

  /// A new counter at 0, and the fd that maps it elsewhere.
  static result<delivered_counter> create(unique_fd& share);
  /// Maps a counter from an fd `create` made. Refuses anything else (wrong
  /// size, not a memfd we can map): the caller then counts by messages.
  static result<delivered_counter> map(int fd);

  explicit operator bool() const noexcept { return cell_ != nullptr; }
  std::uint64_t load() const noexcept;
  void add(std::uint64_t n) noexcept;

 private:
  explicit delivered_counter(std::uint64_t* cell) : cell_(cell) {}
  std::uint64_t* cell_ = nullptr;
};

}  // namespace corral::net::detail
