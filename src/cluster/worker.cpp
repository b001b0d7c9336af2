// The worker's side of the cluster: its channel to the primary.
#include <cstdio>
#include <cstdlib>

#include "cluster/internal.hpp"
#include "core/closers.hpp"
#include "core/handle.hpp"
#include "corral/cluster.hpp"

namespace corral {
namespace {

struct role {
  bool worker = false;
  this_worker* self = nullptr;  // lives for the whole process
};

int parse_int(const char* s, int fallback) {
  if (!s || !*s) return fallback;
  char* end = nullptr;
  long v = std::strtol(s, &end, 10);
  return (*end == '\0' && v >= 0 && v < (1 << 30)) ? static_cast<int>(v) : fallback;
}

// Decided once, on first use, from the environment; the variables are then
// removed so that programs this worker starts are not mistaken for workers
// (Node deletes NODE_UNIQUE_ID and NODE_CHANNEL_FD the same way).
role& current_role() {
  static role r = [] {
    role out;
    const char* id_env = std::getenv(cluster::detail::worker_id_env);
    if (!id_env) {
      cluster::detail::open_supervisor_link();
      return out;
    }
    out.worker = true;
    int id = parse_int(id_env, 0);
    int fd = parse_int(std::getenv(cluster::detail::channel_fd_env), -1);
    ::unsetenv(cluster::detail::worker_id_env);
    ::unsetenv(cluster::detail::channel_fd_env);
    std::unique_ptr<channel> ch;
    if (fd >= 0) {
      channel_options co;
      co.peer = "primary (pid " + std::to_string(::getppid()) + ")";
      auto opened = channel::open(fd, co);
      if (opened) {
        ch = std::move(opened.value());
      } else {
        std::fprintf(stderr, "corral: worker %d: cannot open its channel: %s\n", id, opened.err().message().c_str());
      }
    } else {
      std::fprintf(stderr, "corral: worker %d: %s is not set; running without a primary\n", id,
                   cluster::detail::channel_fd_env);
    }
    out.self = new this_worker(id, std::move(ch));
    return out;
  }();
  return r;
}

}  // namespace

this_worker::this_worker(int id, std::unique_ptr<channel> ch) : id_(id), channel_(std::move(ch)) {
  if (!channel_) return;
  channel_->set_ref(false);  // until someone listens for messages
  channel_->on_message([this](json&& msg, std::vector<unique_fd>&& fds) { handle(std::move(msg), std::move(fds)); });
  channel_->on_error([this](const error& e) {
    std::fprintf(stderr, "corral: worker %d: %s\n", id_, e.message().c_str());
  });
  channel_->on_close([this] { lost_primary(); });
  channel_->on_drain([this] { drain_event_.emit(); });
  channel_->send({{"corral", "online"}});
  watch_stop_signals();
}

void this_worker::watch_stop_signals() {
  for (int sig : {SIGINT, SIGTERM}) {
    auto h = std::make_shared<detail::uv_handle_ptr<uv_signal_t>>(detail::uv_handle_ptr<uv_signal_t>::make());
    uv_signal_t* raw = h->get();
    uv_signal_init(uv_default_loop(), raw);
    raw->data = this;
    uv_signal_start(raw, [](uv_signal_t* s, int) {
      auto* self = static_cast<this_worker*>(s->data);
      // The shutdown helper, when enabled, watches these signals itself.
      if (self && !self->shutdown_handler_) self->disconnect();
    }, sig);
    uv_unref(reinterpret_cast<uv_handle_t*>(raw));  // watching must not keep the worker alive
    signal_watchers_.push_back(std::move(h));
  }
}

bool this_worker::send(const json& msg, std::vector<unique_fd> fds) {
  return channel_ && channel_->send(msg, std::move(fds));
}

bool this_worker::is_connected() const noexcept { return channel_ && channel_->is_open(); }

void this_worker::on_message(std::function<void(const json&, std::vector<unique_fd>&)> fn) {
  message_event_.add(std::move(fn));
  update_ref();
}

void this_worker::hold_for_internal() {
  ++holds_;
  update_ref();
}

void this_worker::release_for_internal() {
  --holds_;
  update_ref();
}

void this_worker::update_ref() {
  if (channel_) channel_->set_ref(holds_ > 0 || !message_event_.empty());
}

void this_worker::handle(json&& msg, std::vector<unique_fd>&& fds) {
  if (is_internal_message(msg)) {
    if (msg["corral"] == "disconnect") {
      if (shutdown_handler_) {
        shutdown_handler_();
      } else {
        disconnect();
      }
      return;
    }
    internal_event_.emit(msg, fds);
    return;
  }
  // PM2's shutdown_with_message convention: the plain message 'shutdown'.
  if (shutdown_handler_ && msg.is_string() && msg == "shutdown") shutdown_handler_();
  message_event_.emit(msg, fds);
}

int this_worker::add_closer_for_internal(closer fn) { return detail::add_closer(std::move(fn)); }

void this_worker::remove_closer_for_internal(int token) { detail::remove_closer(token); }

void this_worker::close_servers_then(std::function<void()> done) { detail::close_all(std::move(done)); }

void this_worker::disconnect() {
  if (disconnecting_) return;
  disconnecting_ = true;
  if (channel_ && channel_->is_open()) channel_->send({{"corral", "disconnect"}});
  close_servers_then([this] {
    if (channel_) channel_->close();
  });
}

void this_worker::lost_primary() {
  disconnect_event_.emit();
  if (disconnecting_ || !exit_when_orphaned_) return;
  // The primary is gone without telling us: nobody will route work here or
  // reap us. Leave now, as a Node worker does on 'disconnect'.
  std::fflush(nullptr);
  std::_Exit(0);
}

namespace cluster {

bool is_worker() { return current_role().worker; }
bool is_primary() { return !current_role().worker; }

this_worker& worker() {
  auto& r = current_role();
  if (!r.worker || !r.self) {
    std::fprintf(stderr, "corral: cluster::worker() called in the primary\n");
    std::abort();
  }
  return *r.self;
}

}  // namespace cluster
}  // namespace corral
