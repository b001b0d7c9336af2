// What `list` shows about a process, from /proc (Linux).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>

namespace corral::daemon {

struct proc_sample {
  uint64_t start_ticks = 0;  // starttime, clock ticks since boot
  uint64_t cpu_ticks = 0;    // utime + stime
  uint64_t rss_bytes = 0;
  pid_t pgid = 0;
  char state = '?';
};

/// Reads /proc/<pid>/stat; nullopt if the process is gone.
std::optional<proc_sample> sample_process(pid_t pid);
/// CPU % over the process's lifetime (100 = one core).
double lifetime_cpu_percent(const proc_sample& s);

}  // namespace corral::daemon
