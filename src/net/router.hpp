// Internal: a primary's side of shared listening sockets, for any set of
// peers that speak the worker's net protocol over a channel (docs/net.md):
// the cluster's workers (net/primary.cpp) or, with `--lb round_robin`, the
// manager's instances of a libcorral app (the daemon is their primary).
//
// One listening socket per key (family, address, port or path), served by
// policy:
//   round_robin: we accept and pass each connection to the peer with the
//                fewest passed-but-not-yet-taken connections (counted in
//                memory we share with the peer: net/delivered.hpp);
//   shared:      we send the listening socket itself; peers accept;
//   reuseport:   we hold the port (bound, not listening) so that every peer
//                binds its own SO_REUSEPORT socket to the same port.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "corral/error.hpp"
#include "corral/fd.hpp"
#include "corral/channel.hpp"
#include "corral/net.hpp"

namespace corral::net::detail {

/// A peer the router serves: who it is (an identity the owner chooses), how
/// to send it a message with fds, and whether its channel is still open.
struct peer_ref {
  const void* id = nullptr;
  std::function<bool(const json&, std::vector<unique_fd>)> send;
  std::function<bool()> connected;
};

class router {
 public:
  struct hooks {
    /// The owner's own listening socket for a requested address (borrowed:
    /// it stays the owner's, open while no peer listens, so the kernel
    /// queues connections meanwhile), or -1 to have the router open one,
    /// which it closes when the last peer leaves (new connections are then
    /// refused, as in Node). An error is the peer's listen error.
    std::function<result<int>(const address& want)> provide;
    /// `peer` listens on `bound` now.
    std::function<void(const void* peer, const address& bound)> on_listening;
    /// With `provide`: whether a second server whose address `provide`
    /// matched to a socket already serving another key gets a socket of its
    /// own (Node's primary binds it) or the listen fails (the manager: an
    /// app run as another user, whose daemon may be root, binds only what
    /// its spec names).
    bool open_others = true;
    /// Round-robin keys run the loop's thread SCHED_BATCH (core/handoff_sched.hpp).
    bool batch_sched = true;
  };

  explicit router(hooks h);
  ~router();
  router(const router&) = delete;
  router& operator=(const router&) = delete;

  /// An internal message from `peer` ({"corral": "listen" | "ack" | "bound"
  /// | "close", ...}); others are ignored. True if it was one of ours.
  bool on_message(const peer_ref& peer, const json& msg);
  /// `peer` is gone (or its channel closed): it leaves every key.
  void leave_all(const void* peer);
  /// The keys `peer` listens on.
  std::vector<std::string> keys_of(const void* peer) const;

 private:
  struct shared_key;
  void on_listen(const peer_ref& peer, const json& msg);
  void leave(const void* peer, const std::string& key);
  void now_listening(const void* peer, shared_key& k);
  status ensure_socket(shared_key& k);

  hooks hooks_;
  std::map<std::string, std::unique_ptr<shared_key>> keys_;
};

}  // namespace corral::net::detail
