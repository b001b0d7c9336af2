// Internal to libcorral: hooks the net layer uses on the cluster.
#pragma once

#include <functional>

#include "corral/cluster.hpp"

namespace corral::cluster::detail {

/// Primary: Corral control messages from workers that the cluster itself does
/// not handle (the net layer's listen requests, acks...).
void on_internal_message(std::function<void(corral::worker&, const json&, std::vector<unique_fd>&)> fn);
/// Primary: a worker is gone (exited, after its channel closed). Runs before
/// the user's exit listeners.
void on_worker_gone(std::function<void(corral::worker&)> fn);

/// Primary: emits the worker's and the cluster's `listening` events.
void emit_listening(corral::worker& w, const net::address& bound);

/// Primary: whether a signal-driven shutdown is under way.
bool shutting_down() noexcept;
/// Primary: the extra environment a worker was forked with, and when.
const std::map<std::string, std::string>& fork_env_of(corral::worker& w);
std::chrono::steady_clock::time_point started_at(corral::worker& w);
/// Primary: whether `w` is a rolling restart's replacement that has not yet
/// taken over. Such a worker is the restart's to discard if it dies or does
/// not listen in time, not respawn's to replace.
void set_replacing(corral::worker& w, bool yes);
bool is_replacing(corral::worker& w);
/// Primary: installs rolling restart on SIGHUP and respawn (supervise.cpp).
void install_supervision();
void on_sighup();

/// Under a supervisor (the corral manager's channel, or systemd's
/// NOTIFY_SOCKET): says "ready" once (no-op in a worker or unsupervised).
/// Called when the program's listeners are up.
void notify_ready();
/// The channel to the corral manager; null if none. Opened when the process's
/// role is decided (a non-worker with CORRAL_CHANNEL_FD), before any fork, so
/// that its fd is close-on-exec before workers start.
channel* supervisor_channel();
void open_supervisor_link();

/// The id/fd environment variables of the worker protocol.
inline constexpr const char* worker_id_env = "CORRAL_WORKER_ID";
inline constexpr const char* channel_fd_env = "CORRAL_CHANNEL_FD";

}  // namespace corral::cluster::detail
