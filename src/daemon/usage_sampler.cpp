#include "daemon/usage_sampler.hpp"

#include <unistd.h>

#include <algorithm>

namespace corral::daemon {

void cpu_meter::update(double now_s, const std::vector<proc_sample>& procs) {
  double window = now_s - last_s_;
  std::map<pid_t, seen> next;
  std::map<pid_t, group_usage> groups;
  for (const auto& p : procs) {
    next[p.pid] = {p.start_ticks, p.cpu_ticks};
    auto& g = groups[p.pgid];
    g.rss += p.rss_bytes;
    ++g.processes;
    if (!have_sample_ || window <= 0) continue;
    uint64_t before = 0;
    // Same pid and start time: the same process. Otherwise it is new (or
    // the pid was reused), and all its time falls in this window.
    if (auto it = last_.find(p.pid); it != last_.end() && it->second.start_ticks == p.start_ticks)
      before = std::min(it->second.cpu_ticks, p.cpu_ticks);
    g.cpu += 100.0 * (static_cast<double>(p.cpu_ticks - before) / hz_) / window;
  }
  have_previous_ = have_sample_ && window > 0;
  have_sample_ = true;
  last_s_ = now_s;
  last_ = std::move(next);
  groups_ = std::move(groups);
}

group_usage cpu_meter::of(pid_t pgid) const {
  auto it = groups_.find(pgid);
  return it == groups_.end() ? group_usage{} : it->second;
}

usage_sampler::usage_sampler(groups_fn groups)
    : groups_(std::move(groups)), meter_(static_cast<double>(::sysconf(_SC_CLK_TCK))) {
  sample();  // the first window starts with the daemon
}

double usage_sampler::now_s() const { return static_cast<double>(uv_hrtime()) / 1e9; }

void usage_sampler::sample() {
  auto pgids = groups_();
  std::sort(pgids.begin(), pgids.end());
  meter_.update(now_s(), sample_groups(pgids));
  last_sample_s_ = now_s();
}

void usage_sampler::with_fresh(std::function<void()> then) {
  // Never wait: a `list` right after `start`, or after an hour of quiet,
  // answers at once. The window is the time since the previous pass (the
  // first is taken when the sampler is made, as the daemon starts), and a
  // very recent pass is reused as is: two lists in a row must not measure a
  // 1 ms window.
  double age = now_s() - last_sample_s_;
  if (age >= static_cast<double>(min_window.count()) / 1000.0) sample();
  then();
}

}  // namespace corral::daemon
