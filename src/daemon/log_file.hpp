// One log file ($CORRAL_HOME/logs/<app>-out.log), written off the loop's
// thread by libuv's fs requests so a slow disk never blocks the control
// plane. Lines wait in a bounded log_buffer; when it is full they are
// dropped and counted, and a marker line says how many.
#pragma once

#include <uv.h>

#include <memory>
#include <string>
#include <string_view>

#include "corral/error.hpp"

namespace corral::daemon {

class log_file {
 public:
  static constexpr std::size_t default_capacity = 8u << 20;

  /// Opens (creates, 0600, append) `path`.
  static result<std::unique_ptr<log_file>> open(uv_loop_t* loop, std::string path,
                                                std::size_t capacity = default_capacity);
  ~log_file();
  log_file(const log_file&) = delete;
  log_file& operator=(const log_file&) = delete;

  /// Queues one line (a newline is added).
  void write_line(std::string_view line);
  /// Empties the file (`corral flush`).
  void truncate();
  const std::string& path() const noexcept { return path_; }
  uint64_t dropped_total() const noexcept;

 private:
  struct shared;  // outlives us while a write is in flight
  log_file(uv_loop_t* loop, std::string path, std::shared_ptr<shared> st);
  static void kick(const std::shared_ptr<shared>& st);

  uv_loop_t* loop_;
  std::string path_;
  std::shared_ptr<shared> st_;  // shared with the in-flight write request
};

}  // namespace corral::daemon
