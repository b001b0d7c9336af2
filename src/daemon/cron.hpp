// cron_restart's schedules (PM2's name): a cron pattern, parsed and matched
// against local time. Pure: no timers, no clock reads.
//
// Five fields, "minute hour day-of-month month day-of-week", or six with the
// seconds first (as PM2's croner reads them). Each field is `*`, a number, a
// range `a-b`, a step `*/n` or `a-b/n` or `a/n`, or a list of those joined by
// commas. Months and days may be named (jan..dec, sun..sat, any case); day 7
// is Sunday too. When both day fields are restricted, a day matches if
// either does (as every cron does). Also the shorthands @yearly (@annually),
// @monthly, @weekly, @daily (@midnight) and @hourly.
#pragma once

#include <bitset>
#include <ctime>
#include <optional>
#include <string>

#include "corral/error.hpp"

namespace corral::daemon {

class cron_schedule {
 public:
  /// The error names the pattern and the field: "cron pattern '61 * * * *':
  /// minute: 61 is out of range 0..59". A pattern that can never match (30
  /// February) is an error too.
  static result<cron_schedule> parse(const std::string& pattern);

  /// The first matching second strictly after `after` (local time), or
  /// nothing within the next 8 years.
  std::optional<std::time_t> next(std::time_t after) const;
  const std::string& pattern() const noexcept { return pattern_; }

 private:
  bool day_matches(const std::tm& t) const;

  std::string pattern_;
  std::bitset<60> seconds_, minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_;    // 1..31
  std::bitset<13> months_;  // 1..12
  std::bitset<7> weekdays_;  // 0 = Sunday
  bool days_any_ = true, weekdays_any_ = true;
};

}  // namespace corral::daemon
