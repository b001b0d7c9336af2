// `corral startup`: the systemd unit that runs the daemon at boot. Pure
// rendering, so the content is unit-tested; the CLI writes it.
#pragma once

#include <string>

namespace corral::daemon {

struct startup_unit {
  bool system = false;     // a system unit (User= set) or a user unit
  std::string exe;         // absolute path of the corral binary
  std::string user;        // the user the daemon runs as (system units)
  std::string home;        // CORRAL_HOME
  std::string path_env;    // PATH for the daemon and its apps ("" to leave systemd's)
};

/// The unit file's name: corral-<user>.service (system) or corral.service (user).
std::string unit_file_name(const startup_unit& u);
/// The unit file's text.
std::string render_unit(const startup_unit& u);
/// Quotes one word for a unit file (ExecStart= argument, Environment=
/// assignment): double quotes, with \ " escaped and % doubled (specifiers).
std::string unit_quote(const std::string& word);

}  // namespace corral::daemon
