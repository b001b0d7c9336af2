#include "daemon/watcher.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

namespace corral::daemon {

namespace {

// What a change is. IN_MODIFY is not: a file being written is a change once
// closed (IN_CLOSE_WRITE), and an app that appends to a log in its own tree
// would otherwise restart at every line.
constexpr uint32_t change_events =
    IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF;

// Events are read in at most this many reads per loop turn: a flood of them
// (a `git checkout`, a build writing thousands of files) leaves the loop to
// the other apps in between. The descriptor stays readable: the rest comes
// next turn.
constexpr int reads_per_turn = 16;

std::string join(const std::string& dir, const std::string& name) {
  return dir == "/" ? "/" + name : dir + "/" + name;
}

bool below_or_at(const std::string& path, const std::string& top) {
  return path == top || (path.size() > top.size() && path.compare(0, top.size(), top) == 0 &&
                         (top == "/" || path[top.size()] == '/'));
}

}  // namespace

watcher::watcher(uv_loop_t*, std::vector<std::string> roots, ignore_rules rules, hooks h, size_t max_dirs)
    : rules_(std::move(rules)), hooks_(std::move(h)), max_dirs_(max_dirs) {
  for (auto& r : roots) roots_.push_back({std::move(r), false});
}

watcher::~watcher() = default;

result<std::unique_ptr<watcher>> watcher::start(uv_loop_t* loop, std::vector<std::string> roots, ignore_rules rules,
                                                hooks h, size_t max_dirs) {
  int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    std::string why = e == EMFILE ? "too many inotify instances (raise /proc/sys/fs/inotify/max_user_instances, "
                                    "sysctl fs.inotify.max_user_instances) or open files"
                                  : std::strerror(e);
    return error(std::error_code(e, std::generic_category()), "cannot watch files: inotify_init1: " + why);
  }
  std::unique_ptr<watcher> w(new watcher(loop, std::move(roots), std::move(rules), std::move(h), max_dirs));
  w->fd_.reset(fd);
  w->poll_ = detail::uv_handle_ptr<uv_poll_t>::make();
  if (int init = uv_poll_init(loop, w->poll_.get(), fd); init < 0) return error::from_uv(init, "cannot watch files");
  w->poll_->data = w.get();
  int rc = uv_poll_start(w->poll_.get(), UV_READABLE, [](uv_poll_t* p, int status, int) {
    auto* self = static_cast<watcher*>(p->data);
    if (!self) return;  // (its app is gone)
    if (status < 0) {
      self->say(self->said_other_, std::string("[corral] watch: stopped: ") + uv_strerror(status));
      uv_poll_stop(p);
      return;
    }
    self->on_readable();
  });
  if (rc < 0) return error::from_uv(rc, "cannot watch files");
  uv_unref(w->poll_.handle());  // (never what keeps the daemon up)
  for (auto& r : w->roots_) w->resolve(r, false);
  return w;
}

void watcher::say(bool& said, const std::string& line) {
  if (said) return;
  said = true;
  if (hooks_.trouble) hooks_.trouble(line);
}

void watcher::rewatch_missing_roots() {
  for (auto& r : roots_)
    if (!held(r)) resolve(r, false);
}

void watcher::resolve(root& r, bool appeared_is_change) {
  const bool was = r.exists;
  r.exists = watch_root(r);
  if (r.exists && !was && appeared_is_change && hooks_.changed) hooks_.changed(r.path);
}

void watcher::resolve_orphans() {
  for (auto& r : roots_)
    if (r.wd >= 0 && !dirs_.count(r.wd)) {
      r.wd = -1;
      resolve(r, true);
    }
}

bool watcher::watch_root(root& r) {
  // Each turn finds more of the path there, or ends; only a path made and
  // removed again as fast as it is looked at keeps it going.
  for (int turn = 0; turn < 64; ++turn) {
    struct stat st;
    const bool found = ::stat(r.path.c_str(), &st) == 0;
    const int missing = found ? 0 : errno;
    if (found && S_ISDIR(st.st_mode)) {
      int wd = add_tree(r.path, true, false);
      if (wd == -ENOENT || wd == -ENOTDIR) continue;  // gone meanwhile
      if (wd < 0) {
        release(r);
        return false;
      }
      hold(r, wd, {});
      return true;
    }
    // A file, or nothing yet: by name, in the nearest directory above.
    std::string dir = parent_dir(r.path);
    struct stat ds;
    while (dir != "/" && !(::stat(dir.c_str(), &ds) == 0 && S_ISDIR(ds.st_mode))) dir = parent_dir(dir);
    int wd = add_holder(dir);
    if (wd == -ENOENT || wd == -ENOTDIR) continue;
    if (wd < 0) {
      release(r);
      return false;
    }
    std::string name = awaited_name(r.path, dir);
    hold(r, wd, name);
    // What was made between the stat and the watch has no event: look again.
    std::string next = join(dir, name);
    struct stat ns;
    const bool there = ::stat(next.c_str(), &ns) == 0;
    if (next == r.path) {
      if (there && S_ISDIR(ns.st_mode)) continue;
      if (there) return true;
    } else if (there && S_ISDIR(ns.st_mode)) {
      continue;
    }
    say(said_missing_, "[corral] watch: cannot watch " + r.path + ": " + std::strerror(missing ? missing : ENOENT) +
                           "; it is watched for its creation, from " + dir);
    return false;
  }
  return held(r) && ::access(r.path.c_str(), F_OK) == 0;
}

void watcher::hold(root& r, int wd, std::string name) {
  if (r.wd != wd) release(r);
  r.wd = wd;
  r.name = std::move(name);
}

void watcher::release(root& r) {
  const int old = r.wd;
  r.wd = -1;
  r.name.clear();
  auto it = dirs_.find(old);
  if (it == dirs_.end() || it->second.all) return;
  for (const auto& other : roots_)
    if (other.wd == old) return;
  ::inotify_rm_watch(fd_.get(), old);  // (its IN_IGNORED finds no entry)
  dirs_.erase(it);
}

int watcher::add_holder(const std::string& path) {
  int wd = add_watch(path, true);
  if (wd < 0) return wd;
  auto [it, fresh] = dirs_.try_emplace(wd);
  if (fresh) it->second.path = path;
  return wd;
}

int watcher::add_watch(const std::string& path, bool follow) {
  uint32_t mask = change_events | IN_ONLYDIR | IN_EXCL_UNLINK | (follow ? 0 : IN_DONT_FOLLOW);
  int wd = ::inotify_add_watch(fd_.get(), path.c_str(), mask);
  if (wd >= 0) return wd;
  int e = errno;
  if (e == ENOSPC)
    say(said_limit_, "[corral] watch: cannot watch " + path +
                         ": the limit of inotify watches is reached (raise /proc/sys/fs/inotify/max_user_watches, "
                         "sysctl fs.inotify.max_user_watches); changes there are not seen");
  else if (e == EACCES)
    say(said_denied_, "[corral] watch: cannot watch " + path + ": permission denied; changes there are not seen");
  else if (e != ENOENT && e != ENOTDIR)  // gone meanwhile, or now a symbolic link
    say(said_other_, "[corral] watch: cannot watch " + path + ": " + std::strerror(e));
  return -e;
}

int watcher::add_tree(const std::string& top, bool is_root, bool again) {
  std::vector<std::string> todo{top};
  // A bind mount can show a directory below itself: each is walked once.
  std::set<int> walked;
  bool first = true;
  int top_wd = -ENOENT;
  while (!todo.empty()) {
    std::string path = std::move(todo.back());
    todo.pop_back();
    const bool is_top = first;
    const bool follow = first && is_root;  // only a root may be a symbolic link
    first = false;
    int wd = add_watch(path, follow);
    if (is_top) top_wd = wd;
    if (wd == -ENOSPC) return top_wd;  // no watch will be had below either
    if (wd < 0 || !walked.insert(wd).second) continue;
    auto it = dirs_.find(wd);
    if (it == dirs_.end()) {
      if (dirs_.size() >= max_dirs_) {
        ::inotify_rm_watch(fd_.get(), wd);
        say(said_cap_, "[corral] watch: watching only " + std::to_string(max_dirs_) +
                           " directories (the daemon's limit for one app, CORRAL_WATCH_MAX_DIRS); changes below "
                           "the others are not seen: leave some out with ignore_watch");
        return is_top ? -ENOSPC : top_wd;
      }
      it = dirs_.emplace(wd, dir{path, true, follow}).first;
    } else {
      bool walked_before = it->second.all;
      it->second.all = true;
      it->second.root = it->second.root || follow;
      if (walked_before && !again) continue;
    }
    int dfd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW));
    if (dfd < 0) {
      if (errno == EACCES) say(said_denied_, "[corral] watch: cannot read " + path + ": permission denied; "
                                             "changes below it are not seen");
      continue;
    }
    DIR* d = ::fdopendir(dfd);
    if (!d) {
      ::close(dfd);
      continue;
    }
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      bool is_dir = e->d_type == DT_DIR;
      if (e->d_type == DT_UNKNOWN) {
        struct stat st;
        is_dir = ::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
      }
      if (!is_dir) continue;  // (a file's events come from its directory's watch)
      std::string child = join(path, name);
      if (!rules_.ignores(child)) todo.push_back(std::move(child));
    }
    ::closedir(d);
  }
  return top_wd;
}

void watcher::drop_tree(const std::string& top) {
  for (auto it = dirs_.begin(); it != dirs_.end();) {
    if (!below_or_at(it->second.path, top)) {
      ++it;
      continue;
    }
    ::inotify_rm_watch(fd_.get(), it->first);  // (its IN_IGNORED finds no entry)
    it = dirs_.erase(it);
  }
}

void watcher::on_readable() {
  alignas(inotify_event) char buf[64 * 1024];
  for (int k = 0; k < reads_per_turn; ++k) {
    ssize_t n = ::read(fd_.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n <= 0) {
      say(said_other_, std::string("[corral] watch: stopped: reading inotify: ") +
                           (n < 0 ? std::strerror(errno) : "end of file"));
      uv_poll_stop(poll_.get());
      return;
    }
    for (ssize_t at = 0; at + static_cast<ssize_t>(sizeof(inotify_event)) <= n;) {
      auto* ev = reinterpret_cast<const inotify_event*>(buf + at);
      std::string name(ev->name, ::strnlen(ev->name, ev->len));
      handle_event(ev->wd, ev->mask, name);
      at += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
    }
  }
  if (rescan_) {
    // Events were lost, directories made among them: walk the tree again.
    rescan_ = false;
    for (auto& r : roots_) {
      if (held(r) && r.name.empty()) add_tree(r.path, true, true);
      else resolve(r, true);  // (what it awaited may have come among them)
    }
  }
}

void watcher::handle_event(int wd, uint32_t mask, const std::string& name) {
  if (mask & IN_Q_OVERFLOW) {
    rescan_ = true;
    say(said_overflow_, "[corral] watch: more changes at once than inotify queues "
                        "(/proc/sys/fs/inotify/max_queued_events): taken as a change, and the tree is walked again");
    if (hooks_.changed) hooks_.changed(roots_.empty() ? std::string("/") : roots_.front().path);
    return;
  }
  auto it = dirs_.find(wd);
  if (it == dirs_.end()) return;  // a watch dropped since
  if (mask & IN_IGNORED) {        // its directory is gone (deleted, unmounted)
    dirs_.erase(it);
    return resolve_orphans();  // a root deleted is awaited again
  }
  const std::string dir_path = it->second.path;
  const bool all = it->second.all;
  if (mask & (IN_DELETE_SELF | IN_MOVE_SELF)) {
    // Below a root, the parent's IN_DELETE / IN_MOVED_FROM says it. A root
    // moved away keeps its watches, on paths no longer ours: they are
    // dropped, and it is awaited where it was.
    if (it->second.root) {
      if (mask & IN_MOVE_SELF) drop_tree(dir_path);
      if (hooks_.changed) hooks_.changed(dir_path);
      return resolve_orphans();
    }
    // A directory watched only for names, moved: they are awaited where
    // they were meant to be. (Deleted, its IN_IGNORED comes next.)
    if (!all && (mask & IN_MOVE_SELF)) {
      ::inotify_rm_watch(fd_.get(), wd);
      dirs_.erase(it);
      resolve_orphans();
    }
    return;
  }
  if (name.empty()) {  // the directory's own metadata
    if (all && hooks_.changed) hooks_.changed(dir_path);
    return;
  }
  std::string path = join(dir_path, name);
  // The roots held here by this name: a root's own name (a file root, or a
  // root awaited in its parent: every event of it is a change), or the next
  // component of a missing root (its appearance is resolved, and is no
  // change until the root itself is there).
  const bool made = mask & (IN_CREATE | IN_MOVED_TO);
  bool chosen = false;
  std::vector<size_t> descend;
  for (size_t k = 0; k < roots_.size(); ++k) {
    auto& r = roots_[k];
    if (r.wd != wd || r.name != name) continue;
    if (r.path == path) chosen = true;
    if (made) descend.push_back(k);
    else if (r.path == path && (mask & (IN_DELETE | IN_MOVED_FROM))) r.exists = false;
  }
  const bool counts = chosen || (all && !rules_.ignores(path));
  if (counts && (mask & IN_ISDIR)) {
    if (mask & IN_MOVED_FROM) {
      drop_tree(path);
      resolve_orphans();
    }
    if (made && all) add_tree(path, false, false);
  }
  // Before the change is said: a root made is watched by then.
  for (size_t k : descend) resolve(roots_[k], roots_[k].path != path);
  if (counts && hooks_.changed) hooks_.changed(path);
}

}  // namespace corral::daemon
