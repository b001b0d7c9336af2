#include "daemon/cron.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <sstream>
#include <string_view>
#include <vector>

namespace corral::daemon {
namespace {

struct field_rule {
  const char* name;
  int lo, hi;
  const char* const* names;  // names[k] is lo + k; null if none
};

constexpr const char* month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                       "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr const char* day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

constexpr field_rule second_rule{"second", 0, 59, nullptr};
constexpr field_rule minute_rule{"minute", 0, 59, nullptr};
constexpr field_rule hour_rule{"hour", 0, 23, nullptr};
constexpr field_rule day_rule{"day of month", 1, 31, nullptr};
constexpr field_rule month_rule{"month", 1, 12, month_names};
constexpr field_rule weekday_rule{"day of week", 0, 7, day_names};  // 7: Sunday again

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// A number or (for months and days) a name; the error says which text.
result<int> value(const std::string& text, const field_rule& r) {
  if (r.names) {
    int count = r.hi - r.lo + 1 - (r.hi == 7 ? 1 : 0);
    for (int k = 0; k < count; ++k)
      if (lower(text) == r.names[k]) return r.lo + k;
  }
  if (text.empty() || text.size() > 4 ||
      !std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c); }))
    return error(std::make_error_code(std::errc::invalid_argument), "'" + text + "' is not a number");
  int v = std::stoi(text);
  if (v < r.lo || v > r.hi)
    return error(std::make_error_code(std::errc::invalid_argument),
                 text + " is out of range " + std::to_string(r.lo) + ".." + std::to_string(r.hi));
  return v;
}

// Sets the bits of `field` (indexed by value) that `text` names.
template <std::size_t N>
status parse_field(const std::string& text, const field_rule& r, std::bitset<N>& bits, bool& any) {
  auto bad = [](const std::string& m) { return error(std::make_error_code(std::errc::invalid_argument), m); };
  any = text == "*" || text == "?";
  std::stringstream items(text);
  std::string item;
  int parts = 0;
  while (std::getline(items, item, ',')) {
    ++parts;
    int step = 1;
    if (auto slash = item.find('/'); slash != std::string::npos) {
      std::string s = item.substr(slash + 1);
      if (s.empty() || s.size() > 4 || !std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); }))
        return bad("step '" + s + "' is not a number");
      step = std::stoi(s);
      if (step < 1 || step > r.hi) return bad("step " + s + " is out of range 1.." + std::to_string(r.hi));
      item = item.substr(0, slash);
      any = false;
    }
    int from = r.lo, to = r.hi;
    if (item == "*" || item == "?") {
      if (r.hi == 7) to = 6;  // (7 is 0 again)
    } else if (auto dash = item.find('-'); dash != std::string::npos) {
      auto a = value(item.substr(0, dash), r);
      if (!a) return a.err();
      auto b = value(item.substr(dash + 1), r);
      if (!b) return b.err();
      if (*a > *b) return bad("range " + item + " runs backwards");
      from = *a;
      to = *b;
    } else {
      auto a = value(item, r);
      if (!a) return a.err();
      from = *a;
      // "a/n": a, a+n, ... up to the field's end; "a": a alone.
      to = step > 1 ? (r.hi == 7 ? 6 : r.hi) : *a;
    }
    for (int v = from; v <= to; v += step) bits.set(static_cast<std::size_t>(r.hi == 7 && v == 7 ? 0 : v));
  }
  if (parts == 0 || text.back() == ',') return bad("empty list item in '" + text + "'");
  return {};
}

constexpr int days_in_month[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};  // (February: a leap year's)

}  // namespace

result<cron_schedule> cron_schedule::parse(const std::string& pattern) {
  auto fail = [&](const std::string& m) {
    return error(std::make_error_code(std::errc::invalid_argument), "cron pattern '" + pattern + "': " + m);
  };
  static const std::array<std::pair<std::string_view, std::string_view>, 7> shorthands{{
      {"@yearly", "0 0 1 1 *"},
      {"@annually", "0 0 1 1 *"},
      {"@monthly", "0 0 1 * *"},
      {"@weekly", "0 0 * * 0"},
      {"@daily", "0 0 * * *"},
      {"@midnight", "0 0 * * *"},
      {"@hourly", "0 * * * *"},
  }};
  std::string text = pattern;
  for (auto& [name, expansion] : shorthands)
    if (lower(pattern) == name) text = expansion;
  std::vector<std::string> fields;
  std::stringstream in(text);
  for (std::string f; in >> f;) fields.push_back(f);
  if (fields.size() == 5) fields.insert(fields.begin(), "0");
  if (fields.size() != 6)
    return fail("expected 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first), got " +
                std::to_string(fields.size()));
  cron_schedule s;
  s.pattern_ = pattern;
  bool unused = false, months_any = false;
  if (auto st = parse_field(fields[0], second_rule, s.seconds_, unused); !st) return fail("second: " + st.err().message());
  if (auto st = parse_field(fields[1], minute_rule, s.minutes_, unused); !st) return fail("minute: " + st.err().message());
  if (auto st = parse_field(fields[2], hour_rule, s.hours_, unused); !st) return fail("hour: " + st.err().message());
  if (auto st = parse_field(fields[3], day_rule, s.days_, s.days_any_); !st)
    return fail("day of month: " + st.err().message());
  if (auto st = parse_field(fields[4], month_rule, s.months_, months_any); !st)
    return fail("month: " + st.err().message());
  if (auto st = parse_field(fields[5], weekday_rule, s.weekdays_, s.weekdays_any_); !st)
    return fail("day of week: " + st.err().message());
  // Only days of month that no chosen month has (31 April, 30 February)
  // never match; a day of week would (either day field matches).
  if (!s.days_any_ && s.weekdays_any_) {
    bool some = false;
    for (int m = 1; m <= 12 && !some; ++m)
      for (int d = 1; d <= days_in_month[m - 1] && !some; ++d) some = s.months_[m] && s.days_[d];
    if (!some) return fail("no month chosen has those days: it would never run");
  }
  return s;
}

bool cron_schedule::day_matches(const std::tm& t) const {
  bool dom = days_[static_cast<std::size_t>(t.tm_mday)];
  bool dow = weekdays_[static_cast<std::size_t>(t.tm_wday)];
  if (days_any_ && weekdays_any_) return true;
  if (days_any_) return dow;
  if (weekdays_any_) return dom;
  return dom || dow;
}

std::optional<std::time_t> cron_schedule::next(std::time_t after) const {
  std::tm t{};
  std::time_t start = after + 1;
  if (!localtime_r(&start, &t)) return std::nullopt;
  const int last_year = t.tm_year + 8;
  auto normalize = [&t] {
    t.tm_isdst = -1;
    return std::mktime(&t);  // (also carries overflowing fields over)
  };
  // Each step moves one field on to its next value (and zeroes the smaller
  // ones): within a matching day, at most 24 + 60 + 60 steps find the time.
  for (int steps = 0; steps < 100000 && t.tm_year <= last_year; ++steps) {
    if (!months_[static_cast<std::size_t>(t.tm_mon + 1)]) {
      ++t.tm_mon;
      t.tm_mday = 1;
      t.tm_hour = t.tm_min = t.tm_sec = 0;
    } else if (!day_matches(t)) {
      ++t.tm_mday;
      t.tm_hour = t.tm_min = t.tm_sec = 0;
    } else if (!hours_[static_cast<std::size_t>(t.tm_hour)]) {
      ++t.tm_hour;
      t.tm_min = t.tm_sec = 0;
    } else if (!minutes_[static_cast<std::size_t>(t.tm_min)]) {
      ++t.tm_min;
      t.tm_sec = 0;
    } else if (!seconds_[static_cast<std::size_t>(t.tm_sec)]) {
      ++t.tm_sec;
    } else {
      std::tm probe = t;
      probe.tm_isdst = -1;
      std::time_t at = std::mktime(&probe);
      // A local time that does not exist (a DST gap) normalises elsewhere;
      // one that came twice (DST's end) may name an instant already past.
      if (at > after && probe.tm_hour == t.tm_hour && probe.tm_min == t.tm_min) return at;
      ++t.tm_sec;
    }
    normalize();
  }
  return std::nullopt;
}

}  // namespace corral::daemon
