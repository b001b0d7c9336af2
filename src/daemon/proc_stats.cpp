#include "daemon/proc_stats.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

namespace corral::daemon {

std::optional<proc_sample> sample_process(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!f || !std::getline(f, text)) return std::nullopt;
  // The command name (field 2) may contain spaces and parentheses: parse
  // after the last ')'.
  auto close = text.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream in(text.substr(close + 2));
  proc_sample s;
  std::string field;
  in >> s.state;  // field 3
  uint64_t v[50] = {};
  // Fields 4.. into v[4]..; we need 5 (pgrp), 14 (utime), 15 (stime), 22 (starttime), 24 (rss pages).
  for (int i = 4; i <= 24 && in >> v[i]; ++i) {
  }
  s.pgid = static_cast<pid_t>(v[5]);
  s.cpu_ticks = v[14] + v[15];
  s.start_ticks = v[22];
  s.rss_bytes = v[24] * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  return s;
}

double lifetime_cpu_percent(const proc_sample& s) {
  double hz = static_cast<double>(::sysconf(_SC_CLK_TCK));
  std::ifstream up("/proc/uptime");
  double uptime = 0;
  if (!(up >> uptime)) return 0;
  double age = uptime - static_cast<double>(s.start_ticks) / hz;
  if (age <= 0.05) return 0;
  return 100.0 * (static_cast<double>(s.cpu_ticks) / hz) / age;
}

}  // namespace corral::daemon
