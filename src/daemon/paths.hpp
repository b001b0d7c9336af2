// Files the daemon writes at paths the user chose: a per-instance name for a
// shared path, the directories on the way, and PM2's pid_file.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <string>
#include <string_view>

#include "corral/error.hpp"

namespace corral::daemon {

struct app_spec;

/// Whether two stats are of one file (device and inode).
inline bool same_file(const struct stat& a, const struct stat& b) { return a.st_dev == b.st_dev && a.st_ino == b.st_ino; }

/// "/var/log/app.out.log", 2 -> "/var/log/app.out-2.log"; without an
/// extension "-2" goes at the end.
std::string with_index(const std::string& path, int index);

/// True if `path` is one `pid_file` names, for any instance count (or its
/// temporary file): the watch leaves out what the daemon itself writes.
bool is_pid_file(const std::string& pid_file, std::string_view path);

/// mkdir -p of `path`'s directory, each new directory 0700. The error names
/// `key` (the spec's field) and the directory.
status make_parents(const std::string& path, const char* key);

/// Where instance `index` writes its pid (PM2's pid_file): the path as
/// given when the app has one instance, else "<stem>-<index><ext>"; "" when
/// the spec names none.
std::string pid_file_path(const app_spec& spec, int index);

/// Why `path` cannot be a pid file ("" if it can): it exists and is not a
/// regular file (/dev/null, a symbolic link, a directory).
std::string pid_file_problem(const std::string& path);

/// For an app run as another user: `path` (the spec's `key`) with every
/// symbolic link on the way resolved, or why the daemon must not write
/// there. Each directory on the way must be owned by root or the daemon's
/// user and writable by no one else (a sticky one may be, above the last):
/// otherwise the app's user could swap a directory or the file for a link
/// and have the daemon write, as itself, into any file. Directories not
/// there yet are the daemon's to make (0700).
result<std::string> path_safe_from_app_user(const std::string& path, const char* key);

/// Writes "<pid>\n" to `path` (0644) through a temporary file renamed into
/// place, so a reader never sees a half-written number.
status write_pid_file(const std::string& path, pid_t pid);

/// True if `path` holds "<pid>\n".
bool pid_file_holds(const std::string& path, pid_t pid);

/// Removes `path` if it still holds `pid`: a reload's replacement may have
/// written its own pid there meanwhile, which stays.
void remove_pid_file(const std::string& path, pid_t pid);

}  // namespace corral::daemon
