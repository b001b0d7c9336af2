// Test support: real child processes, temp dirs, and bounded waits.
// Every wait polls a condition against a deadline; nothing sleeps blindly.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace support {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

/// Path of a built binary (examples/, bench/, ...), relative to the build dir.
std::string bin(const std::string& name);
/// Path in the source tree.
std::string src(const std::string& rel);

/// A fresh directory under $TMPDIR, removed (recursively) on destruction.
class temp_dir {
 public:
  temp_dir();
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

/// Polls `cond` every few milliseconds until it holds or `timeout` passes.
bool wait_until(const std::function<bool()>& cond, std::chrono::milliseconds timeout);

struct spawn_options {
  std::map<std::string, std::string> env;  // added to the test's environment
  std::vector<std::string> unset_env;
  std::string cwd;
  /// fds to place in the child: {child_fd, parent_fd}.
  std::vector<std::pair<int, int>> fds;
  /// Set LISTEN_PID to the child's own pid (socket activation), if true.
  bool listen_pid = false;
};

/// A child process in its own process group, stdout/stderr captured to files.
/// Destruction kills the whole group (SIGKILL) and reaps the child.
class child {
 public:
  child(const std::vector<std::string>& argv, spawn_options opts = {});
  ~child();
  child(const child&) = delete;
  child& operator=(const child&) = delete;

  pid_t pid() const { return pid_; }
  std::string out() const;
  std::string err() const;
  /// Waits until stdout contains `needle` `count` times.
  bool wait_out(const std::string& needle, std::chrono::milliseconds timeout, int count = 1);
  bool wait_err(const std::string& needle, std::chrono::milliseconds timeout, int count = 1);
  /// Waits for exit; returns the raw wait status, or nullopt on timeout.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  void signal(int sig);
  void signal_group(int sig);
  bool exited() const { return status_.has_value(); }

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
  temp_dir dir_;
};

/// Number of occurrences of `needle` in `hay`.
int count(const std::string& hay, const std::string& needle);
/// Live (not zombie) processes whose process group is `pgid`.
std::vector<pid_t> live_in_group(pid_t pgid);
/// True if `pid` exists and is not a zombie.
bool alive(pid_t pid);
/// The fields of /proc/<pid>/stat after the command name: [0] is field 3
/// (the state), [N - 3] is field N of proc(5). Empty if there is no such pid.
std::vector<std::string> stat_fields(pid_t pid);
/// utime + stime of `pid` in clock ticks, or -1.
long cpu_ticks(pid_t pid);
/// Number of open fds of `pid`.
int fd_count(pid_t pid);
/// Reaps orphans reparented to us (we are a child subreaper in tests): our
/// exited children that no `child` object owns. A `child` still to be waited
/// for is left alone, so its `wait_exit` sees its status.
void reap_orphans();
/// Whether a process here may take a file descriptor of another process of
/// ours that is not its descendant (pidfd_getfd, as a new daemon does with
/// the sockets of a dead one's instances): ptrace rights, which Yama or a
/// container's seccomp profile may deny.
bool may_take_fds_of_unrelated_processes();
/// Makes this process a child subreaper so orphans of children come to us.
void become_subreaper();

}  // namespace support
