#include "harness.hpp"

#include "support/client.hpp"

#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

namespace manager_test {

raw_client::raw_client(const std::string& home) : fd_(support::connect_unix(home + "/corral.sock")) {}
raw_client::~raw_client() {
  if (fd_ >= 0) ::close(fd_);
}
bool raw_client::send(const std::string& text) { return support::write_all(fd_, text); }
json raw_client::reply(int timeout_ms) {
  auto line = support::read_line(fd_, timeout_ms);
  return line ? json::parse(*line, nullptr, false) : json(json::value_t::discarded);
}

using namespace support;

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string slurp_rotated(const std::string& path) {
  std::string out;
  for (int k = 1; ::access((path + "." + std::to_string(k)).c_str(), F_OK) == 0; ++k)
    out.insert(0, slurp(path + "." + std::to_string(k)));
  return out + slurp(path);
}

std::string tail_of(const std::string& path, size_t n) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) return "";
  auto size = static_cast<size_t>(f.tellg());
  size_t from = size > n ? size - n : 0;
  f.seekg(static_cast<std::streamoff>(from));
  std::string out(size - from, '\0');
  f.read(out.data(), static_cast<std::streamsize>(out.size()));
  return out;
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
}

void Manager::SetUp() { become_subreaper(); }

void Manager::TearDown() {
  // A failure seen only on a loaded CI machine is understood from what the
  // daemon and the apps said: print it, whatever assertion failed (an
  // ASSERT returns before any printing in the test body).
  if (HasFailure()) {
    std::printf("--- daemon.log (tail):\n%s\n", tail_of(home_.file("daemon.log"), 6000).c_str());
    if (DIR* d = ::opendir(home_.file("logs").c_str())) {
      while (dirent* e = ::readdir(d))
        if (std::string name = e->d_name; name.ends_with(".log"))
          std::printf("--- logs/%s (tail):\n%s\n", name.c_str(), tail_of(home_.file("logs/" + name), 3000).c_str());
      ::closedir(d);
    }
  }
  // Kill first what the daemon started (it may be wedged), then the daemon,
  // frozen meanwhile: a daemon that saw an instance die would start another,
  // after the scan below, and it would outlive the test.
  if (pid_t d = daemon_pid(); d > 0) ::kill(d, SIGSTOP);
  std::string state = slurp(home_.file("state.json"));
  auto j = json::parse(state, nullptr, false);
  if (!j.is_discarded() && j.contains("apps"))
    for (auto& a : j["apps"])
      for (auto& i : a["instances"])
        if (int pid = i.value("pid", 0); pid > 0) ::kill(-pid, SIGKILL);
  for (pid_t p : processes_with(home_.path())) ::kill(p, SIGKILL);
  if (pid_t d = daemon_pid(); d > 0) ::kill(d, SIGKILL);
  wait_until([&] {
    reap_orphans();
    return daemon_pid() <= 0 || !alive(daemon_pid());
  }, 5s);
  reap_orphans();
  // Under the sanitizers the daemon's reports land in its log.
  std::string log = slurp(home_.file("daemon.log"));
  for (const char* bad : {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"})
    EXPECT_EQ(log.find(bad), std::string::npos) << "daemon.log:\n" << log;
}

pid_t Manager::daemon_pid() {
  std::string s = slurp(home_.file("daemon.pid"));
  return s.empty() ? 0 : static_cast<pid_t>(std::stol(s));
}

std::string Manager::log_path(const std::string& app, bool err) const {
  return home_.file("logs/" + app + (err ? "-error.log" : "-out.log"));
}

run_result Manager::corral(const std::vector<std::string>& args, std::chrono::milliseconds timeout,
                           std::map<std::string, std::string> extra_env) {
  std::vector<std::string> argv{corral_exe_.empty() ? bin("corral") : corral_exe_};
  argv.insert(argv.end(), args.begin(), args.end());
  spawn_options o;
  o.env = std::move(extra_env);
  o.env["CORRAL_HOME"] = home_.path();
  o.cwd = work_.path();
  child c(argv, o);
  run_result r;
  auto st = c.wait_exit(timeout);
  r.out = c.out();
  r.err = c.err();
  if (st && WIFEXITED(*st)) r.code = WEXITSTATUS(*st);
  return r;
}

std::unique_ptr<child> Manager::corral_bg(const std::vector<std::string>& args) {
  std::vector<std::string> argv{corral_exe_.empty() ? bin("corral") : corral_exe_};
  argv.insert(argv.end(), args.begin(), args.end());
  spawn_options o;
  o.env["CORRAL_HOME"] = home_.path();
  o.cwd = work_.path();
  return std::make_unique<child>(argv, o);
}

json Manager::jlist() {
  auto r = corral({"jlist"});
  auto j = json::parse(r.out, nullptr, false);
  return j.is_discarded() ? json::array() : j;
}

std::vector<json> Manager::rows(const std::string& name) {
  std::vector<json> out;
  for (auto& r : jlist())
    if (r.value("name", "") == name) out.push_back(r);
  return out;
}

std::vector<pid_t> Manager::processes_with(const std::string& needle) {
  std::vector<pid_t> out;
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  while (auto* e = ::readdir(d)) {
    pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
    if (pid <= 0 || pid == ::getpid()) continue;
    std::string cmd = slurp("/proc/" + std::to_string(pid) + "/cmdline");
    std::replace(cmd.begin(), cmd.end(), '\0', ' ');
    std::string environ_text = slurp("/proc/" + std::to_string(pid) + "/environ");
    if ((cmd.find(needle) != std::string::npos || environ_text.find(needle) != std::string::npos) && alive(pid))
      out.push_back(pid);
  }
  ::closedir(d);
  return out;
}

bool all_online(const std::vector<nlohmann::json>& rows, std::size_t n) {
  if (rows.size() != n) return false;
  for (auto& r : rows)
    if (r.value("status", "") != "online" || r.value("pid", 0) <= 0) return false;
  return true;
}

bool all_online_replacing(const std::vector<nlohmann::json>& rows, std::size_t n, const std::set<int>& old) {
  if (!all_online(rows, n)) return false;
  for (int p : pids_of(rows))
    if (old.count(p)) return false;
  return true;
}

std::set<int> pids_of(const std::vector<nlohmann::json>& rows) {
  std::set<int> out;
  for (auto& r : rows)
    if (int p = r.value("pid", 0); p > 0) out.insert(p);
  return out;
}

}  // namespace manager_test
