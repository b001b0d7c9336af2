#include "daemon/watcher.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

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
  for (auto& r : w->roots_) w->watch_root(r);
  return w;
}

void watcher::say(bool& said, const std::string& line) {
  if (said) return;
  said = true;
  if (hooks_.trouble) hooks_.trouble(line);
}

void watcher::rewatch_missing_roots() {
  for (auto& r : roots_)
    if (!root_watched(r)) watch_root(r);
}

bool watcher::root_watched(const root& r) const {
  std::string parent = r.path.substr(0, std::max<size_t>(1, r.path.rfind('/')));
  std::string name = r.path.substr(r.path.rfind('/') + 1);
  for (const auto& [wd, d] : dirs_) {
    if (r.is_dir && d.path == r.path && d.all) return true;
    if (!r.is_dir && d.path == parent && d.names.count(name)) return true;
  }
  return false;
}

void watcher::watch_root(root& r) {
  struct stat st;
  if (::stat(r.path.c_str(), &st) != 0) {
    say(said_missing_, "[corral] watch: cannot watch " + r.path + ": " + std::strerror(errno) +
                           "; it is watched again at the app's next restart");
    return;
  }
  r.is_dir = S_ISDIR(st.st_mode);
  if (r.is_dir) return add_tree(r.path, true, false);
  // A file: through its directory, by name (an editor's save may replace it).
  auto slash = r.path.rfind('/');
  std::string parent = slash == 0 ? "/" : r.path.substr(0, slash);
  int wd = add_watch(parent, true);
  if (wd < 0) return;
  auto [it, fresh] = dirs_.try_emplace(wd);
  if (fresh) it->second.path = parent;
  it->second.names.insert(r.path.substr(slash + 1));
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

void watcher::add_tree(const std::string& top, bool is_root, bool again) {
  std::vector<std::string> todo{top};
  // A bind mount can show a directory below itself: each is walked once.
  std::set<int> walked;
  bool first = true;
  while (!todo.empty()) {
    std::string path = std::move(todo.back());
    todo.pop_back();
    const bool follow = first && is_root;  // only a root may be a symbolic link
    first = false;
    int wd = add_watch(path, follow);
    if (wd == -ENOSPC) return;  // no watch will be had below either
    if (wd < 0 || !walked.insert(wd).second) continue;
    auto it = dirs_.find(wd);
    if (it == dirs_.end()) {
      if (dirs_.size() >= max_dirs_) {
        ::inotify_rm_watch(fd_.get(), wd);
        say(said_cap_, "[corral] watch: watching only " + std::to_string(max_dirs_) +
                           " directories (the daemon's limit for one app, CORRAL_WATCH_MAX_DIRS); changes below "
                           "the others are not seen: leave some out with ignore_watch");
        return;
      }
      it = dirs_.emplace(wd, dir{path, true, {}, follow}).first;
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
    for (auto& r : roots_)
      if (r.is_dir) add_tree(r.path, true, true);
    rewatch_missing_roots();
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
    return;
  }
  const std::string dir_path = it->second.path;
  const bool all = it->second.all;
  if (mask & (IN_DELETE_SELF | IN_MOVE_SELF)) {
    // Below a root, the parent's IN_DELETE / IN_MOVED_FROM says it. A root
    // moved away keeps its watches, on paths no longer ours.
    if (!it->second.root) return;
    if (mask & IN_MOVE_SELF) drop_tree(dir_path);
    if (hooks_.changed) hooks_.changed(dir_path);
    return;
  }
  if (name.empty()) {  // the directory's own metadata
    if (all && hooks_.changed) hooks_.changed(dir_path);
    return;
  }
  std::string path = join(dir_path, name);
  const bool chosen = it->second.names.count(name) > 0;  // a file root
  if (!chosen && (!all || rules_.ignores(path))) return;
  if (mask & IN_ISDIR) {
    if (mask & IN_MOVED_FROM) drop_tree(path);
    if ((mask & (IN_CREATE | IN_MOVED_TO)) && all) add_tree(path, false, false);
  }
  if (hooks_.changed) hooks_.changed(path);
}

}  // namespace corral::daemon
