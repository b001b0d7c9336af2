// Internal: one HTTP connection, and the server state connections share.
//
// A connection parses with llhttp straight out of the server's shared read
// buffer, runs the handler for each complete request, and appends responses
// to one output buffer that is written once per read batch (so N pipelined
// requests cost one write). Requests on a connection are handled one at a
// time: while a response is pending, parsing pauses and the unparsed bytes
// are kept, which keeps responses in order without queueing them.
//
// A new connection first lives on its bare socket: its request has usually
// arrived by the time it is accepted, so it is read at once, answered with
// one send, and, when the client asked for the close, closed, with no event
// loop registration at all (accept, recv, send, close: four system calls a
// request). Anything more (nothing to read yet, keep-alive, an answer that
// comes later, a send the kernel did not take whole, a drain) hands the
// socket to libuv ("promotes" it) with the state as it is.
//
// Lifetime: a connection is heap-allocated and owns its uv_tcp_t as a member;
// once promoted, it is deleted only in the handle's close callback, so libuv
// never sees a freed handle and no callback frame outlives its object. On its
// bare socket it is deleted by the code that read it, after the read's
// processing has returned.
#pragma once

#include <llhttp.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/handle.hpp"
#include "corral/fd.hpp"
#include "corral/http.hpp"

namespace corral::http::detail {

class connection;

/// Something that accepts connections for a server (a net::listener).
class acceptor {
 public:
  virtual ~acceptor() = default;
  /// Stops accepting; `done` runs once closed.
  virtual void close(std::function<void()> done) = 0;
};

struct server_state {
  server_state(handler h, const router* r, server_options o);
  ~server_state();

  uv_loop_t* loop;
  handler handler_fn;     // used when router_ is null
  const router* router_;  // borrowed
  server_options options;
  std::unique_ptr<acceptor> acceptor_;
  bool accepting_closed = true;  // no acceptor, or it has closed
  net::address bound;
  int closer_token = 0;

  // Intrusive list of live connections.
  connection* head = nullptr;
  std::size_t count = 0;

  bool closing = false;
  bool notifying = false;
  std::vector<std::function<void()>> on_closed;

  corral::detail::uv_handle_ptr<uv_timer_t> sweep;  // deadlines and grace periods
  bool sweep_running = false;
  uint64_t tick_ms = 1000;

  // One read buffer for every connection: reads are parsed synchronously,
  // and what must survive (a paused request's tail) is copied out.
  std::unique_ptr<char[]> read_buf;
  static constexpr std::size_t read_buf_size = 64 * 1024;

  void dispatch(request& req, response& res);
  /// Serves an accepted socket; `nodelay_set`: it came from our own
  /// listener, whose sockets have TCP_NODELAY already (saves a syscall).
  status serve(unique_fd fd, bool nodelay_set);
  void link(connection* c);
  void unlink(connection* c);
  void start_sweep();
  void on_sweep();
  void begin_close();
  void maybe_finish_close();
  void destroy_all();
};

class connection {
 public:
  enum class phase : uint8_t {
    idle,       // between requests (or before the first)
    headers,    // reading a request's head
    body,       // reading a request's body
    handling,   // the handler has the request; parsing paused if it answers late
    draining,   // final response queued: flush, FIN, discard input until EOF
  };

  connection(server_state* s);
  /// Takes the socket and serves it (see above); may delete the connection
  /// before it returns. False if the fd was not usable (closed already).
  bool open(int fd, bool nodelay_set);

  /// A response wrote something while streaming (outside a read batch: flush now).
  void on_response_output();
  /// The response is complete.
  void on_response_end();
  /// Bytes written by responses that the kernel has not taken yet.
  std::size_t buffered() const noexcept { return out_.size() + (write_in_flight_ ? writing_.size() : 0); }
  bool closed() const noexcept { return closed_; }
  /// The socket, while open.
  int socket_fd() const noexcept;
  /// response::send_file(): the body, sent after what is in out_; the
  /// response ends (on_response_end) once it is all out.
  void send_file(unique_fd fd, uint64_t offset, uint64_t length);
  /// response::on_drain(): `fn` runs once buffered() is 0 (outside a read
  /// batch) or the socket has closed; at once if that is so already.
  void set_drain(std::function<void()> fn);

  /// Server-initiated: a graceful close started.
  void on_server_closing();
  /// Closes the socket now; the object is freed in libuv's close callback,
  /// or, on the bare socket, by open() once it has unwound (either waits
  /// while a handler still holds the response).
  void destroy();
  /// The socket is closed: frees the connection, or, while a handler still
  /// holds its response, leaves that to on_response_end().
  void release();
  /// The sweep timer's visit: acts on an expired deadline.
  void check_deadline(uint64_t now);

  connection* prev = nullptr;
  connection* next = nullptr;
  server_state* srv;  // null once the server is gone

 private:
  enum class deadline_kind : uint8_t { none, idle, headers, request, grace, drain };

  static void on_alloc(uv_handle_t* h, std::size_t, uv_buf_t* buf);
  static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
  void on_data(const char* data, std::size_t len, std::size_t buf_len);
  bool promote();
  void start_reading();
  void stop_reading();
  /// Runs drain_fn_ if it is due (see set_drain).
  void maybe_drain();
  /// Sends what the socket takes of file_; when it takes no more, reads the
  /// next piece into out_ for libuv to write when it can. -1: closed; 0:
  /// out_ has a piece; 1: the file is out (file_ reset).
  int send_file_part();
  /// Waits (as a write in flight: the send timeout applies) until the
  /// socket has room, then goes on as after a write. False if it cannot.
  bool wait_for_room(int sock);
  /// Starts the send timeout for output now waiting for the client.
  void arm_send_timeout();
  void close_room();
  static int cb_message_begin(llhttp_t* p);
  static int cb_url(llhttp_t* p, const char* at, std::size_t len);
  static int cb_header_field(llhttp_t* p, const char* at, std::size_t len);
  static int cb_header_value(llhttp_t* p, const char* at, std::size_t len);
  static int cb_headers_complete(llhttp_t* p);
  static int cb_body(llhttp_t* p, const char* at, std::size_t len);
  static int cb_message_complete(llhttp_t* p);
  static const llhttp_settings_t& settings();

  int on_headers_complete();
  int on_message_complete();
  bool count_header_bytes(std::size_t n);
  void feed(const char* data, std::size_t len);
  void resume_parsing();
  void fail_request(int status);
  void answer_after_throw(int code, std::string_view message);
  void after_response();
  void flush();
  void on_write_done(int status);
  std::size_t unsent();
  void start_drain();
  void set_deadline(deadline_kind k, std::chrono::milliseconds in);

  int bare_fd_ = -1;  // the socket, until promoted to tcp_
  uv_tcp_t tcp_;
  uv_write_t write_req_;
  uv_shutdown_t shutdown_req_;
  llhttp_t parser_;
  request req_;
  response res_;
  std::string out_;        // rendered, not yet handed to the kernel
  std::string writing_;    // handed to uv_write, in flight
  std::function<void()> drain_fn_;  // response::on_drain()'s
  unique_fd file_;            // send_file()'s, until sent
  /// Waits for room in the socket for the next sendfile: a uv_poll_t on a
  /// duplicate of the socket (libuv has no "writable" event for a stream
  /// without a write of its own). Freed in its own close callback.
  struct room_waiter;
  room_waiter* room_ = nullptr;
  uint64_t file_offset_ = 0;
  uint64_t file_left_ = 0;
  bool file_headers_ = false;  // out_'s next write carries a file's headers (MSG_MORE)
  std::string pending_in_;  // received while a response was pending, not yet parsed
  std::string resume_buf_;
  const char* exec_begin_ = nullptr;     // the buffer llhttp is parsing
  const char* prev_exec_end_ = nullptr;  // the end of the buffer parsed before it
  const char* value_end_ = nullptr;      // where the current header value's last piece ended
  uint64_t deadline_ = 0;
  uint64_t send_deadline_ = 0;  // while a write is in flight (send_timeout)
  std::size_t send_mark_ = 0;   // bytes it had left when that clock started
  uint64_t request_started_ = 0;
  std::size_t header_bytes_ = 0;
  int error_status_ = 0;    // 413/431 set by a callback before it fails the parse
  phase phase_ = phase::idle;
  deadline_kind deadline_kind_ = deadline_kind::none;
  bool in_value_ = false;   // the last header callback was a value
  bool in_batch_ = false;   // inside a read callback: flush once at its end
  bool in_dispatch_ = false;
  bool paused_ = false;     // parser paused on a pending response
  bool stop_parsing_ = false;
  bool close_after_flush_ = false;
  bool write_in_flight_ = false;
  bool closed_ = false;
  bool on_uv_ = false;    // promoted: tcp_ holds the socket
  bool reading_ = false;
  bool peer_ended_ = false;
  bool client_closes_ = false;
  bool last_read_short_ = false;  // the last read left nothing in the kernel
  // The request that closes was the end of a short read: nothing from the
  // client waited, so the socket can close at once without asking the kernel.
  bool ended_read_ = false;
  bool write_blocked_ = false;     // reading stopped until our output drains
  bool awaiting_response_ = false;  // a handler answers later
  bool handle_closed_ = false;      // the socket is gone; we wait for that answer
};

}  // namespace corral::http::detail
