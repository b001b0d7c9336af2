#include "daemon/command_resolve.hpp"

#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstring>
#include <sstream>

namespace corral::daemon {

namespace {

error not_runnable(const std::string& path, int err) {
  return error(std::error_code(err, std::generic_category()),
               "cannot run " + path + ": " + std::strerror(err) + " (" + uv_err_name(-err) + ")");
}

std::string absolute(const std::string& p, const std::string& cwd) {
  if (!p.empty() && p[0] == '/') return p;
  return (cwd.empty() || cwd == "/" ? cwd : cwd + "/") + p;
}

bool is_file(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string extension(const std::string& p) {
  auto slash = p.rfind('/');
  auto dot = p.rfind('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
  return p.substr(dot);
}

std::string stem(const std::string& p) {
  auto slash = p.rfind('/');
  std::string base = slash == std::string::npos ? p : p.substr(slash + 1);
  auto dot = base.rfind('.');
  if (dot != std::string::npos && dot > 0) base = base.substr(0, dot);
  return base;
}

// PATH lookup as execvp does it, but here, so the error names the program.
result<std::string> which(const std::string& name, const std::string& cwd, const std::string& path_env) {
  if (name.find('/') != std::string::npos) {
    std::string p = absolute(name, cwd);
    if (::access(p.c_str(), F_OK) != 0) return not_runnable(p, errno);
    if (!is_file(p)) return not_runnable(p, EISDIR);
    if (::access(p.c_str(), X_OK) != 0) return not_runnable(p, errno);
    return p;
  }
  std::stringstream dirs(path_env);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    std::string p = absolute((dir.empty() ? "." : dir) + "/" + name, cwd);
    if (is_file(p) && ::access(p.c_str(), X_OK) == 0) return p;
  }
  return error(std::make_error_code(std::errc::no_such_file_or_directory),
               "cannot run " + name + ": not a file here and not found in PATH (ENOENT)");
}

}  // namespace

std::string default_app_name(const std::string& command) {
  std::istringstream words(command);
  std::string first;
  words >> first;
  return stem(first);
}

bool has_shell_syntax(const std::string& s) { return s.find_first_of("|&;<>()$`\\\"'*?[]#~{}\n") != std::string::npos; }

result<resolved_command> resolve_command(const std::string& command, const std::vector<std::string>& args,
                                         const std::string& interpreter, const std::string& cwd,
                                         const std::string& path_env) {
  // Blank is empty: no word would name the program.
  if (command.find_first_not_of(" \t\n\v\f\r") == std::string::npos)
    return error(std::make_error_code(std::errc::invalid_argument), "start: empty command");
  resolved_command out;
  if (interpreter.empty() && has_shell_syntax(command)) {
    out.argv = {"/bin/sh", "-c", command};
    if (!args.empty()) {
      out.argv.push_back("sh");  // $0; then the args are $1..
      out.argv.insert(out.argv.end(), args.begin(), args.end());
    }
    out.interpreter = "shell";
    out.default_name = default_app_name(command);
    return out;
  }
  std::vector<std::string> words;
  {
    std::istringstream in(command);
    std::string w;
    while (in >> w) words.push_back(w);
  }
  std::string program = words[0];
  std::vector<std::string> rest(words.begin() + 1, words.end());
  rest.insert(rest.end(), args.begin(), args.end());

  std::string interp = interpreter;
  std::string file = absolute(program, cwd);
  bool local_file = is_file(file);
  if (interp.empty() && local_file) {
    std::string ext = extension(file);
    if (ext == ".py") interp = "python3";
    else if (ext == ".js" || ext == ".mjs" || ext == ".cjs") interp = "node";
    else if (ext == ".sh" && ::access(file.c_str(), X_OK) != 0) interp = "sh";
  }
  out.default_name = default_app_name(command);
  if (!interp.empty() && interp != "none") {
    if (!local_file) return not_runnable(file, ENOENT);
    auto ip = which(interp, cwd, path_env);
    if (!ip) return ip.err();
    out.argv = {*ip, file};
    out.interpreter = interp;
  } else {
    auto p = (local_file || program.find('/') != std::string::npos) ? which(file, cwd, path_env)
                                                                   : which(program, cwd, path_env);
    if (!p) return p.err();
    out.argv = {*p};
    out.interpreter = "exec";
  }
  out.argv.insert(out.argv.end(), rest.begin(), rest.end());
  return out;
}

}  // namespace corral::daemon
