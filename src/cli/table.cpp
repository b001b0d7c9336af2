#include "table.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

namespace corral::cli {

std::string human_bytes(uint64_t b) {
  if (b < 1024) return fmt::format("{}b", b);
  if (b < 1024 * 1024) return fmt::format("{:.1f}kb", b / 1024.0);
  if (b < 1024ull * 1024 * 1024) return fmt::format("{:.1f}mb", b / (1024.0 * 1024));
  return fmt::format("{:.1f}gb", b / (1024.0 * 1024 * 1024));
}

std::string human_duration(int64_t ms) {
  int64_t s = ms / 1000;
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m", s / 60);
  if (s < 86400) return fmt::format("{}h", s / 3600);
  return fmt::format("{}D", s / 86400);
}

std::string format_table(const nlohmann::json& rows) {
  std::vector<std::vector<std::string>> cells;
  cells.push_back({"id", "name", "mode", "listen", "pid", "uptime", "restarts", "status", "cpu", "memory"});
  // The namespace column only once some app is in one.
  bool namespaces = std::any_of(rows.begin(), rows.end(), [](const auto& r) { return r.value("namespace", "default") != "default"; });
  if (namespaces) cells[0].insert(cells[0].begin() + 2, "namespace");
  for (const auto& r : rows) {
    std::string status = r.value("status", "?");
    if (status == "errored") {
      if (r.contains("error")) status += " (spawn failed)";
      else if (r.value("exit_signal", 0) != 0) status += fmt::format(" (signal {})", r.value("exit_signal", 0));
      else if (r.contains("exit_code")) status += fmt::format(" (exit {})", r.value("exit_code", int64_t{0}));
    }
    int pid = r.value("pid", 0);
    std::string listen;
    for (const auto& l : r.value("listen", nlohmann::json::array())) listen += (listen.empty() ? "" : ",") + l.get<std::string>();
    std::string mode = r.value("mode", "fork");
    if (r.value("lb", "") == "round_robin") mode += " rr";
    cells.push_back({std::to_string(r.value("id", 0)), r.value("name", ""), mode,
                     listen.empty() ? "-" : listen, pid ? std::to_string(pid) : "-", pid ? human_duration(r.value("uptime_ms", int64_t{0})) : "-",
                     std::to_string(r.value("restarts", 0)), status, fmt::format("{:.0f}%", r.value("cpu", 0.0)),
                     human_bytes(r.value("memory", uint64_t{0}))});
    if (namespaces) cells.back().insert(cells.back().begin() + 2, r.value("namespace", "default"));
  }
  std::vector<size_t> width(cells[0].size(), 0);
  for (auto& row : cells)
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  std::string out;
  for (auto& row : cells) {
    for (size_t c = 0; c < row.size(); ++c) {
      out += row[c];
      if (c + 1 < row.size()) out += std::string(width[c] - row[c].size() + 2, ' ');
    }
    out += '\n';
  }
  return out;
}

std::string env_value(const std::string& value) {
  bool plain = std::none_of(value.begin(), value.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; });
  if (plain) return value;
  std::string out = "$'";
  for (unsigned char c : value) {
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\r') out += "\\r";
    else if (c == '\\' || c == '\'') out += std::string("\\") + static_cast<char>(c);
    else if (c < 0x20 || c == 0x7f) out += fmt::format("\\x{:02x}", c);
    else out += static_cast<char>(c);
  }
  return out + "'";
}

}  // namespace corral::cli
