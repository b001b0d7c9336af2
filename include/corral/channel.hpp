// corral/channel.hpp — the JSON message channel between a parent and a child.
//
// Wire format (docs/channel.md): Node's IPC format, one JSON document per line
// ("JSON\n"), on a Unix stream socket. File descriptors travel with SCM_RIGHTS
// on the bytes of the line that announces them. A Node program started with
// NODE_CHANNEL_FD on the other end speaks it through process.send() and
// process.on('message').
//
// All callbacks run on the loop the channel was opened on. A callback may
// destroy the channel.
#pragma once

#include <uv.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "corral/error.hpp"
#include "corral/fd.hpp"
#include "corral/loop.hpp"

namespace corral {

using json = nlohmann::json;

struct channel_options {
  /// Who is on the other end, for error messages ("worker 2 (pid 4711)").
  std::string peer = "peer";
  /// A line longer than this is a protocol error: the channel reports and closes.
  std::size_t max_line = 16u << 20;
  /// send() returns false while more than this many bytes wait to be written.
  std::size_t high_water = 1u << 20;
};

/// One end of a message channel. Owns its socket. Not copyable or movable
/// (callbacks hold its address); hold it by unique_ptr.
class channel {
 public:
  using message_fn = std::function<void(json&& msg, std::vector<unique_fd>&& fds)>;
  using error_fn = std::function<void(const error&)>;
  using event_fn = std::function<void()>;

  /// Takes ownership of `fd` (a connected Unix stream socket), makes it
  /// non-blocking and close-on-exec, and starts reading.
  static result<std::unique_ptr<channel>> open(int fd, channel_options options = {},
                                               uv_loop_t* loop = default_loop());
  /// Creates a connected socketpair (both ends close-on-exec); returns
  /// {ours, theirs}. A spawner places `theirs` at the child's fd number.
  static result<std::pair<unique_fd, unique_fd>> socketpair();

  channel(const channel&) = delete;
  channel& operator=(const channel&) = delete;
  /// Destroys at once: pending output is dropped, the socket closed. No
  /// callback runs after this.
  ~channel();

  /// Queues `msg` (and passes `fds`, which the channel closes once sent).
  /// Never blocks. Returns false when the queue is above the high-water mark
  /// (the message is still queued; wait for on_drain) or the channel is closed
  /// (the message is dropped).
  bool send(const json& msg, std::vector<unique_fd> fds = {});
  /// Queues one pre-serialised JSON document (no newline inside). Same result.
  bool send_serialized(std::string_view json_text);

  /// Graceful close: stop reading, flush what is queued, then close; on_close
  /// fires when done. Idempotent.
  void close();

  bool is_open() const noexcept { return state_ == state::open; }
  /// Whether an idle channel keeps its loop alive (libuv's ref/unref). A
  /// worker's channel is unref'd until someone listens to it, as in Node.
  void set_ref(bool ref) noexcept;
  std::size_t queued_bytes() const noexcept { return out_.size() - out_pos_; }
  const std::string& peer() const noexcept { return options_.peer; }
  void set_peer(std::string peer) { options_.peer = std::move(peer); }

  /// A message arrived. `fds` are those the sender attached to it.
  void on_message(message_fn fn) { on_message_ = std::move(fn); }
  /// A protocol or I/O error; the channel closes right after (on_close follows).
  void on_error(error_fn fn) { on_error_ = std::move(fn); }
  /// The channel is closed (peer hung up, error, or close() finished).
  void on_close(event_fn fn) { on_close_ = std::move(fn); }
  /// The queue fell back below the high-water mark after send() returned false.
  void on_drain(event_fn fn) { on_drain_ = std::move(fn); }

 private:
  enum class state { open, closing, closed };
  struct fd_batch {
    std::size_t offset;  // absolute stream offset of the announcing line
    std::vector<unique_fd> fds;
  };

  channel(int fd, channel_options options);
  bool enqueue(std::string_view line, std::vector<unique_fd> fds);
  bool queued(std::size_t offset, std::vector<unique_fd> fds);
  void schedule_flush();
  bool flush();
  void update_poll();
  void on_readable();
  bool read_some();
  bool dispatch_lines();
  bool deliver(json&& msg);
  void fail(error e);
  void finish_close();

  unique_fd fd_;
  channel_options options_;
  state state_ = state::open;
  std::shared_ptr<bool> alive_;
  struct handles;
  std::unique_ptr<handles> h_;
  bool want_write_ = false;
  bool flush_scheduled_ = false;
  bool above_high_water_ = false;
  bool peer_gone_ = false;  // writes failed with EPIPE; reading goes on to EOF
  bool wrote_this_turn_ = false;  // a message left at once in this loop iteration
  bool ref_ = true;               // set_ref()'s wish; queued output refs regardless

  std::string out_;             // bytes not yet written start at out_pos_
  std::size_t out_pos_ = 0;
  std::size_t out_base_ = 0;    // absolute offset of out_[0]
  std::vector<fd_batch> out_fds_;

  // Received bytes: [in_pos_, in_len_) of in_cap_. Not zero-filled: only the
  // pages a read touches become resident (a daemon holds one per instance).
  std::unique_ptr<char[]> in_;
  std::size_t in_cap_ = 0;
  std::size_t in_pos_ = 0;
  std::size_t in_len_ = 0;
  std::size_t scan_pos_ = 0;    // where the newline search resumes
  std::vector<unique_fd> in_fds_;  // received, not yet claimed, in arrival order

  message_fn on_message_;
  error_fn on_error_;
  event_fn on_close_;
  event_fn on_drain_;
};

/// True if `msg` is one of Corral's own control messages (an object with the
/// reserved key "corral"); everything else belongs to the user.
bool is_internal_message(const json& msg) noexcept;

}  // namespace corral
