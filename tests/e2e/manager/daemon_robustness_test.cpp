// What an app or a control client can send or do must never take the daemon
// down or wedge it: wrong-typed fields, malformed lines, clients that do not
// read, running out of fds. And what the daemon owes the apps: no stray fds,
// their last lines kept however the daemon stops, their place kept when a
// restore cannot start them.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <ctime>
#include <fstream>
#include <optional>
#include <regex>

#include "corral/fd.hpp"
#include "harness.hpp"
#include "support/client.hpp"

namespace manager_test {
namespace {

using namespace support;

const std::string app = MANAGER_APP;

int occurrences(const std::string& hay, const std::string& needle) { return support::count(hay, needle); }

// A port no one listens on now (bound, read, closed).
// SIGTERM to the daemon (as `systemctl stop`), then waits until it is gone.
bool stop_daemon_by_sigterm(pid_t daemon) {
  if (daemon <= 0 || ::kill(daemon, SIGTERM) != 0) return false;
  return wait_until([&] {
    reap_orphans();
    return !alive(daemon);
  }, 15s);
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

TEST_F(Manager, AppMessageWithWrongTypedFieldsIsIgnoredAndLoggedAndTheDaemonStaysUp) {
  pid_t daemon = 0;
  // `type` of every other JSON kind, then "ready": the daemon read on past them.
  write_file(work_.file("odd.sh"),
             "printf '%s\\n' '{\"type\":1}' '{\"type\":null}' '{\"type\":[\"ready\"]}' '{\"type\":{}}' "
             "'\"ready\"' >&\"$CORRAL_CHANNEL_FD\"\n"
             "exec " + app + " serve\n");
  auto r = corral({"start", "/bin/sh " + work_.file("odd.sh"), "--name", "odd", "--wait-ready"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  daemon = daemon_pid();
  EXPECT_TRUE(all_online(rows("odd"), 1));
  // The cluster primary's messages (--lb round_robin): each field of the
  // wrong type is taken as absent, and the app still gets its socket.
  write_file(work_.file("rr.sh"),
             "printf '%s\\n' "
             "'{\"corral\":\"ack\",\"key\":1,\"n\":\"x\"}' '{\"corral\":\"bound\",\"key\":[]}' "
             "'{\"corral\":\"close\",\"key\":{},\"seq\":1}' "
             "'{\"corral\":\"listen\",\"seq\":2,\"address\":{\"host\":\"127.0.0.1\",\"port\":0},"
             "\"key\":7,\"policy\":8,\"backlog\":\"many\"}' >&\"$CORRAL_CHANNEL_FD\"\n"
             "exec " + app + " serve\n");
  r = corral({"start", "/bin/sh " + work_.file("rr.sh"), "--name", "rr", "--port", "0", "--lb", "round_robin"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(all_online(rows("rr"), 1));
  EXPECT_EQ(corral({"ping"}).code, 0);
  EXPECT_EQ(daemon_pid(), daemon);
  // One line in the daemon's log names the app.
  std::string log = slurp(home_.file("daemon.log"));
  EXPECT_EQ(occurrences(log, "odd: instance 0 sent a message whose \"type\" is not a string"), 1) << log;
}

TEST_F(Manager, ControlRequestWithWrongTypedArgumentIsRefusedByNameAndTheDaemonStaysUp) {
  ASSERT_EQ(corral({"start", app, "--name", "web", "--", "serve"}).code, 0);
  pid_t daemon = daemon_pid();
  raw_client c(home());
  ASSERT_TRUE(c.connected());
  struct bad_request {
    std::string line;
    std::string error;
  };
  const std::vector<bad_request> cases = {
      {R"({"id":1,"cmd":"stop","args":{"target":1}})", "args.target must be a string"},
      {R"({"id":2,"cmd":"restart","args":{"target":["web"]}})", "args.target must be a string"},
      {R"({"id":3,"cmd":"delete","args":{"target":true}})", "args.target must be a string"},
      {R"({"id":4,"cmd":"list","args":{"full":1}})", "args.full must be a boolean"},
      {R"({"id":5,"cmd":"list","args":{"target":2}})", "args.target must be a string"},
      {R"({"id":6,"cmd":"describe","args":{"target":{}}})", "args.target must be a string"},
      {R"({"id":7,"cmd":"logs_info","args":{"target":3}})", "args.target must be a string"},
      {R"({"id":8,"cmd":"flush","args":{"target":4}})", "args.target must be a string"},
      {R"({"id":9,"cmd":"reload","args":{"target":"web","parallel":"2"}})", "args.parallel must be an integer"},
      {R"({"id":10,"cmd":"scale","args":{"target":"web","instances":"3"}})", "args.instances must be an integer"},
      {R"({"id":11,"cmd":"scale","args":{"target":"web","instances":1e30}})", "args.instances must be an integer"},
      {R"({"id":12,"cmd":"monit","args":{"target":5}})", "args.target must be a string"},
      {R"({"id":13,"cmd":"start","args":{"target":"nope","resolve_error":7}})", "args.resolve_error must be a string"},
      {R"({"id":14,"cmd":"start","args":{"app":"web"}})", "args.app must be an object"},
      {R"({"id":15,"cmd":"signal","args":{"target":"web","signal":"USR2"}})", "args.signal must be an integer"},
      {R"({"id":16,"cmd":"signal","args":{"target":"web","signal":0}})", "args.signal must be a signal number 1..64"},
      {R"({"id":17,"cmd":"signal","args":{"target":"web"}})", "args.signal must be a signal number 1..64"},
  };
  for (auto& k : cases) {
    ASSERT_TRUE(c.send(k.line + "\n"));
    json rep = c.reply();
    ASSERT_FALSE(rep.is_discarded()) << "no answer to " << k.line;
    EXPECT_EQ(rep.value("ok", true), false) << rep.dump();
    EXPECT_EQ(rep.value("error", ""), k.error) << k.line;
  }
  // A null is as if the field were absent: `stop` then names no target.
  ASSERT_TRUE(c.send(R"({"id":20,"cmd":"stop","args":{"target":null}})" "\n"));
  json rep = c.reply();
  EXPECT_EQ(rep.value("id", 0), 20) << rep.dump();
  EXPECT_EQ(rep.value("error", ""), "no app, namespace or id '' (see corral list)");
  ASSERT_TRUE(c.send(R"({"id":21,"cmd":"list","args":{"full":null,"target":null}})" "\n"));
  rep = c.reply();
  EXPECT_EQ(rep.value("ok", false), true) << rep.dump();
  EXPECT_EQ(corral({"ping"}).code, 0);
  EXPECT_EQ(daemon_pid(), daemon);
  EXPECT_TRUE(all_online(rows("web"), 1));
}

// `update` names the binary of the next daemon: one that cannot be run is
// refused before anything stops, and the daemon goes on as before.
TEST_F(Manager, UpdateToABinaryThatCannotRunIsRefusedAndChangesNothing) {
  ASSERT_EQ(corral({"start", app, "--name", "web", "--", "serve"}).code, 0);
  pid_t daemon = daemon_pid();
  auto before = pids_of(rows("web"));
  write_file(work_.file("not-executable"), "#!/bin/sh\n");
  raw_client c(home());
  ASSERT_TRUE(c.connected());
  struct bad_request {
    std::string exe;
    std::string error;
  };
  const std::vector<bad_request> cases = {
      {"corral", "update: the new binary must be an absolute path, not 'corral'"},
      {work_.file("missing"), "update: " + work_.file("missing") + ": No such file or directory"},
      {work_.path(), "update: " + work_.path() + " is not an executable file"},
      {work_.file("not-executable"), "update: " + work_.file("not-executable") + " is not an executable file"},
  };
  int id = 1;
  for (auto& k : cases) {
    ASSERT_TRUE(c.send(json{{"id", id++}, {"cmd", "update"}, {"args", {{"exe", k.exe}}}}.dump() + "\n"));
    json rep = c.reply();
    ASSERT_FALSE(rep.is_discarded()) << "no answer for " << k.exe;
    EXPECT_EQ(rep.value("ok", true), false) << rep.dump();
    EXPECT_EQ(rep.value("error", ""), k.error);
  }
  // Not left half-updating: commands that change things still work.
  auto r = corral({"restart", "web"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(daemon_pid(), daemon);
  EXPECT_TRUE(wait_until([&] { return all_online_replacing(rows("web"), 1, before); }, 10s));
}

// A daemon older than the CLI (the binary upgraded, the daemon not yet
// replaced) would drop the spec keys it does not know: --uid would run the
// app as root. The CLI asks its protocol version first and refuses. The
// "daemon" here is a stand-in answering as a version 1 daemon did.
TEST_F(Manager, StartAgainstAnOlderDaemonIsRefusedBeforeTheSpecIsSent) {
  write_file(work_.file("old_daemon.py"),
             "import json, os, socket, sys\n"
             "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
             "s.bind(sys.argv[1]); s.listen(8)\n"
             "print('listening', flush=True)\n"
             "while True:\n"
             "    c, _ = s.accept()\n"
             "    f = c.makefile('rwb')\n"
             "    for line in f:\n"
             "        req = json.loads(line)\n"
             "        if req['cmd'] != 'ping':\n"
             "            open(sys.argv[2], 'a').write(req['cmd'] + '\\n')\n"
             "        result = {'pid': os.getpid(), 'version': 1} if req['cmd'] == 'ping' else []\n"
             "        f.write((json.dumps({'id': req['id'], 'ok': True, 'result': result}) + '\\n').encode())\n"
             "        f.flush()\n");
  ASSERT_EQ(::chmod(home().c_str(), 0700), 0);
  child old({"python3", work_.file("old_daemon.py"), home_.file("corral.sock"), work_.file("received")});
  ASSERT_TRUE(wait_until([&] { return old.out().find("listening") != std::string::npos; }, 10s)) << old.err();
  auto r = corral({"start", "sleep", "--name", "low", "--", "100"});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("is older than this corral (protocol 1, this one 2) and would ignore settings it does not know: "
                       "run `corral update` to replace it first"), std::string::npos) << r.err;
  r = corral({"list"});  // what it knows it still answers
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(slurp(work_.file("received")).find("start"), std::string::npos);  // never a start
  old.signal(SIGKILL);
  old.wait_exit(5s);
}

// With no daemon running, `update` starts none: the next command starts
// this binary anyway.
TEST_F(Manager, UpdateWithNoDaemonSaysSoAndStartsNone) {
  auto r = corral({"update"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("no daemon running: the next command starts " + bin("corral")), std::string::npos) << r.out;
  EXPECT_EQ(daemon_pid(), 0);
  auto v = corral({"--version"});
  EXPECT_EQ(v.code, 0);
  EXPECT_TRUE(v.out.starts_with("corral ")) << v.out;
}

TEST_F(Manager, DeletingAppsAroundOneThatStaysWritesTheirLastLinesWithoutCrashing) {
  // The app's last line has no newline and its pipe stays open (a daemon of
  // its own holds it): only removing the app writes that line out.
  write_file(work_.file("last.sh"), "setsid sleep 1000 </dev/null &\nprintf 'last words'\nexec sleep 1000\n");
  std::string cmd = "/bin/sh " + work_.file("last.sh");
  ASSERT_EQ(corral({"start", cmd, "--name", "gone1"}).code, 0);
  ASSERT_EQ(corral({"start", app, "--name", "kept", "--", "serve"}).code, 0);
  ASSERT_EQ(corral({"start", cmd, "--name", "gone2"}).code, 0);
  pid_t daemon = daemon_pid();
  ASSERT_EQ(corral({"stop", "gone1"}).code, 0);
  ASSERT_EQ(corral({"stop", "gone2"}).code, 0);
  // Both deletes in one read: both apps go in the same pass, the kept one
  // between them.
  raw_client c(home());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send(R"({"id":1,"cmd":"delete","args":{"target":"gone1"}})" "\n"
                     R"({"id":2,"cmd":"delete","args":{"target":"gone2"}})" "\n"));
  for (int k = 0; k < 2; ++k) {
    json rep = c.reply();
    ASSERT_FALSE(rep.is_discarded()) << "no answer to delete " << k + 1;
    EXPECT_EQ(rep.value("ok", false), true) << rep.dump();
  }
  EXPECT_EQ(corral({"ping"}).code, 0);
  EXPECT_EQ(daemon_pid(), daemon);
  EXPECT_TRUE(all_online(rows("kept"), 1));
  EXPECT_TRUE(wait_until([&] { return slurp(log_path("gone2")).find("last words") != std::string::npos; }, 10s))
      << slurp(log_path("gone2"));
  EXPECT_NE(slurp(log_path("gone1")).find("last words"), std::string::npos);
  for (pid_t p : processes_with(home())) ::kill(p, SIGKILL);
}

TEST_F(Manager, RestoredAppWhosePortIsTakenStaysListedErroredAndStartsOnRestart) {
  int port = free_port();
  ASSERT_EQ(corral({"start", app, "--name", "web", "--port", std::to_string(port), "--", "serve"}).code, 0);
  ASSERT_TRUE(all_online(rows("web"), 1));
  ASSERT_TRUE(stop_daemon_by_sigterm(daemon_pid()));
  // Another service has the port when the next daemon starts.
  int blocker = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  a.sin_port = htons(static_cast<uint16_t>(port));
  ASSERT_EQ(::bind(blocker, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(blocker, 8), 0);
  ASSERT_EQ(corral({"ping"}).code, 0);
  auto rs = rows("web");
  ASSERT_EQ(rs.size(), 1u) << jlist().dump();
  EXPECT_EQ(rs[0].value("status", ""), "errored") << rs[0].dump();
  EXPECT_NE(rs[0].value("error", "").find("in use"), std::string::npos) << rs[0].dump();
  EXPECT_TRUE(wait_until([&] { return slurp(home_.file("state.json")).find("\"web\"") != std::string::npos; }, 5s));
  // The port is free again: a restart is all it takes.
  ::close(blocker);
  auto r = corral({"restart", "web"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(all_online(rows("web"), 1)) << jlist().dump();
  int fd = connect_tcp(port);
  EXPECT_GE(fd, 0) << "nothing listens on " << port;
  if (fd >= 0) ::close(fd);
}

TEST_F(Manager, RestoredAppWhoseLogCannotBeOpenedStaysListedErroredAndStartsOnRestart) {
  ASSERT_EQ(corral({"start", app, "--name", "web", "--", "serve"}).code, 0);
  ASSERT_EQ(corral({"start", app, "--name", "other", "--", "serve"}).code, 0);
  ASSERT_TRUE(all_online(rows("web"), 1));
  ASSERT_TRUE(stop_daemon_by_sigterm(daemon_pid()));
  // A directory where the log file was: no open(2) for writing succeeds,
  // root's included (EISDIR).
  std::string out_log = log_path("web");
  ASSERT_EQ(::unlink(out_log.c_str()), 0);
  ASSERT_EQ(::mkdir(out_log.c_str(), 0700), 0);
  ASSERT_EQ(corral({"ping"}).code, 0);
  auto rs = rows("web");
  ASSERT_EQ(rs.size(), 1u) << jlist().dump();
  EXPECT_EQ(rs[0].value("status", ""), "errored") << rs[0].dump();
  std::string why = rs[0].value("error", "");
  EXPECT_NE(why.find(out_log), std::string::npos) << rs[0].dump();
  EXPECT_NE(why.find("EISDIR"), std::string::npos) << rs[0].dump();
  EXPECT_TRUE(all_online(rows("other"), 1)) << jlist().dump();
  auto d = corral({"describe", "web"});
  EXPECT_EQ(d.code, 0) << d.err;
  EXPECT_NE(d.out.find("EISDIR"), std::string::npos) << d.out;
  auto l = corral({"list"});
  EXPECT_NE(l.out.find("errored"), std::string::npos) << l.out;
  EXPECT_TRUE(wait_until([&] { return slurp(home_.file("state.json")).find("\"web\"") != std::string::npos; }, 5s));
  // Fixed: a restart is all it takes.
  ASSERT_EQ(::rmdir(out_log.c_str()), 0);
  auto r = corral({"restart", "web"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(all_online(rows("web"), 1)) << jlist().dump();
  EXPECT_TRUE(wait_until([&] { return slurp(out_log).find("started instance") != std::string::npos; }, 10s)) << slurp(out_log);
}

TEST_F(Manager, ResurrectKeepsAnAppWhoseLogCannotBeOpenedErroredAndRestoresTheOthers) {
  ASSERT_EQ(corral({"start", app, "--name", "web", "--", "serve"}).code, 0);
  ASSERT_EQ(corral({"start", app, "--name", "other", "--", "serve"}).code, 0);
  ASSERT_EQ(corral({"save"}).code, 0);
  ASSERT_EQ(corral({"kill"}).code, 0);
  ASSERT_TRUE(wait_until([&] { return processes_with(home()).empty(); }, 5s));
  std::string err_log = log_path("web", true);
  ASSERT_EQ(::unlink(err_log.c_str()), 0);
  ASSERT_EQ(::mkdir(err_log.c_str(), 0700), 0);
  auto r = corral({"resurrect"});
  EXPECT_NE(r.out.find("errored"), std::string::npos) << r.out << r.err;
  auto rs = rows("web");
  ASSERT_EQ(rs.size(), 1u) << jlist().dump();
  EXPECT_EQ(rs[0].value("status", ""), "errored") << rs[0].dump();
  EXPECT_NE(rs[0].value("error", "").find(err_log), std::string::npos) << rs[0].dump();
  EXPECT_TRUE(wait_until([&] { return all_online(rows("other"), 1); }, 10s)) << jlist().dump();
  ASSERT_EQ(::rmdir(err_log.c_str()), 0);
  EXPECT_EQ(corral({"restart", "web"}).code, 0);
  EXPECT_TRUE(all_online(rows("web"), 1)) << jlist().dump();
}

TEST_F(Manager, AppOfAnAutoStartedDaemonHasOnlyItsStdioChannelAndHeldOutputFds) {
  ASSERT_EQ(corral({"start", app, "--name", "web", "--", "serve"}).code, 0);  // starts the daemon
  auto rs = rows("web");
  ASSERT_TRUE(all_online(rs, 1));
  std::string dir = "/proc/" + std::to_string(rs[0].value("pid", 0)) + "/fd";
  std::vector<int> fds;
  std::string targets;
  DIR* d = ::opendir(dir.c_str());
  ASSERT_NE(d, nullptr);
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    char buf[PATH_MAX] = {};
    ssize_t n = ::readlink((dir + "/" + e->d_name).c_str(), buf, sizeof buf - 1);
    std::string target(buf, n > 0 ? static_cast<size_t>(n) : 0);
    fds.push_back(std::atoi(e->d_name));
    targets += std::string(e->d_name) + " -> " + target + "\n";
  }
  ::closedir(d);
  std::sort(fds.begin(), fds.end());
  // 0 (/dev/null), 1 and 2 (the log pipes), 3 (the channel), 4 and 5 (the
  // read ends of 1 and 2, held against a daemon's death).
  EXPECT_EQ(fds, (std::vector<int>{0, 1, 2, 3, 4, 5})) << targets;
  for (int fd : {1, 2, 4, 5}) EXPECT_NE(targets.find(std::to_string(fd) + " -> socket:"), std::string::npos) << targets;
  EXPECT_EQ(targets.find("daemon.log"), std::string::npos) << targets;
}

TEST_F(Manager, AcceptPausesWhenTheDaemonIsOutOfFdsAndServesItsClientsMeanwhile) {
  ASSERT_EQ(corral({"ping"}).code, 0);
  pid_t daemon = daemon_pid();
  raw_client first(home());
  ASSERT_TRUE(first.connected());
  ASSERT_TRUE(first.send(R"({"id":1,"cmd":"ping"})" "\n"));
  ASSERT_EQ(first.reply().value("ok", false), true);
  // Room for one more connection, then EMFILE.
  rlimit old{};
  ASSERT_EQ(::prlimit(daemon, RLIMIT_NOFILE, nullptr, &old), 0);
  rlimit tight = old;
  tight.rlim_cur = static_cast<rlim_t>(fd_count(daemon) + 1);
  ASSERT_EQ(::prlimit(daemon, RLIMIT_NOFILE, &tight, nullptr), 0);
  std::vector<std::unique_ptr<raw_client>> more;
  for (int k = 0; k < 3; ++k) more.push_back(std::make_unique<raw_client>(home()));  // the backlog takes them
  EXPECT_TRUE(wait_until([&] {
    return slurp(home_.file("daemon.log")).find("accepting paused") != std::string::npos;
  }, 10s)) << slurp(home_.file("daemon.log"));
  // The clients it has are served meanwhile.
  for (int k = 2; k < 5; ++k) {
    ASSERT_TRUE(first.send(R"({"id":)" + std::to_string(k) + R"(,"cmd":"ping"})" "\n"));
    EXPECT_EQ(first.reply().value("id", 0), k);
  }
  // Room again: the waiting clients are accepted, and new ones.
  ASSERT_EQ(::prlimit(daemon, RLIMIT_NOFILE, &old, nullptr), 0);
  more.clear();
  EXPECT_EQ(corral({"ping"}).code, 0);
  EXPECT_EQ(daemon_pid(), daemon);
  // Said once per episode, not once per wakeup.
  EXPECT_EQ(occurrences(slurp(home_.file("daemon.log")), "accepting paused"), 1);
}

// A start while the daemon has few descriptors left, for every budget from
// none to enough: it either starts the app or fails naming what it could not
// get. Never an app whose output nobody reads (which would block once its
// socket buffer filled): where the stream's reader could not be made, the
// start says so. And the daemon serves on.
TEST_F(Manager, StartOutOfFdsEitherWorksOrSaysWhichDescriptorItCouldNotGet) {
  ASSERT_EQ(corral({"ping"}).code, 0);
  pid_t daemon = daemon_pid();
  raw_client c(home());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send(R"({"id":1,"cmd":"ping"})" "\n"));
  ASSERT_EQ(c.reply().value("ok", false), true);
  // One start and delete first, with room: under UBSan each first check of
  // an object's dynamic type probes memory through a pipe(), which fails
  // with EMFILE and reports a valid object as having "an invalid vptr"; the
  // checks of this path are cached from here on.
  ASSERT_EQ(corral({"start", app, "--name", "warm", "--", "lines", "2"}).code, 0);
  ASSERT_EQ(corral({"delete", "warm"}).code, 0);
  // Each budget counts from the daemon's fds at rest: the state file's
  // write after a delete (on the threadpool, a temporary file and the
  // directory open) must be over, or a budget is off by those and a step
  // is skipped. The daemon says when it is (ping's state_saved: nothing
  // due, nothing under way, the last write succeeded); a write that failed
  // while the budget was tight is tried again, and the delete's succeeds.
  auto at_rest_without = [&](const std::string& name) {
    return wait_until([&] {
      if (!c.send(R"({"id":4,"cmd":"ping"})" "\n")) return false;
      json p = c.reply();
      return p.value("ok", false) && p["result"].value("state_saved", false) &&
             slurp(home_.file("state.json")).find("\"" + name + "\"") == std::string::npos;
    }, 10s);
  };
  ASSERT_TRUE(at_rest_without("warm"));
  rlimit old{};
  ASSERT_EQ(::prlimit(daemon, RLIMIT_NOFILE, nullptr, &old), 0);
  bool reader_named = false, started = false;
  for (int budget = 0; budget <= 16 && !started; ++budget) {
    std::string name = "tight" + std::to_string(budget);
    rlimit tight = old;
    tight.rlim_cur = static_cast<rlim_t>(fd_count(daemon) + budget);
    ASSERT_EQ(::prlimit(daemon, RLIMIT_NOFILE, &tight, nullptr), 0);
    json req = {{"id", 2}, {"cmd", "start"},
                {"args", {{"app", {{"name", name}, {"argv", {app, "lines", "2"}}, {"autorestart", false}}}}}};
    ASSERT_TRUE(c.send(req.dump() + "\n"));
    json r = c.reply();
    ASSERT_EQ(::prlimit(daemon, RLIMIT_NOFILE, &old, nullptr), 0);
    ASSERT_FALSE(r.is_discarded()) << "no answer with " << budget << " fds to spare";
    if (r.value("ok", false)) {
      started = true;
      // Its output is read: the lines reach the log.
      EXPECT_TRUE(wait_until([&] { return slurp(log_path(name)).find("out 1\n") != std::string::npos; }, 10s))
          << budget << ": " << slurp(log_path(name));
      break;
    }
    std::string why = r.value("error", "");
    std::string lower = why;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char ch) { return std::tolower(ch); });
    EXPECT_NE(lower.find("too many open files"), std::string::npos) << budget << ": " << why;
    if (why.find("cannot read the app's stdout: epoll_create1: Too many open files (EMFILE)") != std::string::npos ||
        why.find("cannot read the app's stderr: epoll_create1: Too many open files (EMFILE)") != std::string::npos)
      reader_named = true;
    ASSERT_TRUE(c.send(json({{"id", 3}, {"cmd", "delete"}, {"args", {{"target", name}}}}).dump() + "\n"));
    ASSERT_FALSE(c.reply().is_discarded());
    ASSERT_TRUE(at_rest_without(name));
  }
  EXPECT_TRUE(started);
  EXPECT_TRUE(reader_named) << "no budget ran out at the output's reader";
  EXPECT_EQ(corral({"ping"}).code, 0);
  EXPECT_EQ(daemon_pid(), daemon);
}

TEST_F(Manager, MalformedControlLineIsAnsweredWithTheReasonBeforeTheDisconnect) {
  ASSERT_EQ(corral({"ping"}).code, 0);
  pid_t daemon = daemon_pid();
  {
    raw_client c(home());
    ASSERT_TRUE(c.send("this is not json\n"));
    json rep = c.reply();
    ASSERT_FALSE(rep.is_discarded());
    EXPECT_EQ(rep.value("id", 1), 0);
    EXPECT_EQ(rep.value("ok", true), false);
    EXPECT_EQ(rep.value("error", "").rfind("malformed request: ", 0), 0u) << rep.dump();
    EXPECT_NE(rep.value("error", "").find("not JSON"), std::string::npos) << rep.dump();
    EXPECT_EQ(read_line(c.fd(), 5000), std::nullopt);  // then EOF
  }
  {
    raw_client c(home());
    std::string chunk(64 * 1024, 'x');
    for (int k = 0; k < 24 && c.send(chunk); ++k) {
    }
    json rep = c.reply();
    ASSERT_FALSE(rep.is_discarded());
    EXPECT_EQ(rep.value("ok", true), false);
    EXPECT_NE(rep.value("error", "").find("longer than"), std::string::npos) << rep.dump();
  }
  EXPECT_EQ(corral({"ping"}).code, 0);
  EXPECT_EQ(daemon_pid(), daemon);
  std::string log = slurp(home_.file("daemon.log"));
  EXPECT_EQ(occurrences(log, "malformed request"), 2) << log;
}

TEST_F(Manager, ClientThatSendsRequestsWithoutReadingIsDisconnectedPastTheCap) {
  // Each describe answer carries the app's spec: 100 KB of env.
  ASSERT_EQ(corral({"start", app, "--name", "web", "--env", "BIG=" + std::string(100000, 'b'), "--", "serve"}).code, 0);
  pid_t daemon = daemon_pid();
  raw_client c(home());
  std::string reqs;
  for (int k = 1; k <= 400; ++k) reqs += R"({"id":)" + std::to_string(k) + R"(,"cmd":"describe","args":{"target":"web"}})" "\n";
  ASSERT_TRUE(c.send(reqs));
  EXPECT_TRUE(wait_until([&] {
    return slurp(home_.file("daemon.log")).find("replies unread") != std::string::npos;
  }, 30s)) << tail_of(home_.file("daemon.log"), 2000);
  EXPECT_EQ(corral({"ping"}).code, 0);
  EXPECT_EQ(daemon_pid(), daemon);
  // What was written before the cut is there to read; then EOF.
  std::string got = read_all(c.fd(), 5000);
  EXPECT_LT(got.size(), 40u << 20);
}

TEST_F(Manager, WhitespaceOnlyCommandIsAnEmptyCommandError) {
  auto r = corral({"start", " \t "});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.code, -1);
  EXPECT_NE(r.err.find("empty command"), std::string::npos) << r.err;
  EXPECT_EQ(occurrences(r.err, "\n"), 1) << r.err;
}

TEST_F(Manager, DaemonStoppedBySigtermWritesTheAppsPartialLastLine) {
  // A daemon of the app's own keeps its pipe open: no EOF says "that was all".
  write_file(work_.file("partial.sh"), "setsid sleep 1000 </dev/null &\nexec " + app + " lines 3\n");
  ASSERT_EQ(corral({"start", "/bin/sh " + work_.file("partial.sh"), "--name", "web"}).code, 0);
  ASSERT_TRUE(wait_until([&] { return slurp(log_path("web")).find("out 2\n") != std::string::npos; }, 10s));
  ASSERT_TRUE(stop_daemon_by_sigterm(daemon_pid()));
  EXPECT_NE(slurp(log_path("web")).find("out 2\npartial"), std::string::npos) << slurp(log_path("web"));
  for (pid_t p : processes_with(home())) ::kill(p, SIGKILL);
}

}  // namespace
}  // namespace manager_test

namespace manager_test {
namespace {

// The names in the home that start with `prefix`.
std::vector<std::string> files_starting(const std::string& dir, const std::string& prefix) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d))
      if (std::string(e->d_name).rfind(prefix, 0) == 0) out.push_back(e->d_name);
    ::closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST_F(Manager, UnreadableStateFileIsMovedAsideKeptWholeAndReportedNotOverwritten) {
  const std::string state = home_.file("state.json");
  const std::string broken = "{\n  \"version\": 1,\n  \"apps\": [\n    {\"spec\": {\"name\": \"web\"";
  write_file(state, broken);
  // Earlier broken files, under every name this second could give: none is
  // overwritten.
  long now = static_cast<long>(::time(nullptr));
  std::set<std::string> earlier;
  for (long t = now - 2; t <= now + 30; ++t) {
    std::string name = "state.json.broken-" + std::to_string(t);
    write_file(home_.file(name), "earlier " + name);
    earlier.insert(name);
  }
  auto r = corral({"list"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.err.find(state + ":4: not valid JSON"), std::string::npos) << r.err;
  std::vector<std::string> moved;
  for (auto& name : files_starting(home(), "state.json.broken-"))
    if (!earlier.count(name)) moved.push_back(name);
  ASSERT_EQ(moved.size(), 1u) << r.err;
  EXPECT_EQ(slurp(home_.file(moved[0])), broken);
  EXPECT_NE(r.err.find(home_.file(moved[0])), std::string::npos) << r.err;
  for (auto& name : earlier) EXPECT_EQ(slurp(home_.file(name)), "earlier " + name);
  std::string log = slurp(home_.file("daemon.log"));
  EXPECT_NE(log.find(state + ":4: not valid JSON"), std::string::npos) << log;
  EXPECT_NE(log.find(home_.file(moved[0])), std::string::npos) << log;
  // The daemon is up and persists again, to a fresh state file.
  ASSERT_EQ(corral({"start", app, "--name", "fresh", "--", "serve"}).code, 0);
  EXPECT_TRUE(wait_until([&] { return slurp(state).find("\"fresh\"") != std::string::npos; }, 5s)) << slurp(state);
  EXPECT_EQ(slurp(home_.file(moved[0])), broken);
}

// A state file the daemon cannot write (here a directory in its place, which
// stops root as well as anyone; a full disk does the same) is not given up
// on: the daemon says why, `corral list` warns, and the write is tried again
// until it works, without a further change to set it off.
TEST_F(Manager, StateFileThatCannotBeWrittenIsReportedAndWrittenOnceItCanBe) {
  ASSERT_EQ(corral({"ping"}).code, 0);
  const std::string state = home_.file("state.json");
  ASSERT_TRUE(wait_until([&] { return ::access(state.c_str(), F_OK) == 0; }, 5s));
  ASSERT_EQ(::unlink(state.c_str()), 0);
  ASSERT_EQ(::mkdir(state.c_str(), 0700), 0);
  ASSERT_EQ(corral({"start", app, "--name", "kept", "--", "serve"}).code, 0);
  raw_client c(home());
  ASSERT_TRUE(c.connected());
  auto ping = [&] {
    EXPECT_TRUE(c.send(R"({"id":1,"cmd":"ping"})" "\n"));
    json p = c.reply();
    return p.value("ok", false) ? p["result"] : json::object();
  };
  ASSERT_TRUE(wait_until([&] { return !ping().value("state_save_error", std::string()).empty(); }, 5s));
  json p = ping();
  EXPECT_FALSE(p.value("state_saved", true));
  EXPECT_NE(p.value("state_save_error", std::string()).find(state), std::string::npos) << p.dump();
  auto r = corral({"list"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("warning: the daemon cannot save its state"), std::string::npos) << r.err;
  std::string log = slurp(home_.file("daemon.log"));
  EXPECT_NE(log.find("cannot persist state"), std::string::npos) << log;
  // Room again: the retry writes it, nothing else happening meanwhile.
  // (Each failed write doubles the wait before the next, to 30 s at most.)
  ASSERT_EQ(::rmdir(state.c_str()), 0);
  EXPECT_TRUE(wait_until([&] { return ping().value("state_saved", false); }, 40s)) << ping().dump();
  EXPECT_NE(slurp(state).find("\"kept\""), std::string::npos) << slurp(state);
  r = corral({"list"});
  EXPECT_EQ(r.err.find("warning"), std::string::npos) << r.err;
  // Said once for the reason, not at every retry; and the recovery said.
  log = slurp(home_.file("daemon.log"));
  EXPECT_EQ(occurrences(log, "cannot persist state"), 1) << log;
  EXPECT_NE(log.find("state saved again"), std::string::npos) << log;
}

// While the state cannot be written, `update` is refused (the next daemon
// starts from that file), and `kill`, whose last state (no apps) cannot be
// written either, removes the file: the next daemon does not bring back
// what was just killed. Here the write fails at its temporary file (a
// directory where it goes), so the file itself can still be removed, as on
// a full disk.
TEST_F(Manager, KillWhileTheStateCannotBeWrittenLeavesNoStateToBringTheAppsBack) {
  ASSERT_EQ(corral({"start", app, "--name", "web", "--", "serve"}).code, 0);
  ASSERT_TRUE(wait_until([&] { return all_online(rows("web"), 1); }, 10s));
  const std::string state = home_.file("state.json");
  ASSERT_TRUE(wait_until([&] { return slurp(state).find("\"web\"") != std::string::npos; }, 5s));
  pid_t daemon = daemon_pid();
  pid_t web = rows("web").at(0).value("pid", 0);
  const std::string tmp = state + ".tmp." + std::to_string(daemon);
  ASSERT_EQ(::mkdir(tmp.c_str(), 0700), 0);
  ASSERT_EQ(corral({"restart", "web"}).code, 0);  // a change to write
  EXPECT_TRUE(wait_until([&] {
    auto r = corral({"ping"});
    return r.err.find("cannot save its state") != std::string::npos;
  }, 10s));
  auto up = corral({"update"});
  EXPECT_NE(up.code, 0);
  EXPECT_NE(up.err.find("update: the daemon cannot save its state (open " + tmp), std::string::npos) << up.err;
  EXPECT_EQ(daemon_pid(), daemon);
  pid_t restarted = 0;
  EXPECT_TRUE(wait_until([&] {
    restarted = rows("web").at(0).value("pid", 0);
    return restarted > 0 && restarted != web;
  }, 10s));

  auto k = corral({"kill"});
  EXPECT_EQ(k.code, 0) << k.err;
  EXPECT_TRUE(wait_until([&] { return ::kill(daemon, 0) != 0; }, 10s));
  EXPECT_TRUE(wait_until([&] { return ::kill(restarted, 0) != 0; }, 10s));
  EXPECT_NE(::access(state.c_str(), F_OK), 0) << slurp(state);
  std::string log = slurp(home_.file("daemon.log"));
  EXPECT_NE(log.find("removed " + state + " instead"), std::string::npos) << log;
  ASSERT_EQ(::rmdir(tmp.c_str()), 0);
  // The next daemon starts with no apps.
  auto r = corral({"jlist"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out, nullptr, false), json::array()) << r.out;
}

// One app a hand edit broke costs only that app: after a kill -9 of the
// daemon, the next one restores the others, stops what the broken app left
// running (nothing unsupervised), and keeps the file for the user.
TEST_F(Manager, AnUnreadableAppInTheStateFileCostsOnlyThatAppAndLeavesNoOrphan) {
  // (Silent after its start: an app that writes dies of SIGPIPE once the
  // daemon, which held its pipes, is gone, and would prove nothing here.)
  ASSERT_EQ(corral({"start", app, "--name", "web", "--", "lines", "1"}).code, 0);
  ASSERT_EQ(corral({"start", app, "--name", "keep", "--", "serve"}).code, 0);
  ASSERT_TRUE(wait_until([&] { return all_online(rows("web"), 1) && all_online(rows("keep"), 1); }, 10s));
  pid_t old_web = rows("web")[0].value("pid", 0);
  pid_t old_daemon = daemon_pid();
  ASSERT_GT(old_web, 0);
  ::kill(old_daemon, SIGKILL);
  ASSERT_TRUE(wait_until([&] { reap_orphans(); return !alive(old_daemon); }, 5s));
  const std::string state = home_.file("state.json");
  auto j = json::parse(slurp(state));
  for (auto& a : j["apps"])
    if (a["spec"]["name"] == "web") a["spec"]["kill_timeout"] = "soon";
  write_file(state, j.dump(2));

  auto r = corral({"list"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find(state + ": app 'web': kill_timeout must be a number, got a string"), std::string::npos) << r.err;
  auto moved = files_starting(home(), "state.json.broken-");
  ASSERT_EQ(moved.size(), 1u) << r.err;
  EXPECT_EQ(slurp(home_.file(moved[0])), j.dump(2));
  EXPECT_TRUE(rows("web").empty()) << jlist().dump();
  ASSERT_TRUE(wait_until([&] { return all_online(rows("keep"), 1); }, 10s)) << jlist().dump();
  EXPECT_TRUE(wait_until([&] { reap_orphans(); return !alive(old_web); }, 5s)) << "the broken app's instance was left running";
  // The next save holds the app that was restored.
  ASSERT_TRUE(wait_until([&] { return slurp(state).find("\"keep\"") != std::string::npos; }, 5s));
}

// Bytes process `pid` has written (/proc/<pid>/io wchar), -1 if gone.
long long bytes_written(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/io");
  std::string key;
  long long v = -1;
  while (in >> key >> v)
    if (key == "wchar:") return v;
  return -1;
}

// An app that logs outlives a daemon killed by SIGKILL (the OOM killer):
// it holds the read ends of its own output, so its next line does not kill
// it with SIGPIPE; it writes on (here, a line every 50 ms on each stream).
TEST_F(Manager, AnAppThatLogsOutlivesAKilledDaemon) {
  ASSERT_EQ(corral({"start", app, "--name", "web", "--", "serve"}).code, 0);
  ASSERT_TRUE(wait_until([&] { return all_online(rows("web"), 1); }, 10s));
  pid_t pid = rows("web")[0].value("pid", 0);
  ASSERT_GT(pid, 0);
  pid_t old_daemon = daemon_pid();
  ::kill(old_daemon, SIGKILL);
  ASSERT_TRUE(wait_until([&] { reap_orphans(); return !alive(old_daemon); }, 5s));
  long long after_death = bytes_written(pid);
  ASSERT_GE(after_death, 0);
  // Twenty more lines: it wrote into the pipes with no daemon reading.
  EXPECT_TRUE(wait_until([&] { return bytes_written(pid) >= after_death + 20 * 7; }, 10s))
      << "wrote " << bytes_written(pid) - after_death << " bytes after the daemon died";
  EXPECT_TRUE(alive(pid));
}

// The numbers n of the lines "line <n> pid <pid>" in `text`, in order.
std::vector<int> lines_of(const std::string& text, pid_t pid) {
  std::vector<int> out;
  std::regex re("line (\\d+) pid " + std::to_string(pid) + "\n");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator(); ++it)
    out.push_back(std::stoi((*it)[1]));
  return out;
}

// What an instance wrote while no daemon ran reaches its log: the next
// daemon takes over the read ends the instance holds, before it kills it,
// and reads them to their end. And what the dead daemon had read but not yet
// written is still in the sockets (it takes bytes out only once written:
// output_reader.hpp). Every line is there, in order; only the lines of the
// chunk the dead daemon was taking out as it died may be there twice, where
// it died.
TEST_F(Manager, WhatAnAppWroteWhileNoDaemonRanReachesItsLog) {
  ASSERT_EQ(corral({"start", app, "--name", "web", "--", "chatty"}).code, 0);
  ASSERT_TRUE(wait_until([&] { return all_online(rows("web"), 1); }, 10s));
  pid_t pid = rows("web")[0].value("pid", 0);
  ASSERT_GT(pid, 0);
  const std::string log = log_path("web");
  ASSERT_TRUE(wait_until([&] { return !lines_of(slurp(log), pid).empty(); }, 10s));
  pid_t old_daemon = daemon_pid();
  ::kill(old_daemon, SIGKILL);
  ASSERT_TRUE(wait_until([&] { reap_orphans(); return !alive(old_daemon); }, 5s));
  auto before = lines_of(slurp(log), pid);
  ASSERT_FALSE(before.empty());
  long long after_death = bytes_written(pid);
  // Ten more lines written with no daemon reading them.
  ASSERT_TRUE(wait_until([&] { return bytes_written(pid) >= after_death + 10 * 20; }, 10s));
  ASSERT_EQ(corral({"list"}).code, 0);  // the next daemon
  EXPECT_TRUE(wait_until([&] { reap_orphans(); return !alive(pid); }, 5s));
  if (!may_take_fds_of_unrelated_processes()) {
    // Taking the read ends needs ptrace rights over the old instance: without
    // them the daemon says what is lost (and still kills it, as checked).
    std::printf("this machine denies pidfd_getfd between strangers: checked the fallback, not the takeover\n");
    EXPECT_NE(slurp(home_.file("daemon.log")).find("cannot take over the output"), std::string::npos);
    return;
  }
  const int want = before.back() + 10;
  EXPECT_TRUE(wait_until([&] { auto l = lines_of(slurp(log), pid); return !l.empty() && l.back() >= want; }, 10s))
      << slurp(log);
  auto got = lines_of(slurp(log), pid);
  ASSERT_FALSE(got.empty());
  ASSERT_EQ(got[0], 0) << slurp(log);
  int steps_back = 0;
  for (size_t k = 1; k < got.size(); ++k) {
    if (got[k] == got[k - 1] + 1) continue;
    // Anything else is a lost line (a gap) or a repeat: repeats, once.
    ASSERT_LE(got[k], got[k - 1]) << "line " << got[k - 1] + 1 << " is lost\n" << slurp(log);
    ASSERT_EQ(++steps_back, 1) << slurp(log);
  }
}

// Lines the daemon had read but not yet written when it was killed are not
// lost: it takes bytes out of an app's output only once their lines are
// written. The log here is a FIFO that the test does not read at first: the
// daemon's write into it blocks with the app's lines in hand, as on a disk
// that hangs. Killed then, it has written a part of them; the next daemon
// takes the app's output over and writes the rest.
TEST_F(Manager, LinesTheKilledDaemonHadReadButNotWrittenReachTheLog) {
  ASSERT_EQ(corral({"list"}).code, 0);  // the daemon, and its logs directory
  const std::string log = log_path("web");
  ASSERT_EQ(::mkfifo(log.c_str(), 0600), 0) << std::strerror(errno);
  corral::unique_fd fifo(::open(log.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  ASSERT_TRUE(fifo) << std::strerror(errno);
  // 100 lines of 1000 bytes: more than the FIFO holds (64 KiB), less than
  // the FIFO and the app's output socket hold together (the socket, about
  // 200 KB in the app's 64 KiB writes).
  constexpr int n = 100;
  ASSERT_EQ(corral({"start", app, "--name", "web", "--", "burst", std::to_string(n), "1000"}).code, 0);
  ASSERT_TRUE(wait_until([&] { return all_online(rows("web"), 1); }, 10s));
  pid_t pid = rows("web")[0].value("pid", 0);
  ASSERT_GT(pid, 0);
  const std::string done = "burst done pid " + std::to_string(pid) + "\n";
  auto queued = [&] {
    int q = 0;
    return ::ioctl(fifo.get(), FIONREAD, &q) == 0 ? q : -1;
  };
  // The app has written everything, more than the FIFO holds: the daemon's
  // write into it blocks, whatever part of the lines it has read.
  ASSERT_TRUE(wait_until([&] { return bytes_written(pid) >= n * 1000 + static_cast<long long>(done.size()); }, 10s))
      << "the app wrote " << bytes_written(pid) << " bytes; the FIFO holds " << queued();
  ASSERT_TRUE(wait_until([&] { return queued() >= 32768; }, 10s)) << "the FIFO holds " << queued();
  pid_t old_daemon = daemon_pid();
  ::kill(old_daemon, SIGKILL);
  ASSERT_TRUE(wait_until([&] { reap_orphans(); return !alive(old_daemon); }, 5s));
  ASSERT_EQ(corral({"list"}).code, 0);  // the next daemon
  if (!may_take_fds_of_unrelated_processes()) {
    std::printf("this machine denies pidfd_getfd between strangers: nothing to check\n");
    return;
  }
  // Everything, from the FIFO, until the old instance's last line.
  std::string got;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (got.find(done) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fifo.get(), POLLIN, 0};
    ::poll(&p, 1, 100);
    char buf[65536];
    ssize_t k = ::read(fifo.get(), buf, sizeof buf);
    if (k > 0) got.append(buf, static_cast<size_t>(k));
  }
  ASSERT_NE(got.find(done), std::string::npos) << got.size() << " bytes read";
  // Whole lines of the old instance, in order (a line cut short where the
  // killed daemon's write stopped does not count).
  std::vector<int> seen;
  std::regex re("burst (\\d+) pid " + std::to_string(pid) + " x+\n");
  for (auto it = std::sregex_iterator(got.begin(), got.end(), re); it != std::sregex_iterator(); ++it)
    seen.push_back(std::stoi((*it)[1]));
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen[0], 0);
  int steps_back = 0;
  for (size_t k = 1; k < seen.size(); ++k) {
    if (seen[k] == seen[k - 1] + 1) continue;
    ASSERT_LE(seen[k], seen[k - 1]) << "line " << seen[k - 1] + 1 << " is lost";
    ++steps_back;  // where the killed daemon stopped: the next one starts from what it had not taken out
  }
  EXPECT_LE(steps_back, 1);
  EXPECT_EQ(seen.back(), n - 1);
}

// A state file that is not JSON at all (or is gone) names no instance, yet
// what the killed daemon started is still running: the next daemon finds
// its instances by the marks it gives them (CORRAL_HOME, CORRAL_APP_NAME)
// and kills them, leaving alone processes that lack either mark.
class UnnamedOrphans : public Manager, public ::testing::WithParamInterface<const char*> {};

TEST_P(UnnamedOrphans, AreFoundByTheirHomeAndKilled) {
  // (Silent after its start, so that it outlives the daemon's pipes.)
  ASSERT_EQ(corral({"start", app, "--name", "web", "-i", "2", "--", "lines", "1"}).code, 0);
  ASSERT_TRUE(wait_until([&] { return all_online(rows("web"), 2); }, 10s));
  std::vector<pid_t> old;
  for (auto& r : rows("web")) old.push_back(r.value("pid", 0));
  ASSERT_EQ(old.size(), 2u);
  // Group leaders with one mark only: not instances of this home.
  support::child other_home({app, "lines", "1"}, {.env = {{"CORRAL_HOME", home() + "-other"}, {"CORRAL_APP_NAME", "x"}}});
  support::child unnamed({app, "lines", "1"}, {.env = {{"CORRAL_HOME", home()}}, .unset_env = {"CORRAL_APP_NAME"}});
  pid_t old_daemon = daemon_pid();
  ::kill(old_daemon, SIGKILL);
  ASSERT_TRUE(wait_until([&] { reap_orphans(); return !alive(old_daemon); }, 5s));
  const std::string state = home_.file("state.json");
  if (std::string(GetParam()) == "garbage") {
    write_file(state, std::string("\x7f\x00 not json", 11));
  } else {
    ASSERT_EQ(::unlink(state.c_str()), 0);
  }

  auto r = corral({"list"});
  EXPECT_EQ(r.code, 0) << r.err;
  for (pid_t p : old)
    EXPECT_TRUE(wait_until([&] { reap_orphans(); return !alive(p); }, 5s)) << "instance " << p << " left running";
  std::string log = slurp(home_.file("daemon.log"));
  for (pid_t p : old)
    EXPECT_NE(log.find("killed process group " + std::to_string(p) + ", an instance of this home"), std::string::npos)
        << log;
  EXPECT_TRUE(alive(other_home.pid()));
  EXPECT_TRUE(alive(unnamed.pid()));
  EXPECT_TRUE(rows("web").empty()) << jlist().dump();
}

INSTANTIATE_TEST_SUITE_P(StateFile, UnnamedOrphans, ::testing::Values("garbage", "gone"),
                         [](const auto& info) { return std::string(info.param); });

}  // namespace
}  // namespace manager_test
