// `corral startup` / `corral unstartup`: a systemd unit that runs the daemon
// at boot (PM2's `pm2 startup`). The unit's text is daemon::render_unit.
#pragma once

#include <string>

#include "daemon/home.hpp"

namespace corral::cli {

struct startup_options {
  bool install = false;      // write the unit (default: print it)
  bool system = false;       // force a system unit (default: system if root)
  bool user = false;         // force a user unit
  std::string unit_dir;      // instead of /etc/systemd/system or ~/.config/systemd/user; no systemctl then
};

int run_startup(const daemon::home_paths& home, const startup_options& o);
int run_unstartup(const startup_options& o);

}  // namespace corral::cli
