// The manager's test harness: a temp CORRAL_HOME per test, `corral` run as a
// real process, and a teardown that kills the daemon and every process group
// it recorded, even when the test failed.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <map>
#include <set>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/process.hpp"

namespace manager_test {

using json = nlohmann::json;
using namespace std::chrono_literals;

struct run_result {
  int code = -1;  // exit code, or -1 if it did not exit in time
  std::string out;
  std::string err;
};

class Manager : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  /// Runs `corral <args>` to completion (bounded).
  run_result corral(const std::vector<std::string>& args, std::chrono::milliseconds timeout = 30s,
                    std::map<std::string, std::string> extra_env = {});
  /// Starts `corral <args>` and leaves it running (logs --follow).
  std::unique_ptr<support::child> corral_bg(const std::vector<std::string>& args);
  /// `corral jlist`, parsed.
  json jlist();
  /// The rows of app `name` in jlist.
  std::vector<json> rows(const std::string& name);
  pid_t daemon_pid();
  std::string home() const { return home_.path(); }
  std::string log_path(const std::string& app, bool err = false) const;
  /// Every live process whose command line contains `needle`.
  std::vector<pid_t> processes_with(const std::string& needle);

  support::temp_dir home_;
  support::temp_dir work_;  // scripts the test writes
  std::string corral_exe_;  // corral() and corral_bg() run this binary ("": the build's)
};

/// A control client speaking raw lines to a daemon's socket (no CLI process
/// between the test and the daemon).
class raw_client {
 public:
  explicit raw_client(const std::string& home);
  ~raw_client();
  raw_client(const raw_client&) = delete;
  raw_client& operator=(const raw_client&) = delete;
  bool connected() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  bool send(const std::string& text);
  /// The next line, parsed; a discarded json if none came in time.
  json reply(int timeout_ms = 15000);

 private:
  int fd_;
};

/// The full text of a file ("" if missing).
std::string slurp(const std::string& path);
/// A log and its rotated files, oldest first: <path>.<k> .. <path>.1, <path>.
std::string slurp_rotated(const std::string& path);
/// The last `n` bytes of a file.
std::string tail_of(const std::string& path, size_t n);
void write_file(const std::string& path, const std::string& text);

/// True if `rows` (jlist rows of one app) are exactly `n` instances, all online with a pid.
bool all_online(const std::vector<nlohmann::json>& rows, std::size_t n);
/// all_online, and none of them has a pid of `old`: every instance replaced.
bool all_online_replacing(const std::vector<nlohmann::json>& rows, std::size_t n, const std::set<int>& old);
/// The pids of `rows`.
std::set<int> pids_of(const std::vector<nlohmann::json>& rows);

}  // namespace manager_test
