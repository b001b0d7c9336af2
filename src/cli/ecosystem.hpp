// Ecosystem files: PM2's format for a list of apps, so that PM2 users can
// bring theirs. `corral start <file>` reads YAML (.yaml .yml), JSON (.json)
// or PM2's ecosystem.config.js (.config.js .config.cjs, evaluated by node).
// The keys and the errors are specified in docs/ecosystem.md.
//
// Parsing is pure (text in, app_options out); loading adds reading the file,
// node for .config.js, and make_app_spec for every app. Every error is one
// line: "<file>:<line>: app '<name>': <key>: <what>".
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "app_options.hpp"
#include "corral/error.hpp"
#include "daemon/app_spec.hpp"

namespace corral::cli {

enum class eco_format { yaml, json, js };

/// The format an ecosystem file's name says, or nullopt if the name is not
/// one of an ecosystem file.
std::optional<eco_format> ecosystem_format(const std::string& path);

/// `corral init [file]` (PM2's init and ecosystem): writes a starting
/// ecosystem file, in the format its name says, that `corral start` takes
/// once its scripts exist. An existing file is left alone (an error).
status write_ecosystem_template(const std::string& path);

struct eco_app {
  app_options options;
  /// 1-based lines of the entry and of each of its keys; 0 when unknown
  /// (a .config.js: node's JSON has no lines of the user's file).
  int line = 0;
  std::map<std::string, int> key_lines;
  /// The entry has env_<env_name> (parse_ecosystem's env_name).
  bool has_env_name = false;
  int line_of(const std::string& key) const {
    auto it = key_lines.find(key);
    return it == key_lines.end() ? line : it->second;
  }
};

/// Parses an ecosystem file's text. `file` names it in errors; `env_name`
/// (may be empty) selects the env_<env_name> maps, merged over env.
/// Relative cwds stay relative here (load_ecosystem resolves them against
/// the file's directory).
result<std::vector<eco_app>> parse_ecosystem(const std::string& text, eco_format format, const std::string& file,
                                             const std::string& env_name);

struct eco_load_options {
  std::string env_name;                       // --env <name>
  std::map<std::string, std::string> env;     // --env K=V, over every app's env
  std::vector<std::string> only;              // --only a,b: the others are checked, not returned
  std::string path_env;                       // $PATH
};

/// Reads, parses and checks every app of the file (all of them, even with
/// `only`), resolving commands and cwds against the file's directory. Fails
/// on the first bad app, with nothing returned.
result<std::vector<daemon::app_spec>> load_ecosystem(const std::string& path, const eco_load_options& options);

/// The names of the file's apps, for stop, restart, reload and delete: the
/// file is read and parsed as for load_ecosystem, but the apps are not
/// checked (their scripts and cwds may be gone by now).
/// `env_name` (--env NAME) names them as append_env_to_name does.
result<std::vector<std::string>> ecosystem_app_names(const std::string& path, const std::string& path_env,
                                                     const std::string& env_name = "");

/// Splits a string as a shell splits words: blanks, '...', "..." and \.
result<std::vector<std::string>> split_words(const std::string& text);

/// "1500", "1.5s", "500ms", "2m", "1h": milliseconds.
result<int64_t> parse_duration_ms(const std::string& text);

}  // namespace corral::cli
