// corral/cluster.hpp — Node's cluster module for C++ programs.
//
// A primary process forks workers by re-executing its own program; each
// worker gets a message channel to the primary (corral/channel.hpp). A process
// is a worker because its environment says so (CORRAL_WORKER_ID), exactly as
// Node decides cluster.isPrimary.
//
//   int main() {
//     if (corral::cluster::is_primary()) {
//       for (int i = 0; i < 4; ++i) corral::cluster::fork();
//     } else {
//       corral::cluster::worker().send({{"hello", "primary"}});
//     }
//     return corral::run();
//   }
//
// Everything here runs on corral::default_loop(), on the thread that calls
// corral::run(). Nothing here is thread-safe.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <csignal>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "corral/channel.hpp"
#include "corral/event.hpp"
#include "corral/fd.hpp"
#include "corral/net.hpp"

namespace corral {

/// The primary's handle on one worker process. Owned by the cluster: valid
/// from fork() until its exit listeners have returned (it is freed right after).
class worker {
 public:
  int id() const noexcept { return id_; }
  pid_t pid() const noexcept { return pid_; }

  /// Sends a message to the worker (see channel::send). False under
  /// back-pressure or once the channel is closed.
  bool send(const json& msg, std::vector<unique_fd> fds = {});
  /// Sends `signal` to the worker process (SIGTERM by default, as Node).
  void kill(int signal = SIGTERM);
  /// Asks the worker to stop gracefully: its servers stop accepting, in-flight
  /// work finishes, the channel closes and the worker exits.
  void disconnect();

  bool is_dead() const noexcept { return dead_; }
  bool is_connected() const noexcept;
  /// True if the worker left through disconnect() (ours or its own), false
  /// if it crashed or was killed.
  bool exited_after_disconnect() const noexcept { return exited_after_disconnect_; }
  /// The worker said it is up (it sends this as soon as it starts).
  bool is_online() const noexcept { return online_; }

  void on_online(std::function<void()> fn) { online_event_.add(std::move(fn)); }
  void on_message(std::function<void(const json&, std::vector<unique_fd>&)> fn) { message_event_.add(std::move(fn)); }
  /// exit code, or -1 if killed; the signal number, or 0.
  void on_exit(std::function<void(int code, int signal)> fn) { exit_event_.add(std::move(fn)); }
  void on_disconnect(std::function<void()> fn) { disconnect_event_.add(std::move(fn)); }
  /// The worker listens on `bound` (through the primary; the real port for port 0).
  void on_listening(std::function<void(const net::address& bound)> fn) { listening_event_.add(std::move(fn)); }
  /// Output of a worker forked with `silent`: (stream 1 or 2, bytes).
  void on_output(std::function<void(int stream, std::string_view data)> fn) { output_event_.add(std::move(fn)); }

  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;
  ~worker();

  /// Internal: the cluster's machinery.
  struct impl;
  impl& internals() noexcept { return *impl_; }

 private:
  friend struct impl;
  explicit worker(int id);

  int id_;
  pid_t pid_ = 0;
  bool dead_ = false;
  bool online_ = false;
  bool exited_after_disconnect_ = false;
  std::unique_ptr<impl> impl_;
  event<> online_event_;
  event<const json&, std::vector<unique_fd>&> message_event_;
  event<int, int> exit_event_;
  event<> disconnect_event_;
  event<> drain_event_;
  event<int, std::string_view> output_event_;
  event<const net::address&> listening_event_;
};

/// The worker process's side: its channel to the primary.
class this_worker {
 public:
  /// The worker's id (1, 2, ...), from CORRAL_WORKER_ID.
  int id() const noexcept { return id_; }
  /// Sends a message to the primary. False under back-pressure or once closed.
  bool send(const json& msg, std::vector<unique_fd> fds = {});
  /// Adds a listener for the primary's messages. While any listener is set,
  /// the channel keeps the loop alive (as Node refs the channel).
  void on_message(std::function<void(const json&, std::vector<unique_fd>&)> fn);
  /// Leaves the cluster: closes this worker's servers gracefully, then the
  /// channel; the process exits once its loop has nothing left to do.
  void disconnect();
  /// The channel closed (primary gone or disconnect finished).
  void on_disconnect(std::function<void()> fn) { disconnect_event_.add(std::move(fn)); }
  /// The queue to the primary went back under its high-water mark after
  /// send() returned false.
  void on_drain(std::function<void()> fn) { drain_event_.add(std::move(fn)); }
  /// SIGINT and SIGTERM sent to a worker directly (a terminal's Ctrl+C, or a
  /// manager signalling the whole process group) start a graceful
  /// disconnect, as the primary's own handling of the signal would: requests
  /// in flight are finished, not cut.
  ///
  /// If true (the default) the worker exits (code 0) when its primary goes
  /// away without a disconnect, so no worker outlives its primary.
  void exit_when_orphaned(bool yes) noexcept { exit_when_orphaned_ = yes; }
  bool is_connected() const noexcept;

  /// Internal (used by net and http): something to close on disconnect (the
  /// process-wide registry the shutdown helper uses too). `close` gets a
  /// callback to call once closed.
  using closer = std::function<void(std::function<void()> done)>;
  int add_closer_for_internal(closer fn);
  void remove_closer_for_internal(int token);
  /// Internal: something (a round-robin listener) needs the channel to keep
  /// the loop alive; balanced by release_for_internal().
  void hold_for_internal();
  void release_for_internal();
  /// Internal: the shutdown helper takes over the primary's disconnect and
  /// the 'shutdown' message.
  void on_shutdown_for_internal(std::function<void()> fn) { shutdown_handler_ = std::move(fn); }
  /// Internal: raw access to the channel for the net layer's requests.
  channel* channel_for_internal() noexcept { return channel_.get(); }
  void on_internal_message(std::function<void(const json&, std::vector<unique_fd>&)> fn) {
    internal_event_.add(std::move(fn));
  }

  explicit this_worker(int id, std::unique_ptr<channel> ch);

 private:
  void handle(json&& msg, std::vector<unique_fd>&& fds);
  void close_servers_then(std::function<void()> done);
  void lost_primary();

  int id_;
  std::unique_ptr<channel> channel_;
  bool disconnecting_ = false;
  bool exit_when_orphaned_ = true;
  void update_ref();
  void watch_stop_signals();
  std::function<void()> shutdown_handler_;
  std::vector<std::shared_ptr<void>> signal_watchers_;  // type-erased uv handles
  int holds_ = 0;
  event<const json&, std::vector<unique_fd>&> message_event_;
  event<const json&, std::vector<unique_fd>&> internal_event_;
  event<> disconnect_event_;
  event<> drain_event_;
};

namespace cluster {

/// How workers are started (Node's cluster.setupPrimary()).
struct settings {
  /// Program to run; empty: this program (/proc/self/exe).
  std::string exec;
  /// Arguments after argv[0]; empty and `exec` empty: this process's own.
  std::optional<std::vector<std::string>> args;
  /// Extra environment for every worker (on top of the primary's own).
  std::map<std::string, std::string> env;
  /// If true, workers' stdout/stderr come to worker::on_output instead of
  /// being inherited; stdin is /dev/null either way.
  bool silent = false;
  /// If true (the default), the primary handles SIGINT and SIGTERM: it
  /// disconnects every worker, waits up to `shutdown_timeout` for them, kills
  /// what is left, and exits by the same signal. A second signal forces.
  bool handle_signals = true;
  std::chrono::milliseconds shutdown_timeout{5000};
  /// With handle_signals, SIGHUP starts a rolling_restart().
  bool restart_on_sighup = true;
  /// A replacement must be listening on all of its predecessor's addresses
  /// (or, if that one listened on none, be online) within this time, or the
  /// rolling restart is aborted and the old worker kept.
  std::chrono::milliseconds restart_timeout{30000};
  /// Re-fork workers that die unexpectedly (not after a disconnect, nor a
  /// rolling restart's replacement that dies before it takes over), waiting
  /// respawn_delay, doubled after each quick death up to respawn_delay_max.
  /// A worker that lived respawn_stable or longer resets the delay. Off by
  /// default, as in Node.
  bool respawn = false;
  std::chrono::milliseconds respawn_delay{100};
  std::chrono::milliseconds respawn_delay_max{10000};
  std::chrono::milliseconds respawn_stable{5000};
};

/// True in the primary process (no CORRAL_WORKER_ID in the environment).
bool is_primary();
/// True in a worker process.
bool is_worker();

/// Sets how later forks start workers. Call before fork().
void setup_primary(settings s);
const settings& primary_settings();

/// Starts a new worker (re-executing the program) and returns its handle.
/// `env` is added to that worker's environment. On a spawn failure the
/// worker is returned dead and its exit listeners report code -1.
corral::worker& fork(const std::map<std::string, std::string>& env = {});

/// The live workers by id.
const std::map<int, corral::worker*>& workers();

/// Cluster-wide events, emitted after the worker's own.
void on_fork(std::function<void(corral::worker&)> fn);
void on_online(std::function<void(corral::worker&)> fn);
void on_message(std::function<void(corral::worker&, const json&, std::vector<unique_fd>&)> fn);
void on_exit(std::function<void(corral::worker&, int code, int signal)> fn);
void on_disconnect(std::function<void(corral::worker&)> fn);
void on_listening(std::function<void(corral::worker&, const net::address&)> fn);

/// Disconnects every worker; `done` runs once all have exited.
void disconnect(std::function<void()> done = {});

/// Replaces every live worker, one at a time: forks the new one (with the
/// same extra environment), waits until it listens on every address the old
/// one did, then disconnects the old one. Never fewer listening workers than
/// before. A replacement that dies or does not listen within
/// settings::restart_timeout aborts the restart, keeping the old worker.
/// `done` gets nullptr once every old worker has exited, or the error. A call
/// during a restart joins it.
void rolling_restart(std::function<void(const error* err)> done = {});
bool is_restarting() noexcept;
/// Every rolling restart's outcome (also the ones SIGHUP starts) and how long
/// it took, from its start to the exit of the last old worker.
void on_rolling_restart(std::function<void(const error* err, std::chrono::milliseconds took)> fn);
/// How many workers were re-forked by `respawn`.
int respawns() noexcept;

/// In a worker: this process's link to its primary. Aborts in the primary.
this_worker& worker();

}  // namespace cluster
}  // namespace corral
