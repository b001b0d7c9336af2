// Interoperability with Node itself: `node` started as a worker with
// NODE_CHANNEL_FD on our channel speaks to us through process.send() and
// process.on('message'), both ways, with strings, objects and unicode.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "corral/cluster.hpp"
#include "support/process.hpp"

namespace {

using corral::json;
namespace cluster = corral::cluster;

// The node binary on PATH, or empty.
std::string find_node() {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= dirs.size()) {
    std::size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string candidate = dirs.substr(start, end - start) + "/node";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return {};
}

// Turns the default loop until `done` holds or `timeout` passes.
bool run_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  uv_loop_t* loop = corral::default_loop();
  uv_timer_t timer;  // wakes UV_RUN_ONCE up by the deadline
  uv_timer_init(loop, &timer);
  uv_timer_start(&timer, [](uv_timer_t*) {}, static_cast<uint64_t>(timeout.count()), 0);
  uint64_t deadline = uv_now(loop) + static_cast<uint64_t>(timeout.count());
  while (!done() && uv_now(loop) < deadline) uv_run(loop, UV_RUN_ONCE);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer), nullptr);
  uv_run(loop, UV_RUN_NOWAIT);  // lets the timer's close finish before it leaves scope
  return done();
}

TEST(NodeInterop, NodeWorkerExchangesMessagesBothWays) {
  std::string node = find_node();
  // Node is a dependency of the test suite (scripts/install-deps installs it):
  // its absence is a failure, not a reason to skip.
  ASSERT_FALSE(node.empty()) << "node is not on PATH; run scripts/install-deps (Debian package nodejs)";

  const cluster::settings before = cluster::primary_settings();
  cluster::setup_primary({.exec = node, .args = std::vector<std::string>{support::src("tests/e2e/helpers/node_echo.js")},
                          .handle_signals = false});
  // The settings are process-wide: put them back for whatever runs next here.
  struct restore {
    cluster::settings saved;
    ~restore() { cluster::setup_primary(saved); }
  } restore_settings{before};
  corral::worker& w = cluster::fork({{"NODE_CHANNEL_FD", "3"}});
  ASSERT_FALSE(w.is_dead());
  const pid_t node_pid = w.pid();  // `w` is freed once its exit listeners have run

  const std::vector<json> outgoing = {
      "a plain string",
      "",
      json{{"nested", {{"deep", json::array({1, 2.5, nullptr, false})}}}, {"n", -7}},
      "unicode: h\u00e9llo \u2713 \U0001F680 \u4e2d\u6587 and a \n newline",
      json::array({"x", json::object()}),
      12345678901234LL,
      // Not ours, delivered as it came. (Not "NODE_..." in cmd: Node keeps
      // those for itself and never hands them to process.on('message').)
      json{{"cmd", "user-command"}, {"corral_like", "but not the reserved key"}},
      std::string(200 * 1024, 'z'),                     // larger than one read
  };

  bool ready = false, exited = false;
  int exit_code = -2, exit_signal = -1;
  json from_node;
  std::vector<json> echoes;
  w.on_message([&](const json& msg, std::vector<corral::unique_fd>&) {
    if (msg == "ready") {
      ready = true;
      for (const auto& m : outgoing) EXPECT_TRUE(w.send(m));
    } else if (msg.is_object() && msg.contains("from")) {
      from_node = msg;
    } else if (msg.is_object() && msg.contains("echo")) {
      echoes.push_back(msg["echo"]);
      if (echoes.size() == outgoing.size()) w.send("shutdown");
    } else {
      ADD_FAILURE() << "unexpected message from node: " << msg.dump();
    }
  });
  w.on_exit([&](int code, int signal) {
    exited = true;
    exit_code = code;
    exit_signal = signal;
  });

  bool finished = run_until([&] { return exited; }, std::chrono::seconds(30));
  if (!finished) {
    w.kill(SIGKILL);
    run_until([&] { return exited; }, std::chrono::seconds(5));
  }
  ASSERT_TRUE(finished) << "node did not finish; ready=" << ready << " echoes=" << echoes.size();
  EXPECT_TRUE(ready);
  EXPECT_EQ(exit_code, 0);
  EXPECT_EQ(exit_signal, 0);

  // Node -> us: what node built arrives exactly.
  EXPECT_EQ(from_node.value("text", ""), "h\u00e9llo \u2713 \U0001F680 \u2028");
  EXPECT_EQ(from_node["n"], 3.5);
  EXPECT_EQ(from_node["list"], json::parse(R"([1,null,true,"x"])"));
  EXPECT_EQ(from_node.value("pid", 0), node_pid);

  // Us -> node -> us: everything comes back equal and in order.
  ASSERT_EQ(echoes.size(), outgoing.size());
  for (std::size_t i = 0; i < outgoing.size(); ++i) EXPECT_EQ(echoes[i], outgoing[i]) << "message " << i;
}

}  // namespace
