// The cluster primary's side of shared listening sockets: the router
// (net/router.hpp) serving the cluster's workers. When the last worker of a
// key leaves, the socket closes: new connections are refused, as in Node.
#include "net/primary.hpp"

#include "cluster/internal.hpp"
#include "net/router.hpp"

namespace corral::net::detail {
namespace {

// `w` listens on `bound`: the cluster's `listening` events, and a primary
// under a supervisor is ready once every live worker listens.
void now_listening(const void* peer, const address& bound);

router& workers_router() {
  static auto* r = new router(router::hooks{{}, now_listening, true});  // lives for the whole process
  return *r;
}

peer_ref peer_of(corral::worker& w) {
  return {&w, [&w](const json& msg, std::vector<unique_fd> fds) { return w.send(msg, std::move(fds)); },
          [&w] { return w.is_connected(); }};
}

void now_listening(const void* peer, const address& bound) {
  // Called from on_message() of this very worker: it is alive.
  cluster::detail::emit_listening(*static_cast<corral::worker*>(const_cast<void*>(peer)), bound);
  bool all = true;
  for (auto& [id, live] : cluster::workers()) all = all && !keys_of(*live).empty();
  if (all) cluster::detail::notify_ready();
}

}  // namespace

std::vector<std::string> keys_of(const corral::worker& w) { return workers_router().keys_of(&w); }

void serve_workers() {
  static bool installed = false;
  if (installed) return;
  installed = true;
  cluster::detail::on_internal_message(
      [](corral::worker& w, const json& msg, std::vector<unique_fd>&) { workers_router().on_message(peer_of(w), msg); });
  cluster::detail::on_worker_gone([](corral::worker& w) { workers_router().leave_all(&w); });
}

}  // namespace corral::net::detail
