// How `corral start <command or file>` becomes an argv, without a shell
// unless the user wrote shell syntax:
//   - a string with shell syntax (| & ; < > ( ) $ ` \ " ' * ? [ ] # ~ { } or a
//     newline) runs as `/bin/sh -c <string>`;
//   - a string with spaces and no shell syntax is split on whitespace;
//   - a .py file runs under python3, a .js/.mjs/.cjs file under node, a .sh
//     file under /bin/sh (or under --interpreter);
//   - anything else is a program: a path (contains '/', or is an existing
//     file in the cwd) or a name looked up in PATH.
#pragma once

#include <string>
#include <vector>

#include "corral/error.hpp"

namespace corral::daemon {

struct resolved_command {
  std::vector<std::string> argv;  // argv[0] absolute
  std::string interpreter;        // "exec", "shell", or the interpreter's name
  std::string default_name;       // the app name if --name is not given
};

bool has_shell_syntax(const std::string& s);

/// The app name when none is given: the first word's file name without its
/// extension ("./bin/api.py --port 1" -> "api"). Needs no file to exist.
std::string default_app_name(const std::string& command);

/// `cwd` resolves relative paths; `path_env` is $PATH. Errors name the path
/// and the errno ("no such file or directory (ENOENT)").
result<resolved_command> resolve_command(const std::string& command, const std::vector<std::string>& args,
                                         const std::string& interpreter, const std::string& cwd,
                                         const std::string& path_env);

}  // namespace corral::daemon
