// The primary owns one listening socket per key (family, address, port or
// path) and serves it to the workers that asked for it, by policy:
//   round_robin: we accept and pass each connection to the worker with the
//                fewest passed-but-not-yet-taken connections (counted in
//                memory we share with the worker: net/delivered.hpp);
//   shared:      we send the listening socket itself; workers accept;
//   reuseport:   we hold the port (bound, not listening) so that every worker
//                binds its own SO_REUSEPORT socket to the same port.
// When the last worker of a key leaves, the socket closes: new connections
// are refused, as in Node.
#include "net/primary.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include <algorithm>
#include <cstdio>
#include <map>

#include "cluster/internal.hpp"
#include "core/handoff_sched.hpp"
#include "net/acceptor.hpp"
#include "net/delivered.hpp"
#include "net/socket.hpp"

namespace corral::net::detail {
namespace {

constexpr std::size_t max_fds_per_message = 253;  // SCM_MAX_FD

struct member {
  worker* w;
  // Listening. In reuseport the worker binds its own socket after our
  // answer: it is listening once it says "bound", not before.
  bool listening = true;
  // Round-robin: connections passed, and how many the worker has taken (it
  // counts them in `delivered`; a worker that could not map it sends "ack"
  // messages instead, counted in `acked`).
  std::uint64_t sent = 0;
  std::uint64_t acked = 0;
  delivered_counter delivered;
  // When it last took a connection, or owed us none (uv_hrtime()).
  std::uint64_t taken_seen = 0;
  std::uint64_t progress_at = 0;

  // Passed and not yet taken. A worker can only make itself look less busy
  // than it is (it writes the counter), never make us fail.
  // Both counts: a worker that could not map the counter acknowledges.
  std::uint64_t taken() const { return (delivered ? delivered.load() : 0) + acked; }
  std::uint64_t pending() const {
    std::uint64_t t = taken();
    return t >= sent ? 0 : sent - t;
  }

  // Owes us connections and has taken none for `stall`: stopped, or stuck
  // in a handler, not merely waiting for a core for a moment.
  bool stalled(std::uint64_t now, std::uint64_t stall) {
    std::uint64_t t = taken();
    if (t != taken_seen || pending() == 0) {
      taken_seen = t;
      progress_at = now;
    }
    return now - progress_at >= stall;
  }
};

// How far behind a worker may fall before it is passed over: a stalled one
// at 5, one that keeps taking connections only at 64. On a saturated
// machine a worker is often not scheduled for a few ms, at 50,000
// connections/s a few hundred connections; passing it over at 5 sent bursts
// to the other worker, which cost 5-10% throughput and doubled the p99.
constexpr std::uint64_t stalled_slack = 4;
constexpr std::uint64_t busy_slack = 63;
constexpr std::uint64_t stall_ns = 20'000'000;

struct shared_key {
  std::string key;
  address requested;
  address bound;
  sched_policy policy = sched_policy::round_robin;
  int backlog = 511;
  unique_fd fd;
  std::unique_ptr<acceptor> acc;
  std::vector<member> members;
  std::size_t next = 0;  // round-robin tie-break position

  member* find(worker& w) {
    for (auto& m : members)
      if (m.w == &w) return &m;
    return nullptr;
  }

  void close_socket() {
    if (acc) corral::detail::handoff_sched(false);
    acc.reset();  // stop watching before the fd closes
    fd.reset();
    if (requested.is_unix() && !bound.path.empty()) ::unlink(bound.path.c_str());
  }

  // Connections accepted in one wakeup are spread by least-pending (ties
  // rotate), then sent as one message per worker.
  void distribute(std::vector<unique_fd>& conns) {
    // First how many each worker gets, then consecutive connections in one
    // block per worker: their fd numbers are then mostly consecutive, and
    // the channel closes our copies with one close_range() per message.
    std::vector<std::size_t> share(members.size(), 0);
    std::vector<std::uint64_t> pending(members.size()), slack(members.size());
    std::uint64_t now = uv_hrtime();
    for (std::size_t i = 0; i < members.size(); ++i) {
      pending[i] = members[i].pending();
      slack[i] = members[i].stalled(now, stall_ns) ? stalled_slack : busy_slack;
    }
    std::size_t assigned = 0;
    for (; assigned < conns.size(); ++assigned) {
      // Rotate, passing over a worker that is further behind another than
      // its slack allows.
      std::size_t best = members.size();
      for (std::size_t k = 0; k < members.size(); ++k) {
        std::size_t i = (next + k) % members.size();
        if (!members[i].w->is_connected()) continue;
        if (best == members.size() || pending[i] + slack[best] < pending[best]) best = i;
      }
      if (best == members.size()) break;  // nobody to serve: the rest close (refused)
      pending[best]++;
      members[best].sent++;
      share[best]++;
      next = (best + 1) % members.size();
    }
    std::vector<std::vector<unique_fd>> per(members.size());
    std::size_t from = 0;
    for (std::size_t i = 0; i < members.size(); ++i)
      for (std::size_t k = 0; k < share[i]; ++k) per[i].push_back(std::move(conns[from++]));
    for (std::size_t i = 0; i < members.size() && i < per.size(); ++i) {
      auto& batch = per[i];
      while (!batch.empty()) {
        std::size_t n = std::min(batch.size(), max_fds_per_message);
        std::vector<unique_fd> chunk(std::make_move_iterator(batch.begin()), std::make_move_iterator(batch.begin() + static_cast<std::ptrdiff_t>(n)));
        batch.erase(batch.begin(), batch.begin() + static_cast<std::ptrdiff_t>(n));
        members[i].w->send({{"corral", "conn"}, {"key", key}}, std::move(chunk));
      }
    }
  }
};

std::map<std::string, shared_key>& keys() {
  static auto* k = new std::map<std::string, shared_key>;  // lives for the whole process
  return *k;
}

void reply_error(worker& w, const json& seq, const error& e) {
  w.send({{"corral", "listening"}, {"seq", seq}, {"error", e.message()}, {"errno", e.code().value()}});
}

// Opens the key's socket if it has none (first listener, or reopening after
// every worker left). A reopened port-0 key keeps the port it had.
status ensure_socket(shared_key& k) {
  if (k.fd) return {};
  address addr = k.requested;
  if (!addr.is_unix() && addr.port == 0 && k.bound.port != 0) addr.port = k.bound.port;
  bool reuseport = k.policy == sched_policy::reuseport;
  auto fd = open_listening(addr, k.backlog, reuseport, /*listen_now=*/!reuseport);
  if (!fd && addr.port != k.requested.port) fd = open_listening(k.requested, k.backlog, reuseport, !reuseport);
  if (!fd) return fd.err();
  auto bound = local_address_of(fd->get());
  if (!bound) return bound.err();
  k.fd = std::move(fd.value());
  k.bound = *bound;
  if (k.bound.is_unix()) k.bound.path = k.requested.path;
  // An inherited socket can't join a reuseport group; share it instead.
  int listening = 0;
  socklen_t len = sizeof listening;
  ::getsockopt(k.fd.get(), SOL_SOCKET, SO_ACCEPTCONN, &listening, &len);
  if (reuseport && listening) k.policy = sched_policy::shared;
  if (k.policy == sched_policy::round_robin) {
    k.acc = std::make_unique<acceptor>(k.fd.get(), [&k](std::vector<unique_fd>& conns) { k.distribute(conns); });
    corral::detail::handoff_sched(true);
  }
  return {};
}

void now_listening(worker& w, shared_key& k);

void on_listen(worker& w, const json& msg) {
  const json& seq = msg.value("seq", json());
  address addr = address_from_json(msg.value("address", json::object()));
  std::string key = key_of(addr);
  auto policy = parse_policy(msg.value("policy", std::string("round_robin"))).value_or(sched_policy::round_robin);
  auto [it, created] = keys().try_emplace(key);
  shared_key& k = it->second;
  if (created || k.members.empty()) {
    k.key = key;
    k.requested = addr;
    k.policy = policy;
    k.backlog = msg.value("backlog", 511);
  } else if (k.find(w)) {
    reply_error(w, seq, error(std::make_error_code(std::errc::address_in_use),
                              "listen " + addr.to_string() + ": this worker already listens there"));
    return;
  }
  if (auto s = ensure_socket(k); !s) {
    reply_error(w, seq, s.err());
    if (k.members.empty()) keys().erase(it);
    return;
  }
  k.members.push_back({&w, k.policy != sched_policy::reuseport});
  json reply = {{"corral", "listening"}, {"seq", seq}, {"address", address_to_json(k.bound)},
                {"policy", to_string(k.policy)}};
  std::vector<unique_fd> fds;
  if (k.policy == sched_policy::shared) fds.emplace_back(::fcntl(k.fd.get(), F_DUPFD_CLOEXEC, 3));
  if (k.policy == sched_policy::round_robin) {
    // Without it (no memfd here), the worker acknowledges by messages.
    unique_fd share;
    if (auto counter = delivered_counter::create(share)) {
      k.members.back().delivered = std::move(counter.value());
      fds.push_back(std::move(share));
      reply["delivered"] = true;
    }
  }
  w.send(reply, std::move(fds));
  if (k.members.back().listening) now_listening(w, k);
}

// `w` listens on `k`: the cluster's `listening` events, and a primary under a
// supervisor is ready once every live worker listens.
void now_listening(worker& w, shared_key& k) {
  cluster::detail::emit_listening(w, k.bound);
  bool all = true;
  for (auto& [id, live] : cluster::workers()) all = all && !keys_of(*live).empty();
  if (all) cluster::detail::notify_ready();
}

void leave(worker& w, const std::string& key) {
  auto it = keys().find(key);
  if (it == keys().end()) return;
  auto& k = it->second;
  // The last round-robin worker to leave (while alive) takes what the kernel
  // already accepted into the backlog: it serves connections until our
  // `closed` answer, which follows them on the channel. Closing the socket
  // with them queued would reset them.
  if (k.members.size() == 1 && k.members.front().w == &w && k.acc && w.is_connected()) {
    std::vector<unique_fd> queued;
    for (int c; (c = ::accept4(k.fd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;) queued.emplace_back(c);
    if (!queued.empty()) k.distribute(queued);
  }
  std::erase_if(k.members, [&](const member& m) { return m.w == &w; });
  if (k.members.empty()) k.close_socket();  // refuse new connections, as Node
  k.next = 0;
}

void on_message(worker& w, const json& msg, std::vector<unique_fd>&) {
  const auto& type = msg["corral"];
  if (type == "listen") {
    on_listen(w, msg);
  } else if (type == "ack") {
    auto it = keys().find(msg.value("key", std::string()));
    if (it == keys().end()) return;
    if (member* m = it->second.find(w)) {
      const json& n = msg.value("n", json(1));
      if (n.is_number_unsigned()) m->acked += n.get<std::uint64_t>();
    }
  } else if (type == "bound") {  // a reuseport worker's own socket listens
    auto it = keys().find(msg.value("key", std::string()));
    if (it == keys().end()) return;
    if (member* m = it->second.find(w); m && !m->listening) {
      m->listening = true;
      now_listening(w, it->second);
    }
  } else if (type == "close") {
    leave(w, msg.value("key", std::string()));
    w.send({{"corral", "closed"}, {"seq", msg.value("seq", json())}});
  }
}

}  // namespace

std::vector<std::string> keys_of(const corral::worker& w) {
  std::vector<std::string> out;
  for (auto& [key, k] : keys())
    for (auto& m : k.members)
      if (m.w == &w && m.listening) out.push_back(key);
  return out;
}

void serve_workers() {
  static bool installed = false;
  if (installed) return;
  installed = true;
  cluster::detail::on_internal_message(on_message);
  cluster::detail::on_worker_gone([](worker& w) {
    std::vector<std::string> ks;
    for (auto& [key, k] : keys())
      if (k.find(w)) ks.push_back(key);
    for (auto& key : ks) leave(w, key);
  });
}

}  // namespace corral::net::detail
