// `corral logs`: the last lines of the log files, and --follow. The CLI reads
// the files directly (the daemon only says which), as PM2 does.
#pragma once

#include <string>
#include <vector>

namespace corral::cli {

struct log_source {
  std::string label;  // "" prints lines bare
  std::string path;
};

/// Keeps the first source of each path: one file that two streams (or
/// apps) share is shown once.
void drop_repeated_paths(std::vector<log_source>& sources);

/// Prints the last `lines` lines of each source; with `follow`, then prints
/// what is appended until killed. Returns the exit code.
int show_logs(const std::vector<log_source>& sources, int lines, bool follow);

}  // namespace corral::cli
