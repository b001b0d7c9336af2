// Test program: a cluster whose workers answer every connection with
// "<pid>\n" and close. Configured by the environment:
//   WORKERS (default 2), PORT (default 0), LISTEN_PATH (a Unix socket instead),
//   CORRAL_SCHED_POLICY (the library's own variable),
//   DELAY_MS       answer after this long (work in flight),
//   CRASH_FILE     if this file exists when a worker starts, it exits 1 at once,
//   HOLD_FILE      if this file exists when a worker starts, it never listens,
//   RESPAWN=1      settings.respawn, with RESPAWN_DELAY_MS,
//   HANG=1         workers never finish leaving (a timer keeps them alive),
//   SHUTDOWN_TIMEOUT_MS  settings.shutdown_timeout,
//   SECOND_PORT    workers also serve a second port, and print "second <address>".
//   RELISTEN=1     a worker closes its listener before the primary has
//                  answered its listen, listens again once closed, and on the
//                  loop iteration after that listen's callback prints
//                  "relistened listening" (or "relistened closed").
// The primary prints "listening <worker pid> <address>" for every worker that
// listens, "exit <worker pid> code <c> signal <s>" for every worker that
// exits, "restarted" / "restart failed: <why>" after each rolling restart
// (SIGHUP), and forks one more worker on SIGUSR1.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "corral/cluster.hpp"
#include "corral/net.hpp"

namespace cluster = corral::cluster;
namespace net = corral::net;

static int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

static void primary() {
  cluster::settings s;
  s.respawn = env_int("RESPAWN", 0) == 1;
  s.respawn_delay = std::chrono::milliseconds(env_int("RESPAWN_DELAY_MS", 100));
  s.shutdown_timeout = std::chrono::milliseconds(env_int("SHUTDOWN_TIMEOUT_MS", 5000));
  s.restart_timeout = std::chrono::milliseconds(env_int("RESTART_TIMEOUT_MS", 10000));
  cluster::setup_primary(s);
  cluster::on_listening([](corral::worker& w, const net::address& a) {
    std::printf("listening %d %s\n", w.pid(), a.to_string().c_str());
  });
  cluster::on_exit([](corral::worker& w, int code, int sig) {
    std::printf("exit %d code %d signal %d\n", w.pid(), code, sig);
  });
  cluster::on_rolling_restart([](const corral::error* e, std::chrono::milliseconds) {
    if (e) {
      std::printf("restart failed: %s\n", e->message().c_str());
    } else {
      std::printf("restarted\n");
    }
  });
  static uv_signal_t usr1;
  uv_signal_init(uv_default_loop(), &usr1);
  // This watcher also keeps the primary alive with no worker left.
  uv_signal_start(&usr1, [](uv_signal_t*, int) { cluster::fork(); }, SIGUSR1);
  for (int i = 0, n = env_int("WORKERS", 2); i < n; ++i) cluster::fork();
}

static void answer(corral::unique_fd fd) {
  std::string line = std::to_string(::getpid());
  if (std::getenv("REPORT_NODELAY")) {  // what the listener promises: TCP_NODELAY
    int v = -1;
    socklen_t len = sizeof v;
    ::getsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &v, &len);
    line += " nodelay=" + std::to_string(v);
  }
  line += "\n";
  // A fresh socket's send buffer always takes a few bytes.
  [[maybe_unused]] auto n = ::write(fd.get(), line.data(), line.size());
}

static void worker() {
  struct stat st{};
  if (const char* crash = std::getenv("CRASH_FILE"); crash && ::stat(crash, &st) == 0) std::exit(1);
  if (const char* hold = std::getenv("HOLD_FILE"); hold && ::stat(hold, &st) == 0) {
    static uv_timer_t idle;  // alive, but never listening
    uv_timer_init(uv_default_loop(), &idle);
    uv_timer_start(&idle, [](uv_timer_t*) {}, 1000, 1000);
    return;
  }
  static net::listener l;
  static int delay = env_int("DELAY_MS", 0);
  l.on_connection([](corral::unique_fd fd) {
    if (delay == 0) {
      answer(std::move(fd));
      return;
    }
    auto* t = new uv_timer_t;
    uv_timer_init(uv_default_loop(), t);
    t->data = new corral::unique_fd(std::move(fd));
    uv_timer_start(t, [](uv_timer_t* t) {
      auto* fd = static_cast<corral::unique_fd*>(t->data);
      answer(std::move(*fd));
      delete fd;
      uv_close(reinterpret_cast<uv_handle_t*>(t), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    }, static_cast<uint64_t>(delay), 0);
  });
  if (env_int("HANG", 0) == 1) {
    static uv_timer_t forever;
    uv_timer_init(uv_default_loop(), &forever);
    uv_timer_start(&forever, [](uv_timer_t*) {}, 1000, 1000);
  }
  static net::listen_options o;
  o.port = env_int("PORT", 0);
  if (const char* p = std::getenv("LISTEN_PATH")) o.path = p;
  o.host = "127.0.0.1";
  if (env_int("RELISTEN", 0) == 1) {
    l.listen(o, [](const corral::error*, const net::address&) {});
    l.close([] {
      l.listen(o, [](const corral::error* e, const net::address&) {
        if (e) {
          std::fprintf(stderr, "listen failed: %s\n", e->message().c_str());
          std::exit(3);
        }
        // A listener that wrongly closes itself does so right after this
        // callback returns: look on the next iteration.
        static uv_timer_t check;
        uv_timer_init(uv_default_loop(), &check);
        uv_timer_start(&check, [](uv_timer_t* t) {
          std::printf("relistened %s\n", l.is_listening() ? "listening" : "closed");
          uv_close(reinterpret_cast<uv_handle_t*>(t), nullptr);
        }, 0, 0);
      });
    });
    return;
  }
  l.listen(o, [](const corral::error* e, const net::address&) {
    if (e) {
      std::fprintf(stderr, "listen failed: %s\n", e->message().c_str());
      std::exit(3);
    }
    // A second server (SECOND_PORT), opened once the first listens: under
    // the manager's --lb round_robin, the app's one socket already serves
    // the first, so the daemon binds this one for the workers.
    const char* second = std::getenv("SECOND_PORT");
    if (!second) return;
    static net::listener l2;
    l2.on_connection([](corral::unique_fd fd) { answer(std::move(fd)); });
    net::listen_options o2;
    o2.host = "127.0.0.1";
    o2.port = std::atoi(second);
    l2.listen(o2, [](const corral::error* e, const net::address& a) {
      if (e) {
        std::fprintf(stderr, "second listen failed: %s\n", e->message().c_str());
        std::exit(3);
      }
      std::printf("second %s\n", a.to_string().c_str());
    });
  });
}

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  if (cluster::is_primary()) {
    primary();
  } else {
    worker();
  }
  return corral::run();
}
