#include "startup.hpp"

#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

#include "daemon/state_file.hpp"
#include "daemon/systemd_unit.hpp"
#include "daemon/users.hpp"

extern char** environ;

namespace corral::cli {

namespace {

int fail(const std::string& msg) {
  std::fprintf(stderr, "corral: %s\n", msg.c_str());
  return 1;
}

std::string self_exe() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

struct target {
  daemon::startup_unit unit;
  std::string dir;
  std::string path;
  std::string systemctl_scope;  // "" or "--user"
};

std::string user_name() {
  if (auto u = daemon::find_user(::geteuid())) return u->name;
  const char* u = std::getenv("USER");
  return u && *u ? u : std::to_string(::geteuid());
}

target resolve(const daemon::home_paths& home, const startup_options& o) {
  target t;
  t.unit.system = o.system || (!o.user && ::geteuid() == 0);
  t.unit.exe = self_exe();
  t.unit.user = user_name();
  t.unit.home = home.dir;
  if (const char* p = std::getenv("PATH")) t.unit.path_env = p;
  if (!o.unit_dir.empty()) {
    t.dir = o.unit_dir;
  } else if (t.unit.system) {
    t.dir = "/etc/systemd/system";
  } else {
    const char* xdg = std::getenv("XDG_CONFIG_HOME");
    const char* h = std::getenv("HOME");
    std::string base = xdg && *xdg ? xdg : std::string(h ? h : "") + "/.config";
    t.dir = base + "/systemd/user";
  }
  t.path = t.dir + "/" + daemon::unit_file_name(t.unit);
  t.systemctl_scope = t.unit.system ? "" : "--user";
  return t;
}

std::string find_in_path(const std::string& prog) {
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/bin:/bin";
  for (size_t start = 0; start <= p.size();) {
    size_t end = p.find(':', start);
    if (end == std::string::npos) end = p.size();
    std::string cand = p.substr(start, end - start) + "/" + prog;
    if (end > start && ::access(cand.c_str(), X_OK) == 0) return cand;
    start = end + 1;
  }
  return {};
}

std::string systemctl_line(const target& t, const std::string& verb) {
  return "systemctl " + (t.systemctl_scope.empty() ? "" : t.systemctl_scope + " ") + verb;
}

// Runs `systemctl [--user] <args...>`; returns its exit status (127: could not run).
int systemctl(const std::string& exe, const target& t, std::vector<std::string> args) {
  std::vector<std::string> argv{exe};
  if (!t.systemctl_scope.empty()) argv.push_back(t.systemctl_scope);
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  pid_t pid = 0;
  if (::posix_spawn(&pid, exe.c_str(), nullptr, nullptr, cargv.data(), environ) != 0) return 127;
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

}  // namespace

int run_startup(const daemon::home_paths& home, const startup_options& o) {
  if (o.system && o.user) return fail("startup: --system and --user exclude each other");
  target t = resolve(home, o);
  if (t.unit.exe.empty()) return fail("startup: cannot find the corral binary (/proc/self/exe)");
  std::string text = daemon::render_unit(t.unit);
  std::string name = daemon::unit_file_name(t.unit);
  if (!o.install) {
    std::printf("# corral startup --install writes this to %s\n%s", t.path.c_str(), text.c_str());
    return 0;
  }
  std::error_code ec;
  std::filesystem::create_directories(t.dir, ec);
  if (ec) return fail("startup: cannot create " + t.dir + ": " + ec.message());
  if (auto s = daemon::write_file_atomic(t.path, text); !s) return fail("startup: " + s.err().message());
  ::chmod(t.path.c_str(), 0644);  // systemd reads it; it holds no secret
  std::printf("wrote %s\n", t.path.c_str());
  std::string enable = systemctl_line(t, "daemon-reload") + " && " + systemctl_line(t, "enable " + name);
  std::string exe = find_in_path("systemctl");
  if (!o.unit_dir.empty() || exe.empty()) {
    std::printf("%s; to start it at boot, run: %s\n",
                o.unit_dir.empty() ? "systemctl is not installed" : "not enabling a unit outside systemd's directories",
                enable.c_str());
  } else {
    if (systemctl(exe, t, {"daemon-reload"}) != 0 || systemctl(exe, t, {"enable", name}) != 0)
      return fail("startup: " + enable + " failed (the unit is written at " + t.path + ")");
    std::printf("enabled %s: the daemon starts at boot (start it now with: %s)\n", name.c_str(),
                systemctl_line(t, "start " + name).c_str());
  }
  if (!t.unit.system)
    std::printf("a user unit starts at boot only if the user lingers: loginctl enable-linger %s\n", t.unit.user.c_str());
  return 0;
}

int run_unstartup(const startup_options& o) {
  if (o.system && o.user) return fail("unstartup: --system and --user exclude each other");
  target t = resolve(daemon::home_paths{}, o);
  std::string name = daemon::unit_file_name(t.unit);
  struct stat st {};
  if (::stat(t.path.c_str(), &st) != 0) return fail("unstartup: no startup unit at " + t.path);
  std::string exe = o.unit_dir.empty() ? find_in_path("systemctl") : std::string();
  if (!exe.empty()) (void)systemctl(exe, t, {"disable", name});  // not enabled is fine
  if (::unlink(t.path.c_str()) != 0) return fail("unstartup: cannot remove " + t.path + ": " + std::strerror(errno));
  if (!exe.empty()) (void)systemctl(exe, t, {"daemon-reload"});
  std::printf("removed %s\n", t.path.c_str());
  return 0;
}

}  // namespace corral::cli
