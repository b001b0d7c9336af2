// A small app for the manager's tests, in C++ with no library: it speaks the
// channel by hand (fd $CORRAL_CHANNEL_FD, one JSON per line).
//   manager_app serve        prints "tick <n>" to stdout and "tock <n>" to stderr every 50 ms; SIGINT exits 0
//   manager_app lines <n>    prints out <i> / err <i> for i < n, then a partial line "partial", then waits
//   manager_app chatty       prints "line <n> pid <pid>" to stdout every 20 ms
//   manager_app crash <code> exits at once with <code>
//   manager_app flood <mb>   writes <mb> MB of lines to stdout as fast as it can, then waits
//   manager_app burst <n> <bytes>
//                            prints "burst <i> pid <pid> " padded to <bytes> for i < n, then
//                            "burst done pid <pid>", flushes, and waits
//   manager_app grow <mb>     takes <mb> MB of memory (touched), says ready, prints "grown <mb> pid <pid>", waits
//   manager_app stubborn     ignores SIGINT and SIGTERM (only SIGKILL stops it)
//   manager_app burn         spins on one core until SIGINT (cpu % tests)
//   manager_app numbered <n> <bytes> [delay_us] [wait]
//                            prints "seq <i>" padded to <bytes> (newline included) for i < n,
//                            <delay_us> apart; with "wait", prints "waiting" and starts on SIGUSR1
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

volatile sig_atomic_t stop_requested = 0;
volatile sig_atomic_t go = 0;

void send_ready() {
  const char* fd = std::getenv("CORRAL_CHANNEL_FD");
  if (!fd) return;
  const char msg[] = "\"ready\"\n";
  (void)!::write(std::atoi(fd), msg, sizeof msg - 1);
}

void wait_for_stop() {
  while (!stop_requested) ::pause();
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "serve";
  struct sigaction sa {};
  sa.sa_handler = [](int) { stop_requested = 1; };
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  send_ready();
  std::printf("started instance=%s pid=%d\n", std::getenv("CORRAL_INSTANCE") ? std::getenv("CORRAL_INSTANCE") : "?",
              static_cast<int>(::getpid()));
  if (mode == "stubborn") {
    ::signal(SIGINT, SIG_IGN);
    ::signal(SIGTERM, SIG_IGN);
    for (;;) ::pause();
  }
  if (mode == "burn") {
    volatile unsigned long spins = 0;
    while (!stop_requested) spins = spins + 1;
    return 0;
  }
  if (mode == "chatty") {  // a numbered line with its pid every 20 ms, on stdout only
    for (int n = 0; !stop_requested; ++n) {
      std::printf("line %d pid %d\n", n, static_cast<int>(::getpid()));
      std::fflush(stdout);
      ::usleep(20 * 1000);
    }
    return 0;
  }
  if (mode == "crash") return argc > 2 ? std::atoi(argv[2]) : 1;
  if (mode == "lines") {
    int n = argc > 2 ? std::atoi(argv[2]) : 10;
    for (int i = 0; i < n; ++i) {
      std::printf("out %d\n", i);
      std::fprintf(stderr, "err %d\n", i);
    }
    std::printf("partial");
    std::fflush(stdout);
    wait_for_stop();
    return 0;
  }
  if (mode == "numbered") {
    int n = argc > 2 ? std::atoi(argv[2]) : 100;
    int bytes = argc > 3 ? std::atoi(argv[3]) : 64;
    int delay_us = argc > 4 ? std::atoi(argv[4]) : 0;
    if (argc > 5 && std::string(argv[5]) == "wait") {
      struct sigaction usr {};
      usr.sa_handler = [](int) { go = 1; };
      ::sigaction(SIGUSR1, &usr, nullptr);
      std::printf("waiting\n");
      while (!go && !stop_requested) ::usleep(1000);  // (pause() could miss a signal just before it)
    }
    for (int i = 0; i < n && !stop_requested; ++i) {
      std::string line = "seq " + std::to_string(i) + " ";
      line.resize(static_cast<size_t>(std::max(bytes, 16) - 1), 'x');
      std::printf("%s\n", line.c_str());
      if (delay_us > 0) ::usleep(static_cast<useconds_t>(delay_us));
    }
    std::printf("numbered done\n");
    wait_for_stop();
    return 0;
  }
  if (mode == "grow") {
    std::size_t bytes = static_cast<std::size_t>(argc > 2 ? std::atoi(argv[2]) : 10) << 20;
    auto* mem = static_cast<char*>(std::malloc(bytes));
    for (std::size_t k = 0; mem && k < bytes; k += 4096) mem[k] = 1;  // resident, not just reserved
    send_ready();
    std::printf("grown %s pid %d\n", argc > 2 ? argv[2] : "10", static_cast<int>(::getpid()));
    std::fflush(stdout);
    wait_for_stop();
    std::free(mem);
    return 0;
  }
  if (mode == "burst") {
    int n = argc > 2 ? std::atoi(argv[2]) : 100;
    int bytes = argc > 3 ? std::atoi(argv[3]) : 64;
    const std::string pid = std::to_string(::getpid());
    std::setvbuf(stdout, nullptr, _IOFBF, 1 << 16);  // 64 KiB writes
    for (int i = 0; i < n; ++i) {
      std::string line = "burst " + std::to_string(i) + " pid " + pid + " ";
      line.resize(static_cast<size_t>(std::max(bytes, 32) - 1), 'x');
      std::printf("%s\n", line.c_str());
    }
    std::printf("burst done pid %s\n", pid.c_str());
    std::fflush(stdout);
    wait_for_stop();
    return 0;
  }
  if (mode == "flood") {
    long total = (argc > 2 ? std::atol(argv[2]) : 50) * 1024L * 1024L;
    std::string line(99, 'x');
    line += '\n';
    std::setvbuf(stdout, nullptr, _IOFBF, 1 << 16);
    for (long written = 0; written < total && !stop_requested; written += static_cast<long>(line.size()))
      std::fwrite(line.data(), 1, line.size(), stdout);
    std::printf("flood done\n");
    std::fflush(stdout);
    wait_for_stop();
    return 0;
  }
  for (int n = 0; !stop_requested; ++n) {
    std::printf("tick %d\n", n);
    std::fprintf(stderr, "tock %d\n", n);
    ::usleep(50 * 1000);
  }
  std::printf("stopping gracefully\n");
  return 0;
}
