#include "daemon/app_logs.hpp"

#include <filesystem>

#include "daemon/log_lines.hpp"
#include "daemon/supervisor_util.hpp"

namespace corral::daemon {

app_logs::app_logs(uv_loop_t* loop, std::string base, const app_spec& spec)
    : loop_(loop),
      base_(std::move(base)),
      merged_(spec.merge_logs),
      options_{spec.max_log_size, spec.log_retain} {}

result<app_logs> app_logs::open(uv_loop_t* loop, const std::string& dir, const app_spec& spec) {
  app_logs logs(loop, dir + "/" + spec.name, spec);
  int pairs = spec.merge_logs ? 1 : spec.instances;
  for (int index = 0; index < pairs; ++index) {
    auto& p = logs.pairs_.emplace_back();
    for (int stream : {out, err}) {
      auto f = log_file::open(loop, logs.path(index, stream), logs.options_);
      if (!f) {
        int e = f.err().code().value();
        return error(f.err().code(), f.err().message() + ": " + f.err().code().message() + " (" + uv_err_name(-e) + ")");
      }
      p[static_cast<size_t>(stream - 1)] = std::move(f.value());
    }
  }
  return logs;
}

app_logs app_logs::unopened(uv_loop_t* loop, const std::string& dir, const app_spec& spec) {
  return app_logs(loop, dir + "/" + spec.name, spec);
}

std::string app_logs::path(int index, int stream) const {
  const char* kind = stream == err ? "-error" : "-out";
  return merged_ ? base_ + kind + ".log" : base_ + kind + "-" + std::to_string(index) + ".log";
}

const std::array<std::unique_ptr<log_file>, 2>* app_logs::pair(int index) const {
  size_t k = merged_ ? 0 : static_cast<size_t>(index);
  return k < pairs_.size() ? &pairs_[k] : nullptr;
}

log_file& app_logs::file(int index, int stream) {
  size_t k = merged_ ? 0 : static_cast<size_t>(index);
  // Scaled up: the new indices' files open with their first line.
  while (pairs_.size() <= k) {
    auto& p = pairs_.emplace_back();
    int i = static_cast<int>(pairs_.size()) - 1;
    for (int s : {out, err}) p[static_cast<size_t>(s - 1)] = log_file::create(loop_, path(i, s), options_);
  }
  return *pairs_[k][static_cast<size_t>(stream - 1)];
}

void app_logs::write(const app_spec& spec, int index, int stream, std::string_view line) {
  std::string prefixed;
  if (spec.time) prefixed = iso8601_utc(util::unix_ms_now()) + ": ";
  // Instances that share a file say whose each line is.
  if (merged_ && spec.instances > 1) prefixed += std::to_string(index) + "|";
  log_file& f = file(index, stream);
  if (prefixed.empty()) return f.write_line(line);
  prefixed.append(line);
  f.write_line(prefixed);
}

bool app_logs::hold(int index, int stream, std::function<void()> resume) {
  log_file& f = file(index, stream);
  if (!f.behind()) return false;
  f.on_room(std::move(resume));
  return true;
}

void app_logs::when_written(int index, int stream, std::function<void()> done) {
  file(index, stream).when_written(std::move(done));
}

void app_logs::note(int index, std::string_view line) { file(index, err).write_line(line); }

uint64_t app_logs::dropped(int index) const {
  auto* p = pair(index);
  return p ? (*p)[0]->dropped_total() + (*p)[1]->dropped_total() : 0;
}

std::vector<std::string> app_logs::failing(int index) const {
  std::vector<std::string> out;
  if (auto* p = pair(index))
    for (auto& f : *p)
      if (auto why = f->failing(); !why.empty()) out.push_back(f->path() + ": " + why);
  return out;
}

json app_logs::sources(const std::string& name, int instances) const {
  json rows = json::array();
  if (merged_) {
    rows.push_back({{"name", name}, {"out", path(0, out)}, {"err", path(0, err)}});
    return rows;
  }
  // Past `instances`: the files of indices removed by a scale-down, kept on
  // disk with their lines, which are still the app's (PM2 shows them too).
  // Those this daemon opened, then any on disk from an earlier daemon.
  for (int i = 0;; ++i) {
    std::error_code ec;
    bool shown = i < instances || static_cast<size_t>(i) < pairs_.size() ||
                 std::filesystem::exists(path(i, out), ec) || std::filesystem::exists(path(i, err), ec);
    if (!shown) break;
    rows.push_back({{"name", name}, {"instance", i}, {"out", path(i, out)}, {"err", path(i, err)}});
  }
  return rows;
}

void app_logs::flush(std::function<void()> done) {
  auto left = std::make_shared<size_t>(pairs_.size() * 2);
  auto shared_done = std::make_shared<std::function<void()>>(std::move(done));
  if (*left == 0) return (*shared_done)();
  for (auto& p : pairs_)
    for (auto& f : p)
      f->flush([left, shared_done] {
        if (--*left == 0) (*shared_done)();
      });
}

}  // namespace corral::daemon
