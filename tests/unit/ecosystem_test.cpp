// Ecosystem files: every key, and every error as the one line the user sees
// (file, line, app, key). Parsing is pure; load_ecosystem reads a file in a
// temp directory and resolves commands, but starts nothing.
#include "ecosystem.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace corral::cli {
namespace {

std::vector<eco_app> parse_ok(const std::string& text, eco_format f = eco_format::yaml, const std::string& env = "") {
  auto r = parse_ecosystem(text, f, "eco.yaml", env);
  EXPECT_TRUE(r) << (r ? "" : r.err().message());
  return r ? *r : std::vector<eco_app>{};
}

std::string parse_error(const std::string& text, eco_format f = eco_format::yaml) {
  auto r = parse_ecosystem(text, f, f == eco_format::yaml ? "eco.yaml" : "eco.json", "");
  EXPECT_FALSE(r) << "parsed: " << text;
  return r ? "" : r.err().message();
}

TEST(Ecosystem, FormatFromTheFileName) {
  EXPECT_EQ(ecosystem_format("a/eco.yaml"), eco_format::yaml);
  EXPECT_EQ(ecosystem_format("eco.yml"), eco_format::yaml);
  EXPECT_EQ(ecosystem_format("eco.json"), eco_format::json);
  EXPECT_EQ(ecosystem_format("ecosystem.config.js"), eco_format::js);
  EXPECT_EQ(ecosystem_format("ecosystem.config.cjs"), eco_format::js);
  EXPECT_FALSE(ecosystem_format("app.js"));
  EXPECT_FALSE(ecosystem_format("app.py"));
}

TEST(Ecosystem, EveryKeyReachesTheOptions) {
  auto apps = parse_ok(R"(apps:
  - name: web
    script: ./server.js
    args: "--port 1 'two words'"
    cwd: sub
    interpreter: node
    interpreter_args: [--max-old-space-size=64]
    instances: max
    exec_mode: cluster
    env: {A: 1, B: "x", C: true}
    port: 3000
    listen: unix:/run/web.sock
    autorestart: false
    watch: false
    max_restarts: 3
    min_uptime: 2s
    restart_delay: 500ms
    exp_backoff_restart_delay: 100
    kill_timeout: 1.5s
    kill_signal: SIGTERM
    shutdown_with_message: true
    wait_ready: true
    listen_timeout: 1m
    stop_exit_codes: [0, 3]
    time: true
    merge_logs: false
    max_log_size: 1M
    log_retain: 2
    defer_accept: true
)");
  ASSERT_EQ(apps.size(), 1u);
  const auto& o = apps[0].options;
  EXPECT_EQ(o.name, "web");
  EXPECT_EQ(o.script, "./server.js");
  EXPECT_EQ(o.args, (std::vector<std::string>{"--port", "1", "two words"}));
  EXPECT_EQ(o.cwd, "sub");
  EXPECT_EQ(o.interpreter, "node");
  EXPECT_EQ(o.interpreter_args, (std::vector<std::string>{"--max-old-space-size=64"}));
  EXPECT_EQ(o.instances, "max");
  EXPECT_EQ(o.env, (std::map<std::string, std::string>{{"A", "1"}, {"B", "x"}, {"C", "true"}}));
  EXPECT_EQ(o.port, 3000);
  EXPECT_EQ(o.listen, (std::vector<std::string>{"unix:/run/web.sock"}));
  EXPECT_FALSE(o.autorestart);
  EXPECT_EQ(o.max_restarts, 3);
  EXPECT_EQ(o.min_uptime, 2000);
  EXPECT_EQ(o.restart_delay, 500);
  EXPECT_EQ(o.exp_backoff_restart_delay, 100);
  EXPECT_EQ(o.kill_timeout, 1500);
  EXPECT_EQ(o.kill_signal, "SIGTERM");
  EXPECT_TRUE(o.shutdown_with_message);
  EXPECT_TRUE(o.wait_ready);
  EXPECT_EQ(o.listen_timeout, 60000);
  EXPECT_EQ(o.stop_exit_codes, (std::vector<int>{0, 3}));
  EXPECT_TRUE(o.time);
  EXPECT_FALSE(o.merge_logs);
  EXPECT_EQ(o.max_log_size, "1M");
  EXPECT_EQ(o.log_retain, 2);
  EXPECT_TRUE(o.defer_accept);
  EXPECT_EQ(apps[0].line, 2);
  EXPECT_EQ(apps[0].line_of("kill_signal"), 20);
}

TEST(Ecosystem, Pm2LogKeysNamespaceAndAliasesReachTheOptions) {
  auto apps = parse_ok(R"(apps:
  - name: web
    script: a
    out_file: ./logs/out.log
    error_file: ~/.pm2/logs/web-error.log
    log_file: both.log
    log_date_format: "YYYY-MM-DD HH:mm:ss Z"
    log_type: json
  - name: api
    script: a
    output: o.log
    err: e.log
    log: l.log
    namespace: backend
)");
  ASSERT_EQ(apps.size(), 2u);
  EXPECT_EQ(apps[0].options.out_file, "./logs/out.log");
  EXPECT_EQ(apps[0].options.error_file, "~/.pm2/logs/web-error.log");
  EXPECT_EQ(apps[0].options.log_file, "both.log");
  EXPECT_EQ(apps[0].options.log_date_format, "YYYY-MM-DD HH:mm:ss Z");
  EXPECT_EQ(apps[0].options.log_type, "json");
  EXPECT_EQ(apps[1].options.log_type, "raw");
  EXPECT_EQ(apps[1].options.out_file, "o.log");
  EXPECT_EQ(apps[1].options.error_file, "e.log");
  EXPECT_EQ(apps[1].options.log_file, "l.log");
  EXPECT_EQ(apps[0].options.namespace_name, "default");
  EXPECT_EQ(apps[1].options.namespace_name, "backend");
}

TEST(Ecosystem, Pm2PidFileInstanceVarIncrementVarUidAndGidReachTheOptions) {
  auto apps = parse_ok(R"(apps:
  - name: web
    script: a
    instances: 2
    pid_file: run/web.pid
    instance_var: INSTANCE_ID
    increment_var: PORT
    env:
      PORT: 3000
  - name: api
    script: a
    pid: /run/api.pid
    uid: www-data
    gid: 33
)");
  ASSERT_EQ(apps.size(), 2u);
  EXPECT_EQ(apps[0].options.pid_file, "run/web.pid");
  EXPECT_EQ(apps[0].options.instance_var, "INSTANCE_ID");
  EXPECT_EQ(apps[0].options.increment_var, "PORT");
  EXPECT_EQ(apps[0].options.env.at("PORT"), "3000");
  EXPECT_EQ(apps[1].options.pid_file, "/run/api.pid");
  EXPECT_EQ(apps[1].options.instance_var, "NODE_APP_INSTANCE");
  EXPECT_EQ(apps[1].options.increment_var, "");
  EXPECT_EQ(apps[0].options.uid, "");
  EXPECT_EQ(apps[1].options.uid, "www-data");
  EXPECT_EQ(apps[1].options.gid, "33");
}

// `pm2 init` writes a deploy section (PM2's git-over-ssh deploys) into every
// new file: the apps beside it start, and the section is left alone.
TEST(Ecosystem, Pm2DeploySectionIsLeftAlone) {
  auto apps = parse_ok(R"({"apps": [{"script": "app.js"}],
    "deploy": {"production": {"user": "node", "host": ["1.2.3.4"], "ref": "origin/main",
                              "repo": "git@example.com:app.git", "path": "/srv/app"}}})",
                       eco_format::json);
  ASSERT_EQ(apps.size(), 1u);
  EXPECT_EQ(apps[0].options.script, "app.js");
  EXPECT_EQ(parse_error("deploy: {}\n"), "eco.yaml: apps: missing");
}

TEST(Ecosystem, Pm2AutostartDisableLogsAppendEnvToNameAndKeysThatAreOff) {
  auto apps = parse_ok(R"(apps:
  - name: web
    script: a
    autostart: false
    disable_logs: true
    append_env_to_name: true
    treekill: true
    vizion: false
    source_map_support: false
    force: false
    env_production: {A: 1}
  - script: b
    append_env_to_name: true
)", eco_format::yaml, "production");
  ASSERT_EQ(apps.size(), 2u);
  EXPECT_FALSE(apps[0].options.autostart);
  EXPECT_TRUE(apps[0].options.disable_logs);
  EXPECT_EQ(apps[0].options.name_suffix, "-production");
  EXPECT_TRUE(apps[1].options.autostart);
  EXPECT_FALSE(apps[1].options.disable_logs);
  EXPECT_EQ(apps[1].options.name_suffix, "-production");  // after the name the script gives
  EXPECT_EQ(parse_ok("apps:\n  - script: a\n    append_env_to_name: true\n")[0].options.name_suffix, "");
  auto filter_of = [](const std::string& value) {
    return parse_ok("apps:\n  - script: a\n    filter_env: " + value + "\n")[0].options.filter_env;
  };
  EXPECT_EQ(filter_of("true"), std::vector<std::string>{""});
  EXPECT_EQ(filter_of("false"), std::vector<std::string>{});
  EXPECT_EQ(filter_of("SECRET_"), std::vector<std::string>{"SECRET_"});
  EXPECT_EQ(filter_of("[AWS_, NODE_]"), (std::vector<std::string>{"AWS_", "NODE_"}));
  EXPECT_EQ(parse_error("apps:\n  - name: w\n    script: a\n    filter_env: [A, '']\n"),
            "eco.yaml:4: app 'w': filter_env: expected true, false, a name prefix or a list of them, got an empty prefix");
}

// PM2's watch: true is the cwd, a path or a list of them (relative to the
// cwd, resolved by make_app_spec), [] the cwd too (as PM2), false none.
TEST(Ecosystem, WatchIgnoreWatchAndWatchDelay) {
  auto watch_of = [](const std::string& value) {
    auto apps = parse_ok("apps:\n  - script: a\n    watch: " + value + "\n");
    return apps.empty() ? std::vector<std::string>{"?"} : apps[0].options.watch;
  };
  using paths = std::vector<std::string>;
  EXPECT_EQ(watch_of("true"), paths{"."});
  EXPECT_EQ(watch_of("false"), paths{});
  EXPECT_EQ(watch_of("~"), paths{});
  EXPECT_EQ(watch_of("src"), paths{"src"});
  EXPECT_EQ(watch_of("'true'"), paths{"true"});  // quoted: a directory's name
  EXPECT_EQ(watch_of("[src, ../lib]"), (paths{"src", "../lib"}));
  EXPECT_EQ(watch_of("[]"), paths{"."});
  auto apps = parse_ok("apps:\n  - script: a\n    watch: true\n    ignore_watch: [node_modules, '*.log']\n"
                       "    watch_delay: 1.5s\n  - script: b\n    ignore_watch: tmp\n    watch_delay: 250\n");
  ASSERT_EQ(apps.size(), 2u);
  EXPECT_EQ(apps[0].options.ignore_watch, (paths{"node_modules", "*.log"}));
  EXPECT_EQ(apps[0].options.watch_delay, 1500);
  EXPECT_EQ(apps[1].options.ignore_watch, paths{"tmp"});
  EXPECT_EQ(apps[1].options.watch_delay, 250);
  EXPECT_TRUE(apps[1].options.watch.empty());
  // JSON, as PM2's ecosystem.json has it.
  auto j = parse_ok(R"({"apps": [{"script": "a", "watch": ["src"], "ignore_watch": ["x"], "watch_delay": 50}]})",
                    eco_format::json);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0].options.watch, paths{"src"});
  EXPECT_EQ(j[0].options.watch_delay, 50);
}

TEST(Ecosystem, ABareListAndNumbersForInstances) {
  auto apps = parse_ok("- script: a\n  instances: -1\n- script: b\n  instances: 4\n  stop_exit_codes: 2\n");
  ASSERT_EQ(apps.size(), 2u);
  EXPECT_EQ(apps[0].options.instances, "-1");
  EXPECT_EQ(apps[1].options.instances, "4");
  EXPECT_EQ(apps[1].options.stop_exit_codes, std::vector<int>{2});
}

TEST(Ecosystem, EnvNameSelectsEnvUnderscoreName) {
  const char* text = "apps:\n  - script: a\n    env: {A: dev, B: b}\n    env_production: {A: prod}\n";
  EXPECT_EQ(parse_ok(text)[0].options.env.at("A"), "dev");
  auto prod = parse_ok(text, eco_format::yaml, "production")[0].options.env;
  EXPECT_EQ(prod.at("A"), "prod");
  EXPECT_EQ(prod.at("B"), "b");
}

TEST(Ecosystem, JsonKeepsItsLines) {
  auto apps = parse_ok("{\n\t\"apps\": [\n\t\t{\"name\": \"a\", \"script\": \"x\"},\n\t\t{\"name\": \"b\",\n\t\t \"script\": \"y\"}\n\t]\n}",
                       eco_format::json);
  ASSERT_EQ(apps.size(), 2u);
  EXPECT_EQ(apps[1].line, 4);
  EXPECT_EQ(apps[1].line_of("script"), 5);
}

TEST(Ecosystem, ErrorsNameFileLineAppAndKey) {
  EXPECT_EQ(parse_error("apps:\n  - name: web\n    script: a\n    bogus: 1\n"),
            "eco.yaml:4: app 'web': bogus: unknown key (see docs/ecosystem.md)");
  EXPECT_EQ(parse_error("apps:\n  - name: web\n    script: a\n    watch: {src: 1}\n"),
            "eco.yaml:4: app 'web': watch: expected true, false, a path or a list of paths");
  EXPECT_EQ(parse_error("apps:\n  - name: web\n    script: a\n    watch: [src, '']\n"),
            "eco.yaml:4: app 'web': watch: expected true, false, a path or a list of paths, got an empty path");
  EXPECT_EQ(parse_error("apps:\n  - name: web\n    script: a\n    watch_options: {usePolling: true}\n"),
            "eco.yaml:4: app 'web': watch_options: not supported by corral: it is chokidar's options object (PM2's "
            "file watcher); corral watches with inotify, leaves out what ignore_watch says, and follows no symbolic "
            "link below a watched path");
  EXPECT_EQ(parse_error("apps:\n  - name: web\n    script: a\n    watch_delay: soon\n"),
            "eco.yaml:4: app 'web': watch_delay: expected milliseconds or a duration like \"1s\" or \"500ms\", got "
            "'soon'");
  EXPECT_EQ(parse_error("apps:\n  - name: web\n    script: a\n    post_update: [npm install]\n"),
            "eco.yaml:4: app 'web': post_update: PM2 key not supported by corral");
  // Keys whose off is what corral does anyway: off passes, on says why not.
  EXPECT_EQ(parse_error("apps:\n  - name: web\n    script: a\n    vizion: true\n"),
            "eco.yaml:4: app 'web': vizion: true is not supported by corral: it is PM2's git metadata of the app's "
            "directory, which corral does not collect");
  EXPECT_EQ(parse_error("apps:\n  - name: web\n    script: a\n    treekill: false\n"),
            "eco.yaml:4: app 'web': treekill: false is not supported by corral: it stops an app's whole process "
            "group, as PM2's default (true) stops its process tree");
  EXPECT_EQ(parse_error("apps:\n  - name: web\n    script: a\n    force: yes please\n"),
            "eco.yaml:4: app 'web': force: expected true or false");
  EXPECT_EQ(parse_error("apps:\n  - name: web\n    instances: 2\n"),
            "eco.yaml:2: app 'web': script: missing (the program, script or command to run)");
  EXPECT_EQ(parse_error("apps:\n  - script: a\n  - script: b\n    autorestart: maybe\n"),
            "eco.yaml:4: app #2: autorestart: expected true or false");
  EXPECT_EQ(parse_error("apps:\n  - name: w\n    script: a\n    autorestart: \"true\"\n"),
            "eco.yaml:4: app 'w': autorestart: expected true or false");
  EXPECT_EQ(parse_error("apps:\n  - name: w\n    script: a\n    max_restarts: lots\n"),
            "eco.yaml:4: app 'w': max_restarts: expected a whole number");
  EXPECT_EQ(parse_error("apps:\n  - name: w\n    script: a\n    port: 70000\n"),
            "eco.yaml:4: app 'w': port: expected 0..65535, got 70000");
  EXPECT_EQ(parse_error("apps:\n  - name: w\n    script: a\n    min_uptime: soon\n"),
            "eco.yaml:4: app 'w': min_uptime: expected milliseconds or a duration like \"1s\" or \"500ms\", got 'soon'");
  EXPECT_EQ(parse_error("apps:\n  - name: w\n    script: [a]\n"), "eco.yaml:3: app 'w': script: expected a string");
  EXPECT_EQ(parse_error("apps:\n  - name: w\n    script: a\n    args: \"'open\"\n"),
            "eco.yaml:4: app 'w': args: unterminated ' quote");
  EXPECT_EQ(parse_error("apps:\n  - name: w\n    script: a\n    env: [A]\n"),
            "eco.yaml:4: app 'w': env: expected a map of VARIABLE: value");
  EXPECT_EQ(parse_error("apps:\n  - name: w\n    script: a\n    env: {A: {B: 1}}\n"),
            "eco.yaml:4: app 'w': env: A: expected a string, number or boolean");
  EXPECT_EQ(parse_error("apps:\n  - name: w\n    script: a\n    exec_mode: turbo\n"),
            "eco.yaml:4: app 'w': exec_mode: expected fork or cluster, got 'turbo'");
  EXPECT_EQ(parse_error("apps:\n  - name: w\n    script: a\n    stop_exit_codes: [0, x]\n"),
            "eco.yaml:4: app 'w': stop_exit_codes: expected a whole number");
}

TEST(Ecosystem, ADuplicateKeyIsAnErrorNotTheLastOneWinning) {
  EXPECT_EQ(parse_error("apps:\n  - name: a\n    script: x\n    name: b\n"),
            "eco.yaml:4: app 'a': name: duplicate key (also at line 2)");
  EXPECT_EQ(parse_error("{\"apps\": [{\"name\": \"a\", \"script\": \"x\",\n \"script\": \"y\"}]}", eco_format::json),
            "eco.json:2: app 'a': script: duplicate key (also at line 1)");
  EXPECT_EQ(parse_error("apps:\n  - name: a\n    script: x\n    env: {A: 1, A: 2}\n"),
            "eco.yaml:4: app 'a': env: A: duplicate variable");
  EXPECT_EQ(parse_error("apps:\n  - script: a\napps:\n  - script: b\n"),
            "eco.yaml:3: apps: duplicate key (also at line 1)");
}

TEST(Ecosystem, AKeyThatIsNotANameIsAnError) {
  EXPECT_EQ(parse_error("apps:\n  - name: a\n    script: x\n    [k]: 1\n"),
            "eco.yaml:4: app 'a': a key must be a name, not a list or a map");
  EXPECT_EQ(parse_error("apps:\n  - name: a\n    script: x\n    env: {[k]: 1}\n"),
            "eco.yaml:4: app 'a': env: a variable name must be a string, not a list or a map");
  EXPECT_EQ(parse_error("? [apps]\n: []\n"), "eco.yaml:1: a key must be a name, not a list or a map");
}

TEST(Ecosystem, AnEnvNameNoAppHasIsAnError) {
  const char* text = "apps:\n  - script: a\n    env_production: {A: prod}\n";
  auto r = parse_ecosystem(text, eco_format::yaml, "eco.yaml", "prodution");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().message(), "eco.yaml: --env prodution: no app has env_prodution");
}

TEST(Ecosystem, ErrorsInTheFileShape) {
  EXPECT_EQ(parse_error("apps:\n  - name: a\n    script: [b\n"), "eco.yaml:4: bad YAML: end of sequence flow not found");
  EXPECT_EQ(parse_error("services:\n  - script: a\n"),
            "eco.yaml:1: services: unknown top-level key (expected apps: followed by a list of apps)");
  EXPECT_EQ(parse_error("apps: 3\n"), "eco.yaml:1: expected apps: followed by a list of apps (or a bare list)");
  EXPECT_EQ(parse_error("apps: []\n"), "eco.yaml:1: the list of apps is empty");
  EXPECT_EQ(parse_error("apps:\n  - just a string\n"),
            "eco.yaml:2: app #1: expected a map of keys (name, script, ...)");
  EXPECT_EQ(parse_error("{\"apps\": [\n  {\"script\": \"a\",}\n]}", eco_format::json),
            "eco.json:2: bad JSON: syntax error while parsing object key - unexpected '}'; expected string literal");
  EXPECT_EQ(parse_error("{\"apps\": [\n  {\"script\": \"a\",\n   \"instances\": [2]}]}", eco_format::json),
            "eco.json:3: app #1: instances: expected a number or \"max\"");
}

TEST(Ecosystem, DurationsAndWords) {
  EXPECT_EQ(*parse_duration_ms("1500"), 1500);
  EXPECT_EQ(*parse_duration_ms("2s"), 2000);
  EXPECT_EQ(*parse_duration_ms("0.5s"), 500);
  EXPECT_EQ(*parse_duration_ms("250ms"), 250);
  EXPECT_EQ(*parse_duration_ms("1h"), 3600000);
  EXPECT_FALSE(parse_duration_ms("-1"));
  EXPECT_FALSE(parse_duration_ms("1.5"));
  EXPECT_FALSE(parse_duration_ms("3 days"));
  EXPECT_EQ(*split_words(R"(a "b c" 'd e' f\ g "h\"i")"), (std::vector<std::string>{"a", "b c", "d e", "f g", "h\"i"}));
  EXPECT_EQ(*split_words("  "), std::vector<std::string>{});
}

class EcosystemFile : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/corral-eco-test-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    dir_ = templ;
    std::filesystem::create_directories(dir_ + "/sub");
    write("sub/app.py", "print('hi')\n");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void write(const std::string& rel, const std::string& text) { std::ofstream(dir_ + "/" + rel) << text; }
  result<std::vector<daemon::app_spec>> load(const std::string& text, eco_load_options o = {}) {
    write("eco.yaml", text);
    if (o.path_env.empty()) o.path_env = "/usr/bin:/bin";
    return load_ecosystem(dir_ + "/eco.yaml", o);
  }
  std::string dir_;
};

TEST_F(EcosystemFile, PathsAreRelativeToTheFile) {
  auto specs = load("apps:\n  - name: py\n    script: app.py\n    cwd: sub\n    interpreter: sh\n"
                    "  - name: s\n    script: sleep\n    args: [10]\n    instances: 3\n    port: 0\n"
                    "    kill_signal: TERM\n    max_log_size: 64K\n    kill_timeout: 2s\n    autorestart: false\n"
                    "    max_memory_restart: 300M\n    cron_restart: 0 3 * * *\n");
  ASSERT_TRUE(specs) << specs.err().message();
  ASSERT_EQ(specs->size(), 2u);
  const auto& py = (*specs)[0];
  EXPECT_EQ(py.cwd, dir_ + "/sub");
  ASSERT_EQ(py.argv.size(), 2u);
  EXPECT_EQ(py.argv[1], dir_ + "/sub/app.py");
  const auto& s = (*specs)[1];
  EXPECT_EQ(s.cwd, dir_);
  EXPECT_EQ(s.argv.back(), "10");
  EXPECT_EQ(s.instances, 3);
  EXPECT_EQ(s.listen, std::vector<std::string>{"0.0.0.0:0"});
  EXPECT_EQ(s.kill_signal, 15);
  EXPECT_EQ(s.max_log_size, 64u << 10);
  EXPECT_EQ(s.max_memory_restart, 300u << 20);
  EXPECT_EQ(s.cron_restart, "0 3 * * *");
  EXPECT_EQ(py.max_memory_restart, 0u);  // no limit unless asked
  EXPECT_EQ(s.lifecycle.kill_timeout.count(), 2000);
  EXPECT_FALSE(s.lifecycle.policy.autorestart);
}

TEST_F(EcosystemFile, CheckErrorsNameTheKeysLine) {
  auto r = load("apps:\n  - name: a\n    script: sleep\n  - name: b\n    script: no-such-program-here\n");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().message(), dir_ + "/eco.yaml:5: app 'b': script: cannot run no-such-program-here: not a file here "
                                      "and not found in PATH (ENOENT)");
  r = load("apps:\n  - name: a\n    script: sleep\n    kill_signal: SIGNOPE\n");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().message(), dir_ + "/eco.yaml:4: app 'a': kill_signal: unknown signal 'SIGNOPE'");
  r = load("apps:\n  - name: a\n    script: sleep\n    cwd: nowhere\n");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().message(), dir_ + "/eco.yaml:4: app 'a': cwd: not a directory: " + dir_ + "/nowhere");
  r = load("apps:\n  - name: a\n    script: sleep\n    max_log_size: 1K\n");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().message(), dir_ + "/eco.yaml:4: app 'a': max_log_size: '1K' is below the 4K minimum (0 means never rotate)");
  r = load("apps:\n  - name: a\n    script: sleep\n    max_memory_restart: 10K\n");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().message(), dir_ + "/eco.yaml:4: app 'a': max_memory_restart: '10K' is below the 1M minimum (0 means no limit)");
  r = load("apps:\n  - name: a\n    script: sleep\n    cron_restart: 0 25 * * *\n");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().message(),
            dir_ + "/eco.yaml:4: app 'a': cron_restart: cron pattern '0 25 * * *': hour: 25 is out of range 0..23");
  r = load("apps:\n  - name: a\n    script: sleep\n    instances: lots\n");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().message(), dir_ + "/eco.yaml:4: app 'a': instances: expected a number 1..1024 or 'max', got 'lots'");
  r = load("apps:\n  - name: a\n    script: sleep\n    interpreter_args: -x\n");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().message(), dir_ + "/eco.yaml:4: app 'a': interpreter_args: 'sleep' does not run under an interpreter");
  r = load("apps:\n  - name: a\n    script: sleep\n  - name: a\n    script: sleep\n");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().message(), dir_ + "/eco.yaml:4: app 'a': name: duplicate app name (also at line 2)");
  r = load("apps:\n  - name: '12'\n    script: sleep\n");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().message(),
            dir_ + "/eco.yaml:2: app '12': name: invalid app name '12' (letters, digits, - _ . @, not a number)");
}

TEST_F(EcosystemFile, WatchPathsAreRelativeToTheCwdAndAMissingOneIsTaken) {
  std::filesystem::create_directories(dir_ + "/sub/src");
  write("sub/main.py", "");
  auto specs = load("apps:\n  - name: a\n    script: sleep\n    cwd: sub\n    watch: true\n"
                    "  - name: b\n    script: sleep\n    cwd: sub\n    watch: [src, main.py, ./src/]\n"
                    "    ignore_watch: ['*.log']\n    watch_delay: 2s\n");
  ASSERT_TRUE(specs) << specs.err().message();
  ASSERT_EQ(specs->size(), 2u);
  EXPECT_EQ((*specs)[0].watch, std::vector<std::string>{dir_ + "/sub"});
  EXPECT_EQ((*specs)[1].watch, (std::vector<std::string>{dir_ + "/sub/src", dir_ + "/sub/main.py"}));  // once each
  EXPECT_EQ((*specs)[1].ignore_watch, std::vector<std::string>{"*.log"});
  EXPECT_EQ((*specs)[1].watch_delay.count(), 2000);
  EXPECT_EQ((*specs)[0].watch_delay.count(), 100);  // the default
  // Not there yet (a build's output): the daemon awaits it.
  auto r = load("apps:\n  - name: a\n    script: sleep\n    cwd: sub\n    watch: [src, dist/app.js]\n");
  ASSERT_TRUE(r) << r.err().message();
  EXPECT_EQ((*r)[0].watch, (std::vector<std::string>{dir_ + "/sub/src", dir_ + "/sub/dist/app.js"}));
}

TEST_F(EcosystemFile, OnlyChecksEveryAppAndKeepsTheNamedOnes) {
  const char* text = "apps:\n  - name: a\n    script: sleep\n  - name: b\n    script: sleep\n";
  eco_load_options o;
  o.only = {"b"};
  o.env = {{"X", "1"}};
  auto r = load(text, o);
  ASSERT_TRUE(r) << r.err().message();
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].name, "b");
  EXPECT_EQ((*r)[0].env.at("X"), "1");
  o.only = {"c"};
  r = load(text, o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().message(), dir_ + "/eco.yaml: --only: no app named 'c' in the file");
}

TEST_F(EcosystemFile, ConfigJsIsEvaluatedByNode) {
  if (::access("/usr/bin/node", X_OK) != 0 && ::access("/usr/local/bin/node", X_OK) != 0) GTEST_SKIP() << "no node";
  write("ecosystem.config.js",
        "module.exports = { apps: [{ name: 'js', script: 'sleep', args: ['5'], env_production: { A: 'p' } }] };\n");
  eco_load_options o;
  o.path_env = "/usr/local/bin:/usr/bin:/bin";
  o.env_name = "production";
  auto r = load_ecosystem(dir_ + "/ecosystem.config.js", o);
  ASSERT_TRUE(r) << r.err().message();
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].name, "js");
  EXPECT_EQ((*r)[0].env.at("A"), "p");
  write("broken.config.js", "module.exports = { apps: [ };\n");
  r = load_ecosystem(dir_ + "/broken.config.js", o);
  ASSERT_FALSE(r);
  EXPECT_NE(r.err().message().find(dir_ + "/broken.config.js:1: node could not evaluate it: SyntaxError"),
            std::string::npos)
      << r.err().message();
  write("bad.config.js", "module.exports = { apps: [{ script: 'sleep', bogus: 1 }] };\n");
  r = load_ecosystem(dir_ + "/bad.config.js", o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().message(), dir_ + "/bad.config.js: app #1: bogus: unknown key (see docs/ecosystem.md)");
  o.path_env = dir_;  // no node there
  r = load_ecosystem(dir_ + "/ecosystem.config.js", o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().message(), dir_ + "/ecosystem.config.js: a .config.js file needs node to evaluate it, and node "
                                      "is not in PATH (or write the apps as .yaml or .json)");
}

TEST_F(EcosystemFile, ConfigJsExportingNoAppsIsOneLineNamingTheFile) {
  if (::access("/usr/bin/node", X_OK) != 0 && ::access("/usr/local/bin/node", X_OK) != 0) GTEST_SKIP() << "no node";
  eco_load_options o;
  o.path_env = "/usr/local/bin:/usr/bin:/bin";
  auto error_of = [&](const std::string& name, const std::string& text) {
    write(name, text);
    auto r = load_ecosystem(dir_ + "/" + name, o);
    return r ? std::string() : r.err().message();
  };
  const std::string expected = "; expected { apps: [...] } or an array of apps";
  EXPECT_EQ(error_of("undef.config.js", "module.exports = undefined;\n"),
            dir_ + "/undef.config.js: module.exports is undefined" + expected);
  EXPECT_EQ(error_of("fn.config.js", "module.exports = function () {};\n"),
            dir_ + "/fn.config.js: module.exports is a function" + expected);
  // A file that sets nothing exports node's default, an empty object.
  EXPECT_EQ(error_of("empty.config.js", "// nothing yet\n"), dir_ + "/empty.config.js: module.exports has no apps" + expected);
}

// The shipped examples parse, and say the same thing in both formats.
TEST(Ecosystem, ShippedExamplesParse) {
  std::ifstream y(CORRAL_SOURCE_DIR "/examples/ecosystem.yaml"), j(CORRAL_SOURCE_DIR "/examples/ecosystem.json");
  std::stringstream ys, js;
  ys << y.rdbuf();
  js << j.rdbuf();
  auto a = parse_ecosystem(ys.str(), eco_format::yaml, "ecosystem.yaml", "production");
  auto b = parse_ecosystem(js.str(), eco_format::json, "ecosystem.json", "production");
  ASSERT_TRUE(a) << a.err().message();
  ASSERT_TRUE(b) << b.err().message();
  ASSERT_EQ(a->size(), 2u);
  ASSERT_EQ(b->size(), 2u);
  for (size_t k = 0; k < 2; ++k) {
    const auto &x = (*a)[k].options, &y2 = (*b)[k].options;
    EXPECT_EQ(x.name, y2.name);
    EXPECT_EQ(x.script, y2.script);
    EXPECT_EQ(x.args, y2.args);
    EXPECT_EQ(x.instances, y2.instances);
    EXPECT_EQ(x.port, y2.port);
    EXPECT_EQ(x.kill_timeout, y2.kill_timeout);
    EXPECT_EQ(x.env, y2.env);
  }
  EXPECT_EQ((*a)[0].options.port, 3000);
  EXPECT_EQ((*a)[1].options.env.at("APP_ENV"), "production");
}

}  // namespace
}  // namespace corral::cli
