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
