#include "daemon/log_lines.hpp"

#include <algorithm>
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

namespace {

constexpr const char* month_names[] = {"January", "February", "March",     "April",   "May",      "June",
                                       "July",    "August",   "September", "October", "November", "December"};
constexpr const char* day_names[] = {"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"};

// The longest token at `f`'s front: its length, or 0 if none starts there.
std::size_t token_at(std::string_view f) {
  static constexpr std::string_view tokens[] = {"YYYY", "MMMM", "dddd", "MMM", "ddd", "SSS", "YY", "MM", "DD", "dd",
                                                "HH",   "hh",   "mm",   "ss",  "ZZ",  "M",   "D",  "d",  "H",  "h",
                                                "m",    "s",    "Z",    "A",   "a",   "X",   "x"};
  for (auto t : tokens)
    if (f.substr(0, t.size()) == t) return t.size();
  return 0;
}

void two(std::string& out, int v) {
  out += static_cast<char>('0' + v / 10 % 10);
  out += static_cast<char>('0' + v % 10);
}

void offset(std::string& out, long seconds, bool colon) {
  out += seconds < 0 ? '-' : '+';
  long m = (seconds < 0 ? -seconds : seconds) / 60;
  two(out, static_cast<int>(m / 60));
  if (colon) out += ':';
  two(out, static_cast<int>(m % 60));
}

}  // namespace

std::string format_date(std::string_view f, const date_parts& w) {
  const std::tm& t = w.tm;
  std::string out;
  out.reserve(f.size() + 16);
  int hour12 = t.tm_hour % 12 == 0 ? 12 : t.tm_hour % 12;
  const char* month = month_names[std::clamp(t.tm_mon, 0, 11)];
  const char* day = day_names[std::clamp(t.tm_wday, 0, 6)];
  while (!f.empty()) {
    if (f[0] == '[') {
      auto close = f.find(']');
      if (close == std::string_view::npos) close = f.size();
      out.append(f.substr(1, close - 1));
      f.remove_prefix(std::min(close + 1, f.size()));
      continue;
    }
    std::size_t n = token_at(f);
    if (n == 0) {
      out += f[0];
      f.remove_prefix(1);
      continue;
    }
    std::string_view tok = f.substr(0, n);
    f.remove_prefix(n);
    if (tok == "YYYY") out += std::to_string(t.tm_year + 1900);
    else if (tok == "YY") two(out, (t.tm_year + 1900) % 100);
    else if (tok == "MMMM") out += month;
    else if (tok == "MMM") out.append(month, 3);
    else if (tok == "MM") two(out, t.tm_mon + 1);
    else if (tok == "M") out += std::to_string(t.tm_mon + 1);
    else if (tok == "DD") two(out, t.tm_mday);
    else if (tok == "D") out += std::to_string(t.tm_mday);
    else if (tok == "dddd") out += day;
    else if (tok == "ddd") out.append(day, 3);
    else if (tok == "dd") out.append(day, 2);
    else if (tok == "d") out += std::to_string(t.tm_wday);
    else if (tok == "HH") two(out, t.tm_hour);
    else if (tok == "H") out += std::to_string(t.tm_hour);
    else if (tok == "hh") two(out, hour12);
    else if (tok == "h") out += std::to_string(hour12);
    else if (tok == "mm") two(out, t.tm_min);
    else if (tok == "m") out += std::to_string(t.tm_min);
    else if (tok == "ss") two(out, t.tm_sec);
    else if (tok == "s") out += std::to_string(t.tm_sec);
    else if (tok == "SSS") {
      out += static_cast<char>('0' + w.millis / 100 % 10);
      two(out, w.millis % 100);
    } else if (tok == "Z") offset(out, w.utc_offset, true);
    else if (tok == "ZZ") offset(out, w.utc_offset, false);
    else if (tok == "A") out += t.tm_hour < 12 ? "AM" : "PM";
    else if (tok == "a") out += t.tm_hour < 12 ? "am" : "pm";
    else if (tok == "X") out += std::to_string(w.unix_ms / 1000);
    else if (tok == "x") out += std::to_string(w.unix_ms);
  }
  return out;
}

std::string format_local_date(std::string_view format, int64_t unix_ms) {
  date_parts w;
  std::time_t secs = static_cast<std::time_t>(unix_ms / 1000);
  ::localtime_r(&secs, &w.tm);
  w.millis = static_cast<int>(unix_ms % 1000);
  w.utc_offset = w.tm.tm_gmtoff;
  w.unix_ms = unix_ms;
  return format_date(format, w);
}

std::string log_date_format_problem(std::string_view format) {
  if (format.size() > 128) return "longer than 128 bytes";
  for (char c : format)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return "holds a control character";
  bool open = false;
  for (char c : format) {
    if (c == '[') open = true;
    else if (c == ']') open = false;
  }
  if (open) return "a '[' is not closed by ']'";
  return {};
}

}  // namespace corral::daemon
