// `corral monit`: a live view of the instances (cpu, memory, restarts,
// uptime) and the last log lines, from the daemon's monit stream.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "daemon/home.hpp"

namespace corral::cli {

struct monit_options {
  std::string target = "all";
  bool once = false;          // one snapshot, then exit
  int interval_ms = 1000;
  int log_lines = -1;         // -1: fit the terminal (none when not a TTY)
};

/// Runs the view until q, Ctrl+C or the daemon goes away. On a terminal it
/// draws with ANSI escapes (alternate screen, restored on exit); otherwise it
/// prints one plain snapshot per interval. Returns the exit code.
int run_monit(const daemon::home_paths& home, const monit_options& o);

/// The instance table of a snapshot, one line per row (pure).
std::vector<std::string> monit_table(const nlohmann::json& rows);
/// The last `n` lines of a file (at most the last 64 KiB are read).
std::vector<std::string> last_lines(const std::string& path, int n);

}  // namespace corral::cli
