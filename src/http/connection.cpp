// One HTTP/1.1 connection: parse, dispatch, frame, write, time out, close.
#include "http/connection.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <utility>

#include "http/internal.hpp"

namespace corral::http::detail {

namespace {

connection* self(llhttp_t* p) { return static_cast<connection*>(p->data); }

// Name/value views into `bytes`, which holds names and values back to back
// ending at `offsets`' (name end, value end) pairs.
void views_of(std::string_view bytes, const std::vector<std::pair<std::size_t, std::size_t>>& offsets,
              std::vector<header>& out) {
  std::size_t start = 0;
  for (auto [name_end, value_end] : offsets) {
    out.push_back({bytes.substr(start, name_end - start), bytes.substr(name_end, value_end - name_end)});
    start = value_end;
  }
}

constexpr std::string_view continue_line = "HTTP/1.1 100 Continue\r\n\r\n";

// Reads being parsed right now, with a handler possibly running inside one:
// a connection opened meanwhile (serve() from a handler) must not read into
// the shared read buffer under them. (Per thread, not per server: a handler
// may destroy its server, and the count must outlive it.)
thread_local int parsing_depth = 0;

// Output not yet taken by the kernel above which we stop reading requests.
constexpr std::size_t max_unsent = 1u << 20;

// Whether every Transfer-Encoding field lists only "chunked" (and empty
// list elements, RFC 9110 5.6.1).
bool only_chunked(const std::vector<header>& headers) {
  for (const header& h : headers) {
    if (!iequals(h.name, "Transfer-Encoding")) continue;
    if (find_item(h.value, ',', [](std::string_view coding) { return !coding.empty() && !iequals(coding, "chunked"); }))
      return false;
  }
  return true;
}

}  // namespace

const llhttp_settings_t& connection::settings() {
  static const llhttp_settings_t s = [] {
    llhttp_settings_t out;
    llhttp_settings_init(&out);
    out.on_message_begin = cb_message_begin;
    out.on_url = cb_url;
    out.on_header_field = cb_header_field;
    out.on_header_value = cb_header_value;
    out.on_header_value_complete = [](llhttp_t* p) {
      self(p)->in_value_ = true;
      return 0;
    };
    out.on_headers_complete = cb_headers_complete;
    out.on_body = cb_body;
    out.on_message_complete = cb_message_complete;
    return out;
  }();
  return s;
}

connection::connection(server_state* s) : srv(s) {
  llhttp_init(&parser_, HTTP_REQUEST, &settings());
  parser_.data = this;
  req_.conn_ = this;
  req_.trust_proxy_hops_ = s->options.trust_proxy_hops;
}

int connection::socket_fd() const noexcept {
  if (closed_) return -1;
  if (!on_uv_) return bare_fd_;
  uv_os_fd_t fd = -1;
  return uv_fileno(reinterpret_cast<const uv_handle_t*>(&tcp_), &fd) == 0 ? fd : -1;
}

bool connection::open(int fd, bool nodelay_set) {
  if (!nodelay_set) {
    int one = 1;
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // (fails harmlessly off TCP)
  }
  bare_fd_ = fd;
  srv->link(this);
  // The loop's clock is as old as its iteration, or older when serve() is
  // called from outside the loop: the deadlines count from now.
  uv_update_time(srv->loop);
  set_deadline(deadline_kind::headers, srv->options.headers_timeout);
  if (srv->closing) on_server_closing();
  start_reading();  // (bare: noted, started on promotion)
  bool usable = true;
  // The optimistic first read (MSG_DONTWAIT: a socket the program passed
  // to serve() may still be blocking; libuv makes it non-blocking later).
  // Not while another connection's bytes are being parsed out of the
  // shared read buffer (serve() called from a handler): that read would
  // overwrite them.
  if (parsing_depth == 0) {
    char* buf = srv->read_buf.get();
    ssize_t n;
    do n = ::recv(fd, buf, server_state::read_buf_size, MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n > 0) {
      on_data(buf, static_cast<std::size_t>(n), server_state::read_buf_size);
    } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOTSOCK)) {
      usable = n == 0 || errno != EBADF;
      destroy();  // gone before it said anything (or not a socket at all)
    }
  }
  if (closed_ && !on_uv_) {
    release();  // served (or failed) on the bare socket: nothing else frees us
    return usable;
  }
  if (!closed_ && !on_uv_) return promote();
  return true;
}

bool connection::promote() {
  int fd = bare_fd_;
  bare_fd_ = -1;
  on_uv_ = true;
  uv_tcp_init(srv->loop, &tcp_);
  tcp_.data = this;
  if (uv_tcp_open(&tcp_, fd) != 0) {
    ::close(fd);
    destroy();
    return false;
  }
  if (reading_) uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), on_alloc, on_read);
  return true;
}

void connection::on_alloc(uv_handle_t* h, std::size_t, uv_buf_t* buf) {
  auto* c = static_cast<connection*>(h->data);
  if (!c->srv) {
    *buf = uv_buf_init(nullptr, 0);
    return;
  }
  *buf = uv_buf_init(c->srv->read_buf.get(), server_state::read_buf_size);
}

void connection::on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  auto* c = static_cast<connection*>(s->data);
  if (c->closed_ || nread == 0) return;
  if (nread < 0) {
    // A reset ends everything. EOF means the client sends nothing more
    // (it may have half-closed after its requests, as `nc -N` does): what
    // it sent before is still answered in full, then the connection closes.
    if (nread != UV_EOF) {
      c->destroy();
      return;
    }
    c->peer_ended_ = true;
    c->stop_reading();
    bool busy = c->phase_ == phase::handling || c->paused_ || c->write_in_flight_ || !c->out_.empty();
    if (!busy) {
      c->destroy();  // (a request cut short by the EOF is never answered)
      return;
    }
    // A parser paused on a late answer holds requests received after it:
    // resume_parsing() answers them and closes after the last one.
    if (!c->paused_) c->close_after_flush_ = true;
    return;
  }
  c->on_data(buf->base, static_cast<std::size_t>(nread), buf->len);
}

void connection::on_data(const char* data, std::size_t len, std::size_t buf_len) {
  if (phase_ == phase::draining) return;  // discarded: we are closing
  // (libuv reads again at once after a read that filled the buffer.)
  last_read_short_ = len < buf_len;
  in_batch_ = true;
  ++parsing_depth;
  feed(data, len);
  --parsing_depth;
  in_batch_ = false;
  flush();
  // A client that pipelines without reading its answers must not make us
  // buffer without bound: stop reading until the kernel takes our output.
  if (!closed_ && write_in_flight_ && out_.size() + writing_.size() > max_unsent) {
    write_blocked_ = true;
    stop_reading();
  }
}

void connection::start_reading() {
  if (reading_ || closed_ || peer_ended_) return;
  reading_ = true;
  if (!on_uv_) return;  // bare: promote() starts it
  uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), on_alloc, on_read);
}

void connection::stop_reading() {
  if (!reading_) return;
  reading_ = false;
  if (on_uv_) uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
}

void connection::set_deadline(deadline_kind k, std::chrono::milliseconds in) {
  deadline_kind_ = k;
  deadline_ = uv_now(srv->loop) + static_cast<uint64_t>(in.count());
}

// ---- parsing ---------------------------------------------------------------

void connection::feed(const char* data, std::size_t len) {
  if (stop_parsing_ || len == 0) return;
  exec_begin_ = data;
  llhttp_errno_t err = llhttp_execute(&parser_, data, len);
  prev_exec_end_ = data + len;
  if (closed_) return;
  if (err == HPE_OK) return;
  if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
    if (err == HPE_PAUSED_UPGRADE) {
      // No protocol switch is supported: the request was answered as a plain
      // one, and the connection ends after its response.
      stop_parsing_ = true;
      if (!res_.finished_) {
        res_.keep_alive_ = res_.headers_sent_ ? res_.keep_alive_ : false;
        close_after_flush_ = true;
      } else {
        close_after_flush_ = true;
      }
    }
    if (stop_parsing_) {
      const char* end = llhttp_get_error_pos(&parser_);
      ended_read_ = last_read_short_ && end == data + len;
      return;
    }
    const char* pos = llhttp_get_error_pos(&parser_);
    if (pos == nullptr || pos < data || pos > data + len) pos = data + len;
    pending_in_.assign(pos, static_cast<std::size_t>(data + len - pos));
    paused_ = true;
    stop_reading();
    return;
  }
  fail_request(error_status_ ? error_status_ : 400);
}

bool connection::count_header_bytes(std::size_t n) {
  header_bytes_ += n;
  if (header_bytes_ <= srv->options.max_header_bytes) return true;
  error_status_ = 431;
  return false;
}

int connection::cb_message_begin(llhttp_t* p) {
  connection* c = self(p);
  if (c->closed_) return -1;
  c->req_.clear();
  c->phase_ = phase::headers;
  c->header_bytes_ = 0;
  c->in_value_ = false;
  c->value_end_ = nullptr;
  c->error_status_ = 0;
  c->request_started_ = uv_now(c->srv->loop);
  c->set_deadline(deadline_kind::headers, c->srv->options.headers_timeout);
  return 0;
}

int connection::cb_url(llhttp_t* p, const char* at, std::size_t len) {
  connection* c = self(p);
  if (!c->count_header_bytes(len)) return -1;
  c->req_.url_.append(at, len);
  return 0;
}

// Trailer fields (after a chunked body) come through the same callbacks once
// the request's headers are complete (phase::body). They count against the
// header limit like headers, and go to storage of their own: appending them
// to header_bytes_ could move the bytes the request's header views point into.
int connection::cb_header_field(llhttp_t* p, const char* at, std::size_t len) {
  connection* c = self(p);
  request& r = c->req_;
  bool trailer = c->phase_ == phase::body;
  std::string& bytes = trailer ? r.trailer_bytes_ : r.header_bytes_;
  auto& offsets = trailer ? r.trailer_offsets_ : r.header_offsets_;
  if (c->in_value_ || offsets.empty()) {
    if (!c->count_header_bytes(4)) return -1;  // ": " and CRLF
    offsets.emplace_back(bytes.size(), bytes.size());
    c->in_value_ = false;
    c->value_end_ = nullptr;
  }
  if (!c->count_header_bytes(len)) return -1;
  // RFC 9112 5.1: whitespace between a field name and its colon must be
  // rejected (llhttp lets it through); it is a smuggling vector.
  if (std::string_view(at, len).find_first_of(" \t") != std::string_view::npos) return -1;
  bytes.append(at, len);
  offsets.back() = {bytes.size(), bytes.size()};
  return 0;
}

int connection::cb_header_value(llhttp_t* p, const char* at, std::size_t len) {
  connection* c = self(p);
  if (!c->count_header_bytes(len)) return -1;
  request& r = c->req_;
  bool trailer = c->phase_ == phase::body;
  // RFC 9112 5.2: obs-fold (a value continued on the next line) is rejected
  // with 400. llhttp accepts it and reports the continuation as a second
  // piece of the value that does not start where the first ended; a value
  // merely split across two reads continues exactly at the new buffer.
  if (c->value_end_ != nullptr) {
    bool contiguous = at == c->value_end_ || (at == c->exec_begin_ && c->value_end_ == c->prev_exec_end_);
    if (!contiguous) return -1;
  }
  c->value_end_ = at + len;
  std::string& bytes = trailer ? r.trailer_bytes_ : r.header_bytes_;
  auto& offsets = trailer ? r.trailer_offsets_ : r.header_offsets_;
  bytes.append(at, len);
  offsets.back().second = bytes.size();
  return 0;
}

int connection::cb_headers_complete(llhttp_t* p) { return self(p)->on_headers_complete(); }

int connection::on_headers_complete() {
  request& r = req_;
  views_of(r.header_bytes_, r.header_offsets_, r.headers_);
  r.method_ = llhttp_method_name(static_cast<llhttp_method_t>(parser_.method));
  r.major_ = parser_.http_major;
  r.minor_ = parser_.http_minor;
  // RFC 9112 3.2: an HTTP/1.1 request with no Host, or more than one, gets
  // 400 (Node: requireHostHeader).
  if (r.major_ == 1 && r.minor_ >= 1) {
    int hosts = 0;
    for (const header& h : r.headers_) hosts += iequals(h.name, "Host") ? 1 : 0;
    if (hosts != 1) {
      error_status_ = 400;
      return -1;
    }
  }
  // RFC 9112 6.1: a transfer coding we do not decode (llhttp has already
  // refused one after chunked, or without it) gets 501, rather than the
  // still-encoded bytes passed on as the body.
  if ((parser_.flags & F_TRANSFER_ENCODING) != 0 && !only_chunked(r.headers_)) {
    error_status_ = 501;
    return -1;
  }
  bool has_length = (parser_.flags & F_CONTENT_LENGTH) != 0;
  if (has_length && parser_.content_length > srv->options.max_body_bytes) {
    error_status_ = 413;
    return -1;
  }
  bool has_body = (has_length && parser_.content_length > 0) || (parser_.flags & F_CHUNKED) != 0;
  if (r.major_ == 1 && r.minor_ == 1) {
    // RFC 9110 10.1.1: an expectation we cannot meet gets 417 (as Node,
    // which checks HTTP/1.1 requests only; 1.0 ones must ignore Expect).
    auto expect = r.get("Expect");
    if (expect && !iequals(*expect, "100-continue")) {
      error_status_ = 417;
      return -1;
    }
    if (expect && has_body) {
      out_ += continue_line;
      if (!in_batch_) flush();
    }
  }
  phase_ = phase::body;
  deadline_kind_ = deadline_kind::request;
  deadline_ = request_started_ + static_cast<uint64_t>(srv->options.request_timeout.count());
  return 0;
}

int connection::cb_body(llhttp_t* p, const char* at, std::size_t len) {
  connection* c = self(p);
  if (c->req_.body_.size() + len > c->srv->options.max_body_bytes) {
    c->error_status_ = 413;
    return -1;
  }
  c->req_.body_.append(at, len);
  return 0;
}

int connection::cb_message_complete(llhttp_t* p) { return self(p)->on_message_complete(); }

int connection::on_message_complete() {
  // The trailers are all in (their storage grows no more): view them now.
  views_of(req_.trailer_bytes_, req_.trailer_offsets_, req_.trailers_);
  phase_ = phase::handling;
  deadline_kind_ = deadline_kind::none;
  bool http10 = req_.major_ == 1 && req_.minor_ == 0;
  // RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty
  // framing (an HTTP/1.0 hop may have read it by its Content-Length, or to
  // the close): answer it, then close rather than parse what follows.
  bool faulty_framing = http10 && (parser_.flags & F_TRANSFER_ENCODING) != 0;
  client_closes_ = !llhttp_should_keep_alive(&parser_) || faulty_framing;
  bool keep_alive = !client_closes_ && !srv->closing;
  bool head = parser_.method == HTTP_HEAD;
  res_.reset(&out_, this, head, keep_alive, http10);
  in_dispatch_ = true;
  try {
    srv->dispatch(req_, res_);
  } catch (const std::exception& e) {
    auto* status = dynamic_cast<const status_error*>(&e);
    int code = status ? status->status() : 500;
    // A 4xx is the client's mistake: said to it, not logged.
    if (code >= 500)
      std::fprintf(stderr, "corral::http: handler for %.*s %.*s threw: %s\n", static_cast<int>(req_.method_.size()),
                   req_.method_.data(), static_cast<int>(req_.url_.size()), req_.url_.data(), e.what());
    if (!closed_) answer_after_throw(code, code < 500 ? std::string_view(e.what()) : std::string_view());
  } catch (...) {
    std::fprintf(stderr, "corral::http: handler threw a non-exception\n");
    if (!closed_) answer_after_throw(500, {});
  }
  in_dispatch_ = false;
  // A handler that kept the response answers later; we live until it does,
  // even if the socket was closed meanwhile (close_all_connections() from
  // the handler): the response it holds is ours.
  if (!res_.finished_ || file_) awaiting_response_ = true;
  if (closed_) return -1;
  if (awaiting_response_) return HPE_PAUSED;  // answered later: hold the rest
  after_response();
  return stop_parsing_ ? HPE_PAUSED : 0;
}

void connection::answer_after_throw(int code, std::string_view message) {
  if (res_.finished_) return;
  if (!res_.headers_sent_) {
    res_.reset(&out_, this, res_.head_, res_.keep_alive_, res_.http10_);
    res_.status(code).set("Content-Type", "text/plain; charset=utf-8");
    if (message.empty()) {
      res_.send(reason(code));
    } else {
      std::string text(message);
      text += '\n';
      res_.send(text);
    }
    return;
  }
  // Part of the answer is out: the client must learn it is cut short.
  res_.finished_ = true;
  res_.keep_alive_ = false;
}

// ---- responses -------------------------------------------------------------

void connection::on_response_output() {
  if (!in_batch_ && !in_dispatch_) flush();
}

void connection::on_response_end() {
  drain_fn_ = nullptr;  // (a finished response streams no more)
  if (closed_) {
    awaiting_response_ = false;
    // The client left while the handler worked. Nothing touches the
    // response after finish() calls us, so this is the last use.
    if (handle_closed_) delete this;
    return;
  }
  if (in_dispatch_) return;  // on_message_complete carries on
  awaiting_response_ = false;
  after_response();
  flush();
  if (closed_ || stop_parsing_) return;
  resume_parsing();
}

void connection::after_response() {
  if (!res_.keep_alive_) {
    stop_parsing_ = true;
    close_after_flush_ = true;
    return;
  }
  phase_ = phase::idle;
  if (srv->closing) {
    set_deadline(deadline_kind::grace, srv->options.close_idle_grace);
  } else {
    set_deadline(deadline_kind::idle, srv->options.keep_alive_timeout);
  }
}

void connection::resume_parsing() {
  if (paused_) {
    paused_ = false;
    llhttp_resume(&parser_);
    if (!pending_in_.empty()) {
      resume_buf_.swap(pending_in_);
      pending_in_.clear();
      in_batch_ = true;
      feed(resume_buf_.data(), resume_buf_.size());  // (its own buffer, not read_buf)
      in_batch_ = false;
      resume_buf_.clear();
      if (closed_) return;
      flush();
      if (closed_) return;
    }
  }
  if (!paused_ && !stop_parsing_ && !write_blocked_ && phase_ != phase::draining) {
    if (peer_ended_) {
      // Every request the client sent before its EOF is answered: close
      // once the output has gone.
      close_after_flush_ = true;
      flush();
      return;
    }
    start_reading();
  }
}

void connection::fail_request(int status) {
  client_closes_ = false;  // the client may well be sending more: drain it
  stop_parsing_ = true;
  close_after_flush_ = true;
  std::string_view why = reason(status);
  out_ += status_line(status, resume_buf_);
  out_ += date_line();
  out_ += "Content-Type: text/plain; charset=utf-8\r\nContent-Length: ";
  append_decimal(out_, why.size());
  out_ += "\r\nConnection: close\r\n\r\n";
  out_ += why;
  phase_ = phase::handling;
  if (!in_batch_) flush();
}

// ---- writing and closing ---------------------------------------------------

void connection::flush() {
  bool file_done = false;
  for (;;) {
    if (closed_ || write_in_flight_) return;
    if (!out_.empty() && !on_uv_) {
      ssize_t n;
      do n = ::send(bare_fd_, out_.data(), out_.size(), MSG_DONTWAIT | MSG_NOSIGNAL | (file_headers_ ? MSG_MORE : 0));
      while (n < 0 && errno == EINTR);
      if (n >= 0 && static_cast<std::size_t>(n) == out_.size()) {
        out_.clear();
        file_headers_ = false;
      } else if (n >= 0 || errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOTSOCK) {
        // The kernel took part of it (or this is not a socket): libuv
        // writes the rest when it can.
        if (n > 0) out_.erase(0, static_cast<std::size_t>(n));
        file_headers_ = false;  // (the rest goes without MSG_MORE: libuv's write)
        if (!promote()) return;
      } else {
        destroy();
        return;
      }
    }
    if (!out_.empty()) {
      auto* stream = reinterpret_cast<uv_stream_t*>(&tcp_);
      uv_buf_t b = uv_buf_init(out_.data(), static_cast<unsigned>(out_.size()));
      int n;
      uv_os_fd_t sock = -1;
      ssize_t sent = -1;
      if (std::exchange(file_headers_, false) && uv_fileno(reinterpret_cast<uv_handle_t*>(&tcp_), &sock) == 0) {
        // A file's headers: MSG_MORE, so they leave in the file's first
        // segment rather than one of their own (nginx's tcp_nopush).
        do sent = ::send(sock, out_.data(), out_.size(), MSG_DONTWAIT | MSG_NOSIGNAL | MSG_MORE);
        while (sent < 0 && errno == EINTR);
      }
      if (sent >= 0) n = static_cast<int>(std::min<ssize_t>(sent, INT32_MAX));
      else if (sock >= 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) n = UV_EAGAIN;
      else n = uv_try_write(stream, &b, 1);  // (also: not a socket, where MSG_MORE is meaningless)
      if (n >= 0 && static_cast<std::size_t>(n) == out_.size()) {
        out_.clear();
      } else if (n >= 0 || n == UV_EAGAIN) {
        std::size_t done = n > 0 ? static_cast<std::size_t>(n) : 0;
        writing_.swap(out_);
        out_.clear();
        b = uv_buf_init(writing_.data() + done, static_cast<unsigned>(writing_.size() - done));
        write_req_.data = this;
        write_in_flight_ = true;
        int r = uv_write(&write_req_, stream, &b, 1, [](uv_write_t* w, int status) {
          static_cast<connection*>(w->data)->on_write_done(status);
        });
        if (r != 0) {
          write_in_flight_ = false;
          destroy();
          return;
        }
        arm_send_timeout();
        return;
      } else {
        destroy();
        return;
      }
    }
    // What was before it is out: a file body goes now.
    if (!file_) break;
    int r = send_file_part();
    if (r < 0) return;
    if (r > 0) {
      file_done = true;
      break;
    }
  }
  if (file_done) return on_response_end();  // (its response is complete now: that flushes on)
  if (close_after_flush_ && phase_ != phase::draining) start_drain();
  maybe_drain();
}

void connection::send_file(unique_fd fd, uint64_t offset, uint64_t length) {
  file_headers_ = true;
  file_ = std::move(fd);
  file_offset_ = offset;
  file_left_ = length;
  if (closed_) {  // (the client left before its answer: nothing to send)
    file_.reset();
    return on_response_end();
  }
  if (!in_batch_ && !in_dispatch_) flush();  // (else the batch's end does)
}

struct connection::room_waiter {
  uv_poll_t poll;
  int fd;               // our duplicate of the socket
  connection* conn;     // null once the connection is gone
};

void connection::close_room() {
  if (!room_) return;
  room_->conn = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&room_->poll), [](uv_handle_t* h) {
    auto* w = static_cast<room_waiter*>(h->data);
    ::close(w->fd);
    delete w;
  });
  room_ = nullptr;
}

bool connection::wait_for_room(int sock) {
  if (!room_) {
    int dup = ::fcntl(sock, F_DUPFD_CLOEXEC, 0);
    if (dup < 0) return false;
    auto* w = new room_waiter{{}, dup, this};
    if (uv_poll_init(srv->loop, &w->poll, dup) != 0) {
      ::close(dup);
      delete w;
      return false;
    }
    w->poll.data = w;
    room_ = w;
  }
  int r = uv_poll_start(&room_->poll, UV_WRITABLE, [](uv_poll_t* p, int, int) {
    auto* w = static_cast<room_waiter*>(p->data);
    uv_poll_stop(p);
    if (w->conn) w->conn->on_write_done(0);  // (room: go on as after a write)
  });
  if (r != 0) return false;
  write_in_flight_ = true;
  arm_send_timeout();
  return true;
}

void connection::arm_send_timeout() {
  // The send timeout counts from here, and again from each time the client
  // is seen to have taken some of it (check_deadline).
  uv_update_time(srv->loop);  // (a late answer may come from outside the loop)
  send_deadline_ = uv_now(srv->loop) + static_cast<uint64_t>(srv->options.send_timeout.count());
  send_mark_ = unsent();
}

int connection::send_file_part() {
  // On libuv first: its socket is non-blocking for sure (one given to
  // serve() may not be, and sendfile has no MSG_DONTWAIT).
  if (!on_uv_ && !promote()) return -1;
  uv_os_fd_t sock = -1;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(&tcp_), &sock) != 0) {
    destroy();
    return -1;
  }
  while (file_left_ > 0) {
    off_t off = static_cast<off_t>(file_offset_);
    ssize_t n = ::sendfile(sock, file_.get(), &off, static_cast<std::size_t>(std::min<uint64_t>(file_left_, 1u << 30)));
    if (n > 0) {
      file_offset_ += static_cast<uint64_t>(n);
      file_left_ -= static_cast<uint64_t>(n);
      continue;
    }
    if (n == 0) break;  // (the file is shorter than it was)
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINVAL && errno != ENOSYS) {
      destroy();
      return -1;
    }
    bool full = errno == EAGAIN || errno == EWOULDBLOCK;
    // The socket takes no more: sendfile again once it has room.
    if (full && wait_for_room(sock)) return -1;
    // (Or this file cannot be sent from, EINVAL, or the wait could not be
    // set up: the next piece waits in out_, for libuv to write.)
    std::size_t piece = static_cast<std::size_t>(std::min<uint64_t>(file_left_, response::high_water));
    out_.resize(piece);
    ssize_t got;
    do got = ::pread(file_.get(), out_.data(), piece, static_cast<off_t>(file_offset_));
    while (got < 0 && errno == EINTR);
    if (got <= 0) {
      out_.clear();
      break;
    }
    out_.resize(static_cast<std::size_t>(got));
    file_offset_ += static_cast<uint64_t>(got);
    file_left_ -= static_cast<uint64_t>(got);
    return 0;
  }
  // Short of its Content-Length: the client learns it was cut by the close.
  if (file_left_ > 0) res_.keep_alive_ = false;
  file_.reset();
  file_left_ = 0;
  close_room();  // (its descriptor is not kept for a next file)
  return 1;
}

void connection::set_drain(std::function<void()> fn) {
  drain_fn_ = std::move(fn);
  maybe_drain();
}

void connection::maybe_drain() {
  if (!drain_fn_) return;
  if (!closed_ && (write_in_flight_ || !out_.empty() || in_batch_ || in_dispatch_)) return;
  auto fn = std::move(drain_fn_);
  drain_fn_ = nullptr;
  fn();
}

// Bytes the client has not taken yet: ours still queued in libuv, and what
// the kernel holds for it (SIOCOUTQ: unacknowledged over TCP, unread over a
// Unix socket). Either going down means the client is reading.
std::size_t connection::unsent() {
  int in_kernel = 0;
  uv_os_fd_t fd = -1;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(&tcp_), &fd) != 0 || ::ioctl(fd, SIOCOUTQ, &in_kernel) != 0) in_kernel = 0;
  return tcp_.write_queue_size + static_cast<std::size_t>(std::max(in_kernel, 0));
}

void connection::on_write_done(int status) {
  write_in_flight_ = false;
  writing_.clear();
  if (closed_) return;
  if (status < 0) {
    destroy();
    return;
  }
  flush();
  if (closed_) return;
  // An idle connection's clock starts once its answer has gone: a large
  // response to a slow reader is not cut by the keep-alive timeout.
  if (!write_in_flight_ && phase_ == phase::idle) {
    if (deadline_kind_ == deadline_kind::idle) set_deadline(deadline_kind::idle, srv->options.keep_alive_timeout);
    if (deadline_kind_ == deadline_kind::grace) set_deadline(deadline_kind::grace, srv->options.close_idle_grace);
  }
  if (write_blocked_ && !closed_ && !write_in_flight_) {
    write_blocked_ = false;
    if (!paused_ && !stop_parsing_ && !write_blocked_ && phase_ != phase::draining) start_reading();
  }
}

// After the last response: send FIN and read (discarding) until the client
// closes, so that a client still sending does not get a reset that would
// destroy the response it has not read yet.
void connection::start_drain() {
  // A client that asked for the close sends nothing more: with nothing
  // unread, close() sends FIN after the response (no reset), and saves the
  // round trip of waiting for the client's FIN. This is the Connection:
  // close fast path. When the request ended a short read, the kernel had
  // nothing more from the client then (as nginx, we do not ask again);
  // otherwise FIONREAD says whether anything came after it.
  int unread = 0;
  uv_os_fd_t fd = bare_fd_;
  if (on_uv_) uv_fileno(reinterpret_cast<uv_handle_t*>(&tcp_), &fd);
  if (client_closes_ && (ended_read_ || (::ioctl(fd, FIONREAD, &unread) == 0 && unread == 0))) {
    destroy();
    return;
  }
  if (!on_uv_ && !promote()) return;
  phase_ = phase::draining;
  stop_parsing_ = true;
  // Long enough for a request already on the wire; a client that keeps the
  // socket open without sending is not worth waiting for.
  set_deadline(deadline_kind::drain, std::min(srv->options.keep_alive_timeout, std::chrono::milliseconds(1000)));
  shutdown_req_.data = this;
  int r = uv_shutdown(&shutdown_req_, reinterpret_cast<uv_stream_t*>(&tcp_), [](uv_shutdown_t* s, int status) {
    auto* c = static_cast<connection*>(s->data);
    if (!c->closed_ && status < 0) c->destroy();
  });
  if (r != 0 || peer_ended_) {
    destroy();  // (the FIN is still sent: close() on a socket with nothing unread)
    return;
  }
  start_reading();
}

void connection::on_server_closing() {
  if (closed_) return;
  if (phase_ == phase::idle) {
    // A request may already be on its way: give it a moment, and answer it
    // with Connection: close, rather than resetting a connection in use.
    set_deadline(deadline_kind::grace, srv->options.close_idle_grace);
  } else if (phase_ == phase::handling && !res_.finished_ && !res_.headers_sent_) {
    res_.keep_alive_ = false;
  }
}

void connection::check_deadline(uint64_t now) {
  if (closed_) return;
  if (write_in_flight_ && now >= send_deadline_) {
    // As nginx's send_timeout: the client must take some of the answer
    // within the timeout, again and again, or the connection is closed.
    std::size_t left = unsent();
    if (left >= send_mark_) {
      destroy();
      return;
    }
    send_mark_ = left;
    send_deadline_ = now + static_cast<uint64_t>(srv->options.send_timeout.count());
  }
  if (deadline_kind_ == deadline_kind::none || now < deadline_) return;
  // Idle and grace count from when the last answer has gone (on_write_done
  // starts them again then).
  if (write_in_flight_ && (deadline_kind_ == deadline_kind::idle || deadline_kind_ == deadline_kind::grace)) return;
  deadline_kind k = deadline_kind_;
  deadline_kind_ = deadline_kind::none;
  switch (k) {
    case deadline_kind::headers:
    case deadline_kind::request:
      if (phase_ == phase::headers || phase_ == phase::body) {
        fail_request(408);
        return;
      }
      destroy();
      return;
    default:
      destroy();
      return;
  }
}

void connection::release() {
  maybe_drain();  // (the client left: a streaming handler learns it and ends)
  if (file_) {    // (a file was on its way: its response ends here)
    file_.reset();
    awaiting_response_ = false;
  }
  // A handler still holds our response (it answers later): we live on,
  // socketless, until it ends it (on_response_end frees us then).
  if (awaiting_response_) {
    handle_closed_ = true;
    return;
  }
  delete this;
}

void connection::destroy() {
  if (closed_) return;
  closed_ = true;
  close_room();
  server_state* s = srv;
  srv = nullptr;
  if (!on_uv_) {
    ::close(bare_fd_);  // open() frees us once it has unwound
    bare_fd_ = -1;
  } else {
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_),
             [](uv_handle_t* h) { static_cast<connection*>(h->data)->release(); });
  }
  if (s) {
    s->unlink(this);
    s->maybe_finish_close();
  }
}

}  // namespace corral::http::detail
