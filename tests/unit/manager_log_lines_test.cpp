#include <gtest/gtest.h>

#include "daemon/command_resolve.hpp"
#include "daemon/log_lines.hpp"

using namespace corral::daemon;

namespace {
std::vector<std::string> split(line_splitter& s, std::initializer_list<std::string_view> chunks, bool finish = false) {
  std::vector<std::string> out;
  auto emit = [&](std::string_view l) { out.emplace_back(l); };
  for (auto c : chunks) s.feed(c, emit);
  if (finish) s.finish(emit);
  return out;
}
}  // namespace

TEST(LineSplitter, PartialLineWaitsForItsNewline) {
  line_splitter s;
  EXPECT_EQ(split(s, {"a\nb", "c", "d\ne"}), (std::vector<std::string>{"a", "bcd"}));
  EXPECT_TRUE(s.has_partial());
  EXPECT_EQ(split(s, {}, true), (std::vector<std::string>{"e"}));
}

TEST(LineSplitter, OverlongLineIsCut) {
  line_splitter s(4);
  EXPECT_EQ(split(s, {"abcdefghij\n"}), (std::vector<std::string>{"abcd", "efgh", "ij"}));
}

TEST(LogBuffer, DropsWhenFullCountsAndMarksTheGap) {
  log_buffer b(10);
  EXPECT_TRUE(b.append("12345"));
  EXPECT_FALSE(b.append("678901"));
  EXPECT_FALSE(b.append("x"));  // after a drop, nothing jumps the gap
  EXPECT_EQ(b.take(), "12345\n" + log_buffer::marker(2));
  EXPECT_TRUE(b.empty());
  EXPECT_TRUE(b.append("y"));
  EXPECT_EQ(b.take(), "y\n");
  EXPECT_EQ(b.dropped_total(), 2u);
}

TEST(LogBuffer, ClearForgetsPendingButKeepsTheCount) {
  log_buffer b(4);
  EXPECT_TRUE(b.append("abc"));
  EXPECT_FALSE(b.append("d"));
  EXPECT_EQ(b.dropped_pending(), 1u);
  b.clear();
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.dropped_total(), 1u);
  EXPECT_EQ(b.take(), "");
}

TEST(LogDropMarker, SaysHowManyAndWhy) {
  EXPECT_EQ(drop_marker(1, "No space left on device (ENOSPC)"),
            "[corral] 1 line dropped: No space left on device (ENOSPC)\n");
  EXPECT_EQ(log_buffer::marker(3), "[corral] 3 lines dropped: the log could not keep up\n");
}

TEST(LogRotation, CutsOnlyBetweenLines) {
  std::string data = "aaaa\nbbbb\ncccc\n";  // three lines of 5 bytes
  EXPECT_EQ(bytes_that_fit(data, 0, 0), data.size());      // never rotates
  EXPECT_EQ(bytes_that_fit(data, 0, 100), data.size());    // all fit
  EXPECT_EQ(bytes_that_fit(data, 0, 10), 10u);             // exactly two lines
  EXPECT_EQ(bytes_that_fit(data, 0, 14), 10u);             // not 2.8
  EXPECT_EQ(bytes_that_fit(data, 6, 10), 0u);              // rotate first
  EXPECT_EQ(bytes_that_fit(data, 5, 10), 5u);
  EXPECT_EQ(bytes_that_fit(data, 20, 10), 0u);             // already past (appended by someone else)
  EXPECT_EQ(bytes_that_fit(data, 0, 3), 5u);               // an empty file takes one line, however long
  EXPECT_EQ(bytes_that_fit("", 9, 10), 0u);
}

TEST(LogRotation, PlanShiftsOldestFirstAndUnlinksWhenNothingIsKept) {
  EXPECT_EQ(rotation_plan("/l/a.log", 3), (std::vector<rotation_step>{{"/l/a.log.2", "/l/a.log.3"},
                                                                       {"/l/a.log.1", "/l/a.log.2"},
                                                                       {"/l/a.log", "/l/a.log.1"}}));
  EXPECT_EQ(rotation_plan("/l/a.log", 1), (std::vector<rotation_step>{{"/l/a.log", "/l/a.log.1"}}));
  EXPECT_EQ(rotation_plan("/l/a.log", 0), (std::vector<rotation_step>{{"/l/a.log", ""}}));
}

TEST(LogTimestamp, IsIso8601Utc) { EXPECT_EQ(iso8601_utc(1700000000123), "2023-11-14T22:13:20.123Z"); }

// 2026-12-07 (a Monday) 04:05:06.007, one hour east of UTC.
date_parts a_morning() {
  date_parts w;
  w.tm.tm_year = 126;
  w.tm.tm_mon = 11;
  w.tm.tm_mday = 7;
  w.tm.tm_wday = 1;
  w.tm.tm_hour = 4;
  w.tm.tm_min = 5;
  w.tm.tm_sec = 6;
  w.millis = 7;
  w.utc_offset = 3600;
  w.unix_ms = 1796612706007;
  return w;
}

TEST(LogDateFormat, DayjsTokensAsPm2UsersWriteThem) {
  auto w = a_morning();
  EXPECT_EQ(format_date("YYYY-MM-DD HH:mm:ss", w), "2026-12-07 04:05:06");
  EXPECT_EQ(format_date("YYYY-MM-DD HH:mm:ss.SSS Z", w), "2026-12-07 04:05:06.007 +01:00");
  EXPECT_EQ(format_date("YY/M/D H:m:s ZZ", w), "26/12/7 4:5:6 +0100");
  EXPECT_EQ(format_date("MMM MMMM ddd dddd dd d", w), "Dec December Mon Monday Mo 1");
  EXPECT_EQ(format_date("h:mm A a hh", w), "4:05 AM am 04");
  EXPECT_EQ(format_date("X x", w), "1796612706 1796612706007");
}

TEST(LogDateFormat, BracketsAndOtherCharactersStayAsTheyAre) {
  auto w = a_morning();
  EXPECT_EQ(format_date("[YYYY is] YYYY", w), "YYYY is 2026");
  EXPECT_EQ(format_date("YYYY-MM-DDTHH:mm:ss", w), "2026-12-07T04:05:06");
  EXPECT_EQ(format_date("<@> ~ !", w), "<@> ~ !");
  EXPECT_EQ(format_date("", w), "");
}

TEST(LogDateFormat, NoonMidnightAndOffsetsWestOfUtc) {
  auto w = a_morning();
  w.tm.tm_hour = 0;
  EXPECT_EQ(format_date("h hh A", w), "12 12 AM");
  w.tm.tm_hour = 12;
  EXPECT_EQ(format_date("h A a", w), "12 PM pm");
  w.tm.tm_hour = 23;
  EXPECT_EQ(format_date("h HH", w), "11 23");
  w.utc_offset = -(3 * 3600 + 30 * 60);
  EXPECT_EQ(format_date("Z ZZ", w), "-03:30 -0330");
  w.utc_offset = 0;
  EXPECT_EQ(format_date("Z", w), "+00:00");
}

TEST(LogDateFormat, LocalTimeFollowsTz) {
  const char* old = std::getenv("TZ");
  std::string saved = old ? old : "";
  ::setenv("TZ", "UTC", 1);
  ::tzset();
  EXPECT_EQ(format_local_date("YYYY-MM-DD HH:mm:ss.SSS Z", 1700000000123), "2023-11-14 22:13:20.123 +00:00");
  if (old) ::setenv("TZ", saved.c_str(), 1);
  else ::unsetenv("TZ");
  ::tzset();
}

TEST(LogDateFormat, ProblemsAreNamed) {
  EXPECT_EQ(log_date_format_problem("YYYY-MM-DD HH:mm:ss Z"), "");
  EXPECT_EQ(log_date_format_problem("[at] HH"), "");
  EXPECT_EQ(log_date_format_problem("[at HH"), "a '[' is not closed by ']'");
  EXPECT_EQ(log_date_format_problem("HH\nmm"), "holds a control character");
  EXPECT_EQ(log_date_format_problem("HH\tmm"), "holds a control character");
  EXPECT_EQ(log_date_format_problem(std::string(129, 'Y')), "longer than 128 bytes");
}

TEST(CommandResolve, ShellOnlyForShellSyntax) {
  EXPECT_TRUE(has_shell_syntax("echo a | cat"));
  EXPECT_TRUE(has_shell_syntax("x > y"));
  EXPECT_FALSE(has_shell_syntax("sleep 10"));
  auto r = resolve_command("echo a && echo b", {}, "", "/", "/usr/bin:/bin");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->argv, (std::vector<std::string>{"/bin/sh", "-c", "echo a && echo b"}));
  auto plain = resolve_command("sleep 10", {"x"}, "", "/", "/usr/bin:/bin");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->argv.size(), 3u);
  EXPECT_EQ(plain->argv[1], "10");
  EXPECT_EQ(plain->argv[2], "x");
  EXPECT_EQ(plain->interpreter, "exec");
  EXPECT_EQ(plain->default_name, "sleep");
}

TEST(CommandResolve, MissingProgramNamesPathAndErrno) {
  auto r = resolve_command("/nonexistent/prog", {}, "", "/", "/usr/bin");
  ASSERT_FALSE(r);
  EXPECT_NE(r.err().message().find("/nonexistent/prog"), std::string::npos);
  EXPECT_NE(r.err().message().find("ENOENT"), std::string::npos);
}

TEST(CommandResolve, ADirectoryIsNamedAsOneWithItsErrnoName) {
  auto r = resolve_command("/tmp", {}, "", "/", "/usr/bin");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().message(), "cannot run /tmp: Is a directory (EISDIR)");
}
