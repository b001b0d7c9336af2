// A primary with two workers where worker 1 writes garbage on its channel:
//
//   channel_garbage random   random bytes with newlines
//   channel_garbage long     one 100 MB line with no newline
//   channel_garbage deep     one line of 100,000 nested arrays
//   channel_garbage half     half a JSON line, then it closes its end
//
// The primary must report the error naming worker 1, close that channel only,
// and keep exchanging messages with worker 2: after worker 1's channel closes
// it plays three rounds of ping-pong with worker 2, then disconnects and exits.
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>

#include "corral/cluster.hpp"

namespace cluster = corral::cluster;
using corral::json;

namespace {

constexpr int rounds = 3;

bool send_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);  // the primary may hang up on us mid-way
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

// Worker 1: speaks raw bytes on the channel, never through libcorral.
[[noreturn]] void write_garbage(int fd, const std::string& mode) {
  if (mode == "random") {
    std::mt19937 rng(20261124);
    std::string bytes(256 * 1024, '\0');
    for (auto& c : bytes) c = static_cast<char>(rng() & 0xff);
    bytes[0] = '\xff';  // never valid JSON, whatever follows
    for (std::size_t i = 97; i < bytes.size(); i += 97) bytes[i] = '\n';
    send_all(fd, bytes.data(), bytes.size());
  } else if (mode == "long") {
    std::string chunk(1 << 20, 'x');
    for (int i = 0; i < 100; ++i)
      if (!send_all(fd, chunk.data(), chunk.size())) break;
  } else if (mode == "deep") {
    // Valid JSON, but nested so deep that copying it would overflow a stack.
    std::string line = std::string(100000, '[') + std::string(100000, ']') + "\n";
    send_all(fd, line.data(), line.size());
  } else if (mode == "half") {
    const char half[] = "{\"msg\":\"this line never ends";
    send_all(fd, half, sizeof half - 1);
    ::shutdown(fd, SHUT_WR);
  } else {
    std::fprintf(stderr, "channel_garbage: unknown mode %s\n", mode.c_str());
    std::_Exit(2);
  }
  // Stay until the primary closes the channel, so that the error is the
  // primary's to find, not a side effect of this process exiting.
  char buf[4096];
  while (::read(fd, buf, sizeof buf) > 0) {
  }
  std::_Exit(0);
}

void run_worker() {
  auto& self = cluster::worker();
  self.on_message([&self](const json& msg, auto&) {
    if (msg.value("ping", 0) > 0) self.send({{"pong", msg["ping"]}});
  });
}

void run_primary() {
  cluster::setup_primary({.handle_signals = true});
  corral::worker& w1 = cluster::fork();
  corral::worker& w2 = cluster::fork();
  std::printf("primary: worker 1 is pid %d, worker 2 is pid %d\n", w1.pid(), w2.pid());

  static bool w1_gone = false, w2_online = false, started = false;
  static corral::worker* two = &w2;
  auto maybe_start = [] {
    if (started || !w1_gone || !w2_online) return;
    started = true;
    two->send({{"ping", 1}});
  };
  w1.on_disconnect([maybe_start] {
    std::printf("primary: channel to worker 1 closed; still serving worker 2\n");
    w1_gone = true;
    maybe_start();
  });
  w2.on_online([maybe_start] {
    w2_online = true;
    maybe_start();
  });
  w2.on_message([](const json& msg, auto&) {
    int n = msg.value("pong", 0);
    std::printf("primary: pong %d from worker 2\n", n);
    if (n < rounds) {
      two->send({{"ping", n + 1}});
    } else {
      cluster::disconnect([] { std::printf("primary: all workers gone\n"); });
    }
  });
  cluster::on_exit([](corral::worker& w, int code, int signal) {
    std::printf("primary: worker %d exited (code %d, signal %d)\n", w.id(), code, signal);
  });
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  // Read before cluster::is_worker(), which takes the variables out of the
  // environment (and opens the channel).
  const char* fd_env = std::getenv("CORRAL_CHANNEL_FD");
  const char* id_env = std::getenv("CORRAL_WORKER_ID");
  std::string mode = argc > 1 ? argv[1] : "random";
  if (id_env && std::string(id_env) == "1" && fd_env) write_garbage(std::atoi(fd_env), mode);

  if (cluster::is_primary()) {
    run_primary();
  } else {
    run_worker();
  }
  return corral::run();
}
