// The seed's first cluster program: one worker per CPU; each says it started
// and finished; the primary exits once all workers have.
//
//   $ ./cluster_basic          (or ./cluster_basic 3 for three workers)
//   Master 8463 is running
//   Forking process number 0...
//   Worker 8464 started and finished
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "corral/cluster.hpp"

namespace cluster = corral::cluster;

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  if (cluster::is_primary()) {
    int workers = argc > 1 ? std::atoi(argv[1]) : static_cast<int>(uv_available_parallelism());
    std::printf("Master %d is running\n", ::getpid());
    for (int i = 0; i < workers; ++i) {
      std::printf("Forking process number %d...\n", i);
      cluster::fork();
    }
  } else {
    std::printf("Worker %d started and finished\n", ::getpid());
    return 0;
  }
  return corral::run();
}
