// One app's `watch`: the files below some paths, watched with inotify on the
// daemon's loop. libuv's uv_fs_event is not recursive on Linux, so this keeps
// one inotify watch per directory itself: the tree is walked at start, and a
// directory made (or moved in) later is walked when its event comes.
//
// A change is a file written and closed, created, deleted, moved in or out,
// or its metadata changed (touch, chmod); never a read. Symbolic links below
// a watched path are not followed (a watched path that is one is). What
// ignore_rules leaves out is not watched at all. A watched path that is a
// file is watched through its directory, by its name, so an editor that
// saves by renaming a new file over it is seen.
//
// A watched path that does not exist (yet, or any more: `rm -rf dist` before
// a build makes it again) is awaited the same way: its nearest existing
// directory is watched, not recursively, for the next name on the way down;
// when that appears the path is resolved again from the top (`mkdir -p`
// makes one directory at a time, and the next may be there before its event
// is read). Only the awaited name is looked at there. The path's appearance
// is a change, and from then on it is watched as any other.
//
// The environment cannot stop the daemon here: a directory that cannot be
// read is skipped, one deleted is forgotten, an overflowing event queue counts
// as a change (and the tree is walked again), and the inotify limits
// (max_user_watches, max_user_instances) are said in one line naming the
// /proc/sys file to raise, the app running on, watched less or not at all.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "corral/error.hpp"
#include "corral/fd.hpp"
#include "core/handle.hpp"
#include "daemon/watch_rules.hpp"

namespace corral::daemon {

class watcher {
 public:
  struct hooks {
    /// Something changed: `path` is absolute (for a queue overflow, the
    /// first watched path). Called on the loop; must not destroy the watcher.
    std::function<void(const std::string& path)> changed;
    /// A line for the user: a limit reached, a directory that cannot be
    /// watched, a watched path gone. Each kind of trouble is said once per
    /// watcher. May be called from start(); must not destroy the watcher.
    std::function<void(const std::string& line)> trouble;
  };

  /// Watches `roots` (absolute paths) and what is below them, except what
  /// `rules` leaves out, with at most `max_dirs` inotify watches (and one
  /// more for each root watched by name: a file, or a missing path). A root
  /// that does not exist is awaited, said once through `trouble`. A root
  /// that cannot be watched (permission, a limit) is said through `trouble`
  /// and tried again by rewatch_missing_roots(). Fails only if inotify itself
  /// cannot be had (max_user_instances), naming the limit.
  static result<std::unique_ptr<watcher>> start(uv_loop_t* loop, std::vector<std::string> roots, ignore_rules rules,
                                                hooks h, size_t max_dirs);
  ~watcher();
  watcher(const watcher&) = delete;
  watcher& operator=(const watcher&) = delete;

  /// Tries again the roots that could not be watched, nor awaited (a
  /// directory that could not be read, a limit reached).
  void rewatch_missing_roots();
  /// inotify watches held (directories, and the directories of file roots).
  size_t watched_dirs() const noexcept { return dirs_.size(); }

 private:
  struct dir {
    std::string path;
    // Every entry counts (a directory of the tree), or only the names roots
    // are held by here (the directory of a file root, or above a missing
    // root; not itself watched).
    bool all = false;
    bool root = false;  // a root directory itself
  };
  struct root {
    std::string path;
    // Held by the watch `wd`: the root directory's own (`name` empty), or
    // that of a directory above it, for `name` (its own name in its parent:
    // a file, or a root awaited there; or the next component of a missing
    // root's path). -1: neither (it could not be watched).
    int wd = -1;
    std::string name;
    bool exists = false;  // when last resolved
  };

  watcher(uv_loop_t* loop, std::vector<std::string> roots, ignore_rules rules, hooks h, size_t max_dirs);
  /// Resolves `r` from the top: watches it as a tree (a directory) or by
  /// name (a file), or awaits the next missing name of its path in the
  /// nearest directory there is. True if `r` exists.
  bool watch_root(root& r);
  /// watch_root(), and its appearance is a change if `appeared_is_change`.
  void resolve(root& r, bool appeared_is_change);
  /// Resolves again the roots whose watch was dropped (deleted, moved away).
  void resolve_orphans();
  bool held(const root& r) const { return r.wd >= 0 && dirs_.count(r.wd) > 0; }
  /// `r` is held by `wd` for `name` from now on; the watch that held it
  /// before is removed if it served nothing else.
  void hold(root& r, int wd, std::string name);
  void release(root& r);
  /// Watches `top` and every directory below it; `again`: walk below
  /// directories watched already too (after an overflow). The watch of
  /// `top`, or -errno.
  int add_tree(const std::string& top, bool is_root, bool again);
  /// A watch on `path` for roots held by name; -errno if not.
  int add_holder(const std::string& path);
  /// A watch on `path` (a directory); -1 if not (said through trouble).
  int add_watch(const std::string& path, bool follow);
  void drop_tree(const std::string& top);
  void on_readable();
  void handle_event(int wd, uint32_t mask, const std::string& name);
  void say(bool& said, const std::string& line);

  ignore_rules rules_;
  hooks hooks_;
  size_t max_dirs_;
  std::vector<root> roots_;
  std::unordered_map<int, dir> dirs_;
  unique_fd fd_;
  detail::uv_handle_ptr<uv_poll_t> poll_;  // after fd_: closed before it
  bool rescan_ = false;
  bool said_limit_ = false, said_cap_ = false, said_denied_ = false, said_missing_ = false, said_other_ = false,
       said_overflow_ = false;
};

}  // namespace corral::daemon
