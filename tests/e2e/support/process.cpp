#include "support/process.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace support {

namespace {

// The pids `child` objects will wait for themselves: reap_orphans() leaves
// them alone (reaping every exited child stole a background command's exit
// status from its wait_exit, whenever another child was destroyed first).
std::mutex owned_mu;
std::set<pid_t> owned_pids;

void own(pid_t pid, bool yes) {
  std::lock_guard lock(owned_mu);
  if (yes) owned_pids.insert(pid);
  else owned_pids.erase(pid);
}

bool owned(pid_t pid) {
  std::lock_guard lock(owned_mu);
  return owned_pids.count(pid) > 0;
}

}  // namespace

std::string bin(const std::string& name) { return std::string(CORRAL_BIN_DIR) + "/" + name; }
std::string src(const std::string& rel) { return std::string(CORRAL_SOURCE_DIR) + "/" + rel; }

temp_dir::temp_dir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/corral-test-XXXXXX";
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

temp_dir::~temp_dir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

bool wait_until(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  auto deadline = clock::now() + timeout;
  for (;;) {
    if (cond()) return true;
    if (clock::now() >= deadline) return false;
    std::this_thread::sleep_for(5ms);  // a poll interval, not a wait for an event
  }
}

static std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

child::child(const std::vector<std::string>& argv, spawn_options opts) {
  std::string out_path = dir_.file("stdout"), err_path = dir_.file("stderr");
  // Everything the child needs is built here: between fork and exec only
  // async-signal-safe calls are allowed (other test threads may hold locks).
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string kv(*e);
    auto eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (auto& [k, v] : opts.env) env[k] = v;
  for (auto& k : opts.unset_env) env.erase(k);
  if (opts.listen_pid) env["LISTEN_PID"] = std::string(16, '0');  // filled in by the child
  std::vector<std::string> env_strings;
  std::size_t listen_pid_index = SIZE_MAX;
  for (auto& [k, v] : env) {
    if (k == "LISTEN_PID" && opts.listen_pid) listen_pid_index = env_strings.size();
    env_strings.push_back(k + "=" + v);
  }
  std::vector<char*> envp, args;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  char* listen_pid_buf = listen_pid_index == SIZE_MAX ? nullptr : envp[listen_pid_index] + std::strlen("LISTEN_PID=");
  sigset_t none;
  sigemptyset(&none);

  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    ::setpgid(0, 0);
    int devnull = ::open("/dev/null", O_RDONLY);
    int o = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int e = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(devnull, 0);
    ::dup2(o, 1);
    ::dup2(e, 2);
    // Move the requested fds into place, through high numbers to avoid clashes.
    int staged[16][2];
    std::size_t n = 0;
    for (auto [child_fd, parent_fd] : opts.fds)
      if (n < 16) staged[n][0] = child_fd, staged[n++][1] = ::fcntl(parent_fd, F_DUPFD, 100);
    for (std::size_t i = 0; i < n; ++i) {
      ::dup2(staged[i][1], staged[i][0]);
      ::close(staged[i][1]);
    }
    if (listen_pid_buf) {  // the pid in decimal, without snprintf
      char digits[16];
      int len = 0;
      for (pid_t p = ::getpid(); p > 0; p /= 10) digits[len++] = static_cast<char>('0' + p % 10);
      for (int i = 0; i < len; ++i) listen_pid_buf[i] = digits[len - 1 - i];
      listen_pid_buf[len] = '\0';
    }
    if (!opts.cwd.empty() && ::chdir(opts.cwd.c_str()) != 0) ::_exit(126);
    ::signal(SIGPIPE, SIG_DFL);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execvpe(args[0], args.data(), envp.data());
    static const char msg[] = "exec failed\n";
    [[maybe_unused]] auto w = ::write(2, msg, sizeof msg - 1);
    ::_exit(127);
  }
  ::setpgid(pid_, pid_);
  own(pid_, true);
}

child::~child() {
  if (pid_ > 0) {
    ::kill(-pid_, SIGKILL);
    if (!status_) {
      int st;
      ::waitpid(pid_, &st, 0);
    }
    own(pid_, false);
    // Workers of the group may still be dying; reap what comes to us.
    wait_until([&] { reap_orphans(); return live_in_group(pid_).empty(); }, 5000ms);
  }
}

std::string child::out() const { return slurp(dir_.file("stdout")); }
std::string child::err() const { return slurp(dir_.file("stderr")); }

bool child::wait_out(const std::string& needle, std::chrono::milliseconds timeout, int n) {
  return wait_until([&] { return count(out(), needle) >= n; }, timeout);
}
bool child::wait_err(const std::string& needle, std::chrono::milliseconds timeout, int n) {
  return wait_until([&] { return count(err(), needle) >= n; }, timeout);
}

std::optional<int> child::wait_exit(std::chrono::milliseconds timeout) {
  if (status_) return status_;
  wait_until([&] {
    int st;
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      status_ = st;
      own(pid_, false);
    }
    return status_.has_value();
  }, timeout);
  return status_;
}

void child::signal(int sig) { ::kill(pid_, sig); }
void child::signal_group(int sig) { ::kill(-pid_, sig); }

int count(const std::string& hay, const std::string& needle) {
  if (needle.empty()) return 0;
  int n = 0;
  for (std::size_t pos = hay.find(needle); pos != std::string::npos; pos = hay.find(needle, pos + needle.size())) ++n;
  return n;
}

std::vector<std::string> stat_fields(pid_t pid) {
  std::string s = slurp("/proc/" + std::to_string(pid) + "/stat");
  auto rp = s.rfind(')');  // the command name may hold spaces and parentheses
  std::vector<std::string> out;
  if (rp == std::string::npos) return out;
  std::istringstream in(s.substr(rp + 1));
  for (std::string f; in >> f;) out.push_back(f);
  return out;
}

long cpu_ticks(pid_t pid) {
  auto f = stat_fields(pid);
  return f.size() > 12 ? std::stol(f[14 - 3]) + std::stol(f[15 - 3]) : -1;
}

static bool read_stat(pid_t pid, char& state, pid_t& pgid) {
  auto f = stat_fields(pid);
  if (f.size() < 3) return false;
  state = f[0][0];
  pgid = std::stoi(f[5 - 3]);
  return true;
}

std::vector<pid_t> live_in_group(pid_t pgid) {
  std::vector<pid_t> out;
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    char* end;
    long pid = std::strtol(e->d_name, &end, 10);
    if (*end || pid <= 0) continue;
    char state;
    pid_t g;
    if (read_stat(static_cast<pid_t>(pid), state, g) && g == pgid && state != 'Z' && state != 'X')
      out.push_back(static_cast<pid_t>(pid));
  }
  ::closedir(d);
  return out;
}

bool alive(pid_t pid) {
  char state;
  pid_t g;
  return read_stat(pid, state, g) && state != 'Z' && state != 'X';
}

int fd_count(pid_t pid) {
  int n = 0;
  DIR* d = ::opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
  if (!d) return -1;
  while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
  ::closedir(d);
  return n;
}

bool may_take_fds_of_unrelated_processes() {
  pid_t holder = ::fork();
  if (holder < 0) return false;
  if (holder == 0) {
    for (;;) ::pause();
  }
  // A sibling, not an ancestor, of the holder: as a daemon is of the
  // instances a dead daemon left.
  pid_t taker = ::fork();
  if (taker == 0) {
    int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, holder, 0));
    if (pidfd < 0) ::_exit(1);
    ::_exit(::syscall(SYS_pidfd_getfd, pidfd, 0, 0) >= 0 ? 0 : 1);
  }
  int st = -1;
  if (taker > 0)
    while (::waitpid(taker, &st, 0) < 0 && errno == EINTR) {
    }
  ::kill(holder, SIGKILL);
  while (::waitpid(holder, nullptr, 0) < 0 && errno == EINTR) {
  }
  return taker > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

void reap_orphans() {
  DIR* d = ::opendir("/proc");
  if (!d) return;
  pid_t me = ::getpid();
  while (dirent* e = ::readdir(d)) {
    char* end;
    long pid = std::strtol(e->d_name, &end, 10);
    if (*end || pid <= 0) continue;
    auto f = stat_fields(static_cast<pid_t>(pid));
    if (f.size() < 2 || f[0] != "Z" || std::stoi(f[4 - 3]) != me || owned(static_cast<pid_t>(pid))) continue;
    int st;
    ::waitpid(static_cast<pid_t>(pid), &st, WNOHANG);
  }
  ::closedir(d);
}

void become_subreaper() { ::prctl(PR_SET_CHILD_SUBREAPER, 1); }

}  // namespace support
