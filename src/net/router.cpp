#include "net/router.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include <algorithm>
#include <climits>
#include <cstdint>

#include "core/handoff_sched.hpp"
#include "net/acceptor.hpp"
#include "net/delivered.hpp"
#include "net/socket.hpp"

namespace corral::net::detail {
namespace {

constexpr std::size_t max_fds_per_message = 253;  // SCM_MAX_FD

// How far behind a peer may fall before it is passed over: a stalled one
// at 5, one that keeps taking connections only at 64. On a saturated
// machine a worker is often not scheduled for a few ms, at 50,000
// connections/s a few hundred connections; passing it over at 5 sent bursts
// to the other worker, which cost 5-10% throughput and doubled the p99.
constexpr std::uint64_t stalled_slack = 4;
constexpr std::uint64_t busy_slack = 63;
constexpr std::uint64_t stall_ns = 20'000'000;

struct member {
  peer_ref peer;
  // Listening. In reuseport the peer binds its own socket after our answer:
  // it is listening once it says "bound", not before.
  bool listening = true;
  // Round-robin: connections passed, and how many the peer has taken (it
  // counts them in `delivered`; a peer that could not map it sends "ack"
  // messages instead, counted in `acked`).
  std::uint64_t sent = 0;
  std::uint64_t acked = 0;
  delivered_counter delivered;
  // When it last took a connection, or owed us none (uv_hrtime()).
  std::uint64_t taken_seen = 0;
  std::uint64_t progress_at = 0;

  bool connected() const { return peer.connected(); }
  // Passed and not yet taken. A peer can only make itself look less busy
  // than it is (it writes the counter), never make us fail.
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

void reply_error(const peer_ref& p, const json& seq, const error& e) {
  p.send({{"corral", "listening"}, {"seq", seq}, {"error", e.message()}, {"errno", e.code().value()}}, {});
}

}  // namespace

struct router::shared_key {
  std::string key;
  address requested;
  address bound;
  sched_policy policy = sched_policy::round_robin;
  int backlog = 511;
  std::optional<bool> defer_accept;  // as the first member asked
  unique_fd owned;    // opened by us, closed when the last peer leaves
  int borrowed = -1;  // the owner's (hooks::provide), never closed here
  bool batch_sched = true;
  std::unique_ptr<acceptor> acc;
  std::vector<member> members;
  std::size_t next = 0;  // round-robin tie-break position

  int fd() const { return borrowed >= 0 ? borrowed : owned.get(); }

  member* find(const void* id) {
    for (auto& m : members)
      if (m.peer.id == id) return &m;
    return nullptr;
  }

  void start_accepting() {
    if (acc || policy != sched_policy::round_robin) return;
    acc = std::make_unique<acceptor>(fd(), [this](std::vector<unique_fd>& conns) { distribute(conns); });
    if (batch_sched) corral::detail::handoff_sched(true);
  }

  void stop_accepting() {
    if (acc && batch_sched) corral::detail::handoff_sched(false);
    acc.reset();  // stop watching before the fd closes
  }

  // The last peer left: our own socket closes (new connections are refused,
  // as in Node); the owner's stays open, connections queue in its backlog
  // for the next peer.
  void release_socket() {
    stop_accepting();
    if (borrowed >= 0) {
      borrowed = -1;  // the next peer asks the owner again (maybe for another address)
      return;
    }
    owned.reset();
    if (requested.is_unix() && !bound.path.empty()) ::unlink(bound.path.c_str());
  }

  // Connections accepted in one wakeup are spread by least-pending (ties
  // rotate), then sent as one message per peer.
  void distribute(std::vector<unique_fd>& conns) {
    // First how many each peer gets, then consecutive connections in one
    // block per peer: their fd numbers are then mostly consecutive, and the
    // channel closes our copies with one close_range() per message.
    std::vector<std::size_t> share(members.size(), 0);
    std::vector<std::uint64_t> pending(members.size()), slack(members.size());
    std::uint64_t now = uv_hrtime();
    for (std::size_t i = 0; i < members.size(); ++i) {
      pending[i] = members[i].pending();
      slack[i] = members[i].stalled(now, stall_ns) ? stalled_slack : busy_slack;
    }
    std::vector<bool> up(members.size());
    for (std::size_t i = 0; i < members.size(); ++i) up[i] = members[i].listening && members[i].connected();
    std::size_t assigned = 0;
    for (; assigned < conns.size(); ++assigned) {
      // Rotate, passing over a peer that is further behind another than its
      // slack allows.
      std::size_t best = members.size();
      for (std::size_t k = 0; k < members.size(); ++k) {
        std::size_t i = (next + k) % members.size();
        if (!up[i]) continue;
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
    // A send may end in a peer's departure (its channel fails): work on a
    // copy of the peers, not on `members`.
    std::vector<peer_ref> to;
    for (auto& m : members) to.push_back(m.peer);
    for (std::size_t i = 0; i < to.size(); ++i) {
      auto& batch = per[i];
      while (!batch.empty()) {
        std::size_t n = std::min(batch.size(), max_fds_per_message);
        std::vector<unique_fd> chunk(std::make_move_iterator(batch.begin()),
                                     std::make_move_iterator(batch.begin() + static_cast<std::ptrdiff_t>(n)));
        batch.erase(batch.begin(), batch.begin() + static_cast<std::ptrdiff_t>(n));
        to[i].send({{"corral", "conn"}, {"key", key}}, std::move(chunk));
      }
    }
  }
};

router::router(hooks h) : hooks_(std::move(h)) {}

router::~router() {
  for (auto& [key, k] : keys_) k->release_socket();
}

// Opens the key's socket if it has none (first listener, or reopening after
// every peer left). A reopened port-0 key keeps the port it had.
status router::ensure_socket(shared_key& k) {
  if (k.fd() >= 0) return {};
  bool reuseport = k.policy == sched_policy::reuseport;
  if (hooks_.provide) {
    auto mine = hooks_.provide(k.requested);
    if (!mine) return mine.err();
    // Already served under another key (a worker's second server, on
    // another port, that the owner's only socket matched by default): that
    // one binds its own, as Node's primary would.
    bool taken = false;
    for (auto& [key, other] : keys_)
      if (other.get() != &k && other->borrowed == *mine && *mine >= 0) taken = true;
    if (taken && !hooks_.open_others)
      return error(std::make_error_code(std::errc::address_in_use),
                   "listen " + k.requested.to_string() +
                       ": this worker may listen only on its app's own addresses, and their one socket serves another "
                       "of its servers already");
    if (*mine >= 0 && !taken) {
      auto bound = local_address_of(*mine);
      if (!bound) return bound.err();
      k.borrowed = *mine;
      k.bound = *bound;
      if (reuseport) k.policy = sched_policy::shared;  // it listens already: share it
      return {};
    }
  }
  address addr = k.requested;
  if (!addr.is_unix() && addr.port == 0 && k.bound.port != 0) addr.port = k.bound.port;
  auto fd = open_listening(addr, k.backlog, reuseport, /*listen_now=*/!reuseport);
  if (!fd && addr.port != k.requested.port) fd = open_listening(k.requested, k.backlog, reuseport, !reuseport);
  if (!fd) return fd.err();
  auto bound = local_address_of(fd->get());
  if (!bound) return bound.err();
  k.owned = std::move(fd.value());
  k.bound = *bound;
  if (k.bound.is_unix()) k.bound.path = k.requested.path;
  // An inherited socket can't join a reuseport group; share it instead.
  int listening = 0;
  socklen_t len = sizeof listening;
  ::getsockopt(k.fd(), SOL_SOCKET, SO_ACCEPTCONN, &listening, &len);
  if (reuseport && listening) k.policy = sched_policy::shared;
  return {};
}

namespace {

// A peer's messages are untrusted: a field of another type than expected
// counts as absent (nlohmann's value() would throw on the loop).
std::string string_field(const json& msg, const char* name) {
  auto it = msg.find(name);
  return it != msg.end() && it->is_string() ? it->get<std::string>() : std::string();
}

int int_field(const json& msg, const char* name, int fallback) {
  auto it = msg.find(name);
  if (it == msg.end() || !it->is_number_integer()) return fallback;
  if (it->is_number_unsigned())
    return it->get<std::uint64_t>() <= static_cast<std::uint64_t>(INT_MAX) ? it->get<int>() : fallback;
  auto v = it->get<std::int64_t>();
  return v >= INT_MIN && v <= INT_MAX ? static_cast<int>(v) : fallback;
}

}  // namespace

void router::on_listen(const peer_ref& peer, const json& msg) {
  const json& seq = msg.value("seq", json());
  address addr = address_from_json(msg.value("address", json::object()));
  std::string key = key_of(addr);
  // A worker's second (third...) server on the same address asks for
  // "<key>#<index>": a key of its own, as Node's primary keys by index.
  if (std::string asked = string_field(msg, "key");
      asked.size() > key.size() + 1 && asked.compare(0, key.size(), key) == 0 && asked[key.size()] == '#' &&
      asked.find_first_not_of("0123456789", key.size() + 1) == std::string::npos)
    key = asked;
  auto policy = parse_policy(string_field(msg, "policy")).value_or(sched_policy::round_robin);
  auto& slot = keys_[key];
  if (!slot) slot = std::make_unique<shared_key>();
  shared_key& k = *slot;
  if (k.members.empty()) {
    k.key = key;
    k.requested = addr;
    k.policy = policy;
    k.backlog = int_field(msg, "backlog", 511);
    if (auto d = msg.find("defer_accept"); d != msg.end() && d->is_boolean()) k.defer_accept = d->get<bool>();
    k.batch_sched = hooks_.batch_sched;
  } else if (k.find(peer.id)) {
    reply_error(peer, seq, error(std::make_error_code(std::errc::address_in_use),
                                 "listen " + addr.to_string() + ": this worker already listens there"));
    return;
  }
  if (auto s = ensure_socket(k); !s) {
    reply_error(peer, seq, s.err());
    if (k.members.empty()) keys_.erase(key);
    return;
  }
  if (k.members.empty() && k.defer_accept) set_defer_accept(k.fd(), *k.defer_accept);
  k.members.push_back({peer, k.policy != sched_policy::reuseport});
  json reply = {{"corral", "listening"}, {"seq", seq}, {"address", address_to_json(k.bound)},
                {"policy", to_string(k.policy)}};
  std::vector<unique_fd> fds;
  if (k.policy == sched_policy::shared) fds.emplace_back(::fcntl(k.fd(), F_DUPFD_CLOEXEC, 3));
  if (k.policy == sched_policy::round_robin) {
    // Without it (no memfd here), the peer acknowledges by messages.
    unique_fd share;
    if (auto counter = delivered_counter::create(share)) {
      k.members.back().delivered = std::move(counter.value());
      fds.push_back(std::move(share));
      reply["delivered"] = true;
    }
  }
  peer.send(reply, std::move(fds));
  // The send may have failed and closed the peer's channel at once, and its
  // departure released the socket: nothing to accept for then.
  if (member* m = k.find(peer.id)) {
    k.start_accepting();
    if (m->listening) now_listening(peer.id, k);
  }
}

void router::now_listening(const void* peer, shared_key& k) {
  if (hooks_.on_listening) hooks_.on_listening(peer, k.bound);
}

void router::leave(const void* peer, const std::string& key) {
  auto it = keys_.find(key);
  if (it == keys_.end()) return;
  auto& k = *it->second;
  member* m = k.find(peer);
  if (!m) return;
  // The last round-robin peer to leave (while connected) takes what the
  // kernel already accepted into the backlog of a socket we close: it serves
  // them until our `closed` answer, which follows them on the channel.
  // Closing the socket with them queued would reset them. The owner's socket
  // keeps them for the next peer.
  if (k.members.size() == 1 && k.acc && k.borrowed < 0 && m->connected()) {
    std::vector<unique_fd> queued;
    for (int c; (c = ::accept4(k.fd(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;) queued.emplace_back(c);
    if (!queued.empty()) k.distribute(queued);
  }
  std::erase_if(k.members, [&](const member& mm) { return mm.peer.id == peer; });
  if (k.members.empty()) k.release_socket();
  k.next = 0;
}

bool router::on_message(const peer_ref& peer, const json& msg) {
  if (!msg.is_object() || !msg.contains("corral")) return false;
  const auto& type = msg["corral"];
  if (type == "listen") {
    on_listen(peer, msg);
  } else if (type == "ack") {
    auto it = keys_.find(string_field(msg, "key"));
    if (it == keys_.end()) return true;
    if (member* m = it->second->find(peer.id)) {
      const json& n = msg.value("n", json(1));
      if (n.is_number_unsigned()) m->acked += n.get<std::uint64_t>();
    }
  } else if (type == "bound") {  // a reuseport peer's own socket listens
    auto it = keys_.find(string_field(msg, "key"));
    if (it == keys_.end()) return true;
    if (member* m = it->second->find(peer.id); m && !m->listening) {
      m->listening = true;
      now_listening(peer.id, *it->second);
    }
  } else if (type == "close") {
    leave(peer.id, string_field(msg, "key"));
    peer.send({{"corral", "closed"}, {"seq", msg.value("seq", json())}}, {});
  } else {
    return false;
  }
  return true;
}

void router::leave_all(const void* peer) {
  std::vector<std::string> ks;
  for (auto& [key, k] : keys_)
    if (k->find(peer)) ks.push_back(key);
  for (auto& key : ks) leave(peer, key);
}

std::vector<std::string> router::keys_of(const void* peer) const {
  std::vector<std::string> out;
  for (auto& [key, k] : keys_)
    for (auto& m : k->members)
      if (m.peer.id == peer && m.listening) out.push_back(key);
  return out;
}

}  // namespace corral::net::detail
