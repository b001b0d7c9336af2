// The primary's side of the cluster: spawning workers, their channels, their
// exits, and the primary's own signal handling.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

#include "cluster/internal.hpp"
#include "core/handoff_sched.hpp"
#include "core/handle.hpp"
#include "net/primary.hpp"
#include "corral/cluster.hpp"

extern char** environ;

namespace corral {
namespace {

constexpr int worker_channel_fd = 3;
// After a worker's process exits we wait this long for its channel (and
// output pipes) to deliver what it wrote before exiting.
constexpr uint64_t drain_after_exit_ms = 2000;

struct primary_state {
  cluster::settings settings;
  int next_id = 1;
  std::map<int, worker*> live;
  std::map<int, std::unique_ptr<worker>> owned;
  std::vector<std::unique_ptr<worker>> graveyard;
  detail::uv_handle_ptr<uv_timer_t> reaper;
  event<worker&> fork_ev, online_ev, disconnect_ev, gone_ev;
  event<worker&, const json&, std::vector<unique_fd>&> message_ev, internal_ev;
  event<worker&, int, int> exit_ev;
  event<worker&, const net::address&> listening_ev;
  std::vector<std::function<void()>> all_exited;
  // Signal handling.
  bool signals_installed = false;
  int shutdown_signal = 0;
  detail::uv_handle_ptr<uv_signal_t> sigint, sigterm, sighup;
  detail::uv_handle_ptr<uv_timer_t> shutdown_timer;
};

primary_state& state() {
  static auto* s = new primary_state;  // lives for the whole process
  return *s;
}

std::string self_exe() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "/proc/self/exe";
  std::string path(buf, static_cast<std::size_t>(n));
  // If the binary was replaced on disk (a deploy), re-executing the path runs
  // the new one, as `node app.js` picks up new code.
  constexpr std::string_view deleted = " (deleted)";
  if (path.size() > deleted.size() && path.ends_with(deleted)) path.resize(path.size() - deleted.size());
  return path;
}

std::vector<std::string> self_argv() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> argv;
  std::size_t start = 0;
  for (std::size_t i = 0; i < all.size(); ++i) {
    if (all[i] == '\0') {
      argv.push_back(all.substr(start, i - start));
      start = i + 1;
    }
  }
  return argv;
}

void install_signals();

}  // namespace

struct worker::impl {
  worker& self;
  detail::uv_handle_ptr<uv_process_t> process;
  std::unique_ptr<channel> ch;
  detail::uv_handle_ptr<uv_pipe_t> out_pipe, err_pipe;
  detail::uv_handle_ptr<uv_timer_t> drain_timer;
  bool exited = false;
  int exit_code = 0;
  int term_signal = 0;
  bool finished = false;
  std::map<std::string, std::string> fork_env;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  bool replacing = false;

  explicit impl(worker& w) : self(w) {}
  static std::unique_ptr<worker> create(int id) { return std::unique_ptr<worker>(new worker(id)); }
  void set_pid(pid_t pid) { self.pid_ = pid; }
  void mark_dead() { self.dead_ = true; }
  void emit_drain() { self.drain_event_.emit(); }
  void emit_listening(const net::address& a) {
    self.listening_event_.emit(a);
    state().listening_ev.emit(self, a);
  }

  void on_channel_message(json&& msg, std::vector<unique_fd>&& fds) {
    auto& st = state();
    if (is_internal_message(msg)) {
      const auto& type = msg["corral"];
      if (type == "online") {
        if (self.online_) return;
        self.online_ = true;
        self.online_event_.emit();
        st.online_ev.emit(self);
      } else if (type == "disconnect") {
        self.exited_after_disconnect_ = true;
      } else {
        st.internal_ev.emit(self, msg, fds);
      }
      return;
    }
    self.message_event_.emit(msg, fds);
    st.message_ev.emit(self, msg, fds);
  }

  void on_channel_close() {
    self.disconnect_event_.emit();
    state().disconnect_ev.emit(self);
    maybe_finish();
  }

  bool streams_open() const {
    return (ch && ch->is_open()) || out_pipe || err_pipe;
  }

  void on_process_exit(int64_t status, int signal) {
    exited = true;
    self.dead_ = true;
    exit_code = signal ? -1 : static_cast<int>(status);
    term_signal = signal;
    state().live.erase(self.id_);
    if (!streams_open()) {
      finish();
      return;
    }
    // Let the channel and pipes deliver the worker's last words first.
    drain_timer = detail::uv_handle_ptr<uv_timer_t>::make();
    uv_timer_init(uv_default_loop(), drain_timer.get());
    drain_timer->data = this;
    uv_timer_start(drain_timer.get(), [](uv_timer_t* t) {
      auto* self = static_cast<impl*>(t->data);
      if (self) self->finish();
    }, drain_after_exit_ms, 0);
  }

  void maybe_finish() {
    if (exited && !streams_open()) finish();
  }

  void finish() {
    if (finished) return;
    finished = true;
    drain_timer.reset();
    out_pipe.reset();
    err_pipe.reset();
    // The channel is not destroyed here: we may be inside its on_close. It
    // goes with the worker, on the next iteration.
    auto& st = state();
    st.gone_ev.emit(self);
    self.exit_event_.emit(exit_code, term_signal);
    st.exit_ev.emit(self, exit_code, term_signal);
    retire();
  }

  // Frees the worker on the next loop iteration: we may be inside one of its
  // own callbacks now.
  void retire() {
    auto& st = state();
    auto it = st.owned.find(self.id_);
    if (it != st.owned.end()) {
      st.graveyard.push_back(std::move(it->second));
      st.owned.erase(it);
    }
    if (!st.reaper) {
      st.reaper = detail::uv_handle_ptr<uv_timer_t>::make();
      uv_timer_init(uv_default_loop(), st.reaper.get());
    }
    uv_timer_start(st.reaper.get(), [](uv_timer_t*) { state().graveyard.clear(); }, 0, 0);
    if (st.live.empty()) {
      auto waiters = std::move(st.all_exited);
      st.all_exited.clear();
      for (auto& fn : waiters) fn();
    }
  }

  void start_output(detail::uv_handle_ptr<uv_pipe_t>& pipe, int stream) {
    pipe->data = this;
    uv_read_start(reinterpret_cast<uv_stream_t*>(pipe.get()),
                  [](uv_handle_t*, size_t, uv_buf_t* buf) {
                    static char chunk[64 * 1024];
                    *buf = uv_buf_init(chunk, sizeof chunk);
                  },
                  stream == 1 ? read_cb<1> : read_cb<2>);
  }

  template <int stream>
  static void read_cb(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
    auto* self = static_cast<impl*>(s->data);
    if (!self) return;
    if (n > 0) {
      self->self.output_event_.emit(stream, std::string_view(buf->base, static_cast<std::size_t>(n)));
      return;
    }
    if (n < 0) {
      (stream == 1 ? self->out_pipe : self->err_pipe).reset();
      self->maybe_finish();
    }
  }
};

worker::worker(int id) : id_(id), impl_(std::make_unique<impl>(*this)) {}
worker::~worker() = default;

bool worker::send(const json& msg, std::vector<unique_fd> fds) {
  return impl_->ch && impl_->ch->send(msg, std::move(fds));
}

void worker::kill(int signal) {
  if (!dead_ && pid_ > 0) ::kill(pid_, signal);
}

void worker::disconnect() {
  if (dead_) return;
  exited_after_disconnect_ = true;
  send({{"corral", "disconnect"}});
}

bool worker::is_connected() const noexcept { return impl_->ch && impl_->ch->is_open(); }

namespace cluster {

namespace detail {
void on_internal_message(std::function<void(corral::worker&, const json&, std::vector<unique_fd>&)> fn) {
  state().internal_ev.add(std::move(fn));
}
void on_worker_gone(std::function<void(corral::worker&)> fn) { state().gone_ev.add(std::move(fn)); }
void emit_listening(corral::worker& w, const net::address& bound) { w.internals().emit_listening(bound); }
bool shutting_down() noexcept { return state().shutdown_signal != 0; }
const std::map<std::string, std::string>& fork_env_of(corral::worker& w) { return w.internals().fork_env; }
std::chrono::steady_clock::time_point started_at(corral::worker& w) { return w.internals().started; }
void set_replacing(corral::worker& w, bool yes) { w.internals().replacing = yes; }
bool is_replacing(corral::worker& w) { return w.internals().replacing; }
}  // namespace detail

void setup_primary(settings s) { state().settings = std::move(s); }
const settings& primary_settings() { return state().settings; }
const std::map<int, corral::worker*>& workers() { return state().live; }

void on_fork(std::function<void(corral::worker&)> fn) { state().fork_ev.add(std::move(fn)); }
void on_online(std::function<void(corral::worker&)> fn) { state().online_ev.add(std::move(fn)); }
void on_message(std::function<void(corral::worker&, const json&, std::vector<unique_fd>&)> fn) {
  state().message_ev.add(std::move(fn));
}
void on_exit(std::function<void(corral::worker&, int, int)> fn) { state().exit_ev.add(std::move(fn)); }
void on_disconnect(std::function<void(corral::worker&)> fn) { state().disconnect_ev.add(std::move(fn)); }
void on_listening(std::function<void(corral::worker&, const net::address&)> fn) {
  state().listening_ev.add(std::move(fn));
}

void disconnect(std::function<void()> done) {
  auto& st = state();
  if (done) {
    if (st.live.empty()) {
      done();
    } else {
      st.all_exited.push_back(std::move(done));
    }
  }
  auto live = st.live;  // disconnect() may not erase, but be safe
  for (auto& [id, w] : live) w->disconnect();
}

corral::worker& fork(const std::map<std::string, std::string>& extra_env) {
  auto& st = state();
  const auto& cfg = st.settings;
  if (cfg.handle_signals) install_signals();
  net::detail::serve_workers();
  cluster::detail::install_supervision();
  int id = st.next_id++;
  auto owned = corral::worker::impl::create(id);
  corral::worker& w = *owned;
  auto& im = w.internals();
  im.fork_env = extra_env;
  st.owned.emplace(id, std::move(owned));

  // Program and arguments.
  std::vector<std::string> argv;
  std::string file = cfg.exec.empty() ? self_exe() : cfg.exec;
  if (cfg.exec.empty()) {
    argv = self_argv();
    if (argv.empty()) argv.push_back(file);
  } else {
    argv.push_back(cfg.exec);
  }
  if (cfg.args) {
    argv.resize(1);
    argv.insert(argv.end(), cfg.args->begin(), cfg.args->end());
  }

  // Environment: ours, less what belongs to us alone, plus the worker's.
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    auto eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    env.emplace(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
  }
  // Socket activation and readiness are the primary's; a worker gets its
  // sockets through the channel.
  for (const char* k : {"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET", "NODE_CHANNEL_FD"})
    env.erase(k);
  for (auto& [k, v] : cfg.env) env[k] = v;
  for (auto& [k, v] : extra_env) env[k] = v;
  env[cluster::detail::worker_id_env] = std::to_string(id);
  env[cluster::detail::channel_fd_env] = std::to_string(worker_channel_fd);

  std::vector<std::string> env_strings;
  for (auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> c_argv, c_env;
  for (auto& a : argv) c_argv.push_back(a.data());
  c_argv.push_back(nullptr);
  for (auto& e : env_strings) c_env.push_back(e.data());
  c_env.push_back(nullptr);

  auto fail_async = [&](const std::string& why) {
    std::fprintf(stderr, "corral: cannot start worker %d: %s\n", id, why.c_str());
    im.mark_dead();
    im.exited = true;
    im.exit_code = -1;
    // Report the exit on the next iteration so listeners added after fork()
    // returns still hear it.
    im.drain_timer = corral::detail::uv_handle_ptr<uv_timer_t>::make();
    uv_timer_init(uv_default_loop(), im.drain_timer.get());
    im.drain_timer->data = &im;
    uv_timer_start(im.drain_timer.get(), [](uv_timer_t* t) {
      if (auto* self = static_cast<corral::worker::impl*>(t->data)) self->finish();
    }, 0, 0);
  };

  auto pair = channel::socketpair();
  if (!pair) {
    fail_async(pair.err().message());
    st.fork_ev.emit(w);
    return w;
  }
  auto [ours, theirs] = std::move(pair.value());

  uv_stdio_container_t stdio[4];
  stdio[0].flags = UV_IGNORE;
  if (cfg.silent) {
    im.out_pipe = corral::detail::uv_handle_ptr<uv_pipe_t>::make();
    im.err_pipe = corral::detail::uv_handle_ptr<uv_pipe_t>::make();
    uv_pipe_init(uv_default_loop(), im.out_pipe.get(), 0);
    uv_pipe_init(uv_default_loop(), im.err_pipe.get(), 0);
    stdio[1].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
    stdio[1].data.stream = reinterpret_cast<uv_stream_t*>(im.out_pipe.get());
    stdio[2].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
    stdio[2].data.stream = reinterpret_cast<uv_stream_t*>(im.err_pipe.get());
  } else {
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = 1;
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = 2;
  }
  stdio[3].flags = UV_INHERIT_FD;
  stdio[3].data.fd = theirs.get();

  uv_process_options_t opts{};
  opts.file = file.c_str();
  opts.args = c_argv.data();
  opts.env = c_env.data();
  opts.stdio = stdio;
  opts.stdio_count = 4;
  opts.exit_cb = [](uv_process_t* p, int64_t status, int signal) {
    if (auto* self = static_cast<corral::worker::impl*>(p->data)) self->on_process_exit(status, signal);
  };
  im.process = corral::detail::uv_handle_ptr<uv_process_t>::make();
  int r;
  {
    corral::detail::spawn_guard normal;  // the worker starts SCHED_OTHER, whatever the primary runs
    r = uv_spawn(uv_default_loop(), im.process.get(), &opts);
  }
  if (r < 0) {
    im.out_pipe.reset();
    im.err_pipe.reset();
    fail_async(file + ": " + uv_strerror(r));
    st.fork_ev.emit(w);
    return w;
  }
  im.process->data = &im;
  im.set_pid(im.process->pid);
  theirs.reset();  // the child has its copy

  channel_options co;
  co.peer = "worker " + std::to_string(id) + " (pid " + std::to_string(w.pid()) + ")";
  auto ch = channel::open(ours.release(), co);
  if (ch) {
    im.ch = std::move(ch.value());
    im.ch->on_message([&im](json&& msg, std::vector<unique_fd>&& fds) { im.on_channel_message(std::move(msg), std::move(fds)); });
    im.ch->on_error([&w](const error& e) {
      std::fprintf(stderr, "corral: %s; closing the channel to worker %d\n", e.message().c_str(), w.id());
    });
    im.ch->on_close([&im] { im.on_channel_close(); });
    im.ch->on_drain([&im] { im.emit_drain(); });
  } else {
    std::fprintf(stderr, "corral: %s\n", ch.err().message().c_str());
  }
  if (cfg.silent) {
    im.start_output(im.out_pipe, 1);
    im.start_output(im.err_pipe, 2);
  }
  st.live.emplace(id, &w);
  st.fork_ev.emit(w);
  return w;
}

}  // namespace cluster

namespace {

void exit_by_signal(int sig) {
  std::fflush(nullptr);
  std::signal(sig, SIG_DFL);
  ::raise(sig);
  std::_Exit(128 + sig);
}

void on_shutdown_signal(int sig) {
  auto& st = state();
  if (st.shutdown_signal != 0) {  // second signal: force
    for (auto& [id, w] : st.live) w->kill(SIGKILL);
    exit_by_signal(sig);
  }
  st.shutdown_signal = sig;
  if (st.live.empty()) exit_by_signal(sig);
  cluster::disconnect([sig] { exit_by_signal(sig); });
  st.shutdown_timer = corral::detail::uv_handle_ptr<uv_timer_t>::make();
  uv_timer_init(uv_default_loop(), st.shutdown_timer.get());
  uv_timer_start(st.shutdown_timer.get(), [](uv_timer_t*) {
    for (auto& [id, w] : state().live) {
      std::fprintf(stderr, "corral: worker %d (pid %d) did not exit in time; killing it\n", id, w->pid());
      w->kill(SIGKILL);
    }
  }, static_cast<uint64_t>(st.settings.shutdown_timeout.count()), 0);
}

void install_signals() {
  auto& st = state();
  if (st.signals_installed) return;
  st.signals_installed = true;
  auto make = [](corral::detail::uv_handle_ptr<uv_signal_t>& h, int sig) {
    h = corral::detail::uv_handle_ptr<uv_signal_t>::make();
    uv_signal_init(uv_default_loop(), h.get());
    uv_signal_start(h.get(), [](uv_signal_t*, int s) { on_shutdown_signal(s); }, sig);
    uv_unref(h.handle());  // a signal watcher alone must not keep the primary alive
  };
  make(st.sigint, SIGINT);
  make(st.sigterm, SIGTERM);
  if (st.settings.restart_on_sighup) {
    st.sighup = corral::detail::uv_handle_ptr<uv_signal_t>::make();
    uv_signal_init(uv_default_loop(), st.sighup.get());
    uv_signal_start(st.sighup.get(), [](uv_signal_t*, int) { cluster::detail::on_sighup(); }, SIGHUP);
    uv_unref(st.sighup.handle());
  }
}

}  // namespace
}  // namespace corral
