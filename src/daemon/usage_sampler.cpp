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

usage_sampler::usage_sampler(uv_loop_t* loop, groups_fn groups)
    : loop_(loop), groups_(std::move(groups)), meter_(static_cast<double>(::sysconf(_SC_CLK_TCK))) {
  timer_ = detail::uv_handle_ptr<uv_timer_t>::make();
  uv_timer_init(loop_, timer_.get());
  timer_->data = this;
}

double usage_sampler::now_s() const { return static_cast<double>(uv_hrtime()) / 1e9; }

void usage_sampler::sample() {
  auto pgids = groups_();
  std::sort(pgids.begin(), pgids.end());
  meter_.update(now_s(), sample_groups(pgids));
  last_sample_s_ = now_s();
}

void usage_sampler::with_fresh(std::function<void()> then) {
  if (!waiting_.empty()) {  // a baseline window is open: share it
    waiting_.push_back(std::move(then));
    return;
  }
  double age = now_s() - last_sample_s_;
  auto secs = [](std::chrono::milliseconds d) { return static_cast<double>(d.count()) / 1000.0; };
  if (age <= secs(max_window)) {
    // Recent enough to be the start of the window; a very recent one is
    // reused as is (two lists in a row must not measure a 1 ms window).
    if (age >= secs(min_window)) sample();
    then();
    return;
  }
  sample();
  waiting_.push_back(std::move(then));
  uv_timer_start(timer_.get(), [](uv_timer_t* t) {
    auto* self = static_cast<usage_sampler*>(t->data);
    self->sample();
    auto run = std::move(self->waiting_);
    self->waiting_.clear();
    for (auto& fn : run) fn();
  }, static_cast<uint64_t>(baseline_window.count()), 0);
}

}  // namespace corral::daemon
