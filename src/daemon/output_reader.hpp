// Reads one of an instance's output streams (stdout or stderr, each a Unix
// stream socket: docs/manager-protocol.md, "Instance environment") into
// lines, and takes bytes out of the socket only once the log holds the lines
// they carried.
//
// Each read peeks (MSG_PEEK): the bytes stay queued in the socket while their
// lines wait for the disk, and are taken out (a plain recv) when the log says
// they are written, or dropped and counted. A partial line is not taken out
// at all until its newline comes: the next peek reads it again, with what
// followed. A daemon killed meanwhile (SIGKILL, the OOM killer) thus leaves
// every byte it had not written in the socket, whose read end the instance
// also holds; the next daemon takes that over and logs them. Nothing is
// lost: at worst the lines of a chunk whose write had finished, but whose
// bytes were not taken out yet, are logged twice (delivery is at least once).
//
// A socket with bytes queued reads as ready, so its readiness cannot say that
// more came after a partial line: each stream has its own epoll set watching
// its socket edge-triggered (an event for each arrival), and the loop watches
// that set. One chunk (up to 64 KiB) at a time waits for the disk.
#pragma once

#include <uv.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <string_view>

#include "corral/error.hpp"
#include "corral/fd.hpp"

namespace corral::daemon {

class output_reader {
 public:
  struct sink {
    /// Each complete line (and a partial last line at the end), without "\n".
    std::function<void(std::string_view)> line;
    /// Calls `done`, on the loop (perhaps at once), when every line given so
    /// far is written or dropped (counted). Called after each chunk's lines
    /// and after drain()'s, so `line` may only queue them and this start
    /// their write.
    std::function<void(std::function<void()> done)> written;
    /// After a chunk: true if the log is behind, and then the reader reads on
    /// only once `resume` is called. False: `resume` is dropped.
    std::function<bool(std::function<void()> resume)> hold;
    /// The stream ended (EOF or an error) and its partial line went out. The
    /// reader may be destroyed from here.
    std::function<void()> ended;
  };

  /// Starts reading `fd`, which it owns (made nonblocking here). The error
  /// says what failed ("epoll_create1: Too many open files (EMFILE)"): out of
  /// file descriptors, the stream cannot be read.
  static result<std::unique_ptr<output_reader>> start(uv_loop_t* loop, unique_fd fd, sink s);
  ~output_reader();
  output_reader(const output_reader&) = delete;
  output_reader& operator=(const output_reader&) = delete;

  /// The writers are gone (the process exited): what the socket holds now,
  /// read without waiting and at most a bounded amount, then the partial
  /// line. Reads no more after; `ended` is not called.
  void drain();
  /// A duplicate of the stream's descriptor (close-on-exec), for the daemon
  /// that replaces this one; empty if the process is out of descriptors.
  unique_fd duplicate_fd() const;

 private:
  struct state;
  explicit output_reader(std::shared_ptr<state> st) : st_(std::move(st)) {}
  std::shared_ptr<state> st_;
};

}  // namespace corral::daemon
