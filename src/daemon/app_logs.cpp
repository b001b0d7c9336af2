#include "daemon/app_logs.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "daemon/log_lines.hpp"
#include "daemon/paths.hpp"
#include "daemon/supervisor_util.hpp"

namespace corral::daemon {

namespace {

constexpr const char* key_of[] = {"out_file", "error_file", "log_file"};

}  // namespace

app_logs::app_logs(uv_loop_t* loop, std::string base, const app_spec& spec)
    : loop_(loop),
      base_(std::move(base)),
      merged_(spec.merge_logs),
      options_{spec.max_log_size, spec.log_retain},
      given_{spec.out_file, spec.error_file, spec.log_file},
      date_format_(spec.log_date_format),
      json_(spec.log_type == "json"),
      name_(spec.name) {
  for (size_t k = 0; k < 3; ++k) {
    struct stat st {};
    as_is_[k] = !given_[k].empty() && ::stat(given_[k].c_str(), &st) == 0 && !S_ISREG(st.st_mode);
  }
}

result<app_logs> app_logs::open(uv_loop_t* loop, const std::string& dir, const app_spec& spec) {
  app_logs logs(loop, dir + "/" + spec.name, spec);
  for (size_t k = 0; k < 3; ++k)
    if (!logs.given_[k].empty() && !logs.as_is_[k])
      if (auto s = make_parents(logs.given_[k], key_of[k]); !s) return s.err();
  int pairs = spec.merge_logs ? 1 : spec.instances;
  for (int index = 0; index < pairs; ++index) {
    auto& p = logs.pairs_.emplace_back();
    for (int stream : {out, err, both}) {
      std::string path = logs.path(index, stream);
      if (path.empty()) continue;
      auto f = logs.file_at(path, true);
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
  size_t k = static_cast<size_t>(stream - 1);
  const std::string& given = given_[k];
  if (given.empty()) {
    if (stream == both) return {};
    const char* kind = stream == err ? "-error" : "-out";
    return merged_ ? base_ + kind + ".log" : base_ + kind + "-" + std::to_string(index) + ".log";
  }
  return merged_ || as_is_[k] ? given : with_index(given, index);
}

std::vector<std::string> app_logs::own_paths(int index) const {
  std::vector<std::string> out;
  for (int stream : {app_logs::out, err, both})
    if (size_t k = static_cast<size_t>(stream - 1); !given_[k].empty() && !as_is_[k]) out.push_back(path(index, stream));
  return out;
}

bool app_logs::writes_to(std::string_view path) const {
  auto known = [this](std::string_view p) { return by_path_.count(std::string(p)) > 0; };
  if (known(path)) return true;
  auto dot = path.rfind('.');
  if (dot == std::string_view::npos || dot + 1 == path.size()) return false;
  std::string_view n = path.substr(dot + 1);
  return std::all_of(n.begin(), n.end(), [](unsigned char c) { return std::isdigit(c); }) && known(path.substr(0, dot));
}

result<std::shared_ptr<log_file>> app_logs::file_at(const std::string& path, bool open_now) {
  if (auto known = by_path_.find(path); known != by_path_.end()) return known->second;
  std::shared_ptr<log_file> f;
  if (open_now) {
    auto opened = log_file::open(loop_, path, options_);
    if (!opened) return opened.err();
    f = std::move(opened.value());
  } else {
    f = log_file::create(loop_, path, options_);
  }
  by_path_[path] = f;
  return f;
}

const app_logs::files* app_logs::pair(int index) const {
  size_t k = merged_ ? 0 : static_cast<size_t>(index);
  return k < pairs_.size() ? &pairs_[k] : nullptr;
}

app_logs::files& app_logs::pair_of(int index) {
  size_t k = merged_ ? 0 : static_cast<size_t>(index);
  // Scaled up: the new indices' files open with their first line.
  while (pairs_.size() <= k) {
    auto& p = pairs_.emplace_back();
    int i = static_cast<int>(pairs_.size()) - 1;
    for (int s : {out, err, both})
      if (std::string path = this->path(i, s); !path.empty())
        p[static_cast<size_t>(s - 1)] = file_at(path, false).value();
  }
  return pairs_[k];
}

const std::string& app_logs::stamp() {
  int64_t now = util::unix_ms_now();
  if (now != stamp_ms_) {
    stamp_ms_ = now;
    stamp_ = date_format_.empty() ? iso8601_utc(now) : format_local_date(date_format_, now);
  }
  return stamp_;
}

std::string app_logs::record(int index, int stream, std::string_view line) {
  nlohmann::ordered_json j{{"message", line},
                           {"timestamp", stamp()},
                           {"type", stream == err ? "err" : "out"},
                           {"process_id", index},
                           {"app_name", name_}};
  // An app's bytes need not be UTF-8: what is not becomes U+FFFD.
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::string app_logs::prefix(const app_spec& spec, int index) {
  std::string prefixed;
  if (spec.time || !date_format_.empty()) prefixed = stamp() + ": ";
  // Instances that share a file say whose each line is.
  if (merged_ && spec.instances > 1) prefixed += std::to_string(index) + "|";
  return prefixed;
}

log_file* app_logs::extra(const files& p, int stream) {
  // log_file also named as out_file or error_file is that one file.
  return p[2] && p[2] != p[static_cast<size_t>(stream - 1)] ? p[2].get() : nullptr;
}

void app_logs::write(const app_spec& spec, int index, int stream, std::string_view line) {
  files& p = pair_of(index);
  std::string prefixed = json_ ? record(index, stream, line) : prefix(spec, index);
  if (json_) {
    line = prefixed;
  } else if (!prefixed.empty()) {
    prefixed.append(line);
    line = prefixed;
  }
  p[static_cast<size_t>(stream - 1)]->queue_line(line);
  if (auto* also = extra(p, stream)) also->queue_line(line);
}

bool app_logs::hold(int index, int stream, std::function<void()> resume) {
  files& p = pair_of(index);
  // One file behind is enough to wait for; `resume` asks again.
  for (auto* f : {p[static_cast<size_t>(stream - 1)].get(), extra(p, stream)})
    if (f && f->behind()) {
      f->on_room(std::move(resume));
      return true;
    }
  return false;
}

void app_logs::when_written(int index, int stream, std::function<void()> done) {
  files& p = pair_of(index);
  log_file& f = *p[static_cast<size_t>(stream - 1)];
  log_file* also = extra(p, stream);
  if (!also) return f.when_written(std::move(done));
  // Both files start writing now; `done` once both are written.
  auto left = std::make_shared<std::pair<int, std::function<void()>>>(2, std::move(done));
  auto one = [left] {
    if (--left->first == 0) left->second();
  };
  f.when_written(one);
  also->when_written(one);
}

void app_logs::note(int index, std::string_view text) {
  files& p = pair_of(index);
  std::string as_json = json_ ? record(index, err, text) : std::string();
  std::string_view line = json_ ? std::string_view(as_json) : text;
  p[1]->write_line(line);
  if (auto* also = extra(p, err)) also->write_line(line);
}

std::vector<const log_file*> app_logs::distinct(int index) const {
  std::vector<const log_file*> out;
  if (auto* p = pair(index))
    for (const auto& f : *p)
      if (f && std::find(out.begin(), out.end(), f.get()) == out.end()) out.push_back(f.get());
  return out;
}

uint64_t app_logs::dropped(int index) const {
  uint64_t n = 0;
  for (auto* f : distinct(index)) n += f->dropped_total();
  return n;
}

std::vector<std::string> app_logs::failing(int index) const {
  std::vector<std::string> out;
  for (auto* f : distinct(index))
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
  // A path every instance shares (/dev/null) says nothing of which were there.
  auto on_disk = [this](int i) {
    std::error_code ec;
    return (!as_is_[0] && std::filesystem::exists(path(i, out), ec)) ||
           (!as_is_[1] && std::filesystem::exists(path(i, err), ec));
  };
  for (int i = 0; i < instances || static_cast<size_t>(i) < pairs_.size() || on_disk(i); ++i)
    rows.push_back({{"name", name}, {"instance", i}, {"out", path(i, out)}, {"err", path(i, err)}});
  return rows;
}

void app_logs::flush(std::function<void()> done) { every_file(&log_file::flush, std::move(done)); }

void app_logs::reopen(std::function<void()> done) { every_file(&log_file::reopen, std::move(done)); }

std::vector<std::string> app_logs::reopen_errors() const {
  std::vector<std::string> out;
  for (auto& [path, f] : by_path_)
    if (!f->reopen_error().empty()) out.push_back(path + ": " + f->reopen_error());
  return out;
}

void app_logs::every_file(void (log_file::*op)(std::function<void()>), std::function<void()> done) {
  auto left = std::make_shared<size_t>(by_path_.size());
  auto shared_done = std::make_shared<std::function<void()>>(std::move(done));
  if (*left == 0) return (*shared_done)();
  for (auto& [path, f] : by_path_)
    ((*f).*op)([left, shared_done] {
      if (--*left == 0) (*shared_done)();
    });
}

}  // namespace corral::daemon
