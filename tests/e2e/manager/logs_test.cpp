// The manager's log files end to end: per-instance files, rotation by the
// daemon, a full disk, and `logs --follow` across rotations.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cctype>

#include <regex>
#include <sstream>

#include "harness.hpp"

using namespace manager_test;
using namespace support;

namespace {

const std::string app = MANAGER_APP;

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

off_t size_of(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_size : -1;
}

// The numbers of the "seq <i> xxx" lines in `text`, in order; every line of
// `text` must be one of those, "started ...", "waiting" or "numbered done".
std::vector<int> seq_numbers(const std::string& text, std::string* stray = nullptr) {
  std::vector<int> out;
  size_t start = 0;
  static const std::regex seq("seq (\\d+) x+");
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(start, nl - start);
    std::smatch m;
    if (std::regex_match(line, m, seq)) out.push_back(std::stoi(m[1]));
    else if (stray && line.rfind("started", 0) != 0 && line != "waiting" && line != "numbered done") *stray += line + "\n";
    start = nl + 1;
  }
  return out;
}

size_t count_of(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

std::vector<int> range(int from, int to) {
  std::vector<int> v;
  for (int i = from; i < to; ++i) v.push_back(i);
  return v;
}

}  // namespace

// After a scale-down the removed instances' files stay on disk, and `logs`
// still shows their lines (as PM2 does), also from a daemon started since.
TEST_F(Manager, LogsStillShowTheFilesOfInstancesRemovedByScaleDown) {
  auto start = [&](const char* instances) {
    return corral({"start", app, "--name", "split", "-i", instances, "--log-per-instance", "--", "numbered", "3", "32"});
  };
  ASSERT_EQ(start("3").code, 0);
  auto file = [&](int i) { return home_.file("logs/split-out-" + std::to_string(i) + ".log"); };
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(wait_until([&] { return slurp(file(i)).ends_with("numbered done\n"); }, 10s)) << i;
  ASSERT_EQ(corral({"scale", "split", "1"}).code, 0);
  ASSERT_EQ(rows("split").size(), 1u);
  const std::string all = "split[0] out | numbered done\nsplit[1] out | numbered done\nsplit[2] out | numbered done\n";
  auto logs = corral({"logs", "split", "--out", "--lines", "1"});
  ASSERT_EQ(logs.code, 0) << logs.err;
  EXPECT_EQ(logs.out, all);
  // A new daemon opens only instance 0's files; the others are found on disk.
  ASSERT_EQ(corral({"kill"}).code, 0);
  ASSERT_EQ(start("1").code, 0);
  ASSERT_TRUE(wait_until([&] { return count(slurp(file(0)), "numbered done\n") == 2; }, 10s));
  logs = corral({"logs", "split", "--out", "--lines", "1"});
  ASSERT_EQ(logs.code, 0) << logs.err;
  EXPECT_EQ(logs.out, all);
}

TEST_F(Manager, PerInstanceLogFilesCarryEachInstancesOwnLinesThroughScaleFlushAndDelete) {
  auto r = corral({"start", app, "--name", "split", "-i", "2", "--log-per-instance", "--", "lines", "20"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto file = [&](const char* kind, int i) { return home_.file("logs/split-" + std::string(kind) + "-" + std::to_string(i) + ".log"); };
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(wait_until([&] { return slurp(file("out", i)).find("out 19\n") != std::string::npos; }, 10s)) << i;
    ASSERT_TRUE(wait_until([&] { return slurp(file("error", i)).find("err 19\n") != std::string::npos; }, 10s)) << i;
    std::string out = slurp(file("out", i));
    // Its own lines only, with no "<index>|" prefix.
    EXPECT_EQ(out.rfind("started instance=" + std::to_string(i) + " ", 0), 0u) << out;
    EXPECT_EQ(out.find("started instance=" + std::to_string(1 - i)), std::string::npos) << out;
    EXPECT_EQ(out.find('|'), std::string::npos) << out;
    EXPECT_EQ(slurp(file("error", i)).find("out "), std::string::npos);
  }
  EXPECT_FALSE(exists(log_path("split")));

  // `logs` shows every instance's files, each line labelled by instance.
  auto logs = corral({"logs", "split", "--out", "--lines", "1"});
  ASSERT_EQ(logs.code, 0) << logs.err;
  EXPECT_EQ(logs.out, "split[0] out | out 19\nsplit[1] out | out 19\n");

  // describe names each instance's own files.
  auto d = corral({"describe", "split"});
  ASSERT_EQ(d.code, 0) << d.err;
  auto described = json::parse(d.out);
  ASSERT_EQ(described.size(), 2u);
  for (auto& row : described) {
    int i = row.value("instance", -1);
    EXPECT_EQ(row.value("out_log", ""), file("out", i));
    EXPECT_EQ(row.value("err_log", ""), file("error", i));
    EXPECT_EQ(row.value("dropped_lines", -1), 0);
  }

  // A third instance gets files of its own.
  ASSERT_EQ(corral({"scale", "split", "3"}).code, 0);
  ASSERT_TRUE(wait_until([&] { return slurp(file("out", 2)).find("out 19\n") != std::string::npos; }, 10s));
  ASSERT_TRUE(wait_until([&] { return slurp(file("error", 2)).find("err 19\n") != std::string::npos; }, 10s));
  EXPECT_EQ(slurp(file("out", 2)).rfind("started instance=2 ", 0), 0u);
  auto three = corral({"logs", "split", "--err", "--lines", "1"});
  EXPECT_EQ(three.out, "split[0] err | err 19\nsplit[1] err | err 19\nsplit[2] err | err 19\n");

  // flush empties them all; the reply comes once they are empty.
  ASSERT_EQ(corral({"flush", "split"}).code, 0);
  for (int i = 0; i < 3; ++i)
    for (const char* kind : {"out", "error"}) EXPECT_EQ(size_of(file(kind, i)), 0) << kind << i;

  // After a stop, the partial last line goes to its instance's file.
  ASSERT_EQ(corral({"stop", "split"}).code, 0);
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(wait_until([&] { return slurp(file("out", i)) == "partial\n"; }, 10s)) << i << ": " << slurp(file("out", i));
  auto del = corral({"delete", "split"});
  ASSERT_EQ(del.code, 0) << del.err;
  EXPECT_TRUE(rows("split").empty());
}

TEST_F(Manager, RotationKeepsLogRetainFilesWithEveryLineOnceInOrder) {
  // 1000 lines of 64 bytes through 4 KiB files: 64 lines a file, 15 rotations.
  const int n = 1000;
  for (auto [name, retain] : {std::pair{"keepall", "50"}, {"keep3", "3"}, {"keep0", "0"}}) {
    auto r = corral({"start", app, "--name", name, "--max-log-size", "4K", "--log-retain", retain, "--", "numbered",
                     std::to_string(n), "64"});
    ASSERT_EQ(r.code, 0) << r.err;
  }
  for (const char* name : {"keepall", "keep3", "keep0"})
    ASSERT_TRUE(wait_until([&] { return slurp(log_path(name)).find("numbered done") != std::string::npos; }, 20s))
        << name;

  // keepall: every line exactly once, in order, across the rotated files,
  // none of which passed 4096 bytes or begins or ends inside a line.
  std::string stray;
  EXPECT_EQ(seq_numbers(slurp_rotated(log_path("keepall")), &stray), range(0, n));
  EXPECT_EQ(stray, "");
  int rotated = 0;
  for (int k = 1; exists(log_path("keepall") + "." + std::to_string(k)); ++k) {
    std::string f = log_path("keepall") + "." + std::to_string(k);
    std::string text = slurp(f);
    EXPECT_LE(text.size(), 4096u) << f;
    EXPECT_EQ(text.back(), '\n') << f;
    EXPECT_EQ(text.size() % 64, text.rfind("started", 0) == 0 ? text.find('\n') + 1 : 0) << f;
    ++rotated;
  }
  EXPECT_EQ(rotated, 15);
  EXPECT_LE(size_of(log_path("keepall")), 4096);

  // keep3: exactly three rotated files, holding the newest lines.
  EXPECT_TRUE(exists(log_path("keep3") + ".3"));
  EXPECT_FALSE(exists(log_path("keep3") + ".4"));
  auto kept = seq_numbers(slurp_rotated(log_path("keep3")));
  ASSERT_FALSE(kept.empty());
  EXPECT_EQ(kept, range(kept.front(), n));
  EXPECT_GE(kept.size(), 3u * 64);

  // keep0: no rotated file, the current one starts where the last rotation cut.
  EXPECT_FALSE(exists(log_path("keep0") + ".1"));
  auto current = seq_numbers(slurp(log_path("keep0")));
  ASSERT_FALSE(current.empty());
  EXPECT_EQ(current, range(current.front(), n));

  // --lines reads on into the previous file when the current one is short.
  auto tail = corral({"logs", "keepall", "--out", "--lines", "80"});
  ASSERT_EQ(tail.code, 0) << tail.err;
  auto shown = seq_numbers(tail.out);
  ASSERT_GE(shown.size(), 79u) << tail.out;
  EXPECT_EQ(shown, range(n - static_cast<int>(shown.size()), n));
  EXPECT_EQ(tail.out.substr(tail.out.size() - 14), "numbered done\n");
  EXPECT_EQ(std::count(tail.out.begin(), tail.out.end(), '\n'), 80);

  // describe says no line was lost; flush removes the rotated files too.
  auto described = json::parse(corral({"describe", "keepall"}).out);
  EXPECT_EQ(described[0].value("dropped_lines", -1), 0);
  ASSERT_EQ(corral({"flush", "keepall"}).code, 0);
  EXPECT_FALSE(exists(log_path("keepall") + ".1"));
  EXPECT_EQ(size_of(log_path("keepall")), 0);
}

TEST_F(Manager, FollowSurvivesRotationsAndPrintsEveryLineOnce) {
  auto r = corral({"start", app, "--name", "rolling", "--max-log-size", "4K", "--log-retain", "2", "--", "numbered",
                   "600", "64", "500", "wait"});
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_TRUE(wait_until([&] { return slurp(log_path("rolling")).find("waiting\n") != std::string::npos; }, 10s));
  auto follow = corral_bg({"logs", "rolling", "--out", "--lines", "1", "--follow"});
  ASSERT_TRUE(follow->wait_out("waiting\n", 10s)) << follow->err();
  // Now following: the numbered lines roll through about 9 files.
  ASSERT_EQ(::kill(rows("rolling")[0].value("pid", 0), SIGUSR1), 0);
  ASSERT_TRUE(follow->wait_out("numbered done\n", 20s)) << follow->out() << follow->err();
  std::string stray;
  EXPECT_EQ(seq_numbers(follow->out(), &stray), range(0, 600));
  EXPECT_EQ(stray, "");
  EXPECT_FALSE(exists(log_path("rolling") + ".3"));
}

// A follower that sleeps through more rotations than log_retain keeps (a
// stopped terminal, a reader that does not read): its own file is gone from
// the directory, yet it still reads that file's end and then every rotated
// file still on disk, in order. Only the files removed meanwhile are lost.
TEST_F(Manager, FollowThatSleptThroughMoreRotationsThanRetainedReadsEveryFileLeft) {
  auto r = corral({"start", app, "--name", "rolling", "--max-log-size", "4K", "--log-retain", "2", "--", "numbered",
                   "600", "64", "0", "wait"});
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_TRUE(wait_until([&] { return slurp(log_path("rolling")).find("waiting\n") != std::string::npos; }, 10s));
  auto follow = corral_bg({"logs", "rolling", "--out", "--lines", "1", "--follow"});
  ASSERT_TRUE(follow->wait_out("waiting\n", 10s)) << follow->err();
  follow->signal(SIGSTOP);
  ASSERT_EQ(::kill(rows("rolling")[0].value("pid", 0), SIGUSR1), 0);
  // About 9 rotations; the file the follower holds was removed by the 3rd.
  ASSERT_TRUE(wait_until([&] { return slurp(log_path("rolling")).find("numbered done\n") != std::string::npos; }, 20s));
  auto kept = seq_numbers(slurp_rotated(log_path("rolling")));
  ASSERT_FALSE(kept.empty());
  ASSERT_EQ(kept.back(), 599);
  ASSERT_GT(kept.front(), 64 * 3) << "the follower's file must have been removed";
  follow->signal(SIGCONT);
  ASSERT_TRUE(follow->wait_out("numbered done\n", 20s)) << follow->out() << follow->err();
  std::string stray;
  auto shown = seq_numbers(follow->out(), &stray);
  EXPECT_EQ(stray, "");
  ASSERT_GT(shown.size(), kept.size()) << follow->out();
  // Its own file's lines, then exactly those on disk.
  size_t own = shown.size() - kept.size();
  EXPECT_EQ(std::vector<int>(shown.begin(), shown.begin() + static_cast<std::ptrdiff_t>(own)), range(0, static_cast<int>(own)));
  EXPECT_EQ(std::vector<int>(shown.begin() + static_cast<std::ptrdiff_t>(own), shown.end()), kept);
}

TEST_F(Manager, FullDiskDropsLinesReportsOnceAndMarksTheGapWhenWritesWorkAgain) {
  ASSERT_EQ(corral({"ping"}).code, 0);
  // How long a `list` takes here with nothing wrong (CI machines are slow
  // and loaded; the bound below is relative to this).
  auto b0 = clock::now();
  ASSERT_EQ(corral({"list"}).code, 0);
  auto baseline = clock::now() - b0;
  // Every write to the stdout log fails with ENOSPC.
  ASSERT_EQ(::symlink("/dev/full", log_path("full").c_str()), 0);
  ASSERT_EQ(corral({"start", app, "--name", "full", "--", "serve"}).code, 0);  // a tick every 50 ms
  ASSERT_TRUE(wait_until([&] {
    auto rs = rows("full");
    return rs.size() == 1 && rs[0].value("dropped_lines", 0) >= 5;
  }, 10s));
  // The daemon is up and answers as fast as before (not stuck retrying the
  // write); stderr (the other file) is unharmed.
  auto t0 = clock::now();
  ASSERT_EQ(corral({"list"}).code, 0);
  EXPECT_LT(clock::now() - t0, 5 * baseline + 2s);
  EXPECT_TRUE(wait_until([&] { return slurp(log_path("full", true)).find("tock 3\n") != std::string::npos; }, 10s));
  auto described = json::parse(corral({"describe", "full"}).out);
  ASSERT_EQ(described[0]["log_errors"].size(), 1u) << described.dump();
  EXPECT_NE(described[0]["log_errors"][0].get<std::string>().find("(ENOSPC)"), std::string::npos);
  // One line in the daemon's stderr, naming the file and the errno.
  std::string dlog = slurp(home_.file("daemon.log"));
  EXPECT_EQ(count_of(dlog, "cannot write " + log_path("full") + ": No space left on device (ENOSPC)"), 1u) << dlog;

  // Room again: the daemon reopens the path after a failed write, so the
  // next tick lands in a real file, after the marker of what was lost.
  ASSERT_EQ(::unlink(log_path("full").c_str()), 0);
  ASSERT_TRUE(wait_until([&] { return slurp(log_path("full")).find("tick") != std::string::npos; }, 10s));
  std::string log = slurp(log_path("full"));
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      log, m, std::regex("^\\[corral\\] (\\d+) lines dropped: No space left on device \\(ENOSPC\\)\ntick (\\d+)\n")))
      << log;
  // Nothing lost silently: "started" and ticks 0..k-1 were dropped, tick k is first.
  EXPECT_EQ(std::stoi(m[1]), std::stoi(m[2]) + 1) << log;
  auto after = rows("full");
  EXPECT_EQ(after[0].value("dropped_lines", 0), std::stoi(m[1]));
  EXPECT_FALSE(after[0].contains("log_errors"));
  ASSERT_TRUE(wait_until([&] {
    return slurp(home_.file("daemon.log")).find(log_path("full") + " is written again") != std::string::npos;
  }, 5s));
}

namespace {

// The syscall `pid` is blocked in, from /proc/<pid>/syscall (-1 if running or unreadable).
long blocked_syscall(int pid) {
  std::string s = slurp("/proc/" + std::to_string(pid) + "/syscall");
  if (s.empty() || !std::isdigit(static_cast<unsigned char>(s[0]))) return -1;
  return std::stol(s);
}

// Bytes `pid` has written so far (/proc/<pid>/io's wchar).
long long bytes_written(int pid) {
  std::string io = slurp("/proc/" + std::to_string(pid) + "/io");
  auto at = io.find("wchar: ");
  return at == std::string::npos ? -1 : std::stoll(io.substr(at + 7));
}

}  // namespace

TEST_F(Manager, SlowDiskHoldsTheAppBackAndLosesNoLine) {
  ASSERT_EQ(corral({"ping"}).code, 0);
  // The stdout log is a FIFO that this test reads: a disk exactly as slow as
  // the test wants. Its reader is open first, so the daemon's open succeeds.
  std::string fifo = home_.file("slow.fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  int rd = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  ASSERT_GE(rd, 0);
  ASSERT_EQ(::symlink(fifo.c_str(), log_path("slow").c_str()), 0);
  // 16 MB of numbered lines: twice what the daemon ever buffers.
  constexpr int n = 160000, bytes = 100;
  ASSERT_EQ(corral({"start", app, "--name", "slow", "--", "numbered", std::to_string(n), std::to_string(bytes)}).code, 0);
  int pid = 0;
  ASSERT_TRUE(wait_until([&] {
    auto rs = rows("slow");
    pid = rs.size() == 1 ? rs[0].value("pid", 0) : 0;
    return pid > 0;
  }, 10s));
  // Nothing is read yet. A daemon that drops what it cannot write lets the
  // app run to its end; ours stops reading its pipe, so the app blocks in
  // write(2) well before its end.
  // (Held, not just waiting a moment for a busy daemon: still in the same
  // write, with not one more byte written, 300 ms later. A daemon that reads
  // on leaves the app blocked for microseconds at a time.)
  long long held_at = -1;
  auto since = clock::now();
  ASSERT_TRUE(wait_until([&] {
    long long w = bytes_written(pid);
    if (blocked_syscall(pid) != SYS_write || w != held_at) {
      held_at = w;
      since = clock::now();
      return false;
    }
    return clock::now() - since >= 300ms;
  }, 30s)) << "syscall " << blocked_syscall(pid) << ", " << bytes_written(pid) << " bytes written";
  EXPECT_LT(held_at, 12ll << 20) << "the app wrote on past what the daemon buffers";
  // Meanwhile the daemon answers as ever.
  auto r = corral({"list"});
  EXPECT_EQ(r.code, 0) << r.err;

  // The disk catches up: read everything.
  std::string got;
  char buf[1 << 16];
  auto t0 = clock::now();
  while (got.find("numbered done\n") == std::string::npos && clock::now() - t0 < 120s) {
    struct pollfd p {rd, POLLIN, 0};
    ::poll(&p, 1, 1000);
    ssize_t k = ::read(rd, buf, sizeof buf);
    if (k > 0) got.append(buf, static_cast<size_t>(k));
  }
  ::close(rd);
  ASSERT_NE(got.find("numbered done\n"), std::string::npos) << got.size() << " bytes read";
  std::string stray;
  EXPECT_EQ(seq_numbers(got, &stray), range(0, n));
  EXPECT_EQ(stray, "");
  EXPECT_EQ(rows("slow")[0].value("dropped_lines", 0), 0);
}

TEST_F(Manager, ScaleDownKeepsTheLastLinesOfTheInstancesItStops) {
  // Each instance prints a line and a partial one, which goes to the log
  // only at the pipe's end of file. Here that never comes: a daemonized
  // grandchild (its own session, so stopping the instance's process group
  // does not reach it) keeps stdout open. The daemon must still log the
  // partial line when it retires the stopped instance, not drop it with
  // the pipe.
  std::string pids = home_.file("grandchildren");
  std::string script = home_.file("leaky.sh");
  write_file(script,
             "#!/bin/sh\n"
             "setsid sleep 60 2>/dev/null &\n"
             "echo $! >> \"$PIDS\"\n"
             "trap 'exit 0' INT TERM\n"
             "printf 'ready %s\\npartial' \"$CORRAL_INSTANCE\"\n"
             "while :; do sleep 1 & wait $!; done\n");
  ASSERT_EQ(::chmod(script.c_str(), 0755), 0);
  auto kill_grandchildren = [&] {
    std::istringstream in(slurp(pids));
    for (int pid; in >> pid;) ::kill(pid, SIGKILL);
  };
  auto r = corral({"start", script, "--name", "split", "-i", "2", "--log-per-instance", "--env", "PIDS=" + pids});
  ASSERT_EQ(r.code, 0) << r.err;
  auto file = [&](int i) { return home_.file("logs/split-out-" + std::to_string(i) + ".log"); };
  EXPECT_TRUE(wait_until([&] { return slurp(file(1)).find("ready 1\n") != std::string::npos; }, 10s));
  EXPECT_EQ(corral({"scale", "split", "1"}).code, 0);
  EXPECT_TRUE(wait_until([&] { return slurp(file(1)) == "ready 1\npartial\n"; }, 5s)) << slurp(file(1));
  kill_grandchildren();
}

// A log path that is a FIFO no process reads: opening it to write would block
// for good, and with it the daemon. The start fails naming the file, and the
// daemon answers on.
TEST_F(Manager, LogPathThatIsAFifoNobodyReadsIsAnErrorNotAHang) {
  ASSERT_EQ(corral({"list"}).code, 0);  // the daemon, and its logs directory
  ASSERT_EQ(::mkfifo(log_path("piped").c_str(), 0600), 0);
  auto r = corral({"start", app, "--name", "piped", "--", "serve"});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("open log " + log_path("piped") + " (a FIFO that no process reads)"), std::string::npos)
      << r.err;
  auto l = corral({"list"});
  EXPECT_EQ(l.code, 0) << l.err;
  EXPECT_TRUE(rows("piped").empty()) << jlist().dump();
}

// PM2's -o, -e and -l: the logs go where the user said (relative to the
// app's cwd, directories created private), the third file gets both streams,
// and corral's own directory gets none of them.
TEST_F(Manager, OutputErrorAndCombinedLogsGoWhereTheUserSaid) {
  std::string both = work_.file("all/of/it.log");
  auto r = corral({"start", app, "--name", "paths", "--cwd", work_.path(), "-o", "logs/app.out", "-e", "logs/app.err",
                   "-l", both, "--", "lines", "3"});
  ASSERT_EQ(r.code, 0) << r.err;
  std::string out = work_.file("logs/app.out"), err = work_.file("logs/app.err");
  // 3 lines each, and "started ..." on stdout; "partial" has no newline yet.
  ASSERT_TRUE(wait_until([&] { return count_of(slurp(both), "\n") == 7; }, 10s)) << slurp(both);
  ASSERT_TRUE(wait_until([&] { return slurp(out).ends_with("out 2\n") && slurp(err).ends_with("err 2\n"); }, 10s));
  EXPECT_EQ(slurp(err), "err 0\nerr 1\nerr 2\n");
  std::string o = slurp(out);
  EXPECT_EQ(o.substr(o.find('\n') + 1), "out 0\nout 1\nout 2\n") << o;
  EXPECT_TRUE(o.starts_with("started instance=0")) << o;
  std::string b = slurp(both);
  for (const char* line : {"out 0\n", "out 1\n", "out 2\n", "err 0\n", "err 1\n", "err 2\n", "started instance=0"})
    EXPECT_EQ(count_of(b, line), 1u) << line << " in " << b;
  struct stat st {};
  ASSERT_EQ(::stat(work_.file("all/of").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_FALSE(exists(log_path("paths"))) << "corral's own log file was written too";
  auto row = rows("paths");
  ASSERT_EQ(row.size(), 1u);
  EXPECT_EQ(row[0].value("out_log", ""), out);
  EXPECT_EQ(row[0].value("err_log", ""), err);
  auto logs = corral({"logs", "paths", "--err", "--lines", "2"});
  ASSERT_EQ(logs.code, 0) << logs.err;
  EXPECT_EQ(logs.out, "err 1\nerr 2\n");
  // The app's stop finishes its partial line: in its file and in the third.
  ASSERT_EQ(corral({"stop", "paths"}).code, 0);
  EXPECT_TRUE(slurp(out).ends_with("out 2\npartial\n")) << slurp(out);
  EXPECT_EQ(count_of(slurp(both), "partial\n"), 1u) << slurp(both);
}

// out_file = error_file is one file with every line once, stamped with
// log_date_format; `logs` shows it once. /dev/null, per instance, stays
// /dev/null (no /dev/null-0 beside it).
TEST_F(Manager, OneFileForBothStreamsHasEveryLineOnceAndDevNullIsSharedAsItIs) {
  std::string one = work_.file("one.log");
  auto r = corral({"start", app, "--name", "one", "-o", one, "-e", one, "--log-date-format", "[at] YYYY|", "--",
                   "lines", "3"});
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_TRUE(wait_until([&] { return count_of(slurp(one), "\n") == 7; }, 10s)) << slurp(one);
  std::string text = slurp(one);
  static const std::regex stamped("at 20[0-9][0-9]\\|: (out|err) [0-2]|at 20[0-9][0-9]\\|: started .*");
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) EXPECT_TRUE(std::regex_match(line, stamped)) << line;
  for (const char* line : {": out 0\n", ": out 2\n", ": err 0\n", ": err 2\n"}) EXPECT_EQ(count_of(text, line), 1u) << line;
  auto logs = corral({"logs", "one", "--lines", "100"});
  ASSERT_EQ(logs.code, 0) << logs.err;
  EXPECT_EQ(count_of(logs.out, ": err 1\n"), 1u) << logs.out;
  EXPECT_EQ(count_of(logs.out, "\n"), 7u) << logs.out;

  r = corral({"start", app, "--name", "void", "-i", "2", "--log-per-instance", "-o", "/dev/null", "-e", "/dev/null",
              "--", "lines", "3"});
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_TRUE(wait_until([&] { return all_online(rows("void"), 2); }, 10s));
  for (const auto& row : rows("void")) EXPECT_EQ(row.value("out_log", ""), "/dev/null");
  EXPECT_FALSE(exists("/dev/null-0"));
  EXPECT_FALSE(exists("/dev/null-1"));
  EXPECT_FALSE(exists(home_.file("logs/void-out-0.log")));
}

// --log-per-instance with -o: instance i writes <stem>-<i><ext>, its own lines.
TEST_F(Manager, PerInstanceOutputPathsNumberTheFileBeforeItsExtension) {
  auto r = corral({"start", app, "--name", "each", "-i", "2", "--log-per-instance", "-o", work_.file("web.out.log"),
                   "--", "lines", "2"});
  ASSERT_EQ(r.code, 0) << r.err;
  for (int i = 0; i < 2; ++i) {
    std::string f = work_.file("web.out-" + std::to_string(i) + ".log");
    ASSERT_TRUE(wait_until([&] { return slurp(f).ends_with("out 1\n"); }, 10s)) << f << ": " << slurp(f);
    EXPECT_TRUE(slurp(f).starts_with("started instance=" + std::to_string(i))) << slurp(f);
  }
  EXPECT_FALSE(exists(work_.file("web.out.log")));
}

// Two apps that would each rotate one file under the other: the second start
// is refused, naming the file and the app that has it; /dev/null is shared.
TEST_F(Manager, TwoAppsCannotShareALogFileButCanShareDevNull) {
  std::string shared = work_.file("shared.log");
  ASSERT_EQ(corral({"start", app, "--name", "first", "-o", shared, "--", "serve"}).code, 0);
  auto r = corral({"start", app, "--name", "second", "-l", shared, "--", "serve"});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("app 'second': log file " + shared + " is already written by app 'first'"), std::string::npos)
      << r.err;
  EXPECT_TRUE(rows("second").empty());
  ASSERT_EQ(corral({"start", app, "--name", "quiet1", "-o", "/dev/null", "--", "serve"}).code, 0);
  r = corral({"start", app, "--name", "quiet2", "-o", "/dev/null", "--", "serve"});
  EXPECT_EQ(r.code, 0) << r.err;
  // A bad format or a directory is the CLI's error, naming the flag.
  r = corral({"start", app, "--name", "bad", "--log-date-format", "[HH", "--", "serve"});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("--log-date-format: '[HH' a '[' is not closed by ']'"), std::string::npos) << r.err;
  r = corral({"start", app, "--name", "bad", "-e", work_.path(), "--", "serve"});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("-e/--error: '" + work_.path() + "' is a directory, not a file"), std::string::npos) << r.err;
}

// PM2's log_type json: one object per line, every field PM2 writes; the
// app's own text is the message, escaped, never split.
TEST_F(Manager, JsonLogTypeWritesOneRecordPerLine) {
  auto r = corral({"start", app, "--name", "rec", "-i", "2", "--log-type", "json", "--log-date-format", "YYYY", "--",
                   "lines", "2"});
  ASSERT_EQ(r.code, 0) << r.err;
  std::string out = log_path("rec"), err = log_path("rec", true);
  ASSERT_TRUE(wait_until([&] { return count_of(slurp(err), "\n") == 4 && count_of(slurp(out), "\n") == 6; }, 10s))
      << slurp(out) << slurp(err);
  std::map<std::string, int> seen;
  for (const auto& [path, type] : {std::pair{out, "out"}, {err, "err"}}) {
    std::istringstream lines(slurp(path));
    for (std::string line; std::getline(lines, line);) {
      auto j = json::parse(line, nullptr, false);
      ASSERT_TRUE(j.is_object()) << line;
      EXPECT_EQ(j.value("type", ""), type) << line;
      EXPECT_EQ(j.value("app_name", ""), "rec") << line;
      EXPECT_EQ(j.value("timestamp", "").size(), 4u) << line;
      int id = j.value("process_id", -1);
      EXPECT_TRUE(id == 0 || id == 1) << line;
      std::string message = j.value("message", "");
      if (message.rfind("started", 0) != 0) ++seen[std::to_string(id) + " " + message];
    }
  }
  for (const char* m : {"0 out 0", "0 out 1", "0 err 0", "0 err 1", "1 out 0", "1 out 1", "1 err 0", "1 err 1"})
    EXPECT_EQ(seen[m], 1) << m;
  auto bad = corral({"start", app, "--name", "bad", "--log-type", "xml", "--", "serve"});
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.err.find("--log-type: expected raw or json, got 'xml'"), std::string::npos) << bad.err;
}

// logrotate's `create` mode with `postrotate corral reloadLogs` (PM2's):
// the files are moved, then reloadLogs returns once each is reopened at its
// path. The moved file gets no line after that (postrotate may compress it
// at once), and across the two files every line is there once, in order.
// The daemon's own log, moved too, is reopened as well.
TEST_F(Manager, ReloadLogsAfterLogrotateMovedTheFilesWritesNoMoreToThemAndLosesNoLine) {
  // No daemon: nothing to reopen, and none is started (a nightly postrotate
  // must not bring back apps that `systemctl stop` stopped).
  auto none = corral({"reloadLogs"});
  EXPECT_EQ(none.code, 0) << none.err;
  EXPECT_EQ(none.out, "no daemon running: no log file to reopen\n");
  EXPECT_FALSE(exists(home_.file("daemon.pid")));
  // A line every 2 ms, for longer than any test runs.
  ASSERT_EQ(corral({"start", app, "--name", "seq", "--", "numbered", "10000000", "32", "2000"}).code, 0);
  const std::string out = log_path("seq"), dlog = home_.file("daemon.log");
  ASSERT_TRUE(wait_until([&] { return seq_numbers(slurp(out)).size() >= 20; }, 10s)) << slurp(out);
  ASSERT_EQ(::rename(out.c_str(), (out + ".1").c_str()), 0);
  ASSERT_EQ(::rename(dlog.c_str(), (dlog + ".1").c_str()), 0);
  auto r = corral({"reloadLogs"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("log files reopened"), std::string::npos) << r.out;
  const off_t moved = size_of(out + ".1");
  ASSERT_TRUE(wait_until([&] { return seq_numbers(slurp(out)).size() >= 20; }, 10s)) << slurp(out);
  EXPECT_EQ(size_of(out + ".1"), moved);
  std::string stray;
  auto all = seq_numbers(slurp(out + ".1"), &stray);
  auto after = seq_numbers(slurp(out), &stray);
  EXPECT_GE(all.size(), 20u);
  all.insert(all.end(), after.begin(), after.end());
  EXPECT_EQ(all, range(0, static_cast<int>(all.size())));
  EXPECT_EQ(stray, "");
  EXPECT_NE(slurp(dlog).find("reloadLogs: " + dlog + " had been moved or removed; it is written afresh"),
            std::string::npos) << slurp(dlog);
  // PM2's other spelling, and nothing to do: still every file reopened.
  EXPECT_EQ(corral({"reload-logs"}).code, 0);
}

// A log whose directory was removed: reloadLogs says it cannot reopen it
// (exit 1, the path and why), the lines meanwhile are counted as dropped,
// and once the directory is back the next reopen works.
TEST_F(Manager, ReloadLogsSaysWhichFileItCannotReopen) {
  std::filesystem::create_directories(work_.file("logs"));
  const std::string out = work_.file("logs/out.log");
  ASSERT_EQ(corral({"start", app, "--name", "seq", "-o", out, "--", "numbered", "10000000", "32", "2000"}).code, 0);
  ASSERT_TRUE(wait_until([&] { return seq_numbers(slurp(out)).size() >= 20; }, 10s)) << slurp(out);
  std::filesystem::remove_all(work_.file("logs"));
  auto r = corral({"reloadLogs"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("cannot reopen " + out + ": No such file or directory (ENOENT)"), std::string::npos) << r.err;
  ASSERT_TRUE(wait_until([&] { return jlist()[0].value("dropped_lines", 0) > 0; }, 10s)) << jlist().dump();
  std::filesystem::create_directories(work_.file("logs"));
  r = corral({"reloadLogs"});
  EXPECT_EQ(r.code, 0) << r.err;
  ASSERT_TRUE(wait_until([&] { return slurp(out).find(" lines dropped: ") != std::string::npos; }, 10s)) << slurp(out);
}

// Without reloadLogs (logrotate's `create` with no postrotate, or a user's
// mv or rm): a write within about a second notices that the path names
// another file, or none, and writes on at the path. A move loses no line.
TEST_F(Manager, ALogFileMovedOrRemovedIsWrittenAfreshAtItsPath) {
  ASSERT_EQ(corral({"start", app, "--name", "seq", "--", "numbered", "10000000", "32", "2000"}).code, 0);
  const std::string out = log_path("seq");
  ASSERT_TRUE(wait_until([&] { return seq_numbers(slurp(out)).size() >= 20; }, 10s)) << slurp(out);
  ASSERT_EQ(::rename(out.c_str(), (out + ".1").c_str()), 0);
  ASSERT_TRUE(wait_until([&] { return seq_numbers(slurp(out)).size() >= 20; }, 10s));
  auto all = seq_numbers(slurp(out + ".1"));
  auto after = seq_numbers(slurp(out));
  all.insert(all.end(), after.begin(), after.end());
  EXPECT_EQ(all, range(0, static_cast<int>(all.size())));
  ASSERT_EQ(::unlink(out.c_str()), 0);
  EXPECT_TRUE(wait_until([&] { return seq_numbers(slurp(out)).size() >= 20; }, 10s));
  EXPECT_EQ(count_of(slurp(home_.file("daemon.log")), out + " was moved or removed (logrotate?): writing to the path afresh"),
            2u) << slurp(home_.file("daemon.log"));
}

// The real thing: Debian's logrotate, `create` mode with a postrotate that
// runs `corral reloadLogs`, three rotations while the app writes. Every
// line is in the files once, in order, and each file rotated away got no
// line after its reloadLogs returned (logrotate runs postrotate before it
// would compress).
TEST_F(Manager, LogrotateWithReloadLogsInPostrotateLosesNoLine) {
  ASSERT_EQ(corral({"start", app, "--name", "seq", "--", "numbered", "10000000", "32", "2000"}).code, 0);
  const std::string out = log_path("seq");
  const std::string conf = work_.file("logrotate.conf");
  write_file(conf, out + " {\n  rotate 5\n  create 0600\n  postrotate\n    " + bin("corral") +
                       " reloadLogs >/dev/null\n  endscript\n}\n");
  ::chmod(conf.c_str(), 0644);  // (logrotate refuses a config others may write)
  for (int round = 1; round <= 3; ++round) {
    ASSERT_TRUE(wait_until([&] { return seq_numbers(slurp(out)).size() >= 20; }, 10s)) << slurp(out);
    spawn_options o;
    o.env["CORRAL_HOME"] = home_.path();
    child rotate({"/usr/sbin/logrotate", "-f", "-s", work_.file("logrotate.state"), conf}, o);
    auto st = rotate.wait_exit(30s);
    ASSERT_TRUE(st && WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << rotate.out() << rotate.err();
    // What reloadLogs closed gets nothing more: its size now is its size.
    const off_t closed = size_of(out + ".1");
    ASSERT_GT(closed, 0);
    ASSERT_TRUE(wait_until([&] { return seq_numbers(slurp(out)).size() >= 20; }, 10s)) << slurp(out);
    EXPECT_EQ(size_of(out + ".1"), closed) << "round " << round;
  }
  std::vector<int> all;
  for (int k = 3; k >= 1; --k) {
    auto part = seq_numbers(slurp(out + "." + std::to_string(k)));
    EXPECT_GE(part.size(), 20u) << k;
    all.insert(all.end(), part.begin(), part.end());
  }
  auto now = seq_numbers(slurp(out));
  all.insert(all.end(), now.begin(), now.end());
  EXPECT_EQ(all, range(0, static_cast<int>(all.size())));
}
