#include "logs.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <deque>
#include <thread>

namespace corral::cli {

namespace {

// The last `n` lines of a file, reading backwards in blocks so a huge log
// costs only its tail.
std::string tail(const std::string& path, int n, off_t& end) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  end = 0;
  if (fd < 0) return "";
  struct stat st {};
  ::fstat(fd, &st);
  end = st.st_size;
  std::string data;
  off_t pos = end;
  int newlines = 0;
  while (pos > 0 && newlines <= n) {
    off_t step = std::min<off_t>(pos, 65536);
    pos -= step;
    std::string block(static_cast<size_t>(step), '\0');
    if (::pread(fd, block.data(), static_cast<size_t>(step), pos) != step) break;
    for (char c : block) newlines += c == '\n';
    data.insert(0, block);
  }
  ::close(fd);
  if (n <= 0) return "";
  // Keep the last n complete lines.
  size_t cut = data.size();
  if (!data.empty() && data.back() == '\n') --cut;
  int seen = 0;
  while (cut > 0) {
    if (data[cut - 1] == '\n' && ++seen == n) break;
    --cut;
  }
  return data.substr(cut);
}

void print_lines(const std::string& label, const std::string& text) {
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    std::fwrite(label.data(), 1, label.size(), stdout);
    std::fwrite(text.data() + start, 1, nl - start, stdout);
    std::fputc('\n', stdout);
    start = nl + 1;
  }
}

}  // namespace

int show_logs(const std::vector<log_source>& sources, int lines, bool follow) {
  std::vector<off_t> offsets(sources.size(), 0);
  for (size_t k = 0; k < sources.size(); ++k) print_lines(sources[k].label, tail(sources[k].path, lines, offsets[k]));
  std::fflush(stdout);
  if (!follow) return 0;
  std::vector<std::string> partial(sources.size());
  for (;;) {
    bool any = false;
    for (size_t k = 0; k < sources.size(); ++k) {
      struct stat st {};
      if (::stat(sources[k].path.c_str(), &st) != 0) continue;
      if (st.st_size < offsets[k]) offsets[k] = 0;  // flushed: start over
      if (st.st_size == offsets[k]) continue;
      int fd = ::open(sources[k].path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;
      std::string chunk(static_cast<size_t>(st.st_size - offsets[k]), '\0');
      ssize_t n = ::pread(fd, chunk.data(), chunk.size(), offsets[k]);
      ::close(fd);
      if (n <= 0) continue;
      chunk.resize(static_cast<size_t>(n));
      offsets[k] += n;
      partial[k] += chunk;
      auto last = partial[k].rfind('\n');
      if (last == std::string::npos) continue;
      print_lines(sources[k].label, partial[k].substr(0, last));
      partial[k].erase(0, last + 1);
      any = true;
    }
    if (any) std::fflush(stdout);
    if (std::ferror(stdout)) return 0;  // the reader went away
    // A CLI poll, not a test wait: 50 ms is below what a person notices.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

}  // namespace corral::cli
