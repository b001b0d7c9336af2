// One log file ($CORRAL_HOME/logs/<app>-out.log), written off the loop's
// thread so a slow or full disk never blocks the control plane.
//
// Lines wait in a bounded log_buffer. Once half of it is waiting, behind()
// says so and the writer should pause (the daemon stops reading the app's
// pipe, so the app blocks in write(): a slow disk slows the app, it never
// costs a line) until on_room() calls back. A writer that goes on anyway
// fills the buffer; past that its lines are dropped and counted, and a
// marker line says how many. One job at a time runs on libuv's
// threadpool (uv_queue_work, the threads that serve uv_fs_* requests) with
// everything pending: it writes whole lines, and when the next line would
// take the file past `max_size` it rotates (x.log -> x.log.1 ..., see
// rotation_plan) and goes on in a fresh x.log. Because the job is the only
// writer and rotates between two lines, no line is split or lost across a
// rotation, and lines queued meanwhile wait for the next job.
//
// A write that fails (ENOSPC, EIO, a vanished directory) drops the lines it
// carried, counted; the daemon says so once on stderr, reopens the path
// before the next try, and the first write that succeeds again starts with
// "[corral] <n> lines dropped: <reason>".
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "corral/error.hpp"

namespace corral::daemon {

struct log_options {
  /// Rotate before a write would take the file past this many bytes; 0: never.
  uint64_t max_size = 0;
  /// Rotated files kept: <path>.1 (newest) .. <path>.<retain>; 0: none.
  int retain = 0;
  /// How often (ms, at most) a write checks that the path still names the
  /// file: one moved or removed (logrotate) is then reopened at the path.
  uint64_t path_check_ms = 1000;
};

class log_file {
 public:
  static constexpr std::size_t default_capacity = 8u << 20;

  /// Opens (creates, 0600, append) `path`; the error names the path.
  static result<std::unique_ptr<log_file>> open(uv_loop_t* loop, std::string path, log_options options = {},
                                                std::size_t capacity = default_capacity);
  /// As open(), but never fails: the file is opened by the first write, and
  /// an open that fails counts as a failed write (for files added later, when
  /// an app is scaled up).
  static std::unique_ptr<log_file> create(uv_loop_t* loop, std::string path, log_options options = {},
                                          std::size_t capacity = default_capacity);
  /// Lines still queued are written (synchronously if no job is running, else
  /// by the running job's completion), then the file is closed.
  ~log_file();
  log_file(const log_file&) = delete;
  log_file& operator=(const log_file&) = delete;

  /// Queues one line (a newline is added) and starts writing it if no write
  /// runs.
  void write_line(std::string_view line);
  /// Queues one line (a newline is added) without starting a write: for the
  /// lines of one chunk of an app's output, which then go out in one write,
  /// started by the when_written() that follows them. (Through write_line,
  /// the chunk's first line would start a write of its own, and the reader,
  /// which waits for the whole chunk, would wait for two writes in a row.)
  void queue_line(std::string_view line);
  /// More than half the buffer waits for the disk: pause the writer.
  bool behind() const noexcept;
  /// `room` runs once, on the loop, after the next batch is written and the
  /// buffer is no longer behind (or when the file is closed).
  void on_room(std::function<void()> room);
  /// `done` runs once, on the loop, when every line queued so far is written
  /// or dropped (counted): at once if none waits.
  void when_written(std::function<void()> done);
  /// `corral flush`: discards what is queued, empties the file (reopened
  /// with O_TRUNC, so a replaced path is picked up) and removes its rotated
  /// files. `done` runs on the loop once that is done, even if the file was
  /// closed meanwhile.
  void flush(std::function<void()> done);
  /// `corral reloadLogs` (after logrotate moved the file): closes the file
  /// and opens the path afresh (creating it), where what is queued goes.
  /// `done` runs on the loop once that is done (or the file closed). A file
  /// moved or removed is also noticed without it, by the first write a
  /// second or more after the last check.
  void reopen(std::function<void()> done);
  /// Why the last reopen (asked, or after a move) could not open the path,
  /// "" if it could.
  const std::string& reopen_error() const noexcept;
  const std::string& path() const noexcept { return path_; }
  /// Lines lost: dropped by a full buffer or by a failed write.
  uint64_t dropped_total() const noexcept;
  /// While writes fail: "No space left on device (ENOSPC)"; else "".
  std::string failing() const;
  /// Rotations done so far.
  uint64_t rotations_for_test() const noexcept;

 private:
  struct shared;  // outlives us while a job is in flight
  struct job;
  log_file(std::string path, std::shared_ptr<shared> st);
  static void kick(const std::shared_ptr<shared>& st);
  static void run(job& j);                  // on the threadpool
  static void done(job& j);                 // back on the loop
  static void finish_closed(shared& st);
  static void wake_writers(shared& st);
  static void settle_waiters(shared& st);

  std::string path_;
  std::shared_ptr<shared> st_;  // shared with the job in flight
};

}  // namespace corral::daemon
