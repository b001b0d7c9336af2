// Control protocol, state file and app spec: encode/decode round trips.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/app_spec.hpp"
#include "daemon/protocol.hpp"
#include "daemon/state_file.hpp"

using namespace corral::daemon;
using namespace std::chrono_literals;

TEST(ManagerProtocol, RequestRoundTrips) {
  request r{42, "stop", {{"target", "web"}}};
  auto line = encode_line(encode(r));
  ASSERT_EQ(line.back(), '\n');
  auto j = parse_line(std::string_view(line).substr(0, line.size() - 1));
  ASSERT_TRUE(j);
  auto back = decode_request(*j);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->id, 42u);
  EXPECT_EQ(back->cmd, "stop");
  EXPECT_EQ(back->args["target"], "web");
}

TEST(ManagerProtocol, ResponsesRoundTripBothWays) {
  auto ok = decode_response(encode(response{7, true, json{{"pid", 1}}, {}}));
  ASSERT_TRUE(ok);
  EXPECT_TRUE(ok->ok);
  EXPECT_EQ(ok->result["pid"], 1);
  auto bad = decode_response(encode(response{8, false, json(), "no app named 'x'"}));
  ASSERT_TRUE(bad);
  EXPECT_FALSE(bad->ok);
  EXPECT_EQ(bad->error, "no app named 'x'");
}

TEST(ManagerProtocol, MalformedRequestsAreErrorsNotCrashes) {
  EXPECT_FALSE(parse_line("{not json"));
  EXPECT_FALSE(decode_request(json::array()));
  EXPECT_FALSE(decode_request(json{{"cmd", "ping"}}));
  EXPECT_FALSE(decode_request(json{{"id", -1}, {"cmd", "ping"}}));
  EXPECT_FALSE(decode_request(json{{"id", 1}, {"cmd", 3}}));
  EXPECT_FALSE(decode_request(json{{"id", 1u}, {"cmd", "x"}, {"args", 3}}));
  EXPECT_FALSE(decode_response(json{{"id", 1}, {"ok", false}}));
}

TEST(ManagerProtocol, InvalidUtf8DoesNotThrowWhenEncoded) {
  response r{1, false, json(), std::string("bad \xff byte")};
  EXPECT_NO_THROW((void)encode_line(encode(r)));
}

namespace {
app_spec sample_spec() {
  app_spec s;
  s.name = "web";
  s.argv = {"/usr/bin/python3", "/srv/app.py", "--port", "0"};
  s.cwd = "/srv";
  s.env = {{"A", "1"}};
  s.instances = 3;
  s.time = true;
  s.kill_signal = 15;
  s.max_memory_restart = 300u << 20;
  s.cron_restart = "0 3 * * *";
  s.watch = {"/srv", "/etc/web.conf"};
  s.ignore_watch = {"*.log", "tmp/**"};
  s.watch_delay = 750ms;
  s.lifecycle.kill_timeout = 2500ms;
  s.lifecycle.policy.exp_backoff_restart_delay = 100ms;
  s.lifecycle.policy.max_restarts = 5;
  s.lifecycle.policy.stop_exit_codes = {0, 2};
  s.running = false;
  return s;
}
}  // namespace

TEST(ManagerAppSpec, RoundTripsEveryField) {
  auto back = app_spec_from_json(to_json(sample_spec()));
  ASSERT_TRUE(back) << back.err().message();
  EXPECT_EQ(to_json(*back), to_json(sample_spec()));
}

TEST(ManagerAppSpec, RejectsBadNamesAndValues) {
  auto j = to_json(sample_spec());
  for (const char* name : {"", "12", "a/b", "all", "..", "a b"}) {
    auto k = j;
    k["name"] = name;
    EXPECT_FALSE(app_spec_from_json(k)) << name;
  }
  auto k = j;
  k["instances"] = 0;
  EXPECT_FALSE(app_spec_from_json(k));
  k = j;
  k["argv"] = json::array();
  EXPECT_FALSE(app_spec_from_json(k));
  k = j;
  k["kill_timeout"] = "soon";
  EXPECT_FALSE(app_spec_from_json(k));
  k = j;
  k["defer_accept"] = true;  // (sample_spec has no listen address)
  auto no_port = app_spec_from_json(k);
  ASSERT_FALSE(no_port);
  EXPECT_EQ(no_port.err().message(), "app 'web': defer_accept needs a port or listen address (cluster mode)");
  k["listen"] = {"127.0.0.1:0"};
  auto with_port = app_spec_from_json(k);
  ASSERT_TRUE(with_port) << with_port.err().message();
  EXPECT_TRUE(with_port->defer_accept);
}

// A state file written before watch existed has none of its keys: no watch.
TEST(ManagerAppSpec, WatchKeysAreOptionalAndChecked) {
  auto j = to_json(sample_spec());
  for (const char* key : {"watch", "ignore_watch", "watch_delay"}) j.erase(key);
  auto old = app_spec_from_json(j);
  ASSERT_TRUE(old) << old.err().message();
  EXPECT_TRUE(old->watch.empty());
  EXPECT_TRUE(old->ignore_watch.empty());
  EXPECT_EQ(old->watch_delay.count(), 100);
  auto refused = [&](const char* key, json value) {
    auto k = to_json(sample_spec());
    k[key] = std::move(value);
    auto r = app_spec_from_json(k);
    return r ? std::string("accepted") : r.err().message();
  };
  EXPECT_EQ(refused("watch", "/srv"), "app 'web': watch must be an array of strings, got a string");
  EXPECT_EQ(refused("watch", {"srv"}), "app 'web': watch: 'srv' is not an absolute path");
  EXPECT_EQ(refused("watch", {""}), "app 'web': watch: '' is not an absolute path");
  EXPECT_EQ(refused("watch", json(std::vector<std::string>(65, "/srv"))), "app 'web': watch: at most 64 paths, got 65");
  EXPECT_EQ(refused("ignore_watch", {""}),
            "app 'web': ignore_watch: a pattern must be 1..1024 characters, without NUL");
  EXPECT_EQ(refused("ignore_watch", {1}), "app 'web': ignore_watch[0] must be a string, got a number");
  EXPECT_EQ(refused("watch_delay", -1), "app 'web': watch_delay must be a whole number 0..1000000000000, got -1");
  EXPECT_EQ(refused("watch_delay", "1s"), "app 'web': watch_delay must be a number, got a string");
}

TEST(ManagerAppSpec, ListenAddressesRoundTripAndParse) {
  app_spec s;
  s.name = "web";
  s.argv = {"/bin/true"};
  s.listen = {"0.0.0.0:3000", "[::1]:8080", "unix:/run/web.sock"};
  auto back = app_spec_from_json(to_json(s));
  ASSERT_TRUE(back) << back.err().message();
  EXPECT_EQ(back->listen, s.listen);
  auto v6 = parse_listen("[::1]:8080");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 8080);
  auto any = parse_listen(":0");
  ASSERT_TRUE(any);
  EXPECT_EQ(any->host, "0.0.0.0");
  EXPECT_EQ(parse_listen("unix:/run/web.sock")->path, "/run/web.sock");
  for (const char* bad : {"3000", "host:", "host:65536", "host:3x", "unix:relative.sock", "unix:"})
    EXPECT_FALSE(parse_listen(bad)) << bad;
  s.listen = {"nowhere"};
  EXPECT_FALSE(app_spec_from_json(to_json(s)));
}

TEST(ManagerStateFile, RoundTripsWithPids) {
  persisted_state st;
  st.daemon_pid = 100;
  st.next_id = 4;
  st.apps.push_back({sample_spec(), {{0, 0, 1234, 999, {77, 78}}, {3, 1, 0, 0}}});
  auto back = state_from_json(to_json(st));
  ASSERT_TRUE(back) << back.err().message();
  EXPECT_EQ(to_json(*back), to_json(st));
  EXPECT_EQ(back->apps[0].instances[0].pid, 1234);
  EXPECT_EQ(back->apps[0].instances[0].output_inodes, (std::array<uint64_t, 2>{77, 78}));
  // A file older than output_inodes reads with none (nothing to take over).
  auto j = to_json(st);
  j["apps"][0]["instances"][0].erase("output_inodes");
  auto old = state_from_json(j);
  ASSERT_TRUE(old) << old.err().message();
  EXPECT_EQ(old->apps[0].instances[0].output_inodes, (std::array<uint64_t, 2>{0, 0}));
}

TEST(ManagerStateFile, UnknownVersionIsRefused) {
  auto j = to_json(persisted_state{});
  j["version"] = 99;
  EXPECT_FALSE(state_from_json(j));
}

TEST(ManagerStateFile, AtomicWriteReplacesWholeFileWithPrivateMode) {
  char dir[] = "/tmp/corral-state-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  std::string path = std::string(dir) + "/state.json";
  ASSERT_TRUE(write_file_atomic(path, "first"));
  ASSERT_TRUE(write_file_atomic(path, "second"));
  auto text = read_file(path);
  ASSERT_TRUE(text);
  EXPECT_EQ(*text, "second");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_FALSE(read_file(std::string(dir) + "/missing"));
  ::unlink(path.c_str());
  ::rmdir(dir);  // fails if a temporary file was left behind
  EXPECT_NE(::access(dir, F_OK), 0);
}

TEST(ManagerProtocol, WrongTypedArgumentIsAnErrorNamingItAndNullIsAbsent) {
  auto err = [](json args) {
    auto r = decode_request(json{{"id", 1u}, {"cmd", "x"}, {"args", std::move(args)}});
    return r ? std::string() : r.err().message();
  };
  EXPECT_EQ(err({{"target", 1}}), "args.target must be a string");
  EXPECT_EQ(err({{"full", 1}}), "args.full must be a boolean");
  EXPECT_EQ(err({{"parallel", "2"}}), "args.parallel must be an integer");
  EXPECT_EQ(err({{"parallel", 2.5}}), "args.parallel must be an integer");
  EXPECT_EQ(err({{"instances", uint64_t{1} << 40}}), "args.instances must be an integer (32-bit)");
  EXPECT_EQ(err({{"instances", -(int64_t{1} << 40)}}), "args.instances must be an integer (32-bit)");
  EXPECT_EQ(err({{"app", "web"}}), "args.app must be an object");
  EXPECT_EQ(err({{"resolve_error", false}}), "args.resolve_error must be a string");
  EXPECT_EQ(err({{"target", "web"}, {"full", true}, {"parallel", -3}, {"mine", json::array()}}), "");
  auto r = decode_request(json{{"id", 1u}, {"cmd", "list"}, {"args", {{"target", nullptr}, {"full", nullptr}}}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->args, json::object());
}

namespace {
std::string spec_error(const std::string& key, json value) {
  auto j = to_json(sample_spec());
  j[key] = std::move(value);
  auto r = app_spec_from_json(j);
  return r ? std::string() : r.err().message();
}
// What spoils the file, or else what is wrong with its first unreadable app.
std::string state_error(const json& j) {
  auto r = state_from_json(j);
  if (!r) return r.err().message();
  return r->unreadable.empty() ? std::string() : r->unreadable[0].error;
}
}  // namespace

TEST(ManagerAppSpec, WrongTypedFieldIsAnErrorNamingTheAppAndTheKey) {
  EXPECT_EQ(spec_error("kill_timeout", "soon"), "app 'web': kill_timeout must be a number, got a string");
  EXPECT_EQ(spec_error("instances", true), "app 'web': instances must be a number, got a boolean");
  EXPECT_EQ(spec_error("time", 1), "app 'web': time must be true or false, got a number");
  EXPECT_EQ(spec_error("cwd", json::array()), "app 'web': cwd must be a string, got an array");
  EXPECT_EQ(spec_error("argv", json{"/bin/true", 3}), "app 'web': argv[1] must be a string, got a number");
  EXPECT_EQ(spec_error("env", json{{"A", json::object()}}), "app 'web': env.A must be a string, got an object");
  EXPECT_EQ(spec_error("stop_exit_codes", json{0, "2"}), "app 'web': stop_exit_codes[1] must be a number, got a string");
  EXPECT_EQ(spec_error("name", 7), "app: name must be a string, got a number");
  EXPECT_EQ(spec_error("kill_timeout", nullptr), "");  // null reads as absent, as in the protocol
}

TEST(ManagerAppSpec, OutOfRangeNumbersAreRefusedWithTheirLimitsNotConverted) {
  EXPECT_EQ(spec_error("kill_timeout", 1e300), "app 'web': kill_timeout must be a whole number 0..1000000000000, got 1e+300");
  EXPECT_EQ(spec_error("instances", 1e30), "app 'web': instances must be a whole number 1..1024, got 1e+30");
  EXPECT_EQ(spec_error("max_log_size", -1),
            "app 'web': max_log_size must be a whole number 0..18446744073709551615, got -1");
  EXPECT_EQ(spec_error("max_log_size", 100), "app 'web': max_log_size must be 0 (never rotate) or at least 4096, got 100");
  EXPECT_EQ(spec_error("max_memory_restart", 4096),
            "app 'web': max_memory_restart must be 0 (no limit) or at least 1048576, got 4096");
  EXPECT_EQ(spec_error("max_memory_restart", "300M"), "app 'web': max_memory_restart must be a number, got a string");
  EXPECT_EQ(spec_error("cron_restart", "0 3 * *"),
            "app 'web': cron_restart: cron pattern '0 3 * *': expected 5 fields (minute hour day-of-month month "
            "day-of-week) or 6 (seconds first), got 4");
  EXPECT_EQ(spec_error("min_uptime", -5), "app 'web': min_uptime must be a whole number 0..1000000000000, got -5");
  EXPECT_EQ(spec_error("restart_delay", 1.5), "app 'web': restart_delay must be a whole number 0..1000000000000, got 1.5");
  EXPECT_EQ(spec_error("max_restarts", uint64_t{1} << 63),
            "app 'web': max_restarts must be a whole number 0..1000000, got 9223372036854775808");
  EXPECT_EQ(spec_error("kill_signal", 65), "app 'web': kill_signal must be a whole number 1..64, got 65");
  EXPECT_EQ(spec_error("log_retain", 1001), "app 'web': log_retain must be a whole number 0..1000, got 1001");
  EXPECT_EQ(spec_error("stop_exit_codes", json{256}), "app 'web': stop_exit_codes[0] must be a whole number 0..255, got 256");
  EXPECT_EQ(spec_error("kill_timeout", 2500.0), "");  // a whole number written as a float
  EXPECT_EQ(spec_error("max_log_size", 18446744073709551615u), "");
  EXPECT_NE(spec_error("max_log_size", 18446744073709551616.0), "");  // 2^64: no uint64_t holds it
}

TEST(ManagerStateFile, BadFieldsAreErrorsNamingTheAppAndTheKey) {
  persisted_state st;
  st.apps.push_back({sample_spec(), {{0, 0, 1234, 999}}});
  auto j = to_json(st);
  j["apps"][0]["spec"]["kill_timeout"] = "soon";
  EXPECT_EQ(state_error(j), "app 'web': kill_timeout must be a number, got a string");
  j = to_json(st);
  j["apps"][0]["spec"]["name"] = 1;
  EXPECT_EQ(state_error(j), "app #1: name must be a string, got a number");
  j = to_json(st);
  j["apps"][0]["instances"][0]["pid"] = 1e300;
  EXPECT_EQ(state_error(j), "app 'web': instance #1: pid must be a whole number 0..2147483647, got 1e+300");
  j = to_json(st);
  j["apps"][0]["instances"][0]["output_inodes"] = {1, -2};
  EXPECT_EQ(state_error(j), "app 'web': instance #1: output_inodes must be two whole numbers, got [1,-2]");
  j = to_json(st);
  j["next_id"] = "3";
  EXPECT_EQ(state_error(j), "next_id must be a number, got a string");
  j = to_json(st);
  j["apps"] = json::object();
  EXPECT_EQ(state_error(j), "apps must be an array, got an object");
  j = to_json(st);
  j["version"] = 2;
  EXPECT_EQ(state_error(j), "version 2 is not one this corral reads (1)");
}

TEST(ManagerStateFile, OneUnreadableAppIsSetApartAndTheOthersAreRead) {
  persisted_state st;
  st.apps.push_back({sample_spec(), {{0, 0, 1234, 999}}});
  auto other = sample_spec();
  other.name = "api";
  st.apps.push_back({other, {{1, 0, 4321, 888}}});
  auto j = to_json(st);
  j["apps"][0]["spec"]["kill_timeout"] = "soon";
  auto r = state_from_json(j);
  ASSERT_TRUE(r) << r.err().message();
  ASSERT_EQ(r->apps.size(), 1u);
  EXPECT_EQ(r->apps[0].spec.name, "api");
  EXPECT_EQ(r->apps[0].instances[0].pid, 4321);
  ASSERT_EQ(r->unreadable.size(), 1u);
  EXPECT_EQ(r->unreadable[0].error, "app 'web': kill_timeout must be a number, got a string");
  // Its instances are still read: a new daemon stops what they left running.
  ASSERT_EQ(r->unreadable[0].instances.size(), 1u);
  EXPECT_EQ(r->unreadable[0].instances[0].pid, 1234);
  // An app that is not even an object is set apart too.
  j = to_json(st);
  j["apps"][1] = 7;
  r = state_from_json(j);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->apps.size(), 1u);
  ASSERT_EQ(r->unreadable.size(), 1u);
  EXPECT_EQ(r->unreadable[0].error, "app #2: expected an object, got a number");
}
