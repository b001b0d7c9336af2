// The log files of one app: one pair (stdout, stderr) that its instances
// share, each line prefixed "<index>|" when there are several (merge_logs,
// the default), or one pair per instance index with no prefix:
// <name>-out-<index>.log and <name>-error-<index>.log. Every file rotates
// by the app's max_log_size and log_retain (log_file.hpp).
#pragma once

#include <uv.h>

#include <array>
#include <functional>
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

  /// Opens the files of `spec` (every instance's when not merged) in `dir`;
  /// the error names the file that could not be opened.
  static result<app_logs> open(uv_loop_t* loop, const std::string& dir, const app_spec& spec);
  /// The files of `spec`, none opened yet: each is opened by its first line,
  /// and a failed open counts as a failed write (log_file::create). For an
  /// app kept while open() fails, until it succeeds.
  static app_logs unopened(uv_loop_t* loop, const std::string& dir, const app_spec& spec);

  /// One line of instance `index`'s `stream`, with the prefixes `spec` asks for.
  void write(const app_spec& spec, int index, int stream, std::string_view line);
  /// True if instance `index`'s `stream` file is behind the app (more than
  /// half its buffer waits for the disk): `resume` runs once it has room.
  bool hold(int index, int stream, std::function<void()> resume);
  /// `done` runs once every line given so far for instance `index`'s
  /// `stream` is written or dropped (log_file::when_written).
  void when_written(int index, int stream, std::function<void()> done);
  /// A line from corral itself about instance `index`, into its stderr file.
  void note(int index, std::string_view line);
  /// The file instance `index`'s `stream` goes to, whether opened yet or not.
  std::string path(int index, int stream) const;
  /// Lines lost in instance `index`'s files (the app's, when merged).
  uint64_t dropped(int index) const;
  /// "<path>: <errno text>" for each of instance `index`'s files whose writes fail now.
  std::vector<std::string> failing(int index) const;
  /// logs_info's entries (one when merged): those of the first `instances`
  /// instances, then those of higher indices whose files exist (scaled down).
  json sources(const std::string& name, int instances) const;
  /// `corral flush` of every file; `done` runs once all are empty.
  void flush(std::function<void()> done);

 private:
  app_logs(uv_loop_t* loop, std::string base, const app_spec& spec);
  log_file& file(int index, int stream);
  const std::array<std::unique_ptr<log_file>, 2>* pair(int index) const;

  uv_loop_t* loop_;
  std::string base_;  // <dir>/<name>
  bool merged_;
  log_options options_;
  /// [0] only when merged; else by instance index, grown as instances appear.
  std::vector<std::array<std::unique_ptr<log_file>, 2>> pairs_;
};

}  // namespace corral::daemon
