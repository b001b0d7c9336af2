// The log files of one app: one pair (stdout, stderr) that its instances
// share, each line prefixed "<index>|" when there are several (merge_logs,
// the default), or one pair per instance index with no prefix:
// <name>-out-<index>.log and <name>-error-<index>.log. The app's spec may
// name other paths (out_file, error_file) and a third file that gets both
// streams (log_file); one path named twice is one file. Every file rotates
// by the app's max_log_size and log_retain (log_file.hpp).
#pragma once

#include <uv.h>

#include <array>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "corral/error.hpp"
#include "daemon/app_spec.hpp"
#include "daemon/log_file.hpp"

namespace corral::daemon {

class app_logs {
 public:
  static constexpr int out = 1;  // the streams, as instance_host::on_output numbers them
  static constexpr int err = 2;
  static constexpr int both = 3;  // the spec's log_file, which gets out and err

  /// Opens the files of `spec` (every instance's when not merged) in `dir`;
  /// the error names the file that could not be opened.
  static result<app_logs> open(uv_loop_t* loop, const std::string& dir, const app_spec& spec);
  /// The files of `spec`, none opened yet: each is opened by its first line,
  /// and a failed open counts as a failed write (log_file::create). For an
  /// app kept while open() fails, until it succeeds.
  static app_logs unopened(uv_loop_t* loop, const std::string& dir, const app_spec& spec);

  /// One line of instance `index`'s `stream`, with the prefixes `spec` asks
  /// for. Queued only: when_written() starts the write (log_file::queue_line).
  void write(const app_spec& spec, int index, int stream, std::string_view line);
  /// True if instance `index`'s `stream` file is behind the app (more than
  /// half its buffer waits for the disk): `resume` runs once it has room.
  bool hold(int index, int stream, std::function<void()> resume);
  /// Starts writing what write() queued; `done` runs once every line given
  /// so far for instance `index`'s `stream` is written or dropped
  /// (log_file::when_written).
  void when_written(int index, int stream, std::function<void()> done);
  /// A line from corral itself about instance `index`, into its stderr file.
  void note(int index, std::string_view line);
  /// The file instance `index`'s `stream` (out, err, both) goes to, whether
  /// opened yet or not; "" for `both` when the spec names no log_file.
  std::string path(int index, int stream) const;
  /// Whether `path` is one of the files this app writes, or one of their
  /// rotated files (<file>.<n>).
  bool writes_to(std::string_view path) const;
  /// The paths the spec names itself (out_file, error_file, log_file) that
  /// are regular files or do not exist yet, as instance `index` writes them:
  /// what two apps must not share, since each would rotate it.
  std::vector<std::string> own_paths(int index) const;
  /// Lines lost in instance `index`'s files (the app's, when merged).
  uint64_t dropped(int index) const;
  /// "<path>: <errno text>" for each of instance `index`'s files whose writes fail now.
  std::vector<std::string> failing(int index) const;
  /// logs_info's entries (one when merged): those of the first `instances`
  /// instances, then those of higher indices whose files exist (scaled down).
  json sources(const std::string& name, int instances) const;
  /// `corral flush` of every file; `done` runs once all are empty.
  void flush(std::function<void()> done);
  /// `corral reloadLogs` of every file: each closed and its path opened
  /// afresh; `done` runs once all are.
  void reopen(std::function<void()> done);
  /// "<path>: <why>" for each file whose last reopen could not open its path.
  std::vector<std::string> reopen_errors() const;

 private:
  /// `op` on every file; `done` once each has called back.
  void every_file(void (log_file::*op)(std::function<void()>), std::function<void()> done);
  using files = std::array<std::shared_ptr<log_file>, 3>;  // out, err, both (null when none)
  app_logs(uv_loop_t* loop, std::string base, const app_spec& spec);
  /// Instance `index`'s files, created (unopened) if this is its first line.
  files& pair_of(int index);
  const files* pair(int index) const;
  /// The file at `path`, shared when another of the app's streams has it:
  /// opened now (`open_now`) or by its first line.
  result<std::shared_ptr<log_file>> file_at(const std::string& path, bool open_now);
  /// The log_file that gets `stream`'s lines too, unless it is the stream's own.
  static log_file* extra(const files& p, int stream);
  /// Instance `index`'s distinct files (a file named twice once).
  std::vector<const log_file*> distinct(int index) const;
  std::string prefix(const app_spec& spec, int index);
  /// The timestamp of now, as the spec's log_date_format (or ISO-8601 UTC) says.
  const std::string& stamp();
  /// `line` as a log_type json record.
  std::string record(int index, int stream, std::string_view line);

  uv_loop_t* loop_;
  std::string base_;  // <dir>/<name>
  bool merged_;
  log_options options_;
  /// The spec's out_file, error_file, log_file ("" for the default or none),
  /// and whether each is used as it is by every instance (not a regular file).
  std::array<std::string, 3> given_;
  std::array<bool, 3> as_is_{};
  std::string date_format_;  // the spec's log_date_format
  bool json_;                // log_type json
  std::string name_;
  /// [0] only when merged; else by instance index, grown as instances appear.
  std::vector<files> pairs_;
  /// Every file of the app, once: what the pairs point to.
  std::map<std::string, std::shared_ptr<log_file>> by_path_;
  /// The last millisecond's timestamp, formatted (a flood formats it once).
  int64_t stamp_ms_ = -1;
  std::string stamp_;
};

}  // namespace corral::daemon
