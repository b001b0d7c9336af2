#include "ecosystem.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "corral/fd.hpp"
#include "daemon/command_resolve.hpp"

namespace corral::cli {

namespace {

namespace fs = std::filesystem;

error invalid(const std::string& what) { return error(std::make_error_code(std::errc::invalid_argument), what); }

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// A parse failure inside one app: thrown from the key handlers, caught once
// per app and turned into the one-line error (never crosses a callback).
struct key_error {
  std::string key;
  int line;
  std::string message;
};

int line_of(const YAML::Node& n) { return n.Mark().is_null() ? 0 : n.Mark().line + 1; }

class app_reader {
 public:
  app_reader(eco_app& app, const std::string& env_name) : app_(app), env_name_(env_name) {}

  void read(const YAML::Node& entry) {
    for (auto it = entry.begin(); it != entry.end(); ++it) {
      key_.clear();
      key_line_ = line_of(it->first);
      if (!it->first.IsScalar()) fail("a key must be a name, not a list or a map");
      key_ = it->first.Scalar();
      // YAML and JSON parsers keep the last of two equal keys: the first
      // would be silently ignored.
      if (auto [at, fresh] = app_.key_lines.emplace(key_, key_line_); !fresh)
        fail("duplicate key" + (at->second > 0 ? " (also at line " + std::to_string(at->second) + ")" : std::string()));
      one(key_, it->second);
    }
    if (!env_name_.empty())
      for (const auto& [k, v] : env_selected_) app_.options.env[k] = v;
    if (append_env_ && !env_name_.empty()) app_.options.name_suffix = "-" + env_name_;
    if (app_.options.script.empty()) {
      key_ = "script";
      key_line_ = app_.line;
      fail("missing (the program, script or command to run)");
    }
  }

 private:
  [[noreturn]] void fail(const std::string& message) { throw key_error{key_, key_line_, message}; }

  std::string text(const YAML::Node& n) {
    if (!n.IsScalar()) fail("expected a string");
    return n.Scalar();
  }
  bool boolean(const YAML::Node& n) {
    bool b = false;
    if (!n.IsScalar() || n.Tag() == "!" || !YAML::convert<bool>::decode(n, b)) fail("expected true or false");
    return b;
  }
  int64_t integer(const YAML::Node& n, int64_t lo, int64_t hi) {
    int64_t v = 0;
    if (!n.IsScalar() || n.Tag() == "!" || !YAML::convert<int64_t>::decode(n, v)) fail("expected a whole number");
    if (v < lo || v > hi) fail("expected " + std::to_string(lo) + ".." + std::to_string(hi) + ", got " + std::to_string(v));
    return v;
  }
  int64_t duration(const YAML::Node& n) {
    if (!n.IsScalar()) fail("expected milliseconds or a duration like \"1s\" or \"500ms\"");
    auto d = parse_duration_ms(n.Scalar());
    if (!d) fail(d.err().message());
    return *d;
  }
  std::vector<std::string> strings(const YAML::Node& n) {
    std::vector<std::string> out;
    if (n.IsScalar()) return {n.Scalar()};
    if (!n.IsSequence()) fail("expected a string or a list of strings");
    for (const auto& e : n) {
      if (!e.IsScalar()) fail("expected a list of strings");
      out.push_back(e.Scalar());
    }
    return out;
  }
  std::vector<std::string> words(const YAML::Node& n) {
    if (n.IsSequence()) return strings(n);
    auto w = split_words(text(n));
    if (!w) fail(w.err().message());
    return *w;
  }
  // PM2's watch: true (the cwd), false, a path or a list of paths (relative
  // to the cwd); an empty list is the cwd too, as in PM2.
  std::vector<std::string> watch_list(const YAML::Node& n) {
    bool b = false;
    if (n.IsNull()) return {};
    if (n.IsScalar() && n.Tag() != "!" && YAML::convert<bool>::decode(n, b)) return b ? std::vector<std::string>{"."}
                                                                                       : std::vector<std::string>{};
    if (!n.IsScalar() && !n.IsSequence()) fail("expected true, false, a path or a list of paths");
    auto paths = strings(n);
    if (paths.empty()) paths.push_back(".");
    for (const auto& p : paths)
      if (p.empty()) fail("expected true, false, a path or a list of paths, got an empty path");
    return paths;
  }
  // PM2's filter_env: true (every variable of the daemon's), false, a prefix
  // or a list of them.
  std::vector<std::string> filter_list(const YAML::Node& n) {
    bool b = false;
    if (n.IsNull()) return {};
    if (n.IsScalar() && n.Tag() != "!" && YAML::convert<bool>::decode(n, b))
      return b ? std::vector<std::string>{""} : std::vector<std::string>{};
    if (!n.IsScalar() && !n.IsSequence()) fail("expected true, false, a name prefix or a list of them");
    auto prefixes = strings(n);
    for (const auto& p : prefixes)
      if (p.empty()) fail("expected true, false, a name prefix or a list of them, got an empty prefix");
    return prefixes;
  }
  std::map<std::string, std::string> env_map(const YAML::Node& n) {
    if (n.IsNull()) return {};
    if (!n.IsMap()) fail("expected a map of VARIABLE: value");
    std::map<std::string, std::string> out;
    for (auto it = n.begin(); it != n.end(); ++it) {
      if (!it->first.IsScalar()) fail("a variable name must be a string, not a list or a map");
      std::string k = it->first.Scalar();
      if (k.empty() || k.find('=') != std::string::npos) fail("bad variable name '" + k + "'");
      if (out.count(k)) fail(k + ": duplicate variable");
      // PM2 stringifies numbers and booleans; a nested map is a mistake.
      if (it->second.IsNull()) out[k] = "";
      else if (!it->second.IsScalar()) fail(k + ": expected a string, number or boolean");
      else out[k] = it->second.Scalar();
    }
    return out;
  }

  void one(const std::string& key, const YAML::Node& v) {
    auto& o = app_.options;
    if (key == "name") o.name = text(v);
    else if (key == "namespace") o.namespace_name = text(v);
    else if (key == "script") o.script = text(v);
    else if (key == "args") o.args = words(v);
    else if (key == "cwd") o.cwd = text(v);
    else if (key == "interpreter" || key == "exec_interpreter") o.interpreter = text(v);
    else if (key == "interpreter_args" || key == "node_args") o.interpreter_args = words(v);
    else if (key == "instances") {
      int64_t n = 0;
      if (!v.IsScalar()) fail("expected a number or \"max\"");
      o.instances = v.Tag() != "!" && YAML::convert<int64_t>::decode(v, n) ? std::to_string(integer(v, -1, daemon::limits::max_instances))
                                                                             : v.Scalar();
    }
    else if (key == "exec_mode") {
      // Cluster mode is the daemon owning the port (port/listen); without one
      // "cluster" means several instances, which `instances` already says.
      std::string m = text(v);
      if (m != "fork" && m != "cluster" && m != "fork_mode" && m != "cluster_mode")
        fail("expected fork or cluster, got '" + m + "'");
    } else if (key == "env") {
      for (const auto& [k, val] : env_map(v)) o.env[k] = val;
    } else if (key.rfind("env_", 0) == 0 && key.size() > 4) {
      auto m = env_map(v);
      if (key.substr(4) == env_name_) {
        env_selected_ = m;
        app_.has_env_name = true;
      }
    } else if (key == "port") o.port = static_cast<int>(integer(v, 0, 65535));
    else if (key == "listen") o.listen = strings(v);
    else if (key == "lb") o.lb = text(v);
    else if (key == "defer_accept") o.defer_accept = boolean(v);
    else if (key == "autorestart") o.autorestart = boolean(v);
    else if (key == "watch") o.watch = watch_list(v);
    else if (key == "ignore_watch") o.ignore_watch = strings(v);
    else if (key == "watch_delay") o.watch_delay = duration(v);
    else if (key == "watch_options")
      fail("not supported by corral: it is chokidar's options object (PM2's file watcher); corral watches with "
           "inotify, leaves out what ignore_watch says, and follows no symbolic link below a watched path");
    else if (key == "max_restarts") o.max_restarts = static_cast<int>(integer(v, 0, daemon::limits::max_restarts));
    else if (key == "min_uptime") o.min_uptime = duration(v);
    else if (key == "restart_delay") o.restart_delay = duration(v);
    else if (key == "exp_backoff_restart_delay") o.exp_backoff_restart_delay = duration(v);
    else if (key == "kill_timeout") o.kill_timeout = duration(v);
    else if (key == "listen_timeout") o.listen_timeout = duration(v);
    else if (key == "kill_signal") o.kill_signal = text(v);
    else if (key == "shutdown_with_message") o.shutdown_with_message = boolean(v);
    else if (key == "wait_ready") o.wait_ready = boolean(v);
    else if (key == "stop_exit_codes") {
      o.stop_exit_codes.clear();
      if (v.IsSequence())
        for (const auto& e : v)
          o.stop_exit_codes.push_back(static_cast<int>(integer(e, 0, daemon::limits::max_exit_code)));
      else
        o.stop_exit_codes.push_back(static_cast<int>(integer(v, 0, daemon::limits::max_exit_code)));
    } else if (key == "time") o.time = boolean(v);
    else if (key == "log_date_format") o.log_date_format = text(v);
    else if (key == "log_type") o.log_type = text(v);
    else if (key == "out_file" || key == "output" || key == "out" || key == "out_log") o.out_file = text(v);
    else if (key == "error_file" || key == "error" || key == "err" || key == "err_file" || key == "err_log") o.error_file = text(v);
    else if (key == "log_file" || key == "log") o.log_file = text(v);
    else if (key == "pid_file" || key == "pid") o.pid_file = text(v);
    else if (key == "instance_var") o.instance_var = text(v);
    else if (key == "uid" || key == "user") o.uid = text(v);
    else if (key == "gid") o.gid = text(v);
    else if (key == "autostart") o.autostart = boolean(v);
    else if (key == "filter_env") o.filter_env = filter_list(v);
    else if (key == "disable_logs") o.disable_logs = boolean(v);
    else if (key == "append_env_to_name") append_env_ = boolean(v);
    else if (key == "treekill") {
      if (!boolean(v))
        fail("false is not supported by corral: it stops an app's whole process group, as PM2's default (true) "
             "stops its process tree");
    } else if (key == "vizion" || key == "source_map_support" || key == "force") {
      // What corral never does: off is its behaviour, on is refused.
      if (boolean(v)) fail(std::string("true is not supported by corral: ") + why_not(key));
    } else if (key == "increment_var") o.increment_var = text(v);
    else if (key == "merge_logs" || key == "combine_logs") o.merge_logs = boolean(v);
    else if (key == "max_log_size") o.max_log_size = text(v);
    else if (key == "max_memory_restart") o.max_memory_restart = text(v);
    else if (key == "cron_restart") o.cron_restart = text(v);
    else if (key == "log_retain") o.log_retain = static_cast<int>(integer(v, 0, daemon::limits::max_log_retain));
    else if (pm2_only(key)) fail("PM2 key not supported by corral");
    else fail("unknown key (see docs/ecosystem.md)");
  }

  static bool pm2_only(const std::string& key) {
    static const std::set<std::string> keys{"post_update"};
    return keys.count(key) > 0;
  }
  static const char* why_not(const std::string& key) {
    if (key == "vizion") return "it is PM2's git metadata of the app's directory, which corral does not collect";
    if (key == "source_map_support") return "it is Node's; give node --enable-source-maps (interpreter_args)";
    return "an app is known by its name; give a second one another name to run the script twice";  // force
  }

  eco_app& app_;
  const std::string& env_name_;
  std::map<std::string, std::string> env_selected_;
  bool append_env_ = false;
  std::string key_;
  int key_line_ = 0;
};

std::string where(const std::string& file, int line) {
  return line > 0 ? file + ":" + std::to_string(line) : file;
}

std::string app_label(const eco_app& a, size_t index) {
  return a.options.name.empty() ? "app #" + std::to_string(index + 1) : "app '" + a.options.name + "'";
}

// JSON: nlohmann checks the syntax (its byte offset gives the line); the tree
// is then read by yaml-cpp, whose nodes know their lines (JSON is YAML).
result<YAML::Node> load_tree(const std::string& text, eco_format format, const std::string& file) {
  if (format != eco_format::yaml) {
    try {
      auto parsed = nlohmann::json::parse(text);
      (void)parsed;
    } catch (const nlohmann::json::parse_error& e) {
      size_t upto = std::min<size_t>(e.byte > 0 ? e.byte - 1 : 0, text.size());
      int line = 1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(upto), '\n'));
      std::string what = e.what();
      // "[json.exception.parse_error.101] parse error at line 3, column 5: syntax error ..."
      auto col = what.find(", column ");
      if (col != std::string::npos && what.find(": ", col) != std::string::npos) what = what.substr(what.find(": ", col) + 2);
      return invalid(where(file, format == eco_format::js ? 0 : line) + ": bad JSON: " + what);
    }
  }
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return invalid(where(file, e.mark.is_null() ? 0 : e.mark.line + 1) + ": bad " +
                   (format == eco_format::yaml ? "YAML" : "JSON") + ": " + e.msg);
  }
}

result<std::string> read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return error(std::error_code(errno, std::generic_category()), path + ": " + std::strerror(errno));
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

const char* const no_apps_hint = "; expected { apps: [...] } or an array of apps";
const std::string exports_marker = "corral: exports: ";

// PM2's ecosystem.config.js is a program: node evaluates it and prints its
// exports as JSON. Run without a shell; stderr kept for the error line.
result<std::string> eval_js(const std::string& path, const std::string& path_env) {
  auto node = daemon::resolve_command("node", {}, "", "/", path_env);
  if (!node)
    return invalid(path + ": a .config.js file needs node to evaluate it, and node is not in PATH "
                          "(or write the apps as .yaml or .json)");
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return error(std::error_code(errno, std::generic_category()), "pipe");
  if (::pipe2(err, O_CLOEXEC) != 0) {
    ::close(out[0]);
    ::close(out[1]);
    return error(std::error_code(errno, std::generic_category()), "pipe");
  }
  unique_fd out_r(out[0]), out_w(out[1]), err_r(err[0]), err_w(err[1]);
  std::string prog = node->argv[0];
  // JSON.stringify gives undefined, not text, for exports that are undefined
  // (`module.exports = undefined`) or a function: said on stderr after a
  // marker, for one line of ours rather than node's stack about write().
  const std::string script =
      "const m = require(process.argv[1]); const t = JSON.stringify(m);"
      "if (typeof t !== 'string') {"
      "  process.stderr.write('" + exports_marker + "' + (m === undefined ? 'undefined' : 'a ' + typeof m));"
      "  process.exit(3);"
      "}"
      "process.stdout.write(t);";
  pid_t pid = ::fork();
  if (pid < 0) return error(std::error_code(errno, std::generic_category()), "fork");
  if (pid == 0) {
    ::dup2(out_w.get(), 1);
    ::dup2(err_w.get(), 2);
    ::execl(prog.c_str(), prog.c_str(), "-e", script.c_str(), path.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  out_w.reset();
  err_w.reset();
  // Drain both pipes together: node must never block on a full one.
  std::string json_text, err_text;
  pollfd fds[2] = {{out_r.get(), POLLIN, 0}, {err_r.get(), POLLIN, 0}};
  std::string* sinks[2] = {&json_text, &err_text};
  int open_count = 2;
  while (open_count > 0) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int k = 0; k < 2; ++k) {
      if (fds[k].fd < 0 || fds[k].revents == 0) continue;
      char buf[65536];
      ssize_t n = ::read(fds[k].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[k]->append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        fds[k].fd = -1;
        --open_count;
      }
    }
  }
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return json_text;
  if (WIFEXITED(st) && WEXITSTATUS(st) == 3 && err_text.rfind(exports_marker, 0) == 0)
    return invalid(path + ": module.exports is " + err_text.substr(exports_marker.size()) + no_apps_hint);
  // node prints "<file>:<line>\n<code>\n<caret>\n\nSyntaxError: ..."; keep the
  // location and the error line.
  std::istringstream lines(err_text);
  std::string l, loc, what;
  while (std::getline(lines, l)) {
    if (loc.empty() && l.rfind(path + ":", 0) == 0) loc = l;
    if (what.empty() && l.find("Error") != std::string::npos && l.find(':') != std::string::npos &&
        l.rfind("    at ", 0) != 0 && l.rfind("node:", 0) != 0)
      what = l;
  }
  return invalid((loc.empty() ? path : loc) + ": node could not evaluate it: " +
                 (what.empty() ? "exit status " + std::to_string(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st))
                               : what));
}

}  // namespace

std::optional<eco_format> ecosystem_format(const std::string& path) {
  if (ends_with(path, ".yaml") || ends_with(path, ".yml")) return eco_format::yaml;
  if (ends_with(path, ".json")) return eco_format::json;
  if (ends_with(path, ".config.js") || ends_with(path, ".config.cjs")) return eco_format::js;
  return std::nullopt;
}

result<std::vector<std::string>> split_words(const std::string& text) {
  std::vector<std::string> out;
  std::string word;
  bool in_word = false;
  char quote = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (quote) {
      if (c == quote) quote = 0;
      else if (c == '\\' && quote == '"' && i + 1 < text.size() && std::strchr("\"\\$`", text[i + 1])) word += text[++i];
      else word += c;
    } else if (c == '\'' || c == '"') {
      quote = c;
      in_word = true;
    } else if (c == '\\' && i + 1 < text.size()) {
      word += text[++i];
      in_word = true;
    } else if (c == ' ' || c == '\t' || c == '\n') {
      if (in_word) out.push_back(std::move(word));
      word.clear();
      in_word = false;
    } else {
      word += c;
      in_word = true;
    }
  }
  if (quote) return invalid(std::string("unterminated ") + quote + " quote");
  if (in_word) out.push_back(std::move(word));
  return out;
}

result<int64_t> parse_duration_ms(const std::string& text) {
  auto bad = [&] { return invalid("expected milliseconds or a duration like \"1s\" or \"500ms\", got '" + text + "'"); };
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (...) {
    return bad();
  }
  if (text.empty() || !(std::isdigit(static_cast<unsigned char>(text[0])) || text[0] == '.')) return bad();
  std::string unit = text.substr(used);
  double mult = 0;
  if (unit.empty() || unit == "ms") mult = 1;
  else if (unit == "s") mult = 1000;
  else if (unit == "m" || unit == "min") mult = 60'000;
  else if (unit == "h") mult = 3'600'000;
  else return bad();
  double ms = v * mult;
  if (!(ms >= 0) || ms > static_cast<double>(daemon::limits::max_ms) || (unit.empty() && v != std::floor(v))) return bad();
  return static_cast<int64_t>(std::llround(ms));
}

result<std::vector<eco_app>> parse_ecosystem(const std::string& text, eco_format format, const std::string& file,
                                             const std::string& env_name) {
  auto tree = load_tree(text, format, file);
  if (!tree) return tree.err();
  const int no_line = format == eco_format::js ? 0 : -1;  // js: the lines are node's, not the file's
  auto at = [&](const YAML::Node& n) { return no_line == 0 ? 0 : line_of(n); };
  YAML::Node root = *tree;
  YAML::Node list = root;
  if (root.IsMap()) {
    int apps_line = -1;
    for (auto it = root.begin(); it != root.end(); ++it) {
      if (!it->first.IsScalar())
        return invalid(where(file, at(it->first)) + ": a key must be a name, not a list or a map");
      // PM2's deploy section (`pm2 deploy`: git over ssh), which `pm2 init`
      // writes into every new file: not corral's business, and no reason to
      // refuse the apps beside it.
      if (it->first.Scalar() == "deploy") continue;
      if (it->first.Scalar() != "apps")
        return invalid(where(file, at(it->first)) + ": " + it->first.Scalar() +
                       ": unknown top-level key (expected apps: followed by a list of apps)");
      if (apps_line >= 0)
        return invalid(where(file, at(it->first)) + ": apps: duplicate key" +
                       (apps_line > 0 ? " (also at line " + std::to_string(apps_line) + ")" : ""));
      apps_line = at(it->first);
    }
    list = root["apps"];
    // A .config.js that sets nothing exports node's default, {}.
    if (!list && format == eco_format::js) return invalid(file + ": module.exports has no apps" + no_apps_hint);
    if (!list) return invalid(where(file, at(root)) + ": apps: missing");
  }
  if (!list.IsSequence())
    return invalid(where(file, at(list)) + ": expected apps: followed by a list of apps (or a bare list)");
  if (list.size() == 0) return invalid(where(file, at(list)) + ": the list of apps is empty");
  std::vector<eco_app> apps;
  for (size_t k = 0; k < list.size(); ++k) {
    const YAML::Node& entry = list[k];
    eco_app a;
    a.line = at(entry);
    if (!entry.IsMap())
      return invalid(where(file, a.line) + ": app #" + std::to_string(k + 1) + ": expected a map of keys (name, script, ...)");
    // The name first, so that every error names the app.
    if (entry["name"] && entry["name"].IsScalar()) a.options.name = entry["name"].Scalar();
    try {
      app_reader(a, env_name).read(entry);
    } catch (const key_error& e) {
      return invalid(where(file, no_line == 0 ? 0 : e.line) + ": " + app_label(a, k) + ": " +
                     (e.key.empty() ? "" : e.key + ": ") + e.message);
    }
    if (no_line == 0) {
      a.line = 0;
      a.key_lines.clear();
    }
    apps.push_back(std::move(a));
  }
  // A misspelt --env would start the apps without the variables asked for.
  if (!env_name.empty() && std::none_of(apps.begin(), apps.end(), [](const eco_app& a) { return a.has_env_name; }))
    return invalid(file + ": --env " + env_name + ": no app has env_" + env_name);
  return apps;
}

namespace {

result<std::vector<eco_app>> read_ecosystem(const std::string& path, const std::string& env_name,
                                            const std::string& path_env) {
  auto format = ecosystem_format(path);
  if (!format) return invalid(path + ": not an ecosystem file (.yaml, .yml, .json, .config.js or .config.cjs)");
  std::error_code ec;
  fs::path abs = fs::absolute(path, ec).lexically_normal();
  auto text = *format == eco_format::js ? eval_js(abs.string(), path_env) : read_text(path);
  if (!text) return text.err();
  return parse_ecosystem(*text, *format, path, env_name);
}

}  // namespace

result<std::vector<std::string>> ecosystem_app_names(const std::string& path, const std::string& path_env,
                                                     const std::string& env_name) {
  auto apps = read_ecosystem(path, env_name, path_env);
  if (!apps) return apps.err();
  std::vector<std::string> names;
  for (const auto& a : *apps)
    names.push_back((a.options.name.empty() ? daemon::default_app_name(a.options.script) : a.options.name) +
                    a.options.name_suffix);
  return names;
}

result<std::vector<daemon::app_spec>> load_ecosystem(const std::string& path, const eco_load_options& options) {
  auto apps = read_ecosystem(path, options.env_name, options.path_env);
  if (!apps) return apps.err();
  std::error_code ec;
  std::string dir = fs::absolute(path, ec).lexically_normal().parent_path().string();
  std::vector<daemon::app_spec> specs;
  std::map<std::string, int> lines_of_names;
  for (size_t k = 0; k < apps->size(); ++k) {
    eco_app& a = (*apps)[k];
    for (const auto& [kk, v] : options.env) a.options.env[kk] = v;
    auto out = make_app_spec(a.options, dir, options.path_env);
    if (!out.spec)
      return invalid(where(path, a.line_of(out.error.field)) + ": " + app_label(a, k) + ": " + out.error.field + ": " +
                     out.error.message);
    auto [it, fresh] = lines_of_names.emplace(out.spec->name, a.line);
    if (!fresh)
      return invalid(where(path, a.line_of("name")) + ": app '" + out.spec->name + "': name: duplicate app name" +
                     (it->second > 0 ? " (also at line " + std::to_string(it->second) + ")" : ""));
    specs.push_back(std::move(*out.spec));
  }
  for (const auto& name : options.only)
    if (!lines_of_names.count(name)) return invalid(path + ": --only: no app named '" + name + "' in the file");
  if (!options.only.empty())
    std::erase_if(specs, [&](const daemon::app_spec& s) {
      return std::find(options.only.begin(), options.only.end(), s.name) == options.only.end();
    });
  return specs;
}

namespace {

YAML::Node yaml_of(const nlohmann::ordered_json& j) {
  if (j.is_object()) {
    YAML::Node n(YAML::NodeType::Map);
    for (auto& [k, v] : j.items()) n[k] = yaml_of(v);
    return n;
  }
  if (j.is_array()) {
    YAML::Node n(YAML::NodeType::Sequence);
    for (auto& v : j) n.push_back(yaml_of(v));
    return n;
  }
  if (j.is_string()) return YAML::Node(j.get<std::string>());
  if (j.is_boolean()) return YAML::Node(j.get<bool>());
  return YAML::Node(j.dump());  // (numbers)
}

}  // namespace

status write_ecosystem_template(const std::string& path) {
  auto format = ecosystem_format(path);
  if (!format)
    return error(std::make_error_code(std::errc::invalid_argument),
                 "init: " + path + ": the name must end in .config.js, .yaml, .yml or .json");
  // One cluster app serving a port, one background worker: what most
  // deployments start from. Every key: docs/ecosystem.md.
  nlohmann::ordered_json apps = nlohmann::ordered_json::array();
  apps.push_back({{"name", "web"},
                  {"script", "./server.js"},
                  {"instances", "max"},
                  {"port", 3000},
                  {"env", {{"NODE_ENV", "development"}}},
                  {"env_production", {{"NODE_ENV", "production"}}}});
  apps.push_back({{"name", "worker"},
                  {"script", "./worker.py"},
                  {"max_memory_restart", "300M"},
                  {"cron_restart", "0 3 * * *"}});
  nlohmann::ordered_json doc = {{"apps", apps}};
  const std::string about =
      "corral's ecosystem file (PM2's format): `corral start " + std::filesystem::path(path).filename().string() +
      "` starts its apps, `--env production` with env_production.\n"
      "web: one instance per CPU, in cluster mode: the daemon owns port 3000 and hands it to every instance\n"
      "(LISTEN_FDS: fd 3), so restarts and reloads refuse no connection. worker: restarted over 300M of\n"
      "memory, and every night at 3. Scripts are relative to this file. Every key: corral's docs/ecosystem.md.\n";
  auto commented = [&](const char* mark) {
    std::string out;
    std::istringstream lines(about);
    for (std::string l; std::getline(lines, l);) out += mark + l + "\n";
    return out;
  };
  std::string text;
  if (*format == eco_format::js) text = commented("// ") + "module.exports = " + doc.dump(2) + ";\n";
  else if (*format == eco_format::json) text = doc.dump(2) + "\n";  // (JSON has no comments)
  else {
    YAML::Emitter e;
    e << yaml_of(doc);
    text = commented("# ") + e.c_str() + "\n";
  }
  // O_EXCL: never over a file already there.
  unique_fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!fd)
    return error(std::error_code(errno, std::generic_category()),
                 "init: " + path + ": " + std::strerror(errno) + (errno == EEXIST ? " (it is left as it is)" : ""));
  for (size_t off = 0; off < text.size();) {
    ssize_t n = ::write(fd.get(), text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return error(std::error_code(errno, std::generic_category()), "init: " + path + ": " + std::strerror(errno));
    off += static_cast<size_t>(n);
  }
  return {};
}

}  // namespace corral::cli
