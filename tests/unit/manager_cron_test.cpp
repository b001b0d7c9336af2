// cron_restart's patterns (src/daemon/cron.cpp): what they match, and the
// errors a user sees for a pattern that is wrong. Times are in UTC here (TZ
// is set for this process) so that the expectations are plain dates.
#include "daemon/cron.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <ctime>
#include <optional>
#include <string>

using namespace corral::daemon;

namespace {

class Cron : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tz = std::getenv("TZ");
    saved_ = tz ? std::optional<std::string>(tz) : std::nullopt;
    ::setenv("TZ", "UTC", 1);
    ::tzset();
  }
  void TearDown() override {
    if (saved_) ::setenv("TZ", saved_->c_str(), 1);
    else ::unsetenv("TZ");
    ::tzset();
  }
  std::optional<std::string> saved_;
};

// "2026-12-07 01:33:10" (UTC) as a time_t, and back.
std::time_t at(const char* text) {
  std::tm t{};
  EXPECT_NE(::strptime(text, "%Y-%m-%d %H:%M:%S", &t), nullptr) << text;
  return ::timegm(&t);
}

std::string text(std::optional<std::time_t> v) {
  if (!v) return "never";
  std::tm t{};
  ::gmtime_r(&*v, &t);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &t);
  return buf;
}

std::string next_after(const char* pattern, const char* after) {
  auto s = cron_schedule::parse(pattern);
  if (!s) return "error: " + s.err().message();
  return text(s->next(at(after)));
}

std::string error_of(const char* pattern) {
  auto s = cron_schedule::parse(pattern);
  return s ? "parsed" : s.err().message();
}

}  // namespace

TEST_F(Cron, FiveFieldsAreMinuteHourDayMonthWeekday) {
  EXPECT_EQ(next_after("0 3 * * *", "2026-12-07 01:33:10"), "2026-12-07 03:00:00");
  EXPECT_EQ(next_after("0 3 * * *", "2026-12-07 03:00:00"), "2026-12-08 03:00:00");  // strictly after
  EXPECT_EQ(next_after("*/15 * * * *", "2026-12-07 01:33:10"), "2026-12-07 01:45:00");
  EXPECT_EQ(next_after("30 23 31 12 *", "2026-12-07 01:33:10"), "2026-12-31 23:30:00");
  EXPECT_EQ(next_after("0 0 1 jan *", "2026-12-07 01:33:10"), "2027-01-01 00:00:00");
  EXPECT_EQ(next_after("0 9 * * mon-fri", "2026-12-05 12:00:00"), "2026-12-07 09:00:00");  // Sat -> Mon
  EXPECT_EQ(next_after("0 9 * * 7", "2026-12-07 12:00:00"), "2026-12-13 09:00:00");        // 7 is Sunday
  EXPECT_EQ(next_after("5,10-12 * * * *", "2026-12-07 01:06:00"), "2026-12-07 01:10:00");
  EXPECT_EQ(next_after("10-30/10 * * * *", "2026-12-07 01:21:00"), "2026-12-07 01:30:00");
  EXPECT_EQ(next_after("50/5 * * * *", "2026-12-07 01:56:00"), "2026-12-07 02:50:00");
  EXPECT_EQ(next_after("0 0 29 2 *", "2026-03-01 00:00:00"), "2028-02-29 00:00:00");  // the next leap day
}

TEST_F(Cron, SixFieldsPutSecondsFirst) {
  EXPECT_EQ(next_after("* * * * * *", "2026-12-07 01:33:10"), "2026-12-07 01:33:11");
  EXPECT_EQ(next_after("*/20 * * * * *", "2026-12-07 01:33:10"), "2026-12-07 01:33:20");
  EXPECT_EQ(next_after("30 0 3 * * *", "2026-12-07 01:33:10"), "2026-12-07 03:00:30");
}

TEST_F(Cron, BothDayFieldsRestrictedMatchEitherAsEveryCronDoes) {
  // The 13th, or any Friday: Fri 2026-12-11 comes before the 13th.
  EXPECT_EQ(next_after("0 0 13 * fri", "2026-12-07 00:00:00"), "2026-12-11 00:00:00");
  EXPECT_EQ(next_after("0 0 13 * fri", "2026-12-11 00:00:00"), "2026-12-13 00:00:00");
}

TEST_F(Cron, ShorthandsAndNamesInAnyCase) {
  EXPECT_EQ(next_after("@daily", "2026-12-07 01:33:10"), "2026-12-08 00:00:00");
  EXPECT_EQ(next_after("@hourly", "2026-12-07 01:33:10"), "2026-12-07 02:00:00");
  EXPECT_EQ(next_after("@weekly", "2026-12-07 01:33:10"), "2026-12-13 00:00:00");
  EXPECT_EQ(next_after("@MONTHLY", "2026-12-07 01:33:10"), "2027-01-01 00:00:00");
  // June's 1st or its Sundays: Tue 2027-06-01 first.
  EXPECT_EQ(next_after("0 0 1 JUN SUN", "2026-12-07 01:33:10"), "2027-06-01 00:00:00");
  EXPECT_EQ(next_after("0 0 2 JUN SUN", "2026-12-07 01:33:10"), "2027-06-02 00:00:00");
  EXPECT_EQ(next_after("0 0 10 JUN SUN", "2026-12-07 01:33:10"), "2027-06-06 00:00:00");
}

TEST_F(Cron, ErrorsNameThePatternTheFieldAndWhatIsWrong) {
  EXPECT_EQ(error_of("61 * * * *"), "cron pattern '61 * * * *': minute: 61 is out of range 0..59");
  EXPECT_EQ(error_of("* 24 * * *"), "cron pattern '* 24 * * *': hour: 24 is out of range 0..23");
  EXPECT_EQ(error_of("* * 0 * *"), "cron pattern '* * 0 * *': day of month: 0 is out of range 1..31");
  EXPECT_EQ(error_of("* * * foo *"), "cron pattern '* * * foo *': month: 'foo' is not a number");
  EXPECT_EQ(error_of("* * * * 8"), "cron pattern '* * * * 8': day of week: 8 is out of range 0..7");
  EXPECT_EQ(error_of("*/0 * * * *"), "cron pattern '*/0 * * * *': minute: step 0 is out of range 1..59");
  EXPECT_EQ(error_of("5-1 * * * *"), "cron pattern '5-1 * * * *': minute: range 5-1 runs backwards");
  EXPECT_EQ(error_of("1,,2 * * * *"), "cron pattern '1,,2 * * * *': minute: '' is not a number");
  EXPECT_EQ(error_of("1, * * * *"), "cron pattern '1, * * * *': minute: empty list item in '1,'");
  EXPECT_EQ(error_of("* * *"),
            "cron pattern '* * *': expected 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds "
            "first), got 3");
  EXPECT_EQ(error_of(""), "cron pattern '': expected 5 fields (minute hour day-of-month month day-of-week) or 6 "
                          "(seconds first), got 0");
  EXPECT_EQ(error_of("0 0 30 2 *"), "cron pattern '0 0 30 2 *': no month chosen has those days: it would never run");
  EXPECT_EQ(error_of("0 0 31 apr,jun *"),
            "cron pattern '0 0 31 apr,jun *': no month chosen has those days: it would never run");
  EXPECT_EQ(error_of("0 0 31 * *"), "parsed");
  EXPECT_EQ(error_of("0 0 30 2 mon"), "parsed");  // Mondays in February
}

TEST_F(Cron, LocalTimeIsWhatItMatches) {
  ::setenv("TZ", "IST-5:30", 1);  // UTC+5:30, no DST (a POSIX TZ: needs no tzdata)
  ::tzset();
  // 03:00 in Kolkata is 21:30 UTC the day before.
  EXPECT_EQ(next_after("0 3 * * *", "2026-12-07 00:00:00"), "2026-12-07 21:30:00");
}

TEST_F(Cron, ATimeThatDaylightSavingSkipsOrRepeatsRunsOnce) {
  ::setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3", 1);  // Central Europe, as a POSIX TZ
  ::tzset();
  // 2027-03-28 02:30 does not exist (02:00 -> 03:00): the next is the 29th's.
  EXPECT_EQ(next_after("30 2 * * *", "2027-03-27 12:00:00"), "2027-03-29 00:30:00");
  // 2027-10-31 02:30 comes twice (03:00 -> 02:00): once, at the first.
  EXPECT_EQ(next_after("30 2 * * *", "2027-10-30 12:00:00"), "2027-10-31 00:30:00");
  EXPECT_EQ(next_after("30 2 * * *", "2027-10-31 00:30:00"), "2027-11-01 01:30:00");
}
