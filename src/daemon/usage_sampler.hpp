// CPU % over a recent interval and memory of each instance's process group,
// for list, describe and monit.
//
// Idle cost is zero: there is no periodic timer. /proc is read only when a
// request needs figures (list, describe, a monit tick), and once when the
// daemon starts. CPU % is the difference of two samples: this request's and
// the previous one (reused if younger than `min_window`). Nothing waits: the
// window is as long as the time since the previous look (monit and `watch
// corral list` look every second or two).
#pragma once

#include <uv.h>

#include <chrono>
#include <functional>
#include <map>
#include <vector>

#include "core/handle.hpp"
#include "daemon/proc_stats.hpp"

namespace corral::daemon {

struct group_usage {
  double cpu = 0;      // % of one core over the last window, summed over the group
  uint64_t rss = 0;    // bytes, summed over the group's processes
  int processes = 0;
};

/// The arithmetic, pure: feed it successive samples of every watched
/// process; it answers per process group.
class cpu_meter {
 public:
  explicit cpu_meter(double ticks_per_second) : hz_(ticks_per_second) {}
  /// Records a sample taken at `now_s` (any monotonic seconds). A process
  /// seen for the first time counts all its CPU time as spent in this
  /// window (it started during it); one that vanished counts nothing.
  void update(double now_s, const std::vector<proc_sample>& procs);
  /// Figures of group `pgid` from the last update (zero if not seen).
  group_usage of(pid_t pgid) const;
  bool has_window() const noexcept { return have_previous_; }

 private:
  struct seen {
    uint64_t start_ticks;
    uint64_t cpu_ticks;
  };
  double hz_;
  bool have_sample_ = false;
  bool have_previous_ = false;
  double last_s_ = 0;
  std::map<pid_t, seen> last_;  // by pid
  std::map<pid_t, group_usage> groups_;
};

class usage_sampler {
 public:
  using groups_fn = std::function<std::vector<pid_t>()>;
  static constexpr std::chrono::milliseconds min_window{250};

  /// `groups` lists the process groups to watch (the running instances).
  explicit usage_sampler(groups_fn groups);
  /// Takes a sample (unless the last one is younger than min_window), then
  /// runs `then`, at once.
  void with_fresh(std::function<void()> then);
  group_usage of(pid_t pgid) const { return meter_.of(pgid); }
  /// Whether of() has figures from a window (false before the first one).
  bool ready() const noexcept { return meter_.has_window(); }

 private:
  void sample();
  double now_s() const;

  groups_fn groups_;
  cpu_meter meter_;
  double last_sample_s_ = -1e9;
};

}  // namespace corral::daemon
