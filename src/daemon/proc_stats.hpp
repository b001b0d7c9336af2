// What `list` shows about a process, from /proc (Linux).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace corral::daemon {

struct proc_sample {
  pid_t pid = 0;
  uint64_t start_ticks = 0;  // starttime, clock ticks since boot
  uint64_t cpu_ticks = 0;    // utime + stime
  uint64_t rss_bytes = 0;
  pid_t pgid = 0;
  char state = '?';
};

/// Parses the text of /proc/<pid>/stat (pure); nullopt if malformed.
std::optional<proc_sample> parse_stat(pid_t pid, std::string_view text, uint64_t page_size);
/// Reads /proc/<pid>/stat; nullopt if the process is gone.
std::optional<proc_sample> sample_process(pid_t pid);
/// Every process whose process group is in `pgids` (sorted), in one pass
/// over /proc. Costs one read per process on the machine: call it only when
/// someone asks (list, monit), never from an idle timer.
std::vector<proc_sample> sample_groups(const std::vector<pid_t>& pgids);
/// The live process-group leaders of our user whose environment has
/// CORRAL_HOME=`home` and a CORRAL_APP_NAME: instances a daemon of that home
/// spawned (it marks them so). One pass over /proc, reading the environment
/// of group leaders only; for a daemon's start, never from a timer.
std::vector<pid_t> instance_groups_of_home(const std::string& home);
/// Whether a process environment (NUL-separated, as /proc/<pid>/environ)
/// carries the marks of an instance of `home` (pure).
bool environ_marks_instance_of(std::string_view environ, std::string_view home);

}  // namespace corral::daemon
