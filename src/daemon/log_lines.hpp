// The pure half of logging: cutting a byte stream into lines, a bounded
// buffer of lines waiting for the disk that drops (and counts) rather than
// grows without limit, and where rotation cuts. The I/O half is log_file.hpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace corral::daemon {

/// Splits a stream into lines. A partial last line is kept until its newline
/// or finish(). A line longer than `max_line` is cut there (each piece is a line).
class line_splitter {
 public:
  explicit line_splitter(std::size_t max_line = 64 * 1024) : max_line_(max_line) {}
  /// Calls `emit` with each complete line, without its "\n".
  void feed(std::string_view bytes, const std::function<void(std::string_view)>& emit);
  /// Emits the partial line, if any (the process exited).
  void finish(const std::function<void(std::string_view)>& emit);
  bool has_partial() const noexcept { return !partial_.empty(); }
  /// The bytes of the partial line held.
  std::size_t partial_size() const noexcept { return partial_.size(); }
  /// Forgets the partial line (its bytes will be fed again).
  void drop_partial() noexcept { partial_.clear(); }

 private:
  std::size_t max_line_;
  std::string partial_;
};

/// Bytes waiting to be written to one log file, at most `capacity`. A line
/// that does not fit is dropped and counted; the next take() ends with a
/// marker line saying how many were dropped. Because the buffer only shrinks
/// through take(), every line it holds came before every dropped line, so the
/// marker lands where the gap is.
class log_buffer {
 public:
  explicit log_buffer(std::size_t capacity) : capacity_(capacity) {}
  /// Appends `line` and a newline; false if dropped.
  bool append(std::string_view line);
  /// Everything pending, then the drop marker if lines were dropped.
  std::string take();
  /// Forgets what is pending (`corral flush`); drops stay counted.
  void clear() noexcept;
  bool empty() const noexcept { return pending_.empty() && dropped_ == 0; }
  std::size_t size() const noexcept { return pending_.size(); }
  std::size_t capacity() const noexcept { return capacity_; }
  /// Lines dropped since the last take(): the count the next marker carries.
  uint64_t dropped_pending() const noexcept { return dropped_; }
  uint64_t dropped_total() const noexcept { return dropped_total_; }

  static std::string marker(uint64_t dropped);

 private:
  std::size_t capacity_;
  std::string pending_;
  uint64_t dropped_ = 0;
  uint64_t dropped_total_ = 0;
};

/// "[corral] <n> lines dropped: <reason>\n", the one form of every drop marker.
std::string drop_marker(uint64_t dropped, std::string_view reason);

/// Rotation cuts only between lines: how many bytes from the front of `data`
/// (whole lines) go into a file that holds `file_size` bytes before it passes
/// `max_size`. 0 means "rotate first". A file that is empty takes at least one
/// line, however long, so rotation always makes progress. `max_size` 0: all.
std::size_t bytes_that_fit(std::string_view data, uint64_t file_size, uint64_t max_size);

/// One step of a rotation: rename `from` to `to`, or unlink `from` when `to`
/// is empty. A missing `from` is not an error (fewer files than `retain` yet).
struct rotation_step {
  std::string from;
  std::string to;
  bool operator==(const rotation_step&) const = default;
};
/// x.log -> x.log.1, after shifting x.log.k -> x.log.k+1 for k = retain-1..1
/// (rename replaces x.log.<retain>, the oldest). retain 0: unlink x.log.
std::vector<rotation_step> rotation_plan(const std::string& path, int retain);

/// "2026-11-24T20:39:30.123Z" for a Unix time in milliseconds.
std::string iso8601_utc(int64_t unix_ms);

/// A moment in local time, as log_date_format shows it.
struct date_parts {
  std::tm tm{};          // local time; tm_wday is used, tm_gmtoff is not
  int millis = 0;        // 0..999
  long utc_offset = 0;   // seconds east of UTC
  int64_t unix_ms = 0;   // for X and x
};
/// PM2's log_date_format, which is dayjs's format: YYYY YY M MM MMM MMMM D DD
/// d dd ddd dddd H HH h hh m mm s ss SSS Z ZZ A a X x, text in [brackets]
/// kept as it is, any other character as it is. "YYYY-MM-DD HH:mm:ss Z" ->
/// "2026-12-07 04:05:06 +01:00".
std::string format_date(std::string_view format, const date_parts& when);
/// The same for a Unix time, in the daemon's local time zone (TZ).
std::string format_local_date(std::string_view format, int64_t unix_ms);
/// Why `format` is not a log_date_format ("" if it is): at most 128 bytes, no
/// control characters, every '[' closed.
std::string log_date_format_problem(std::string_view format);

}  // namespace corral::daemon
