// Ecosystem files and `corral run`: the real binary, a temp home, real apps
// (the C++ test app and a Python script), started from a YAML file.
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <sstream>
#include <thread>

#include "harness.hpp"

namespace manager_test {
namespace {

using namespace support;

const char* hello_py = R"(import os, signal, sys, time
def bye(*_):
    print("bye", os.getpid(), flush=True)
    sys.exit(0)
signal.signal(signal.SIGINT, bye)
print(os.environ.get("GREETING"), "pid", os.getpid(), flush=True)
print("to stderr", file=sys.stderr, flush=True)
while True:
    time.sleep(1)
)";

// Double-forks: the grandchild waits until its parent has exited, writes
// its pid and its new parent's to "adopted", then exits.
const char* orphans_py = R"(import os, time
if os.fork() == 0:
    middle = os.getpid()
    if os.fork() == 0:
        while os.getppid() == middle:
            time.sleep(0.01)
        with open("adopted.tmp", "w") as f:
            f.write(f"{os.getpid()} {os.getppid()}\n")
        os.rename("adopted.tmp", "adopted")
        os._exit(0)
    os._exit(0)
os.wait()
while True:
    time.sleep(1)
)";

/// The zombies whose parent is `ppid`.
std::vector<pid_t> zombies_of(pid_t ppid) {
  std::vector<pid_t> out;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    auto f = stat_fields(std::stoi(name));
    if (f.size() > 1 && f[0] == "Z" && std::stoi(f[1]) == ppid) out.push_back(std::stoi(name));
  }
  return out;
}

class Ecosystem : public Manager {
 protected:
  void SetUp() override {
    Manager::SetUp();
    write_file(work_.file("hello.py"), hello_py);
    write_file(work_.file("eco.yaml"), std::string("apps:\n"
                                                   "  - name: cpp\n"
                                                   "    script: ") + MANAGER_APP + "\n"
                                                   "    args: serve\n"
                                                   "    instances: 2\n"
                                                   "    env:\n"
                                                   "      GREETING: dev\n"
                                                   "    env_production:\n"
                                                   "      GREETING: prod\n"
                                                   "  - name: py\n"
                                                   "    script: hello.py\n"
                                                   "    env: {GREETING: hi}\n"
                                                   "    kill_timeout: 5s\n");
  }
  /// The variables of a live process.
  static std::string environ_of(int pid) {
    std::string e = slurp("/proc/" + std::to_string(pid) + "/environ");
    std::replace(e.begin(), e.end(), '\0', '\n');
    return "\n" + e;
  }
};

TEST_F(Ecosystem, StartsEveryAppOfAYamlFile) {
  auto r = corral({"start", "eco.yaml"});
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_TRUE(wait_until([&] { return all_online(rows("cpp"), 2) && all_online(rows("py"), 1); }, 20s)) << jlist().dump();
  auto cpp = rows("cpp");
  EXPECT_EQ(cpp[0]["app"]["instances"], 2);
  EXPECT_EQ(cpp[0]["app"]["env"]["GREETING"], "dev");
  for (const auto& row : cpp) EXPECT_NE(environ_of(row["pid"]).find("\nGREETING=dev\n"), std::string::npos);
  auto py = rows("py");
  EXPECT_EQ(py[0]["app"]["interpreter"], "python3");
  EXPECT_EQ(py[0]["app"]["kill_timeout"], 5000);
  EXPECT_EQ(py[0]["app"]["cwd"], work_.path());
  EXPECT_TRUE(wait_until([&] { return slurp(log_path("py")).find("hi pid") != std::string::npos; }, 10s));

  // Again: the apps exist, so they are left as they are.
  auto pids = pids_of(rows("cpp"));
  r = corral({"start", "eco.yaml"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("app 'cpp' already exists"), std::string::npos) << r.err;
  EXPECT_EQ(pids_of(rows("cpp")), pids);
}

// `corral init` (PM2's init/ecosystem): a file `corral start` takes once its
// scripts exist: here a Node server on the daemon's socket and a Python
// worker, with the port made 0 (the template's 3000 may be taken here). It
// never writes over a file.
TEST_F(Ecosystem, InitWritesAFileThatStartsOnceItsScriptsExist) {
  auto r = corral({"init"});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string file = work_.file("ecosystem.config.js");
  std::string text = slurp(file);
  ASSERT_NE(text.find("\"port\": 3000"), std::string::npos) << text;
  text.replace(text.find("\"port\": 3000"), std::string("\"port\": 3000").size(), "\"port\": 0");
  std::filesystem::remove(file);
  write_file(file, text);
  write_file(work_.file("server.js"),
             "require('http').createServer((q, s) => s.end('hi')).listen({fd: 3});\n");
  write_file(work_.file("worker.py"), "import time\ntime.sleep(1000)\n");
  r = corral({"start", "ecosystem.config.js", "--env", "production"});
  ASSERT_EQ(r.code, 0) << r.err;
  size_t cpus = std::max(1u, std::thread::hardware_concurrency());
  ASSERT_TRUE(wait_until([&] { return all_online(rows("web"), cpus) && all_online(rows("worker"), 1); }, 30s))
      << jlist().dump();
  auto web = rows("web")[0]["app"];
  EXPECT_EQ(web["env"]["NODE_ENV"], "production");
  EXPECT_EQ(web["listen"].size(), 1u);
  EXPECT_EQ(rows("worker")[0]["app"]["cron_restart"], "0 3 * * *");

  r = corral({"init"});  // there now
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("init: ecosystem.config.js: File exists (it is left as it is)"), std::string::npos) << r.err;
  EXPECT_EQ(slurp(file), text);
  r = corral({"init", "eco.txt"});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("must end in .config.js, .yaml, .yml or .json"), std::string::npos) << r.err;
  // The YAML and JSON templates read as the same apps.
  ASSERT_EQ(corral({"ecosystem", "t.yaml"}).code, 0);
  ASSERT_EQ(corral({"init", "t.json"}).code, 0);
  auto j = json::parse(slurp(work_.file("t.json")));
  ASSERT_EQ(j["apps"].size(), 2u);
  EXPECT_EQ(j["apps"][0]["script"], "./server.js");
  EXPECT_EQ(j["apps"][1]["cron_restart"], "0 3 * * *");
  std::string yaml = slurp(work_.file("t.yaml"));
  for (const char* line : {"\n  - name: web\n", "\n    script: ./server.js\n", "\n    port: 3000\n",
                           "\n    cron_restart: 0 3 * * *\n"})
    EXPECT_NE(yaml.find(line), std::string::npos) << line << yaml;
}

TEST_F(Ecosystem, EnvProductionSelectsEnvUnderscoreProduction) {
  auto r = corral({"start", "eco.yaml", "--env", "production", "--only", "cpp"});
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_TRUE(wait_until([&] { return all_online(rows("cpp"), 2); }, 20s)) << jlist().dump();
  EXPECT_TRUE(rows("py").empty());
  for (const auto& row : rows("cpp")) EXPECT_NE(environ_of(row["pid"]).find("\nGREETING=prod\n"), std::string::npos);
}

// PM2's increment_var and instance_var: each instance gets its own port and
// learns its index under the name the file gives; a restart keeps both.
TEST_F(Ecosystem, IncrementVarAndInstanceVarGiveEachInstanceItsOwnNumbers) {
  write_file(work_.file("ports.yaml"), std::string("apps:\n"
                                                   "  - name: ports\n"
                                                   "    script: ") + MANAGER_APP + "\n"
                                                   "    args: serve\n"
                                                   "    instances: 3\n"
                                                   "    instance_var: INSTANCE_ID\n"
                                                   "    increment_var: PORT\n"
                                                   "    env: {PORT: 4000}\n"
                                                   "    env_production: {PORT: 5000}\n");
  auto r = corral({"start", "ports.yaml", "--env", "production"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto check = [&] {
    auto rows_now = rows("ports");
    ASSERT_EQ(rows_now.size(), 3u);
    for (const auto& row : rows_now) {
      int i = row["instance"];
      std::string env = environ_of(row["pid"]);
      EXPECT_NE(env.find("\nPORT=" + std::to_string(5000 + i) + "\n"), std::string::npos) << i << env;
      EXPECT_NE(env.find("\nINSTANCE_ID=" + std::to_string(i) + "\n"), std::string::npos) << i << env;
      EXPECT_NE(env.find("\nCORRAL_INSTANCE=" + std::to_string(i) + "\n"), std::string::npos) << i << env;
      EXPECT_EQ(env.find("\nNODE_APP_INSTANCE="), std::string::npos) << i << env;  // renamed, as PM2's
    }
  };
  ASSERT_TRUE(wait_until([&] { return all_online(rows("ports"), 3); }, 20s)) << jlist().dump();
  check();
  auto before = pids_of(rows("ports"));
  ASSERT_EQ(corral({"restart", "ports"}).code, 0);
  ASSERT_TRUE(wait_until([&] { return all_online_replacing(rows("ports"), 3, before); }, 20s)) << jlist().dump();
  check();

  // A PORT that is not a number is said before anything starts, with its line.
  write_file(work_.file("bad.yaml"), "apps:\n  - name: bad\n    script: hello.py\n    increment_var: PORT\n"
                                     "    env: {PORT: http}\n");
  r = corral({"start", "bad.yaml"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("bad.yaml:4: app 'bad': increment_var: env PORT is 'http', not a whole number"),
            std::string::npos) << r.err;
  EXPECT_TRUE(rows("bad").empty());
}

// PM2's deploy flow: edit the file, then `restart|reload <file>
// --update-env` (or --env NAME) gives the running apps its env; a plain
// restart keeps theirs; `startOrReload` starts what is new and reloads the
// rest; `restart <name> --env K=V` sets variables of one app.
TEST_F(Ecosystem, UpdateEnvGivesTheRunningAppsTheFilesEnvironment) {
  auto greeting = [&](const std::string& name) {
    auto rs = rows(name);
    if (rs.empty() || rs[0].value("pid", 0) <= 0) return std::string("(not running)");
    std::string env = environ_of(rs[0]["pid"]);
    auto at = env.find("\nGREETING=");
    return at == std::string::npos ? std::string("(unset)") : env.substr(at + 10, env.find('\n', at + 1) - at - 10);
  };
  // (Online is not yet exec'd: until then /proc/<pid>/environ is the
  // daemon's, hence the waits on the value.)
  auto settle = [&](const std::set<int>& before) {
    return wait_until([&] { return all_online_replacing(rows("py"), 1, before); }, 20s);
  };
  ASSERT_EQ(corral({"start", "eco.yaml", "--only", "py"}).code, 0);
  ASSERT_TRUE(wait_until([&] { return all_online(rows("py"), 1); }, 20s));
  EXPECT_TRUE(wait_until([&] { return greeting("py") == "hi"; }, 10s)) << greeting("py");
  std::string text = slurp(work_.file("eco.yaml"));
  text.replace(text.find("{GREETING: hi}"), 14, "{GREETING: hello}");
  write_file(work_.file("eco.yaml"), text);

  auto before = pids_of(rows("py"));
  auto r = corral({"restart", "eco.yaml"});  // cpp is not running: said, and py restarts
  ASSERT_TRUE(settle(before));
  EXPECT_TRUE(wait_until([&] { return greeting("py") == "hi"; }, 10s)) << greeting("py");  // as PM2: a plain restart keeps the app's env

  before = pids_of(rows("py"));
  r = corral({"restart", "eco.yaml", "--update-env"});
  ASSERT_TRUE(settle(before)) << r.err;
  EXPECT_TRUE(wait_until([&] { return greeting("py") == "hello"; }, 10s)) << greeting("py");

  before = pids_of(rows("py"));
  r = corral({"restart", "py", "--env", "GREETING=hey there"});
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_TRUE(settle(before));
  EXPECT_TRUE(wait_until([&] { return greeting("py") == "hey there"; }, 10s)) << greeting("py");
  EXPECT_EQ(rows("py")[0]["app"]["env"]["GREETING"], "hey there");  // kept: it is the app's env now

  // PM2's deploy line still restarts (a deploy script goes on), and says
  // that the shell's environment is not the app's.
  before = pids_of(rows("py"));
  r = corral({"restart", "py", "--update-env"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("--update-env: corral gives apps no shell's environment, so 'py' keeps its own"),
            std::string::npos) << r.err;
  ASSERT_TRUE(settle(before));
  EXPECT_TRUE(wait_until([&] { return greeting("py") == "hey there"; }, 10s)) << greeting("py");

  // startOrReload: cpp is new and starts with env_production; py is reloaded with it.
  before = pids_of(rows("py"));
  r = corral({"startOrReload", "eco.yaml", "--env", "production"});
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_TRUE(settle(before));
  ASSERT_TRUE(wait_until([&] { return all_online(rows("cpp"), 2); }, 20s));
  EXPECT_TRUE(wait_until([&] { return greeting("cpp") == "prod"; }, 10s)) << greeting("cpp");
  EXPECT_TRUE(wait_until([&] { return greeting("py") == "hello"; }, 10s)) << greeting("py");  // py has no env_production: its env is the file's env
}

// append_env_to_name: `start <file> --env production` names the app
// api-production, and stop, delete and reset of the file take the same
// --env to find it.
TEST_F(Ecosystem, StopAndDeleteOfAFileFindTheAppsNamedWithTheirEnvironment) {
  write_file(work_.file("named.yaml"), "apps:\n"
                                       "  - name: api\n"
                                       "    script: sleep\n"
                                       "    args: 100\n"
                                       "    append_env_to_name: true\n"
                                       "    env_production: {X: 1}\n");
  auto r = corral({"start", "named.yaml", "--env", "production"});
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_TRUE(wait_until([&] { return all_online(rows("api-production"), 1); }, 10s));
  r = corral({"stop", "named.yaml"});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("'api'"), std::string::npos) << r.err;
  r = corral({"stop", "named.yaml", "--env", "production"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(rows("api-production")[0].value("status", ""), "stopped");
  r = corral({"reset", "named.yaml", "--env", "production"});
  EXPECT_EQ(r.code, 0) << r.err;
  r = corral({"delete", "named.yaml", "--env", "X=1"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--env: expected the environment name"), std::string::npos) << r.err;
  r = corral({"delete", "api-production", "--env", "production"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--env NAME is for an ecosystem file's apps"), std::string::npos) << r.err;
  r = corral({"delete", "named.yaml", "--env", "production"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(rows("api-production").empty());
}

TEST_F(Ecosystem, ABrokenFileNamesItsLineAndStartsNothing) {
  write_file(work_.file("broken.yaml"), "apps:\n"
                                        "  - name: fine\n"
                                        "    script: sleep\n"
                                        "    args: 100\n"
                                        "  - name: bad\n"
                                        "    script: sleep\n"
                                        "    kill_signal: SIGNOPE\n");
  auto r = corral({"start", "broken.yaml"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "corral: broken.yaml:7: app 'bad': kill_signal: unknown signal 'SIGNOPE'\n");
  write_file(work_.file("broken.json"), "{\"apps\": [\n  {\"name\": \"fine\", \"script\": \"sleep\"},\n  {\"name\": \"x\" \"script\": \"sleep\"}\n]}");
  r = corral({"start", "broken.json"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err.rfind("corral: broken.json:3: bad JSON: ", 0), 0u) << r.err;
  r = corral({"start", "eco.yaml", "--instances", "3"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--instances: does not apply to an ecosystem file"), std::string::npos) << r.err;
  r = corral({"start", "missing.yaml"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "corral: missing.yaml: no such ecosystem file\n");
  EXPECT_EQ(jlist(), json::array());
}

TEST_F(Ecosystem, StopAndDeleteActOnTheFilesApps) {
  ASSERT_EQ(corral({"start", "eco.yaml"}).code, 0);
  ASSERT_EQ(corral({"start", MANAGER_APP, "--name", "other", "--", "serve"}).code, 0);
  ASSERT_TRUE(wait_until([&] { return all_online(rows("cpp"), 2) && all_online(rows("py"), 1); }, 20s));
  auto py_pid = rows("py")[0].value("pid", 0);
  // Its SIGINT handler is in place once it has said hello.
  ASSERT_TRUE(wait_until([&] { return slurp(log_path("py")).find("hi pid") != std::string::npos; }, 10s));
  auto r = corral({"stop", "eco.yaml"});
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* name : {"cpp", "py"})
    for (const auto& row : rows(name)) EXPECT_EQ(row["status"], "stopped") << name;
  EXPECT_TRUE(all_online(rows("other"), 1));
  EXPECT_NE(slurp(log_path("py")).find("bye " + std::to_string(py_pid)), std::string::npos) << "not a graceful stop";
  r = corral({"delete", "eco.yaml"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(rows("cpp").empty());
  EXPECT_TRUE(rows("py").empty());
  EXPECT_TRUE(all_online(rows("other"), 1));
}

// stop, restart, reload and delete of a file need only its apps' names: a
// script removed since start (a deploy moved it) must not block them. An app
// without a name is named after its script, which is gone too.
TEST_F(Ecosystem, StopRestartDeleteOfAFileWhoseScriptsAreGone) {
  write_file(work_.file("gone.py"), hello_py);
  write_file(work_.file("gone.yaml"), std::string("apps:\n"
                                                  "  - script: gone.py\n"
                                                  "    env: {GREETING: hi}\n"
                                                  "  - name: cpp\n"
                                                  "    script: ") + MANAGER_APP + "\n"
                                                  "    args: serve\n"
                                                  "    cwd: sub\n");
  std::filesystem::create_directories(work_.file("sub"));
  ASSERT_EQ(corral({"start", "gone.yaml"}).code, 0);
  ASSERT_TRUE(wait_until([&] { return all_online(rows("gone"), 1) && all_online(rows("cpp"), 1); }, 20s)) << jlist().dump();
  ASSERT_TRUE(wait_until([&] { return slurp(log_path("gone")).find("hi pid") != std::string::npos; }, 10s));
  std::filesystem::remove(work_.file("gone.py"));
  std::filesystem::remove(work_.file("sub"));
  auto r = corral({"start", "gone.yaml"});
  EXPECT_EQ(r.code, 2) << "start still checks every app";
  r = corral({"stop", "gone.yaml"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(rows("gone")[0]["status"], "stopped");
  EXPECT_EQ(rows("cpp")[0]["status"], "stopped");
  // The daemon restarts them from its specs (the script's absence is then
  // the app's own failure): the file itself is no longer in the way.
  r = corral({"restart", "gone.yaml"});
  EXPECT_NE(r.code, 2) << r.err;
  EXPECT_EQ(r.err.find("gone.yaml:"), std::string::npos) << r.err;
  r = corral({"delete", "gone.yaml"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(rows("gone").empty());
  EXPECT_TRUE(rows("cpp").empty());
}

// pm2-runtime: the daemon in the foreground, the apps' lines on its stdout
// and stderr, a graceful stop on SIGTERM, and nothing left behind.
TEST_F(Ecosystem, RunStreamsLogsAndStopsGracefullyOnSigterm) {
  std::filesystem::create_directories(work_.file("tmp"));
  spawn_options o;
  o.unset_env = {"CORRAL_HOME"};
  o.env["TMPDIR"] = work_.file("tmp");
  o.cwd = work_.path();
  child run({bin("corral"), "run", "eco.yaml"}, o);
  ASSERT_TRUE(run.wait_out("py | hi pid ", 30s)) << run.out() << run.err();
  ASSERT_TRUE(run.wait_out("cpp:1 | tick", 10s)) << run.out();
  ASSERT_TRUE(run.wait_err("py | to stderr", 10s)) << run.err();
  ASSERT_TRUE(run.wait_err("cpp:0 | tock", 10s)) << run.err();
  std::string out = run.out();
  auto at = out.find("py | hi pid ") + std::strlen("py | hi pid ");
  int py_pid = std::stoi(out.substr(at));
  auto home_at = run.err().find("corral run: home ");
  ASSERT_NE(home_at, std::string::npos);
  std::string home_dir = run.err().substr(home_at + 17, run.err().find('\n', home_at) - home_at - 17);
  EXPECT_EQ(home_dir.rfind(work_.file("tmp") + "/corral-run-", 0), 0u) << home_dir;
  struct stat st {};
  ASSERT_EQ(::stat(home_dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_TRUE(alive(py_pid));

  run.signal(SIGTERM);
  auto status = run.wait_exit(30s);
  ASSERT_TRUE(status) << run.err();
  ASSERT_TRUE(WIFEXITED(*status)) << run.err();
  EXPECT_EQ(WEXITSTATUS(*status), 0) << run.err();
  EXPECT_EQ(run.err().find("no app is running any more"), std::string::npos) << run.err();
  EXPECT_NE(run.out().find("py | bye " + std::to_string(py_pid)), std::string::npos) << run.out();
  reap_orphans();
  EXPECT_FALSE(alive(py_pid));
  EXPECT_TRUE(live_in_group(py_pid).empty());
  EXPECT_TRUE(live_in_group(run.pid()).empty());
  EXPECT_TRUE(processes_with(home_dir).empty());
  EXPECT_FALSE(std::filesystem::exists(home_dir)) << "the private home is removed";
}

TEST_F(Ecosystem, RunExitsNonZeroOnceEveryAppHasStoppedForGood) {
  write_file(work_.file("once.yaml"), std::string("apps:\n  - name: once\n    script: ") + MANAGER_APP +
                                          "\n    args: [crash, '0']\n    autorestart: false\n");
  auto c = corral_bg({"run", "once.yaml"});
  auto status = c->wait_exit(30s);
  ASSERT_TRUE(status) << c->err();
  ASSERT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 1);
  EXPECT_NE(c->err().find("corral run: no app is running any more; exiting 1"), std::string::npos) << c->err();
  EXPECT_TRUE(processes_with(home()).empty());
}

// A foreground daemon learns of the last stop from the transition itself,
// however late it comes: here `corral stop` from another shell.
TEST_F(Ecosystem, RunExitsNonZeroOnceItsLastAppIsStopped) {
  auto run = corral_bg({"run", "eco.yaml", "--only", "cpp"});
  // Its daemon is up (a client asking before would start one of its own).
  ASSERT_TRUE(run->wait_out("cpp:1 | tick", 20s)) << run->err();
  ASSERT_TRUE(wait_until([&] { return all_online(rows("cpp"), 2); }, 20s)) << run->err();
  // Not corral(): its cleanup reaps any child of ours, run's exit status too.
  auto stop = corral_bg({"stop", "cpp"});
  auto stopped = stop->wait_exit(30s);
  ASSERT_TRUE(stopped && WIFEXITED(*stopped) && WEXITSTATUS(*stopped) == 0) << stop->err();
  auto status = run->wait_exit(30s);
  ASSERT_TRUE(status) << run->err();
  ASSERT_TRUE(WIFEXITED(*status)) << run->err();
  EXPECT_EQ(WEXITSTATUS(*status), 1) << run->err();
  EXPECT_NE(run->err().find("corral run: no app is running any more; exiting 1"), std::string::npos) << run->err();
}

// As PID 1 in a container must (tini, docker run --init): corral run is a
// child subreaper, adopts the orphans of its apps and reaps them, while
// libuv still gets its own children's exit statuses.
TEST_F(Ecosystem, RunReapsTheOrphansOfItsApps) {
  write_file(work_.file("orphans.py"), orphans_py);
  write_file(work_.file("orphans.yaml"), "apps:\n  - name: orphans\n    script: orphans.py\n");
  auto run = corral_bg({"run", "orphans.yaml"});
  ASSERT_TRUE(wait_until([&] { return std::filesystem::exists(work_.file("adopted")); }, 20s)) << run->err();
  std::istringstream in(slurp(work_.file("adopted")));
  pid_t orphan = 0, adopter = 0;
  in >> orphan >> adopter;
  ASSERT_GT(orphan, 0);
  EXPECT_EQ(adopter, run->pid()) << "adopted by corral run, not by " << adopter;
  EXPECT_TRUE(wait_until([&] {
    return zombies_of(run->pid()).empty() && !std::filesystem::exists("/proc/" + std::to_string(orphan));
  }, 10s)) << "orphan " << orphan << " still there, zombies under corral run: " << zombies_of(run->pid()).size();
  ASSERT_TRUE(alive(run->pid())) << run->err();
  // The instance is libuv's: its exit is still seen, so the stop is graceful.
  run->signal(SIGTERM);
  auto status = run->wait_exit(30s);
  ASSERT_TRUE(status) << run->err();
  ASSERT_TRUE(WIFEXITED(*status)) << run->err();
  EXPECT_EQ(WEXITSTATUS(*status), 0) << run->err();
}

// The apps stopped by SIGTERM are not "no app is running any more", even
// when a client's connection keeps the daemon's loop turning a little
// longer after the last app has stopped.
TEST_F(Ecosystem, RunStoppedBySigtermWithAClientConnectedExitsZero) {
  auto run = corral_bg({"run", "eco.yaml", "--only", "cpp"});
  // Its daemon is up (a client asking before would start one of its own).
  ASSERT_TRUE(run->wait_out("cpp:1 | tick", 20s)) << run->err();
  ASSERT_TRUE(wait_until([&] { return all_online(rows("cpp"), 2); }, 20s)) << run->err();
  auto monit = corral_bg({"monit", "--interval", "100"});
  ASSERT_TRUE(monit->wait_out("cpp", 10s)) << monit->err();
  run->signal(SIGTERM);
  auto status = run->wait_exit(30s);
  ASSERT_TRUE(status) << run->err();
  ASSERT_TRUE(WIFEXITED(*status)) << run->err();
  EXPECT_EQ(WEXITSTATUS(*status), 0) << run->err();
  EXPECT_EQ(run->err().find("no app is running any more"), std::string::npos) << run->err();
}

// `corral kill` stops every app of a foreground daemon too, and is a
// requested stop: exit 0, not the "nothing runs any more" exit 1.
TEST_F(Ecosystem, RunExitsZeroOnCorralKill) {
  auto run = corral_bg({"run", "eco.yaml"});
  ASSERT_TRUE(run->wait_out("py | hi pid ", 30s)) << run->out() << run->err();
  ASSERT_TRUE(wait_until([&] { return all_online(rows("cpp"), 2); }, 20s)) << jlist().dump();
  // Not corral(): its cleanup reaps any child of ours, run's exit status too.
  auto kill = corral_bg({"kill"});
  auto killed = kill->wait_exit(30s);
  ASSERT_TRUE(killed && WIFEXITED(*killed) && WEXITSTATUS(*killed) == 0) << kill->err();
  auto status = run->wait_exit(30s);
  ASSERT_TRUE(status) << run->err();
  ASSERT_TRUE(WIFEXITED(*status)) << run->err();
  EXPECT_EQ(WEXITSTATUS(*status), 0) << run->err();
  EXPECT_EQ(run->err().find("no app is running any more"), std::string::npos) << run->err();
  EXPECT_TRUE(processes_with(home()).empty());
}

}  // namespace
}  // namespace manager_test
