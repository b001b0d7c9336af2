#include "daemon/systemd_unit.hpp"

namespace corral::daemon {

std::string unit_quote(const std::string& word) {
  std::string out = "\"";
  for (char c : word) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '%') out += '%';
    out += c;
  }
  return out + "\"";
}

std::string unit_file_name(const startup_unit& u) {
  return u.system ? "corral-" + u.user + ".service" : "corral.service";
}

std::string render_unit(const startup_unit& u) {
  std::string exe = unit_quote(u.exe);
  std::string t;
  t += "# Written by `corral startup`; `corral unstartup` removes it.\n";
  t += "[Unit]\n";
  std::string home;
  for (char c : u.home) home += c == '%' ? std::string("%%") : std::string(1, c);
  t += "Description=Corral process manager (home " + home + ")\n";
  t += "After=network.target\n\n";
  t += "[Service]\n";
  // The daemon sends READY=1 once its control socket answers.
  t += "Type=notify\n";
  t += "NotifyAccess=main\n";
  if (u.system) t += "User=" + u.user + "\n";
  t += "Environment=" + unit_quote("CORRAL_HOME=" + u.home) + "\n";
  if (!u.path_env.empty()) t += "Environment=" + unit_quote("PATH=" + u.path_env) + "\n";
  // The daemon restores the apps it ran (its state file); resurrect then
  // adds those saved by `corral save` that are missing, as `pm2 resurrect`.
  // "-": nothing saved is not a failure.
  t += "ExecStart=" + exe + " daemon\n";
  t += "ExecStartPost=-" + exe + " resurrect\n";
  // SIGTERM to the daemon only: it stops every app with the app's own
  // signal and kill_timeout, then exits; whatever is left afterwards gets
  // SIGKILL from systemd.
  t += "KillMode=mixed\n";
  t += "KillSignal=SIGTERM\n";
  t += "TimeoutStopSec=60\n";
  t += "Restart=on-failure\n";
  t += "RestartSec=2\n\n";
  t += "[Install]\n";
  t += std::string("WantedBy=") + (u.system ? "multi-user.target" : "default.target") + "\n";
  return t;
}

}  // namespace corral::daemon
