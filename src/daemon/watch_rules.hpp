// The pure rules of `watch` (PM2's restart on file change), apart from inotify
// (daemon/watcher.hpp): which paths the watch leaves out, and how changes
// become restarts. No I/O: unit-tested as they are.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace corral::daemon {

/// What every watch leaves out, whatever ignore_watch says: names starting
/// with '.' (.git, .venv, an editor's .swp), node_modules and __pycache__.
/// PM2's default is /[\/\\]\.|node_modules/, which its ignore_watch replaces;
/// corral's is added to, so that a list naming one directory does not start
/// watching .git and node_modules.
inline constexpr std::array<std::string_view, 3> always_ignored = {".*", "node_modules", "__pycache__"};

/// Glob matching of a path with '/'-separated components: `*`, `?` and
/// `[...]` within one component (fnmatch(3) with no flags), and a component
/// `**` for any number of components (none included). Linear in the number
/// of components of each: no pattern makes it exponential.
bool glob_match(std::string_view pattern, std::string_view path);

/// The ignore_watch patterns of one app. A pattern without '/' ("*.log",
/// "tmp") is matched against the name of each file and directory below a
/// watched path; one with '/' against the whole path: relative to `base`
/// (the app's cwd: "logs/*.txt", "./build", "assets/**") or absolute, and
/// then it leaves out what is below a matching directory too. A trailing "/"
/// is dropped ("build/" is a name), a leading "./" anchors at `base`
/// ("./build" is only the cwd's). always_ignored is added.
class ignore_rules {
 public:
  ignore_rules() : ignore_rules({}, "/") {}
  ignore_rules(const std::vector<std::string>& patterns, std::string base);

  /// Whether the watch leaves out `path` (absolute, lexically normal, below
  /// a watched path). Only its last component is matched against the name
  /// patterns: its parents were checked on the way down.
  bool ignores(std::string_view path) const;
  /// Also leaves out every path `files` says yes to (an app's own log files:
  /// their rotation would restart the app, and that would write more).
  void also_ignore(std::function<bool(std::string_view)> files) { files_ = std::move(files); }

 private:
  std::function<bool(std::string_view)> files_;
  std::vector<std::string> names_;     // no '/'
  std::vector<std::string> absolute_;  // from '/'
  std::vector<std::string> relative_;  // to base_
  std::string base_;
};

/// The directory holding `path` (absolute, lexically normal): "/a/b" is in
/// "/a", "/a" in "/", and "/" in itself.
std::string parent_dir(std::string_view path);

/// A watched path that does not exist is awaited in `ancestor`, its nearest
/// existing directory, by one name: the component of `path` just below it.
/// "/a/b/c" awaits "b" in "/a" (`mkdir -p` makes one directory at a time),
/// and "c" in "/a/b" (its own name). Empty if `ancestor` is not above `path`.
std::string awaited_name(std::string_view path, std::string_view ancestor);

/// How changes become restarts. The first change opens a batch and the
/// caller arms a timer for the app's watch_delay; changes until it fires
/// join the batch; then the caller takes the batch and restarts the app
/// once. Changes during that restart may or may not have been seen by the
/// new processes: they make the next batch, opened when the restart is done,
/// so the last change is always followed by a restart that began after it.
class change_batch {
 public:
  struct taken {
    std::string first;  // the change that opened the batch
    int more = 0;       // the others (saturates)
    uint64_t round = 0;
  };

  /// A change of `path`. True if it opens a batch: arm the timer now.
  bool add(std::string path);
  /// The timer fired: the batch, and the app is restarting from now on.
  /// Only while collecting().
  taken take();
  /// The restart of `round` is done. True if changes came meanwhile: a new
  /// batch holds them, arm the timer now. A restart older than the last
  /// clear() is ignored.
  bool finish(uint64_t round);
  /// Forgets every change (the app was stopped or deleted); a restart in
  /// progress is forgotten too.
  void clear();

  bool collecting() const noexcept { return state_ == state::collecting; }
  bool restarting() const noexcept { return state_ == state::restarting; }

 private:
  enum class state : uint8_t { idle, collecting, restarting };
  state state_ = state::idle;
  std::string first_;
  int more_ = 0;
  // While restarting: changes seen since the restart began.
  bool pending_ = false;
  uint64_t round_ = 0;
};

}  // namespace corral::daemon
