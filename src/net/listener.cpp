// net::listener: one API whether alone, socket-activated, or a cluster worker.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <set>
#include <utility>

#include "core/closers.hpp"
#include "core/defer.hpp"
#include "cluster/internal.hpp"
#include "corral/cluster.hpp"
#include "net/acceptor.hpp"
#include "net/delivered.hpp"
#include "net/socket.hpp"

namespace corral::net {
namespace {

// A worker's side of the net protocol: replies by sequence number, and
// round-robin connections routed by key.
struct worker_router {
  using reply_fn = std::function<void(const json&, std::vector<unique_fd>&)>;
  bool installed = false;
  long next_seq = 1;
  std::map<long, reply_fn> pending;
  struct rr_key {
    std::function<void(std::vector<unique_fd>&)> deliver;
    detail::delivered_counter taken;  // shared with the primary; else "ack" messages
  };
  std::map<std::string, rr_key> round_robin;
  // The indices of this worker's listeners per address: its second server
  // on the same address (two listen(0) calls) is another key, "<key>#1", as
  // Node keys them by their index. The lowest free one, so a server that
  // closes and listens again gets its key (and port) back.
  std::map<std::string, std::set<int>> indices;

  int take_index(const std::string& base) {
    auto& used = indices[base];
    int i = 0;
    while (used.count(i)) ++i;
    used.insert(i);
    return i;
  }

  void give_back(const std::string& base, int i) {
    auto it = indices.find(base);
    if (it == indices.end()) return;
    it->second.erase(i);
    if (it->second.empty()) indices.erase(it);
  }

  void install() {
    if (installed) return;
    installed = true;
    cluster::worker().on_internal_message([this](const json& m, std::vector<unique_fd>& fds) { handle(m, fds); });
  }

  long request(json msg, reply_fn on_reply) {
    install();
    long seq = next_seq++;
    msg["seq"] = seq;
    pending.emplace(seq, std::move(on_reply));
    cluster::worker().send(msg);
    return seq;
  }

  void handle(const json& msg, std::vector<unique_fd>& fds) {
    const auto& type = msg["corral"];
    if (type == "conn") {
      std::string key = msg.value("key", std::string());
      std::size_t n = fds.size();
      auto it = round_robin.find(key);
      if (it == round_robin.end()) {
        cluster::worker().send({{"corral", "ack"}, {"key", key}, {"n", n}});
        return;
      }
      // Taken on arrival: a worker stuck in a handler reads no further
      // messages, and its count stops there.
      if (it->second.taken) it->second.taken.add(n);
      else cluster::worker().send({{"corral", "ack"}, {"key", key}, {"n", n}});
      auto deliver = it->second.deliver;  // the listener may go away while serving
      deliver(fds);
      return;
    }
    if (type == "listening" || type == "closed") {
      auto it = pending.find(msg.value("seq", 0L));
      if (it == pending.end()) return;
      auto fn = std::move(it->second);
      pending.erase(it);
      fn(msg, fds);
    }
  }
};

worker_router& router() {
  static auto* r = new worker_router;  // lives for the whole process
  return *r;
}

bool in_cluster() { return cluster::is_worker() && cluster::worker().is_connected(); }

}  // namespace

struct listener::impl {
  enum class mode { idle, requesting, own, cluster_socket, cluster_rr, closing };
  mode m = mode::idle;
  connection_fn on_conn;
  unique_fd fd;
  std::unique_ptr<detail::acceptor> acc;
  address bound;
  std::string key;
  std::string key_base;  // key_of(the address asked for)
  int key_index = -1;    // taken in worker_router::indices while >= 0
  bool unlink_on_close = false;
  bool close_on_disconnect = true;
  bool close_requested = false;
  int closer_token = 0;
  std::vector<std::function<void()>> close_waiters;
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);

  void deliver(std::vector<unique_fd>& conns) {
    auto guard = alive;
    for (auto& c : conns) {
      if (!*guard) return;  // the listener was destroyed by a callback
      if (on_conn) on_conn(std::move(c));
    }
  }

  void start_accepting() {
    acc = std::make_unique<detail::acceptor>(fd.get(), [this](std::vector<unique_fd>& conns) { deliver(conns); });
  }

  // Closed with the process's other servers on a worker's disconnect or by
  // the shutdown helper.
  void register_closer() {
    if (!close_on_disconnect || closer_token) return;
    closer_token = corral::detail::add_closer([this](std::function<void()> done) { close(std::move(done)); });
  }

  void unregister_closer() {
    if (closer_token) corral::detail::remove_closer(closer_token);
    closer_token = 0;
  }

  // A round-robin listener has no socket of its own; the channel must keep
  // the loop alive for it.
  bool holding = false;
  void hold(bool yes) {
    if (holding == yes || !cluster::is_worker()) return;
    holding = yes;
    if (yes) cluster::worker().hold_for_internal();
    else cluster::worker().release_for_internal();
  }

  void release_key() {
    if (key_index >= 0) router().give_back(key_base, key_index);
    key_index = -1;
  }

  void finish_close() {
    release_key();
    hold(false);
    m = mode::idle;
    unregister_closer();
    auto waiters = std::move(close_waiters);
    close_waiters.clear();
    for (auto& w : waiters)
      if (w) w();
  }

  void listen(const listen_options& opts, listening_fn done) {
    auto guard = alive;
    if (m != mode::idle) {
      corral::detail::defer([done, a = bound] {
        error e(std::make_error_code(std::errc::already_connected), "listen: already listening on " + a.to_string());
        done(&e, a);
      });
      return;
    }
    address want = detail::address_of(opts);
    bool inherited = false;
    auto from_env = detail::take_inherited(want, inherited);
    if (inherited || !in_cluster()) {
      result<unique_fd> sock = inherited ? std::move(from_env) : detail::bind_socket(want, opts.backlog, false);
      if (!sock) {
        error e = sock.err();
        corral::detail::defer([done, e, want] { done(&e, want); });
        return;
      }
      fd = std::move(sock.value());
      if (opts.defer_accept) detail::set_defer_accept(fd.get(), *opts.defer_accept);
      auto a = detail::local_address_of(fd.get());
      bound = a ? *a : want;
      if (want.is_unix()) {
        bound.path = want.path;
        unlink_on_close = !inherited;
      }
      m = mode::own;
      start_accepting();
      register_closer();
      corral::detail::defer([done, guard, this] {
        if (!*guard) return;
        done(nullptr, bound);
        cluster::detail::notify_ready();
      });
      return;
    }
    // A cluster worker: the primary owns the socket.
    m = mode::requesting;
    hold(true);  // the answer (and round-robin connections) come through the channel
    key_base = detail::key_of(want);
    key_index = router().take_index(key_base);
    key = key_index == 0 ? key_base : key_base + "#" + std::to_string(key_index);
    sched_policy policy = opts.policy.value_or(default_policy());
    json req = {{"corral", "listen"}, {"address", detail::address_to_json(want)}, {"key", key},
                {"policy", to_string(policy)}, {"backlog", opts.backlog}};
    if (opts.defer_accept) req["defer_accept"] = *opts.defer_accept;
    router().request(req, [this, guard, done, want, key = key, backlog = opts.backlog,
                           defer = opts.defer_accept](const json& reply, std::vector<unique_fd>& fds) {
      if (!*guard) {
        // Destroyed while asking: the primary counts us as listening now;
        // say we are not, or it would pass connections to nobody.
        if (!reply.contains("error") && in_cluster())
          cluster::worker().send({{"corral", "close"}, {"key", key}, {"seq", 0}});
        return;
      }
      on_listen_reply(reply, fds, done, want, backlog, defer);
    });
  }

  // Not listening after all: reports `e`, then completes a close() asked for
  // while we waited (its callbacks were waiting for this answer).
  void listen_failed(const error& e, const listening_fn& done, const address& want, bool close_was_requested) {
    m = mode::idle;
    release_key();
    hold(false);
    auto waiters = close_was_requested ? std::exchange(close_waiters, {}) : decltype(close_waiters){};
    auto guard = alive;
    done(&e, want);
    if (!*guard) return;  // destroyed by `done`: so is whoever waits on the close
    for (auto& w : waiters)
      if (w) w();
  }

  void on_listen_reply(const json& reply, std::vector<unique_fd>& fds, const listening_fn& done, const address& want,
                       int backlog, std::optional<bool> defer_accept) {
    // One close() while asking closes this listen, not a later one.
    bool close_was_requested = std::exchange(close_requested, false);
    if (reply.contains("error")) {
      error e(std::error_code(reply.value("errno", EINVAL), std::generic_category()),
              reply.value("error", std::string("listen failed")));
      listen_failed(e, done, want, close_was_requested);
      return;
    }
    bound = detail::address_from_json(reply.value("address", json::object()));
    auto policy = parse_policy(reply.value("policy", std::string())).value_or(sched_policy::round_robin);
    if (policy == sched_policy::round_robin) {
      m = mode::cluster_rr;
      auto& rr = router().round_robin[key];
      rr = {};
      rr.deliver = [this](std::vector<unique_fd>& conns) { deliver(conns); };
      if (reply.value("delivered", false) && !fds.empty())
        if (auto counter = detail::delivered_counter::map(fds.front().get())) rr.taken = std::move(counter.value());

    } else {
      if (policy == sched_policy::shared && !fds.empty()) {
        fd = std::move(fds.front());
      } else if (policy == sched_policy::reuseport) {
        auto sock = detail::bind_socket(bound, backlog, /*reuseport=*/true);
        if (!sock) {
          m = mode::cluster_socket;  // tell the primary we are not there after all
          error e = sock.err();
          close([] {});
          done(&e, want);
          return;
        }
        fd = std::move(sock.value());
        if (defer_accept) detail::set_defer_accept(fd.get(), *defer_accept);
        // Now it listens: the primary's `listening` (and a rolling restart
        // waiting for it) must not come before.
        cluster::worker().send({{"corral", "bound"}, {"key", key}});
      } else {
        error e(std::make_error_code(std::errc::protocol_error), "listen " + want.to_string() + ": the primary sent no socket");
        listen_failed(e, done, want, close_was_requested);
        return;
      }
      m = mode::cluster_socket;
      start_accepting();
    }
    register_closer();
    auto guard = alive;
    done(nullptr, bound);
    if (*guard && close_was_requested) close({});
  }

  void close(std::function<void()> done) {
    close_waiters.push_back(std::move(done));
    switch (m) {
      case mode::idle:
        corral::detail::defer([guard = alive, this] {
          if (*guard) finish_close();
        });
        return;
      case mode::requesting:
        close_requested = true;  // finish once the primary has answered
        return;
      case mode::closing:
        return;
      case mode::own:
        acc.reset();
        fd.reset();
        if (unlink_on_close) ::unlink(bound.path.c_str());
        m = mode::closing;
        corral::detail::defer([guard = alive, this] {
          if (*guard) finish_close();
        });
        return;
      case mode::cluster_socket:
      case mode::cluster_rr: {
        acc.reset();
        fd.reset();
        m = mode::closing;
        if (!in_cluster()) {
          router().round_robin.erase(key);
          corral::detail::defer([guard = alive, this] {
            if (*guard) finish_close();
          });
          return;
        }
        // Round-robin connections the primary sent before it saw our close
        // arrive before its answer (one ordered channel): keep serving them
        // until the answer comes, so none is dropped.
        router().request({{"corral", "close"}, {"key", key}}, [guard = alive, this](const json&, std::vector<unique_fd>&) {
          if (!*guard) return;
          router().round_robin.erase(key);
          finish_close();
        });
        return;
      }
    }
  }

  ~impl() {
    *alive = false;
    acc.reset();
    fd.reset();
    if (m == mode::own && unlink_on_close) ::unlink(bound.path.c_str());
    if (m == mode::cluster_rr || m == mode::cluster_socket || m == mode::closing) {
      router().round_robin.erase(key);
      if (in_cluster() && m != mode::closing) cluster::worker().send({{"corral", "close"}, {"key", key}, {"seq", 0}});
    }
    release_key();
    unregister_closer();
    hold(false);
  }
};

listener::listener() : impl_(std::make_unique<impl>()) {}
listener::~listener() = default;
void listener::on_connection(connection_fn fn) { impl_->on_conn = std::move(fn); }
void listener::listen(const listen_options& opts, listening_fn done) { impl_->listen(opts, std::move(done)); }
void listener::close(std::function<void()> done) { impl_->close(std::move(done)); }
bool listener::is_listening() const noexcept {
  return impl_->m == impl::mode::own || impl_->m == impl::mode::cluster_socket || impl_->m == impl::mode::cluster_rr;
}
const address& listener::local_address() const noexcept { return impl_->bound; }
void listener::close_on_disconnect(bool yes) noexcept { impl_->close_on_disconnect = yes; }

}  // namespace corral::net
