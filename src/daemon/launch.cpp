#include "daemon/launch.hpp"

#include <fcntl.h>
#include <limits.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>

extern char** environ;

namespace corral::daemon {

namespace {

error sys(int err, const std::string& what) {
  return error(std::error_code(err, std::generic_category()), what + ": " + std::strerror(err));
}

std::string read_link(const std::string& path) {
  char buf[PATH_MAX];
  ssize_t n = ::readlink(path.c_str(), buf, sizeof buf - 1);
  if (n <= 0) return {};
  return std::string(buf, static_cast<size_t>(n));
}

constexpr std::string_view deleted_suffix = " (deleted)";

// Makes `fd` the descriptor `target`, kept across exec. dup2 onto itself
// would leave close-on-exec set.
void place(int fd, int target) {
  if (fd == target)
    ::fcntl(fd, F_SETFD, 0);
  else
    ::dup2(fd, target);
}

}  // namespace

std::string self_exe_path() {
  std::string path = read_link("/proc/self/exe");
  if (path.empty()) return "corral";
  if (path.ends_with(deleted_suffix)) path.resize(path.size() - deleted_suffix.size());
  return path;
}

bool exe_replaced(pid_t pid) {
  return read_link("/proc/" + std::to_string(pid) + "/exe").ends_with(deleted_suffix);
}

result<pid_t> launch_daemon(const home_paths& home, const std::string& exe, const std::vector<std::string>& extra_env,
                            const std::vector<int>& pass_fds) {
  if (auto s = ensure_home(home); !s) return s.err();
  if (pass_fds.size() > max_passed_fds)
    return error(std::make_error_code(std::errc::argument_list_too_long),
                 "over " + std::to_string(max_passed_fds) + " descriptors to pass");
  // Everything the child needs is made before fork: after it, a process
  // with threads may only make async-signal-safe calls.
  std::vector<std::string> env_text;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    bool replaced = false;
    for (auto& x : extra_env)
      if (auto eq = x.find('='); eq != std::string::npos && kv.starts_with(std::string_view(x).substr(0, eq + 1)))
        replaced = true;
    if (!replaced) env_text.emplace_back(kv);
  }
  for (auto& x : extra_env) env_text.push_back(x);
  std::vector<char*> envp;
  for (auto& s : env_text) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string arg0 = exe, arg1 = "daemon";
  char* argv[] = {arg0.data(), arg1.data(), nullptr};
  int pidpipe[2];
  if (::pipe2(pidpipe, O_CLOEXEC) != 0) return sys(errno, "pipe");
  int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int log = ::open(home.daemon_log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  pid_t pid = ::fork();
  if (pid < 0) {
    int e = errno;
    for (int fd : {pidpipe[0], pidpipe[1], null, log})
      if (fd >= 0) ::close(fd);
    return sys(e, "fork");
  }
  if (pid == 0) {
    ::setsid();
    pid_t daemon_pid = ::fork();
    if (daemon_pid != 0) {
      // The intermediate child: tell the caller the daemon's pid, and go.
      if (daemon_pid > 0) (void)!::write(pidpipe[1], &daemon_pid, sizeof daemon_pid);
      ::_exit(0);
    }
    if (null >= 0) place(null, 0);
    if (log >= 0) {
      place(log, 1);
      place(log, 2);
    }
    // Each passed fd to 3 + k: first all above the targets, so that no dup2
    // overwrites one still to be moved.
    const int n = static_cast<int>(pass_fds.size());
    int high[256];
    for (int k = 0; k < n; ++k) high[k] = ::fcntl(pass_fds[static_cast<size_t>(k)], F_DUPFD_CLOEXEC, 3 + n);
    for (int k = 0; k < n; ++k)
      if (high[k] < 0 || ::dup2(high[k], 3 + k) < 0) ::_exit(126);
    // The originals (close-on-exec anyway) and whatever the caller let us
    // inherit: a shell's or a test runner's descriptors are not the
    // daemon's, and every app it starts would inherit them.
    if (::close_range(static_cast<unsigned>(3 + n), ~0U, 0) != 0)
      for (int fd = 3 + n; fd < 65536; ++fd) ::close(fd);
    ::execve(exe.c_str(), argv, envp.data());
    ::_exit(127);
  }
  ::close(pidpipe[1]);
  if (null >= 0) ::close(null);
  if (log >= 0) ::close(log);
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  pid_t daemon_pid = 0;
  ssize_t n;
  do n = ::read(pidpipe[0], &daemon_pid, sizeof daemon_pid);
  while (n < 0 && errno == EINTR);
  ::close(pidpipe[0]);
  if (n != static_cast<ssize_t>(sizeof daemon_pid) || daemon_pid <= 0) return sys(EAGAIN, "fork (the daemon's process)");
  return daemon_pid;
}

}  // namespace corral::daemon
