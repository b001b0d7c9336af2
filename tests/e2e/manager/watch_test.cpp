// watch (PM2's restart on file change) end to end: the real daemon watching a
// temp directory with inotify, a real app restarted by it.
//
// Every change a test makes that is meant to count is one inotify event: the
// file is written under a dot-name (always ignored) and renamed into place,
// so the number of restarts it causes is exact, whatever the machine's speed.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "harness.hpp"

using namespace manager_test;
using namespace support;

namespace {

namespace fs = std::filesystem;

const std::string app = MANAGER_APP;

// One IN_MOVED_TO for `path`; the temp file's own events are for a dot-name.
void replace_file(const std::string& path, const std::string& text = "x\n") {
  fs::path p(path);
  std::string tmp = (p.parent_path() / ".corral-test-tmp").string();
  write_file(tmp, text);
  ASSERT_EQ(std::rename(tmp.c_str(), path.c_str()), 0) << path;
}

std::string note_of(const std::string& path, const char* verb = "restarting") {
  return std::string("[corral] ") + verb + ": " + path + " changed (watch)\n";
}

}  // namespace

class Watch : public Manager {
 protected:
  void SetUp() override {
    Manager::SetUp();
    proj_ = work_.file("proj");
    fs::create_directories(proj_);
  }
  int restarts(const std::string& name) {
    auto r = rows(name);
    return r.size() == 1 ? r[0].value("restarts", -1) : -1;
  }
  pid_t pid_of(const std::string& name) {
    auto r = rows(name);
    return r.size() == 1 ? r[0].value("pid", 0) : 0;
  }
  std::string errors(const std::string& name) { return slurp(log_path(name, true)); }
  /// Restarts noted as opened by a change of `path`, whether others joined.
  int noted(const std::string& name, const std::string& path) {
    return count(errors(name), "[corral] restarting: " + path + " changed (watch");
  }
  /// Online again after its n-th restart, with the note of `path` there `times` times.
  bool restarted(const std::string& name, int n, const std::string& note, int times = 1) {
    return wait_until([&] {
      auto r = rows(name);
      return all_online(r, 1) && r[0].value("restarts", -1) == n && count(errors(name), note) == times;
    }, 20s);
  }
  std::string proj_;
};

// `--watch` alone watches the cwd, recursively; dot-names, node_modules,
// __pycache__ and what --ignore-watch names are left out. The ignored
// changes come first: had any of them been taken for a change, it would have
// opened the batch (the note would name it, or say "more") or made a restart
// of its own (a third note).
TEST_F(Watch, AChangeRestartsTheAppAndIgnoredOnesDoNot) {
  for (const char* d : {"node_modules", ".git", "cache"}) fs::create_directories(proj_ + "/" + d);
  ASSERT_EQ(corral({"start", app, "--name", "w", "--cwd", proj_, "--watch", "--ignore-watch", "*.log,cache",
                    "--watch-delay", "50", "--", "serve"})
                .code,
            0);
  ASSERT_TRUE(wait_until([&] { return all_online(rows("w"), 1); }, 10s)) << jlist().dump();
  pid_t first = pid_of("w");
  replace_file(proj_ + "/main.py");
  ASSERT_TRUE(restarted("w", 1, note_of(proj_ + "/main.py"))) << jlist().dump() << errors("w");
  EXPECT_NE(pid_of("w"), first);

  write_file(proj_ + "/node_modules/dep.js", "x");
  write_file(proj_ + "/.git/HEAD", "x");
  write_file(proj_ + "/.env", "x");
  write_file(proj_ + "/server.log", "x");
  write_file(proj_ + "/cache/blob", "x");
  fs::create_directories(proj_ + "/__pycache__");
  write_file(proj_ + "/__pycache__/main.cpython-311.pyc", "x");
  replace_file(proj_ + "/main.py");
  ASSERT_TRUE(restarted("w", 2, note_of(proj_ + "/main.py"), 2)) << jlist().dump() << errors("w");
  EXPECT_EQ(count(errors("w"), "[corral] restarting: "), 2) << errors("w");
}

// A directory made after the start is watched, with what is below it: here
// moved in whole (one event), its subdirectory found by the walk.
TEST_F(Watch, ADirectoryMadeAfterTheStartIsWatchedToo) {
  ASSERT_EQ(corral({"start", app, "--name", "w", "--cwd", proj_, "--watch", "--watch-delay", "50", "--", "serve"}).code,
            0);
  ASSERT_TRUE(wait_until([&] { return all_online(rows("w"), 1); }, 10s));
  fs::create_directories(proj_ + "/.stage/deep");
  ASSERT_EQ(std::rename((proj_ + "/.stage").c_str(), (proj_ + "/lib").c_str()), 0);
  // Its note comes after its watch is added: no race with the next write.
  ASSERT_TRUE(restarted("w", 1, note_of(proj_ + "/lib"))) << errors("w");
  replace_file(proj_ + "/lib/deep/util.py");
  ASSERT_TRUE(restarted("w", 2, note_of(proj_ + "/lib/deep/util.py"))) << errors("w");
  fs::create_directories(proj_ + "/lib/deep/er");  // made in place, this time
  ASSERT_TRUE(restarted("w", 3, note_of(proj_ + "/lib/deep/er"))) << errors("w");
  replace_file(proj_ + "/lib/deep/er/x.py");
  ASSERT_TRUE(restarted("w", 4, note_of(proj_ + "/lib/deep/er/x.py"))) << errors("w");
}

// A stopped app is not watched: a change restarts the other app watching
// the same directory, not the stopped one. Started again, it is watched again.
TEST_F(Watch, AStoppedAppIsNotRestartedAndIsWatchedAgainOnceStarted) {
  for (const char* name : {"a", "b"})
    ASSERT_EQ(corral({"start", app, "--name", name, "--cwd", proj_, "--watch", "--watch-delay", "50", "--", "serve"})
                  .code,
              0);
  ASSERT_TRUE(wait_until([&] { return all_online(rows("a"), 1) && all_online(rows("b"), 1); }, 10s));
  ASSERT_EQ(corral({"stop", "a"}).code, 0);
  replace_file(proj_ + "/main.py");
  ASSERT_TRUE(restarted("b", 1, note_of(proj_ + "/main.py"))) << errors("b");
  auto a = rows("a");
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].value("status", ""), "stopped");
  EXPECT_EQ(count(errors("a"), "[corral] restarting: "), 0) << errors("a");
  ASSERT_EQ(corral({"start", "a"}).code, 0);
  ASSERT_TRUE(wait_until([&] { return all_online(rows("a"), 1); }, 10s));
  int before = restarts("a");
  replace_file(proj_ + "/main.py");
  ASSERT_TRUE(restarted("a", before + 1, note_of(proj_ + "/main.py"))) << errors("a");
}

// `--watch <path>` relative to the cwd, a file among them, watched by name.
TEST_F(Watch, WatchPathsAreRelativeToTheCwdAndAFileIsWatchedByName) {
  fs::create_directories(proj_ + "/src");
  write_file(proj_ + "/config.json", "{}");
  ASSERT_EQ(corral({"start", app, "--name", "m", "--cwd", proj_, "--watch", "config.json", "--watch", "src",
                    "--watch-delay", "50", "--", "serve"})
                .code,
            0);
  ASSERT_TRUE(wait_until([&] { return all_online(rows("m"), 1); }, 10s));
  auto d = json::parse(corral({"describe", "m"}).out, nullptr, false);
  ASSERT_TRUE(d.is_array() && d.size() == 1) << d.dump();
  EXPECT_EQ(d[0]["app"]["watch"], json({proj_ + "/config.json", proj_ + "/src"}));
  EXPECT_EQ(d[0]["app"]["watch_delay"], 50);
  EXPECT_EQ(d[0].value("watched_dirs", 0), 2);  // src, and the directory of config.json
  write_file(proj_ + "/other.txt", "x");        // beside the file, not watched
  replace_file(proj_ + "/config.json", "{\"a\": 1}");
  ASSERT_TRUE(restarted("m", 1, note_of(proj_ + "/config.json"))) << errors("m");
  EXPECT_EQ(count(errors("m"), "[corral] restarting: "), 1) << errors("m");
}

// The ecosystem file's keys: watch: true is the app's cwd (the file's
// directory), ignore_watch and watch_delay as PM2 has them; describe and
// jlist show them.
TEST_F(Watch, EcosystemWatchTrueWithIgnoreWatch) {
  fs::create_directories(proj_ + "/data");
  write_file(proj_ + "/eco.yaml", "apps:\n  - name: eco\n    script: " + app +
                                      "\n    args: serve\n    watch: true\n    ignore_watch: [data, '*.tmp']\n"
                                      "    watch_delay: 50ms\n");
  auto r = corral({"start", proj_ + "/eco.yaml"});
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_TRUE(wait_until([&] { return all_online(rows("eco"), 1); }, 10s));
  auto spec = rows("eco")[0]["app"];
  EXPECT_EQ(spec["watch"], json({proj_}));
  EXPECT_EQ(spec["ignore_watch"], json({"data", "*.tmp"}));
  EXPECT_EQ(spec["watch_delay"], 50);
  write_file(proj_ + "/data/rows.csv", "x");
  write_file(proj_ + "/upload.tmp", "x");
  replace_file(proj_ + "/main.py");
  ASSERT_TRUE(restarted("eco", 1, note_of(proj_ + "/main.py"))) << errors("eco");
  EXPECT_EQ(count(errors("eco"), "[corral] restarting: "), 1) << errors("eco");
}

// In cluster mode a change is a rolling reload, as cron_restart's.
TEST_F(Watch, InClusterModeAChangeReloads) {
  ASSERT_EQ(corral({"start", app, "--name", "c", "--port", "0", "--cwd", proj_, "--watch", "--watch-delay", "50", "--",
                    "serve"})
                .code,
            0);
  ASSERT_TRUE(wait_until([&] { return all_online(rows("c"), 1); }, 10s));
  pid_t first = pid_of("c");
  replace_file(proj_ + "/main.py");
  ASSERT_TRUE(wait_until([&] {
    return all_online(rows("c"), 1) && pid_of("c") != first &&
           count(errors("c"), note_of(proj_ + "/main.py", "reloading")) == 1;
  }, 20s)) << jlist().dump() << errors("c");
}

// A restore (the daemon killed and started again) watches again.
TEST_F(Watch, ARestoredAppIsWatchedAgain) {
  ASSERT_EQ(corral({"start", app, "--name", "w", "--cwd", proj_, "--watch", "--watch-delay", "50", "--", "serve"}).code,
            0);
  ASSERT_TRUE(wait_until([&] { return all_online(rows("w"), 1); }, 10s));
  pid_t old_daemon = daemon_pid();
  ::kill(old_daemon, SIGKILL);
  ASSERT_TRUE(wait_until([&] { reap_orphans(); return !alive(old_daemon); }, 5s));
  ASSERT_EQ(corral({"list"}).code, 0);  // a new daemon, which restores w
  ASSERT_TRUE(wait_until([&] { return all_online(rows("w"), 1); }, 10s));
  pid_t pid = pid_of("w");
  replace_file(proj_ + "/main.py");
  ASSERT_TRUE(wait_until([&] {
    return all_online(rows("w"), 1) && pid_of("w") != pid && count(errors("w"), note_of(proj_ + "/main.py")) == 1;
  }, 20s)) << jlist().dump() << errors("w");
}

// The daemon stays up when a watched tree goes: its removal is a change,
// it is awaited meanwhile (a `restart` in between does not change that),
// and made again it is watched as a tree again. (The removal's many events
// may make one restart more, late: the restarts are not counted here.)
TEST_F(Watch, AWatchedTreeRemovedAndMadeAgainIsWatchedAgain) {
  const std::string src = proj_ + "/src";
  fs::create_directories(src + "/sub");
  ASSERT_EQ(corral({"start", app, "--name", "w", "--cwd", proj_, "--watch", "src", "--watch-delay", "50", "--", "serve"})
                .code,
            0);
  ASSERT_TRUE(wait_until([&] { return all_online(rows("w"), 1); }, 10s));
  auto watched = [&] {
    auto d = json::parse(corral({"describe", "w"}).out, nullptr, false);
    return d.is_array() && d.size() == 1 ? d[0].value("watched_dirs", -1) : -1;
  };
  EXPECT_EQ(watched(), 2);  // src, src/sub
  fs::remove_all(src);
  ASSERT_TRUE(wait_until([&] { return restarts("w") >= 1 && all_online(rows("w"), 1); }, 20s)) << errors("w");
  EXPECT_NE(errors("w").find("[corral] restarting: " + src), std::string::npos) << errors("w");
  EXPECT_TRUE(wait_until([&] { return watched() == 1; }, 5s));  // proj, for the name src
  ASSERT_EQ(corral({"restart", "w"}).code, 0);
  ASSERT_TRUE(wait_until([&] { return all_online(rows("w"), 1); }, 10s));
  EXPECT_EQ(watched(), 1);
  fs::create_directories(proj_ + "/.stage/sub");
  ASSERT_EQ(std::rename((proj_ + "/.stage").c_str(), src.c_str()), 0);
  EXPECT_TRUE(wait_until([&] { return watched() == 2; }, 5s)) << errors("w");
  EXPECT_EQ(corral({"ping"}).code, 0);
}

// A watched path that does not exist yet (a build's output directory) is
// taken at start and awaited: made, with what is in it (one rename, so one
// event), it is one change, and from then on it is watched recursively.
TEST_F(Watch, AMissingDirectoryIsAwaitedAndWatchedOnceMade) {
  const std::string dist = proj_ + "/dist";
  auto started = corral({"start", app, "--name", "w", "--cwd", proj_, "--watch", "dist", "--watch-delay", "50", "--",
                         "serve"});
  ASSERT_EQ(started.code, 0) << started.err;
  // Said at once, so that a mistyped path is not silent.
  EXPECT_NE(started.err.find("corral: app 'w': watch: " + dist + " does not exist (yet): it is watched for its creation"),
            std::string::npos) << started.err;
  ASSERT_TRUE(wait_until([&] { return all_online(rows("w"), 1); }, 10s));
  ASSERT_TRUE(wait_until([&] {
    return errors("w").find("[corral] watch: cannot watch " + dist + ": No such file or directory; it is watched "
                            "for its creation, from " + proj_) != std::string::npos;
  }, 5s)) << errors("w");
  fs::create_directories(proj_ + "/.stage/lib");
  write_file(proj_ + "/.stage/lib/util.js", "x");
  ASSERT_EQ(std::rename((proj_ + "/.stage").c_str(), dist.c_str()), 0);
  ASSERT_TRUE(restarted("w", 1, note_of(dist))) << jlist().dump() << errors("w");
  replace_file(dist + "/lib/util.js");
  ASSERT_TRUE(restarted("w", 2, note_of(dist + "/lib/util.js"))) << jlist().dump() << errors("w");
  EXPECT_EQ(count(errors("w"), "[corral] restarting: "), 2) << errors("w");
}

// `rm -rf dist && tsc`: the removal is a change, and once that restart is
// done, dist made again is a change too, with no restart in between to
// watch it again. dist is empty when removed, so that its removal is one
// event and one restart; the file made in the new one may make one more.
TEST_F(Watch, ARemovedDirectoryMadeAgainAfterItsRestartRestartsAgain) {
  const std::string dist = proj_ + "/dist";
  fs::create_directories(dist);
  ASSERT_EQ(corral({"start", app, "--name", "w", "--cwd", proj_, "--watch", "dist", "--watch-delay", "50", "--",
                    "serve"})
                .code,
            0);
  ASSERT_TRUE(wait_until([&] { return all_online(rows("w"), 1); }, 10s));
  fs::remove_all(dist);
  ASSERT_TRUE(wait_until([&] { return all_online(rows("w"), 1) && restarts("w") == 1 && noted("w", dist) == 1; }, 20s))
      << jlist().dump() << errors("w");
  fs::create_directory(dist);
  write_file(dist + "/x", "");
  ASSERT_TRUE(wait_until([&] { return all_online(rows("w"), 1) && restarts("w") >= 2 && noted("w", dist) == 2; }, 20s))
      << jlist().dump() << errors("w");
  // Watched as a tree again: a change inside it is one more.
  replace_file(dist + "/main.js");
  ASSERT_TRUE(wait_until([&] {
    return all_online(rows("w"), 1) && count(errors("w"), note_of(dist + "/main.js")) == 1;
  }, 20s)) << jlist().dump() << errors("w");
}

// The directory a missing path is awaited in may go too (no change: the
// path was not there, and no restart): it is then awaited further up, and
// made again with the path in it, that is one change.
TEST_F(Watch, TheDirectoryAnAwaitedPathIsAwaitedInRemovedAndMadeAgain) {
  const std::string dist = proj_ + "/build/dist";
  fs::create_directories(proj_ + "/build");
  ASSERT_EQ(corral({"start", app, "--name", "w", "--cwd", proj_, "--watch", "build/dist", "--watch-delay", "50", "--",
                    "serve"})
                .code,
            0);
  ASSERT_TRUE(wait_until([&] { return all_online(rows("w"), 1); }, 10s));
  fs::remove_all(proj_ + "/build");
  fs::create_directories(proj_ + "/.stage/dist");
  ASSERT_EQ(std::rename((proj_ + "/.stage").c_str(), (proj_ + "/build").c_str()), 0);
  ASSERT_TRUE(restarted("w", 1, note_of(dist))) << jlist().dump() << errors("w");
  EXPECT_EQ(count(errors("w"), "[corral] restarting: "), 1) << errors("w");
}

// A watched file two directories below what exists: `mkdir -p` makes them
// one at a time, the file comes after; only the file is a change.
TEST_F(Watch, AMissingFileIsAwaitedThroughTheDirectoriesMadeAboveIt) {
  const std::string file = proj_ + "/config/app/app.yml";
  ASSERT_EQ(corral({"start", app, "--name", "w", "--cwd", proj_, "--watch", "config/app/app.yml", "--watch-delay",
                    "50", "--", "serve"})
                .code,
            0);
  ASSERT_TRUE(wait_until([&] { return all_online(rows("w"), 1); }, 10s));
  fs::create_directories(proj_ + "/config/app");
  replace_file(file);
  // (The file may be found by the walk down and then its event read: "and
  // 1 more" then, still one restart.)
  ASSERT_TRUE(wait_until([&] { return all_online(rows("w"), 1) && restarts("w") == 1 && noted("w", file) == 1; }, 20s))
      << jlist().dump() << errors("w");
  EXPECT_EQ(count(errors("w"), "[corral] restarting: "), 1) << errors("w");
  replace_file(file, "b\n");
  ASSERT_TRUE(wait_until([&] { return all_online(rows("w"), 1) && restarts("w") == 2 && noted("w", file) == 2; }, 20s))
      << jlist().dump() << errors("w");
}

// Only the awaited name is looked at in the directory above a missing path:
// what is made beside it is no change. Had any of it been, it would have
// opened the batch (the note would name it) or made a restart of its own.
TEST_F(Watch, WhatIsMadeBesideAnAwaitedPathIsNoChange) {
  const std::string file = proj_ + "/dist/app.js";
  ASSERT_EQ(corral({"start", app, "--name", "w", "--cwd", proj_, "--watch", "dist/app.js", "--watch-delay", "50", "--",
                    "serve"})
                .code,
            0);
  ASSERT_TRUE(wait_until([&] { return all_online(rows("w"), 1); }, 10s));
  fs::create_directories(proj_ + "/build/dist");
  write_file(proj_ + "/distx", "x");
  write_file(proj_ + "/app.js", "x");
  replace_file(proj_ + "/main.py");
  fs::create_directories(proj_ + "/.stage");
  write_file(proj_ + "/.stage/app.js", "x");
  ASSERT_EQ(std::rename((proj_ + "/.stage").c_str(), (proj_ + "/dist").c_str()), 0);
  ASSERT_TRUE(restarted("w", 1, note_of(file))) << jlist().dump() << errors("w");
  EXPECT_EQ(count(errors("w"), "[corral] restarting: "), 1) << errors("w");
}

// Bounded: past CORRAL_WATCH_MAX_DIRS directories the app runs on, watched
// in part, and its error log says so.
TEST_F(Watch, TheWatchedDirectoriesAreBounded) {
  for (const char* d : {"a/1", "b/2", "c/3"}) fs::create_directories(proj_ + "/" + d);
  ASSERT_EQ(corral({"start", app, "--name", "w", "--cwd", proj_, "--watch", "--", "serve"}, 30s,
                   {{"CORRAL_WATCH_MAX_DIRS", "3"}})
                .code,
            0);
  ASSERT_TRUE(wait_until([&] { return all_online(rows("w"), 1); }, 10s));
  EXPECT_TRUE(wait_until([&] {
    return errors("w").find("[corral] watch: watching only 3 directories") != std::string::npos;
  }, 5s)) << errors("w");
  auto d = json::parse(corral({"describe", "w"}).out, nullptr, false);
  ASSERT_TRUE(d.is_array() && d.size() == 1) << d.dump();
  EXPECT_EQ(d[0].value("watched_dirs", 0), 3);
  EXPECT_TRUE(all_online(rows("w"), 1));
}

// A flood of changes while the daemon does not read (stopped here) overflows
// inotify's queue: the daemon stays up, takes it as a change, and walks the
// tree again, so a directory made after the overflow (its event lost) is
// watched all the same.
TEST_F(Watch, AnOverflowingEventQueueIsAChangeAndTheTreeIsWalkedAgain) {
  long queued = std::stol(slurp("/proc/sys/fs/inotify/max_queued_events"));
  if (queued > 200000) GTEST_SKIP() << "max_queued_events is " << queued << ": too many files to write";
  fs::create_directories(proj_ + "/flood");
  ASSERT_EQ(corral({"start", app, "--name", "w", "--cwd", proj_, "--watch", "--watch-delay", "50", "--", "serve"}).code,
            0);
  ASSERT_TRUE(wait_until([&] { return all_online(rows("w"), 1); }, 10s));
  auto watched = [&] {
    auto d = json::parse(corral({"describe", "w"}).out, nullptr, false);
    return d.is_array() && d.size() == 1 ? d[0].value("watched_dirs", -1) : -1;
  };
  ASSERT_EQ(watched(), 2);  // proj, flood
  pid_t d = daemon_pid();
  ASSERT_EQ(::kill(d, SIGSTOP), 0);
  // Two events a file (created, written and closed): past the queue's end.
  for (long k = 0; k < queued / 2 + 100; ++k) write_file(proj_ + "/flood/f" + std::to_string(k), "");
  fs::create_directories(proj_ + "/late");
  ASSERT_EQ(::kill(d, SIGCONT), 0);
  ASSERT_TRUE(wait_until([&] {
    return errors("w").find("[corral] watch: more changes at once than inotify queues") != std::string::npos;
  }, 20s)) << errors("w");
  EXPECT_TRUE(wait_until([&] { return watched() == 3; }, 20s)) << "late/ is not watched";
  EXPECT_TRUE(wait_until([&] { return restarts("w") >= 1 && all_online(rows("w"), 1); }, 20s)) << jlist().dump();
  EXPECT_EQ(daemon_pid(), d);
}

// An app whose out_file is in its watched tree: the log's rotations are no
// change (they would restart it, and it would log, and rotate, again). The
// sentinel change after each run's rotations is the only one noted.
TEST_F(Watch, TheAppsOwnLogFilesInTheTreeAreNoChange) {
  std::string out = proj_ + "/logs/out.log";
  ASSERT_EQ(corral({"start", app, "--name", "w", "--cwd", proj_, "--watch", "--watch-delay", "50", "-o", "logs/out.log",
                    "--max-log-size", "4K", "--", "numbered", "200", "64"})
                .code,
            0);
  for (int run = 1; run <= 2; ++run) {
    // This run's lines are all out, over several rotations (12.8 KB at 4 KiB).
    ASSERT_TRUE(wait_until([&] { return count(slurp_rotated(out), "numbered done\n") == run; }, 20s))
        << run << ": " << slurp_rotated(out);
    ASSERT_TRUE(fs::exists(out + ".2"));
    replace_file(proj_ + "/main.py");
    ASSERT_TRUE(restarted("w", run, note_of(proj_ + "/main.py"), run)) << jlist().dump() << errors("w");
    EXPECT_EQ(count(errors("w"), "[corral] restarting: "), run) << errors("w");
  }
}

// The pid file in the watched tree is written at every start: were it a
// change, each restart would make the next one. Two real changes make two
// restarts, each named by its file, and the pid file holds the new pid.
TEST_F(Watch, ThePidFileInTheTreeIsNoChange) {
  std::string pid_file = proj_ + "/run/app.pid";
  ASSERT_EQ(corral({"start", app, "--name", "w", "--cwd", proj_, "--watch", "--watch-delay", "50", "--pid-file",
                    "run/app.pid", "--", "serve"})
                .code,
            0);
  ASSERT_TRUE(wait_until([&] { return all_online(rows("w"), 1); }, 10s));
  for (int run = 1; run <= 2; ++run) {
    replace_file(proj_ + "/main.py");
    ASSERT_TRUE(restarted("w", run, note_of(proj_ + "/main.py"), run)) << jlist().dump() << errors("w");
    int pid = rows("w")[0].value("pid", 0);
    ASSERT_TRUE(wait_until([&] { return slurp(pid_file) == std::to_string(pid) + "\n"; }, 5s)) << slurp(pid_file);
    EXPECT_EQ(count(errors("w"), "[corral] restarting: "), run) << errors("w");
  }
  EXPECT_EQ(rows("w")[0].value("restarts", -1), 2);
}
