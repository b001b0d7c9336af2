// Users and groups by name or number, from /etc/passwd and /etc/group: the
// corral binary is static, and glibc's getpwnam() in a static binary needs
// the NSS modules of the glibc it was built with at run time. Users that
// only a directory service (LDAP, sssd) knows are not found: give numbers.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

namespace corral::daemon {

struct user_entry {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;  // the primary group
  std::string home;
  std::string shell;
};

struct group_entry {
  std::string name;
  gid_t gid = 0;
};

/// The user named `name`, or whose uid is `name` when it is all digits.
/// `passwd` is the file to read (tests give their own).
std::optional<user_entry> find_user(const std::string& name, const std::string& passwd = "/etc/passwd");
std::optional<user_entry> find_user(uid_t uid, const std::string& passwd = "/etc/passwd");
std::optional<group_entry> find_group(const std::string& name, const std::string& group = "/etc/group");

/// "0".."4294967294" (the largest uid_t is (uid_t)-1, "none"); else nullopt.
std::optional<uint32_t> parse_id(const std::string& text);

}  // namespace corral::daemon
