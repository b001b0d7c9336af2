#include "daemon/log_lines.hpp"

#include <ctime>

namespace corral::daemon {

void line_splitter::feed(std::string_view bytes, const std::function<void(std::string_view)>& emit) {
  while (!bytes.empty()) {
    auto nl = bytes.find('\n');
    if (nl == std::string_view::npos) {
      partial_.append(bytes);
      while (partial_.size() >= max_line_) {
        emit(std::string_view(partial_).substr(0, max_line_));
        partial_.erase(0, max_line_);
      }
      return;
    }
    std::string_view piece = bytes.substr(0, nl);
    bytes.remove_prefix(nl + 1);
    if (partial_.empty() && piece.size() <= max_line_) {
      emit(piece);  // the common case: no copy
      continue;
    }
    partial_.append(piece);
    std::string_view rest(partial_);
    while (rest.size() > max_line_) {
      emit(rest.substr(0, max_line_));
      rest.remove_prefix(max_line_);
    }
    emit(rest);
    partial_.clear();
  }
}

void line_splitter::finish(const std::function<void(std::string_view)>& emit) {
  if (partial_.empty()) return;
  emit(partial_);
  partial_.clear();
}

bool log_buffer::append(std::string_view line) {
  if (dropped_ > 0 || pending_.size() + line.size() + 1 > capacity_) {
    ++dropped_;
    ++dropped_total_;
    return false;
  }
  pending_.append(line);
  pending_.push_back('\n');
  return true;
}

std::string drop_marker(uint64_t dropped, std::string_view reason) {
  std::string out = "[corral] " + std::to_string(dropped) + (dropped == 1 ? " line" : " lines") + " dropped: ";
  out.append(reason);
  out.push_back('\n');
  return out;
}

std::string log_buffer::marker(uint64_t dropped) { return drop_marker(dropped, "the log could not keep up"); }

void log_buffer::clear() noexcept {
  pending_.clear();
  dropped_ = 0;
}

std::string log_buffer::take() {
  std::string out;
  out.swap(pending_);
  if (dropped_ > 0) {
    out += marker(dropped_);
    dropped_ = 0;
  }
  return out;
}

std::size_t bytes_that_fit(std::string_view data, uint64_t file_size, uint64_t max_size) {
  if (max_size == 0 || data.empty()) return data.size();
  uint64_t room = max_size > file_size ? max_size - file_size : 0;
  if (room >= data.size()) return data.size();
  // The last newline within the room ends the last line that fits.
  if (room > 0)
    if (auto nl = data.rfind('\n', static_cast<std::size_t>(room - 1)); nl != std::string_view::npos) return nl + 1;
  if (file_size > 0) return 0;
  auto nl = data.find('\n');
  return nl == std::string_view::npos ? data.size() : nl + 1;
}

std::vector<rotation_step> rotation_plan(const std::string& path, int retain) {
  if (retain <= 0) return {{path, ""}};
  std::vector<rotation_step> plan;
  for (int k = retain - 1; k >= 1; --k)
    plan.push_back({path + "." + std::to_string(k), path + "." + std::to_string(k + 1)});
  plan.push_back({path, path + ".1"});
  return plan;
}

std::string iso8601_utc(int64_t unix_ms) {
  std::time_t secs = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(unix_ms % 1000));
  return out;
}

}  // namespace corral::daemon
