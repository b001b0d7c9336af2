// The manager's pure pieces behind list/monit and startup: /proc/<pid>/stat
// parsing, the CPU meter's arithmetic, and the systemd unit's text.
#include <gtest/gtest.h>

#include "daemon/proc_stats.hpp"
#include "daemon/systemd_unit.hpp"
#include "daemon/usage_sampler.hpp"

using namespace corral::daemon;

namespace {

proc_sample proc(pid_t pid, pid_t pgid, uint64_t start, uint64_t ticks, uint64_t rss) {
  proc_sample s;
  s.pid = pid;
  s.pgid = pgid;
  s.start_ticks = start;
  s.cpu_ticks = ticks;
  s.rss_bytes = rss;
  s.state = 'R';
  return s;
}

}  // namespace

TEST(ProcStat, ParsesFieldsAfterACommandNameWithSpacesAndParentheses) {
  std::string text =
      "4711 (my (odd) app) S 1 4700 4700 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 123456 10000000 300 "
      "18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
  auto s = parse_stat(4711, text, 4096);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->state, 'S');
  EXPECT_EQ(s->pgid, 4700);
  EXPECT_EQ(s->cpu_ticks, 300u);
  EXPECT_EQ(s->start_ticks, 123456u);
  EXPECT_EQ(s->rss_bytes, 300u * 4096);
}

TEST(ProcStat, RejectsTruncatedText) {
  EXPECT_FALSE(parse_stat(1, "1 (init) S 0 1", 4096).has_value());
  EXPECT_FALSE(parse_stat(1, "garbage", 4096).has_value());
}

TEST(InstanceMarks, BothTheHomeAndAnAppNameMakeAnInstance) {
  using namespace std::string_view_literals;
  EXPECT_TRUE(environ_marks_instance_of("PATH=/bin\0CORRAL_HOME=/h\0CORRAL_APP_NAME=web\0"sv, "/h"));
  EXPECT_TRUE(environ_marks_instance_of("CORRAL_APP_NAME=\0CORRAL_HOME=/h"sv, "/h"));  // (no final NUL)
  EXPECT_FALSE(environ_marks_instance_of("CORRAL_HOME=/h\0PATH=/bin\0"sv, "/h"));
  EXPECT_FALSE(environ_marks_instance_of("CORRAL_HOME=/h2\0CORRAL_APP_NAME=web\0"sv, "/h"));
  EXPECT_FALSE(environ_marks_instance_of("CORRAL_HOME=/\0CORRAL_APP_NAME=web\0"sv, "/h"));
  EXPECT_FALSE(environ_marks_instance_of("X_CORRAL_HOME=/h\0CORRAL_APP_NAME=web\0"sv, "/h"));
  EXPECT_FALSE(environ_marks_instance_of(""sv, "/h"));
}

TEST(CpuMeter, FirstSampleIsOnlyABaseline) {
  cpu_meter m(100);
  m.update(10.0, {proc(5, 5, 1, 500, 1000)});
  EXPECT_FALSE(m.has_window());
  EXPECT_EQ(m.of(5).cpu, 0);
  EXPECT_EQ(m.of(5).rss, 1000u);
}

TEST(CpuMeter, PercentIsTheDeltaOverTheWindowSummedOverTheGroup) {
  cpu_meter m(100);
  m.update(10.0, {proc(5, 5, 1, 500, 1000), proc(6, 5, 2, 100, 500), proc(9, 9, 3, 0, 10)});
  // 0.5 s later: leader +50 ticks (one core), child +25 (half), other +0.
  m.update(10.5, {proc(5, 5, 1, 550, 1000), proc(6, 5, 2, 125, 700), proc(9, 9, 3, 0, 10)});
  ASSERT_TRUE(m.has_window());
  EXPECT_NEAR(m.of(5).cpu, 150.0, 1e-9);
  EXPECT_EQ(m.of(5).rss, 1700u);
  EXPECT_EQ(m.of(5).processes, 2);
  EXPECT_NEAR(m.of(9).cpu, 0.0, 1e-9);
  EXPECT_EQ(m.of(42).processes, 0);
}

TEST(CpuMeter, ANewOrReusedPidCountsAllItsTimeAndAGoneOneNothing) {
  cpu_meter m(100);
  m.update(0.0, {proc(5, 5, 1, 1000, 0), proc(6, 5, 2, 40, 0)});
  // 6 exited; its pid came back as another process (new start time) with 10
  // ticks; 7 is new with 20.
  m.update(1.0, {proc(5, 5, 1, 1000, 0), proc(6, 5, 99, 10, 0), proc(7, 5, 100, 20, 0)});
  EXPECT_NEAR(m.of(5).cpu, 30.0, 1e-9);
}

TEST(CpuMeter, CountersGoingBackwardsNeverMakeANegativeFigure) {
  cpu_meter m(100);
  m.update(0.0, {proc(5, 5, 1, 1000, 0)});
  m.update(1.0, {proc(5, 5, 1, 900, 0)});
  EXPECT_GE(m.of(5).cpu, 0.0);
}

TEST(SystemdUnit, SystemUnitRunsTheDaemonAsTheUserWithTheHome) {
  startup_unit u{true, "/opt/corral/bin/corral", "alice", "/home/alice/.corral", "/usr/bin:/bin"};
  EXPECT_EQ(unit_file_name(u), "corral-alice.service");
  std::string t = render_unit(u);
  EXPECT_NE(t.find("\nType=notify\n"), std::string::npos);
  EXPECT_NE(t.find("\nUser=alice\n"), std::string::npos);
  EXPECT_NE(t.find("\nEnvironment=\"CORRAL_HOME=/home/alice/.corral\"\n"), std::string::npos);
  EXPECT_NE(t.find("\nExecStart=\"/opt/corral/bin/corral\" daemon\n"), std::string::npos);
  EXPECT_NE(t.find("\nExecStartPost=-\"/opt/corral/bin/corral\" resurrect\n"), std::string::npos);
  EXPECT_NE(t.find("\nKillMode=mixed\n"), std::string::npos);
  EXPECT_NE(t.find("\nWantedBy=multi-user.target\n"), std::string::npos);
}

TEST(SystemdUnit, UserUnitHasNoUserLine) {
  startup_unit u{false, "/usr/bin/corral", "bob", "/home/bob/.corral", ""};
  EXPECT_EQ(unit_file_name(u), "corral.service");
  std::string t = render_unit(u);
  EXPECT_EQ(t.find("User="), std::string::npos);
  EXPECT_EQ(t.find("PATH="), std::string::npos);
  EXPECT_NE(t.find("\nWantedBy=default.target\n"), std::string::npos);
}

TEST(SystemdUnit, QuotingEscapesQuotesBackslashesAndSpecifiers) {
  EXPECT_EQ(unit_quote("/a b/c"), "\"/a b/c\"");
  EXPECT_EQ(unit_quote("x\"y\\z%h"), "\"x\\\"y\\\\z%%h\"");
}
