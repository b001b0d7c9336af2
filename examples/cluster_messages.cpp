// The seed's message-passing program: workers and the primary exchange JSON
// messages both ways. Stop it with Ctrl+C; no worker is left behind.
//
//   $ ./cluster_messages       (or ./cluster_messages 3 for three workers)
//   Master 4045 is running
//   Forking process number 0...
//   Master 4045 sends message to worker 4046...
//   Worker 4046 started
//   Worker 4046 sends message to master...
//   Worker 4046 finished
//   Master 4045 receives message '{"msg":"Message from worker 4046"}' from worker 4046
//   Worker 4046 receives message '{"msg":"Message from master 4045"}'
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "corral/cluster.hpp"

namespace cluster = corral::cluster;

static void primary(int count) {
  std::printf("Master %d is running\n", ::getpid());
  std::vector<corral::worker*> workers;
  for (int i = 0; i < count; ++i) {
    std::printf("Forking process number %d...\n", i);
    corral::worker& w = cluster::fork();
    workers.push_back(&w);
    w.on_message([&w](const corral::json& msg, auto&) {
      std::printf("Master %d receives message '%s' from worker %d\n", ::getpid(), msg.dump().c_str(), w.pid());
    });
  }
  for (auto* w : workers) {
    std::printf("Master %d sends message to worker %d...\n", ::getpid(), w->pid());
    w->send({{"msg", "Message from master " + std::to_string(::getpid())}});
  }
}

static void worker() {
  auto& self = cluster::worker();
  std::printf("Worker %d started\n", ::getpid());
  self.on_message([](const corral::json& msg, auto&) {
    std::printf("Worker %d receives message '%s'\n", ::getpid(), msg.dump().c_str());
  });
  std::printf("Worker %d sends message to master...\n", ::getpid());
  self.send({{"msg", "Message from worker " + std::to_string(::getpid())}});
  std::printf("Worker %d finished\n", ::getpid());
}

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  if (cluster::is_primary()) {
    primary(argc > 1 ? std::atoi(argv[1]) : static_cast<int>(uv_available_parallelism()));
  } else {
    worker();
  }
  return corral::run();
}
