#include "daemon/home.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace corral::daemon {

home_paths home_at(const std::string& dir) {
  home_paths h;
  h.dir = dir;
  // Absolute: instances get it as CORRAL_HOME and run elsewhere.
  if (!h.dir.empty() && h.dir[0] != '/') {
    char cwd[4096];
    if (::getcwd(cwd, sizeof cwd)) h.dir = std::string(cwd) + "/" + h.dir;
  }
  while (h.dir.size() > 1 && h.dir.back() == '/') h.dir.pop_back();
  h.socket = h.dir + "/corral.sock";
  h.pid = h.dir + "/daemon.pid";
  h.lock = h.dir + "/daemon.lock";
  h.state = h.dir + "/state.json";
  h.dump = h.dir + "/dump.json";
  h.logs = h.dir + "/logs";
  h.daemon_log = h.dir + "/daemon.log";
  return h;
}

home_paths resolve_home() {
  if (const char* env = std::getenv("CORRAL_HOME"); env && *env) return home_at(env);
  const char* home = std::getenv("HOME");
  return home_at(std::string(home && *home ? home : "/tmp") + "/.corral");
}

namespace {

status make_private_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST)
    return error(std::error_code(errno, std::generic_category()),
                 "cannot create " + path + ": " + std::strerror(errno));
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0)
    return error(std::error_code(errno, std::generic_category()), "cannot stat " + path + ": " + std::strerror(errno));
  if (!S_ISDIR(st.st_mode))
    return error(std::make_error_code(std::errc::not_a_directory), path + " is not a directory");
  if (st.st_uid != ::geteuid())
    return error(std::make_error_code(std::errc::permission_denied),
                 path + " belongs to uid " + std::to_string(st.st_uid) + ", not to us");
  if ((st.st_mode & 077) != 0 && ::chmod(path.c_str(), 0700) != 0)
    return error(std::error_code(errno, std::generic_category()), "cannot chmod 0700 " + path);
  return {};
}

}  // namespace

status ensure_home(const home_paths& h) {
  if (auto s = make_private_dir(h.dir); !s) return s;
  return make_private_dir(h.logs);
}

}  // namespace corral::daemon
