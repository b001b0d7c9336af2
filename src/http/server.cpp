// The server: its connections, their shared deadlines sweep, graceful close.
#include <signal.h>

#include <algorithm>

#include "corral/cluster.hpp"
#include "corral/loop.hpp"
#include "core/closers.hpp"
#include "http/connection.hpp"

namespace corral::http {

namespace detail {

namespace {

// A write to a connection whose client has gone (closed, then reset by its
// kernel) fails with EPIPE, and by default also raises SIGPIPE, which would
// kill the whole server for one client that hung up mid-answer. As Node does
// at startup, a SIGPIPE left at its default is ignored, so that the write
// just fails and only that connection ends; a handler the program installed
// itself is kept.
void ignore_default_sigpipe() {
  struct sigaction current {};
  if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) ::signal(SIGPIPE, SIG_IGN);
}

}  // namespace

server_state::server_state(handler h, const router* r, server_options o)
    : loop(default_loop()), handler_fn(std::move(h)), router_(r), options(o),
      read_buf(new char[read_buf_size]) {
  ignore_default_sigpipe();
  sweep = corral::detail::uv_handle_ptr<uv_timer_t>::make();
  uv_timer_init(loop, sweep.get());
  sweep->data = this;
  uv_unref(sweep.handle());  // connections keep the loop alive, not their timer
  // Deadlines are checked at a quarter of the shortest timeout, so a timeout
  // fires at most 25% late, and never less often than once a second.
  auto shortest = std::min({o.headers_timeout, o.request_timeout, o.keep_alive_timeout, o.close_idle_grace, o.send_timeout});
  tick_ms = static_cast<uint64_t>(std::clamp<long long>(shortest.count() / 4, 5, 1000));
}

server_state::~server_state() = default;

void server_state::dispatch(request& req, response& res) {
  if (router_) {
    router_->handle(req, res);
  } else {
    handler_fn(req, res);
  }
}

void server_state::link(connection* c) {
  c->next = head;
  c->prev = nullptr;
  if (head) head->prev = c;
  head = c;
  if (++count == 1) start_sweep();
}

void server_state::unlink(connection* c) {
  if (c->prev) c->prev->next = c->next;
  if (c->next) c->next->prev = c->prev;
  if (head == c) head = c->next;
  c->prev = c->next = nullptr;
  if (--count == 0 && sweep_running) {
    uv_timer_stop(sweep.get());
    sweep_running = false;
  }
}

void server_state::start_sweep() {
  if (sweep_running) return;
  sweep_running = true;
  uv_timer_start(
      sweep.get(), [](uv_timer_t* t) { if (t->data) static_cast<server_state*>(t->data)->on_sweep(); }, tick_ms,
      tick_ms);
}

void server_state::on_sweep() {
  uint64_t now = uv_now(loop);
  for (connection* c = head; c;) {
    connection* next = c->next;  // c may unlink itself
    c->check_deadline(now);
    c = next;
  }
}

void server_state::begin_close() {
  if (!closing) {
    closing = true;
    if (acceptor_) {
      acceptor_->close([this] {
        accepting_closed = true;
        maybe_finish_close();
      });
    }
    for (connection* c = head; c; c = c->next) c->on_server_closing();
  }
  maybe_finish_close();
}

void server_state::maybe_finish_close() {
  if (!closing || !accepting_closed || count > 0 || notifying || on_closed.empty()) return;
  auto callbacks = std::move(on_closed);
  on_closed.clear();
  // The last thing done here: a callback may destroy the server.
  for (auto& cb : callbacks)
    if (cb) cb();
}

void server_state::destroy_all() {
  // The last destroy() may complete a graceful close, whose callback may
  // destroy the server: hold the callbacks until the loop is done, then let
  // them run as the very last thing.
  bool was_notifying = notifying;
  notifying = true;
  while (head) head->destroy();
  notifying = was_notifying;
  maybe_finish_close();
}

}  // namespace detail

server::server(handler h, server_options options)
    : s_(std::make_unique<detail::server_state>(std::move(h), nullptr, options)) {}

server::server(const router& r, server_options options)
    : s_(std::make_unique<detail::server_state>(handler{}, &r, options)) {}

server::~server() {
  s_->notifying = true;  // no close callback from a destructor
  s_->destroy_all();
  if (s_->closer_token) corral::detail::remove_closer(s_->closer_token);
  s_->acceptor_.reset();
}

status server::serve(unique_fd fd) { return s_->serve(std::move(fd), false); }

namespace detail {

status server_state::serve(unique_fd fd, bool nodelay_set) {
  // While closing, connections still arrive until the listener has closed
  // (a round-robin primary may have passed them before it learnt of the
  // close): they are served, with Connection: close, so none is lost.
  if (closing && accepting_closed)
    return error(std::make_error_code(std::errc::operation_canceled), "http server: closed");
  // A request already waiting may be answered (and the connection gone)
  // before this returns; its handler runs inside this call.
  if (!(new connection(this))->open(fd.release(), nodelay_set))
    return error(std::make_error_code(std::errc::bad_file_descriptor), "http server: cannot open the socket");
  return {};
}

}  // namespace detail

void server::close(std::function<void()> done) {
  s_->on_closed.push_back(done ? std::move(done) : [] {});
  s_->begin_close();
}

void server::close_all_connections() { s_->destroy_all(); }

std::size_t server::connection_count() const noexcept { return s_->count; }

const net::address& server::local_address() const noexcept { return s_->bound; }

bool server::is_closing() const noexcept { return s_->closing; }

}  // namespace corral::http
