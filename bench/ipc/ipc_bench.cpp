// Corral's side of the IPC benchmark (bench/ipc/run runs it beside Node's
// cluster doing the same, and a bare socketpair floor).
//
//   ipc_bench oneway [N]     a worker sends N messages {"seq":n,"msg":"hello"}
//                            to the primary as fast as back-pressure allows
//   ipc_bench pingpong [N]   the primary and one worker bounce {"seq":n} N times
//
// Prints one line: "<mode> <N> <seconds> <per second>". With IPC_PIN=1 the
// primary runs on CPU 0 and the worker on CPU 1.
#include <sched.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "corral/cluster.hpp"

namespace cluster = corral::cluster;
using corral::json;
using bench_clock = std::chrono::steady_clock;

namespace {

std::string mode;

void pin(int cpu) {
  const char* env = std::getenv("IPC_PIN");
  if (!env || std::string(env) != "1") return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) std::perror("sched_setaffinity");
}
long total = 0;

// Worker, one-way: sends until send() says the queue is above high water, then
// resumes on drain (the channel's back-pressure contract).
void pump() {
  static long seq = 0;
  auto& self = cluster::worker();
  while (seq < total) {
    if (!self.send({{"seq", seq++}, {"msg", "hello"}})) return;
  }
}

void run_worker() {
  auto& self = cluster::worker();
  self.on_drain([] { pump(); });  // send until false, then wait for the drain
  self.on_message([&self](const json& msg, auto&) {
    if (msg == "start") {
      pump();
    } else if (msg == "stop") {
      self.disconnect();
    } else {
      self.send(msg);  // ping-pong: bounce it back
    }
  });
}

void report(bench_clock::time_point t0) {
  double s = std::chrono::duration<double>(bench_clock::now() - t0).count();
  std::printf("%s %ld %.6f %.0f\n", mode.c_str(), total, s, static_cast<double>(total) / s);
}

void run_primary() {
  cluster::setup_primary({.handle_signals = false});
  corral::worker& w = cluster::fork();
  static bench_clock::time_point t0;
  static long received = 0;
  w.on_online([&w] {
    t0 = bench_clock::now();
    if (mode == "oneway") {
      w.send("start");
    } else {
      w.send({{"seq", 0}});
    }
  });
  w.on_message([&w](const json& msg, auto&) {
    long seq = msg.value("seq", -1L);
    if (seq != received) {
      std::fprintf(stderr, "ipc_bench: expected seq %ld, got %s\n", received, msg.dump().c_str());
      std::exit(1);
    }
    if (++received == total) {
      report(t0);
      w.send("stop");
    } else if (mode == "pingpong") {
      w.send({{"seq", received}});
    }
  });
  w.on_exit([](int code, int signal) {
    if (received != total) {
      std::fprintf(stderr, "ipc_bench: worker exited (code %d, signal %d) after %ld of %ld\n", code, signal, received,
                   total);
      std::exit(1);
    }
  });
}

}  // namespace

int main(int argc, char** argv) {
  mode = argc > 1 ? argv[1] : "oneway";
  if (mode != "oneway" && mode != "pingpong") {
    std::fprintf(stderr, "usage: ipc_bench oneway|pingpong [N]\n");
    return 2;
  }
  total = argc > 2 ? std::atol(argv[2]) : (mode == "oneway" ? 1000000 : 20000);
  if (cluster::is_primary()) {
    pin(0);
    run_primary();
  } else {
    pin(1);
    run_worker();
  }
  return corral::run();
}
