// The daemon's persisted state ($CORRAL_HOME/state.json; format in
// docs/manager-state.md): the desired apps and, for each running instance,
// the pid and process group the daemon last started, so that a new daemon
// can kill what an old one (killed with SIGKILL) left behind before it
// restores the apps. Also used for `save`'s dump file.
#pragma once

#include <array>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "corral/error.hpp"
#include "daemon/app_spec.hpp"

namespace corral::daemon {

inline constexpr int state_format_version = 1;

struct persisted_instance {
  int id = 0;        // the global instance id shown by `list`
  int index = 0;     // 0..instances-1 (CORRAL_INSTANCE)
  pid_t pid = 0;     // 0 when not running; the process group id equals it
  uint64_t start_ticks = 0;  // /proc/<pid>/stat starttime, to tell a reused pid
  /// The inodes of the read ends of its stdout and stderr, which the process
  /// holds too: a new daemon takes them over to log what it wrote meanwhile.
  std::array<uint64_t, 2> output_inodes{};
};

struct persisted_app {
  app_spec spec;
  std::vector<persisted_instance> instances;
};

/// An app of the file that cannot be read (a hand edit, a damaged file):
/// what is wrong with it, and its instances if those could be read, so a new
/// daemon can still stop what a dead one left running of it.
struct unreadable_app {
  std::string error;  // "app 'web': kill_timeout must be a number, got a string"
  std::vector<persisted_instance> instances;
};

struct persisted_state {
  pid_t daemon_pid = 0;
  int next_id = 0;
  std::vector<persisted_app> apps;
  /// One bad app does not cost the others: they are read, it is listed here.
  std::vector<unreadable_app> unreadable;
};

json to_json(const persisted_state& s);
/// Fails on what spoils the whole file (not an object, another version, no
/// apps array); an app that cannot be read goes to `unreadable`.
result<persisted_state> state_from_json(const json& j);
/// The JSON of a state or save file; the error is "<path>:<line>: not
/// valid JSON (<what>)".
result<json> parse_state_text(const std::string& path, const std::string& text);

/// Reads and checks a state or save file. The error names the file:
/// "<path>:<line>: not valid JSON (...)", "<path>: app 'web': kill_timeout
/// must be a number, got a string"; its code is ENOENT when there is none.
result<persisted_state> load_state_file(const std::string& path);
/// Renames a file the daemon cannot use to "<path>.broken-<unix time>"
/// (".1", ".2", ... after it if taken: never over an earlier one), so that
/// the next save does not destroy what it held. Returns the new path.
result<std::string> set_aside(const std::string& path);

/// Writes `text` to `path` atomically: a temporary file in the same directory,
/// fsync, rename, then fsync of the directory. Mode 0600.
status write_file_atomic(const std::string& path, const std::string& text);
/// Reads a whole file; ENOENT is an error with that code.
result<std::string> read_file(const std::string& path);

}  // namespace corral::daemon
