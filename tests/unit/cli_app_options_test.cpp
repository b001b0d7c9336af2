// The CLI's option parsers (src/cli/app_options.cpp): the values a user types.
#include "cli/app_options.hpp"

#include <unistd.h>

#include "daemon/paths.hpp"

#include <gtest/gtest.h>

#include <cstdlib>

namespace corral::cli {
namespace {

TEST(ParseSize, UnitsMultiply) {
  EXPECT_EQ(parse_size("0").value(), 0u);
  EXPECT_EQ(parse_size("4096").value(), 4096u);
  EXPECT_EQ(parse_size("512K").value(), 512u << 10);
  EXPECT_EQ(parse_size("10M").value(), 10u << 20);
  EXPECT_EQ(parse_size("3G").value(), uint64_t{3} << 30);
  EXPECT_EQ(parse_size("999999999999").value(), uint64_t{999999999999});
}

TEST(ParseSize, SizeThatDoesNotFitIn64BitsIsAnErrorNamingIt) {
  // 2^34 G is 2^64 bytes: it would wrap to 0, "never rotate".
  for (const char* s : {"17179869184G", "17179869185G", "999999999999G"}) {
    auto r = parse_size(s);
    ASSERT_FALSE(r) << s << " gave " << r.value();
    EXPECT_NE(r.err().message().find(std::string("'") + s + "'"), std::string::npos) << r.err().message();
    EXPECT_NE(r.err().message().find("too large"), std::string::npos) << r.err().message();
  }
  // The largest that fits still does.
  EXPECT_EQ(parse_size("17179869183G").value(), uint64_t{17179869183} << 30);
}

TEST(LogPath, RelativeToTheAppsCwdTildeToHomeAndNeverADirectory) {
  EXPECT_EQ(log_path("", "/srv/app").value(), "");
  EXPECT_EQ(log_path("logs/out.log", "/srv/app").value(), "/srv/app/logs/out.log");
  EXPECT_EQ(log_path("./logs/../out.log", "/srv/app").value(), "/srv/app/out.log");
  EXPECT_EQ(log_path("/var/log/web.log", "/srv/app").value(), "/var/log/web.log");
  EXPECT_EQ(log_path("/dev/null", "/srv/app").value(), "/dev/null");
  const char* old = std::getenv("HOME");
  std::string saved = old ? old : "";
  ::setenv("HOME", "/home/ann", 1);
  EXPECT_EQ(log_path("~/.pm2/logs/web-out.log", "/srv/app").value(), "/home/ann/.pm2/logs/web-out.log");
  if (old) ::setenv("HOME", saved.c_str(), 1);
  else ::unsetenv("HOME");
  auto dir = log_path("/tmp", "/");
  ASSERT_FALSE(dir);
  EXPECT_EQ(dir.err().message(), "'/tmp' is a directory, not a file");
  auto slash = log_path("logs/", "/srv/app");
  ASSERT_FALSE(slash);
  EXPECT_EQ(slash.err().message(), "'logs/' is a directory, not a file");
}

TEST(MakeAppSpec, LogPathsAndDateFormatReachTheSpec) {
  app_options o;
  o.script = "/bin/true";
  o.cwd = "/tmp";
  o.out_file = "a/out.log";
  o.error_file = "/dev/null";
  o.log_file = "both.log";
  o.log_date_format = "YYYY-MM-DD HH:mm Z";
  auto r = make_app_spec(o, "/", "/usr/bin:/bin");
  ASSERT_TRUE(r.spec) << r.error.field << ": " << r.error.message;
  EXPECT_EQ(r.spec->out_file, "/tmp/a/out.log");
  EXPECT_EQ(r.spec->error_file, "/dev/null");
  EXPECT_EQ(r.spec->log_file, "/tmp/both.log");
  EXPECT_EQ(r.spec->log_date_format, "YYYY-MM-DD HH:mm Z");
  // The JSON the daemon gets and keeps says the same.
  auto back = daemon::app_spec_from_json(daemon::to_json(*r.spec));
  ASSERT_TRUE(back) << back.err().message();
  EXPECT_EQ(back->out_file, "/tmp/a/out.log");
  EXPECT_EQ(back->log_file, "/tmp/both.log");
  EXPECT_EQ(back->log_date_format, "YYYY-MM-DD HH:mm Z");

  o.log_date_format = "[HH";
  r = make_app_spec(o, "/", "/usr/bin:/bin");
  ASSERT_FALSE(r.spec);
  EXPECT_EQ(r.error.field, "log_date_format");
  EXPECT_EQ(r.error.message, "'[HH' a '[' is not closed by ']'");
  o.log_date_format.clear();
  o.out_file = "/tmp";
  r = make_app_spec(o, "/", "/usr/bin:/bin");
  ASSERT_FALSE(r.spec);
  EXPECT_EQ(r.error.field, "out_file");
}

TEST(AppSpecJson, LogPathsMustBeAbsoluteFiles) {
  daemon::app_spec web;
  web.name = "web";
  web.argv = {"/bin/true"};
  auto spec = daemon::to_json(web);
  for (const char* bad : {"out.log", "/var/log/", "~/x.log"}) {
    auto j = spec;
    j["error_file"] = bad;
    auto r = daemon::app_spec_from_json(j);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.err().message(), std::string("app 'web': error_file must be an absolute path to a file, got '") + bad + "'");
  }
  auto old = spec;
  old.erase("out_file");
  old.erase("log_date_format");
  auto r = daemon::app_spec_from_json(old);  // a state file from before these keys
  ASSERT_TRUE(r) << r.err().message();
  EXPECT_EQ(r->out_file, "");
}

TEST(MakeAppSpec, PidFileInstanceVarAndIncrementVarAreCheckedAndReachTheSpec) {
  app_options o;
  o.script = "/bin/true";
  o.cwd = "/tmp";
  o.pid_file = "run/app.pid";
  o.instance_var = "INSTANCE_ID";
  o.increment_var = "PORT";
  o.env["PORT"] = "3000";
  auto r = make_app_spec(o, "/", "/usr/bin:/bin");
  ASSERT_TRUE(r.spec) << r.error.field << ": " << r.error.message;
  EXPECT_EQ(r.spec->pid_file, "/tmp/run/app.pid");
  EXPECT_EQ(r.spec->instance_var, "INSTANCE_ID");
  EXPECT_EQ(r.spec->increment_var, "PORT");
  auto back = daemon::app_spec_from_json(daemon::to_json(*r.spec));
  ASSERT_TRUE(back) << back.err().message();
  EXPECT_EQ(back->pid_file, "/tmp/run/app.pid");
  EXPECT_EQ(back->instance_var, "INSTANCE_ID");
  EXPECT_EQ(back->increment_var, "PORT");

  auto refused = [&](app_options changed, const std::string& field, const std::string& message) {
    auto out = make_app_spec(changed, "/", "/usr/bin:/bin");
    ASSERT_FALSE(out.spec) << field;
    EXPECT_EQ(out.error.field, field);
    EXPECT_EQ(out.error.message, message);
  };
  auto no_port = o;
  no_port.env.clear();
  refused(no_port, "increment_var", "'PORT' needs a first value in env (PORT=3000)");
  auto word = o;
  word.env["PORT"] = "http";
  refused(word, "increment_var", "env PORT is 'http', not a whole number");
  auto same = o;
  same.instance_var = "PORT";
  refused(same, "increment_var", "'PORT' is the instance's index already");
  auto index = o;
  index.increment_var = "CORRAL_INSTANCE";
  index.env["CORRAL_INSTANCE"] = "5";
  refused(index, "increment_var", "'CORRAL_INSTANCE' is the instance's index already");
  auto device = o;
  device.pid_file = "/dev/null";
  refused(device, "pid_file",
          "/dev/null exists and is not a regular file (a pid file replaces what is there, and is removed at exit)");
  auto dashed = o;
  dashed.instance_var = "INSTANCE-ID";
  refused(dashed, "instance_var", "'INSTANCE-ID' is not a variable name (letters, digits and _, not starting with a digit)");
  auto ours = o;
  ours.increment_var = "LISTEN_FDS";
  refused(ours, "increment_var", "'LISTEN_FDS' is set by corral itself");
  auto dir = o;
  dir.pid_file = "/tmp";
  refused(dir, "pid_file", "'/tmp' is a directory, not a file");
}

// --uid naming the user the CLI (and so the daemon) runs as, without --gid,
// switches nothing: the daemon's own group stays, whatever it is.
TEST(MakeAppSpec, UidOfTheDaemonsOwnUserWithoutAGidIsNoSwitch) {
  app_options o;
  o.script = "/bin/true";
  o.cwd = "/tmp";
  o.uid = std::to_string(::geteuid());
  auto r = make_app_spec(o, "/", "/usr/bin:/bin");
  ASSERT_TRUE(r.spec) << r.error.field << ": " << r.error.message;
  EXPECT_EQ(r.spec->uid, -1);
  EXPECT_EQ(r.spec->gid, -1);
  o.gid = std::to_string(::getegid());  // a group asked for: kept as asked
  r = make_app_spec(o, "/", "/usr/bin:/bin");
  ASSERT_TRUE(r.spec) << r.error.field << ": " << r.error.message;
  EXPECT_EQ(r.spec->uid, static_cast<int64_t>(::geteuid()));
  EXPECT_EQ(r.spec->gid, static_cast<int64_t>(::getegid()));
}

TEST(MakeAppSpec, AutostartDisableLogsAndNameSuffix) {
  app_options o;
  o.script = "/bin/true";
  o.cwd = "/tmp";
  o.autostart = false;
  o.disable_logs = true;
  o.error_file = "err.log";  // a path given still wins
  o.name_suffix = "-production";
  auto r = make_app_spec(o, "/", "/usr/bin:/bin");
  ASSERT_TRUE(r.spec) << r.error.field << ": " << r.error.message;
  EXPECT_FALSE(r.spec->running);
  EXPECT_EQ(r.spec->out_file, "/dev/null");
  EXPECT_EQ(r.spec->error_file, "/tmp/err.log");
  EXPECT_EQ(r.spec->name, "true-production");
  o.name = "web";
  EXPECT_EQ(make_app_spec(o, "/", "/usr/bin:/bin").spec->name, "web-production");
  EXPECT_TRUE(make_app_spec(app_options{.script = "/bin/true"}, "/", "/usr/bin:/bin").spec->running);
}

TEST(AppSpecJson, PidFileNamesAndTheDaemonsOwnChecks) {
  daemon::app_spec web;
  web.name = "web";
  web.argv = {"/bin/true"};
  EXPECT_EQ(daemon::pid_file_path(web, 0), "");
  web.pid_file = "/run/web.pid";
  EXPECT_EQ(daemon::pid_file_path(web, 0), "/run/web.pid");  // one instance: the path as given
  web.instances = 3;
  EXPECT_EQ(daemon::pid_file_path(web, 0), "/run/web-0.pid");
  EXPECT_EQ(daemon::pid_file_path(web, 2), "/run/web-2.pid");
  web.pid_file = "/run/web";
  EXPECT_EQ(daemon::pid_file_path(web, 1), "/run/web-1");
  // What the watch leaves out: any instance count's names, and the temporary.
  web.pid_file = "/srv/app/run/web.pid";
  for (const char* mine : {"/srv/app/run/web.pid", "/srv/app/run/web-0.pid", "/srv/app/run/web-12.pid",
                           "/srv/app/run/web.pid.corral-new", "/srv/app/run/web-3.pid.corral-new"})
    EXPECT_TRUE(daemon::is_pid_file(web.pid_file, mine)) << mine;
  for (const char* other : {"/srv/app/run/web-.pid", "/srv/app/run/web-x.pid", "/srv/app/run/web.pid2",
                            "/srv/app/run/webs.pid", "/srv/app/run/web-1.log", "/srv/app/web.pid", ""})
    EXPECT_FALSE(daemon::is_pid_file(web.pid_file, other)) << other;
  EXPECT_FALSE(daemon::is_pid_file("", "/x"));
  web.pid_file = "/run/web";

  auto spec = daemon::to_json(web);
  auto old = spec;  // a state file from before these keys
  for (const char* k : {"pid_file", "instance_var", "increment_var"}) old.erase(k);
  auto r = daemon::app_spec_from_json(old);
  ASSERT_TRUE(r) << r.err().message();
  EXPECT_EQ(r->pid_file, "");
  EXPECT_EQ(r->instance_var, "NODE_APP_INSTANCE");
  EXPECT_EQ(r->increment_var, "");
  // What reaches the daemon other than through the CLI is checked there too.
  auto bad = [&](const char* key, daemon::json value, const std::string& message) {
    auto j = spec;
    j[key] = std::move(value);
    auto out = daemon::app_spec_from_json(j);
    ASSERT_FALSE(out) << key;
    EXPECT_EQ(out.err().message(), "app 'web': " + message);
  };
  bad("pid_file", "web.pid", "pid_file must be an absolute path to a file, got 'web.pid'");
  bad("increment_var", "PORT", "increment_var 'PORT' is not in env: give its first value there (PORT=3000)");
  bad("instance_var", "", "instance_var '' is not a variable name (letters, digits and _, not starting with a digit)");
  bad("uid", 1000, "uid 1000 needs a gid too (its user's primary group)");
  auto j = spec;
  j["increment_var"] = "PORT";
  j["env"] = {{"PORT", "-5"}};
  EXPECT_TRUE(daemon::app_spec_from_json(j));
  j["env"] = {{"PORT", "1234567890123456"}};  // 16 digits
  EXPECT_FALSE(daemon::app_spec_from_json(j));
}

}  // namespace
}  // namespace corral::cli
