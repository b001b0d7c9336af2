#include "monit.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <fmt/format.h>

#include "client.hpp"
#include "corral/fd.hpp"
#include "logs.hpp"
#include "table.hpp"

namespace corral::cli {

namespace {

volatile sig_atomic_t quit_signal = 0;
volatile sig_atomic_t resized = 0;

int fail(const std::string& msg) {
  std::fprintf(stderr, "corral: %s\n", msg.c_str());
  return 1;
}

std::string now_text() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

// The terminal as monit leaves it: raw keys, alternate screen, no cursor;
// the destructor puts everything back, whatever the way out.
class terminal_guard {
 public:
  terminal_guard() {
    if (::tcgetattr(STDIN_FILENO, &saved_) == 0) {
      termios raw = saved_;
      raw.c_lflag &= static_cast<tcflag_t>(~(ICANON | ECHO));  // ISIG stays: Ctrl+C is SIGINT
      raw.c_cc[VMIN] = 0;
      raw.c_cc[VTIME] = 0;
      have_termios_ = ::tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
    }
    std::fputs("\x1b[?1049h\x1b[?25l", stdout);
    std::fflush(stdout);
  }
  ~terminal_guard() {
    std::fputs("\x1b[?25h\x1b[?1049l", stdout);
    std::fflush(stdout);
    if (have_termios_) ::tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }
  terminal_guard(const terminal_guard&) = delete;
  terminal_guard& operator=(const terminal_guard&) = delete;

 private:
  termios saved_{};
  bool have_termios_ = false;
};

void install_handlers() {
  struct sigaction sa {};
  // No SA_RESTART: poll() returns EINTR and the loop sees the flag.
  sa.sa_handler = [](int) { quit_signal = 1; };
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(sig, &sa, nullptr);
  sa.sa_handler = [](int) { resized = 1; };
  ::sigaction(SIGWINCH, &sa, nullptr);
}

// Log files of the apps in `rows` (by a second connection: the first carries
// the stream). Cached per set of names.
class log_paths {
 public:
  explicit log_paths(const daemon::home_paths& home) : home_(home) {}
  std::vector<log_source> of(const std::vector<std::string>& names) {
    if (names != names_ || sources_.empty()) refresh(names);
    return sources_;
  }

 private:
  void refresh(const std::vector<std::string>& names) {
    names_ = names;
    sources_.clear();
    auto c = client::connect(home_);
    if (!c) return;
    auto r = c->call("logs_info", {{"target", "all"}});
    if (!r) return;
    for (const auto& a : *r) {
      std::string name = a.value("name", "");
      if (std::find(names.begin(), names.end(), name) == names.end()) continue;
      sources_.push_back({name + " out", a.value("out", "")});
      sources_.push_back({name + " err", a.value("err", "")});
    }
    drop_repeated_paths(sources_);
  }
  daemon::home_paths home_;
  std::vector<std::string> names_;
  std::vector<log_source> sources_;
};

std::vector<std::string> app_names(const nlohmann::json& rows) {
  std::vector<std::string> names;
  for (const auto& r : rows) {
    std::string n = r.value("name", "");
    if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
  }
  return names;
}

std::vector<std::string> log_block(const std::vector<log_source>& sources, int per_source) {
  std::vector<std::string> out;
  if (per_source <= 0) return out;
  for (const auto& s : sources)
    for (auto& l : last_lines(s.path, per_source)) out.push_back(s.label + " | " + l);
  return out;
}

int plain_loop(client& c, log_paths& logs, const monit_options& o, uint64_t stream_id) {
  int lines = std::max(0, o.log_lines);
  for (;;) {
    auto doc = c.next(-1);
    if (!doc) return fail(doc.err().message());
    if (quit_signal) return 0;
    if (doc->is_null() || doc->value("id", uint64_t{0}) != stream_id || !doc->contains("event")) continue;
    const auto& rows = (*doc)["rows"];
    std::string out = fmt::format("corral monit {} ({} instances)\n", now_text(), rows.size());
    if (doc->contains("error")) out += (*doc)["error"].get<std::string>() + "\n";
    for (auto& l : monit_table(rows)) out += l + "\n";
    for (auto& l : log_block(logs.of(app_names(rows)), lines)) out += l + "\n";
    out += "\n";
    if (std::fputs(out.c_str(), stdout) < 0 || std::fflush(stdout) != 0) return 0;  // reader gone
  }
}

std::string fit(const std::string& s, size_t width) { return s.size() <= width ? s : s.substr(0, width); }

// Returns the error to print once the terminal is restored ("" if none).
std::string tty_loop(client& c, log_paths& logs, const monit_options& o, uint64_t stream_id) {
  terminal_guard term;
  nlohmann::json rows = nlohmann::json::array();
  std::string error_text;
  size_t selected = 0;
  bool all_logs = false;
  auto draw = [&] {
    winsize ws{};
    size_t width = 80, height = 24;
    if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
      width = ws.ws_col;
      height = ws.ws_row;
    }
    std::vector<std::string> screen;
    screen.push_back(fit(fmt::format("corral monit  {}  q: quit  up/down: select  a: logs of {}", now_text(),
                                     all_logs ? "the selected app" : "all apps"), width));
    if (!error_text.empty()) screen.push_back(fit(error_text, width));
    auto table = monit_table(rows);
    if (selected >= rows.size()) selected = rows.empty() ? 0 : rows.size() - 1;
    for (size_t k = 0; k < table.size(); ++k) {
      std::string line = fit(table[k], width);
      if (k >= 1 && k - 1 == selected) line = "\x1b[7m" + line + "\x1b[0m";
      screen.push_back(line);
    }
    std::vector<std::string> names = app_names(rows);
    if (!all_logs && !rows.empty()) names = {rows[selected].value("name", "")};
    auto sources = logs.of(names);
    size_t room = height > screen.size() + 2 ? height - screen.size() - 2 : 0;
    int per = o.log_lines >= 0 ? o.log_lines
                               : sources.empty() ? 0 : static_cast<int>(std::min<size_t>(10, room / sources.size()));
    screen.push_back("");
    screen.push_back(fit(all_logs ? "logs: all apps" : "logs: " + (names.empty() ? "-" : names[0]), width));
    for (auto& l : log_block(sources, std::max(per, 1))) screen.push_back(fit(l, width));
    // One line short of the height: a newline on the last line would scroll.
    if (screen.size() >= height) screen.resize(height > 1 ? height - 1 : 1);
    std::string out = "\x1b[H";
    for (auto& l : screen) out += l + "\x1b[K\n";  // the tty's ONLCR adds the \r
    out += "\x1b[J";
    std::fputs(out.c_str(), stdout);
    std::fflush(stdout);
  };
  for (;;) {
    if (quit_signal) return {};
    pollfd p[2] = {{c.fd(), POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
    int r = ::poll(p, 2, -1);
    if (quit_signal) return {};
    if (resized) {
      resized = 0;
      draw();
    }
    if (r <= 0) continue;
    if (p[1].revents & POLLIN) {
      char keys[32];
      ssize_t n = ::read(STDIN_FILENO, keys, sizeof keys);
      for (ssize_t k = 0; k < n; ++k) {
        char ch = keys[k];
        if (ch == 'q' || ch == 'Q') return {};
        if (ch == 'a') all_logs = !all_logs;
        // Arrows are ESC [ A / ESC [ B; j and k work too.
        if (ch == 'A' || ch == 'k') selected = selected > 0 ? selected - 1 : 0;
        if (ch == 'B' || ch == 'j') ++selected;
      }
      if (n > 0) draw();
    }
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      // Drain every complete document that is buffered.
      for (int timeout = 0;; timeout = 0) {
        auto doc = c.next(timeout);
        if (!doc) return doc.err().message();
        if (doc->is_null()) break;
        if (doc->value("id", uint64_t{0}) != stream_id || !doc->contains("event")) continue;
        rows = (*doc)["rows"];
        error_text = doc->value("error", "");
      }
      draw();
    }
  }
}

}  // namespace

std::vector<std::string> monit_table(const nlohmann::json& rows) {
  std::vector<std::vector<std::string>> cells;
  cells.push_back({"id", "name", "pid", "status", "cpu", "memory", "restarts", "uptime"});
  for (const auto& r : rows) {
    int pid = r.value("pid", 0);
    cells.push_back({std::to_string(r.value("id", 0)), r.value("name", ""), pid ? std::to_string(pid) : "-",
                     r.value("status", "?"), fmt::format("{:.0f}%", r.value("cpu", 0.0)),
                     human_bytes(r.value("memory", uint64_t{0})), std::to_string(r.value("restarts", 0)),
                     pid ? human_duration(r.value("uptime_ms", int64_t{0})) : "-"});
  }
  std::vector<size_t> width(cells[0].size(), 0);
  for (auto& row : cells)
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  std::vector<std::string> out;
  for (auto& row : cells) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      line += row[c];
      if (c + 1 < row.size()) line += std::string(width[c] - row[c].size() + 2, ' ');
    }
    out.push_back(line);
  }
  return out;
}

std::vector<std::string> last_lines(const std::string& path, int n) {
  std::vector<std::string> out;
  unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd || n <= 0) return out;
  off_t size = ::lseek(fd.get(), 0, SEEK_END);
  off_t from = std::max<off_t>(0, size - 65536);
  std::string text(static_cast<size_t>(size - from), '\0');
  ssize_t got = ::pread(fd.get(), text.data(), text.size(), from);
  if (got <= 0) return out;
  text.resize(static_cast<size_t>(got));
  if (!text.empty() && text.back() == '\n') text.pop_back();
  size_t end = text.size();
  while (static_cast<int>(out.size()) < n && end > 0) {
    size_t start = text.rfind('\n', end - 1);
    size_t begin = start == std::string::npos ? 0 : start + 1;
    if (start == std::string::npos && from > 0) break;  // a cut line: leave it
    out.push_back(text.substr(begin, end - begin));
    if (start == std::string::npos) break;
    end = start;
  }
  std::reverse(out.begin(), out.end());
  return out;
}

int run_monit(const daemon::home_paths& home, const monit_options& o) {
  pid_t started = 0;
  auto c = client::connect_or_start(home, started);
  if (!c) return fail(c.err().message());
  log_paths logs(home);
  if (o.once) {
    auto rows = c->call("list", {{"target", o.target}});
    if (!rows) return fail(rows.err().message());
    std::string out = fmt::format("corral monit {} ({} instances)\n", now_text(), rows->size());
    for (auto& l : monit_table(*rows)) out += l + "\n";
    for (auto& l : log_block(logs.of(app_names(*rows)), std::max(0, o.log_lines))) out += l + "\n";
    std::fputs(out.c_str(), stdout);
    return 0;
  }
  install_handlers();
  auto id = c->send("monit", {{"target", o.target}, {"interval_ms", o.interval_ms}});
  if (!id) return fail(id.err().message());
  // The response comes first: an unknown target fails here.
  for (;;) {
    auto doc = c->next(-1);
    if (!doc) return fail(doc.err().message());
    if (quit_signal) return 0;
    if (doc->is_null() || doc->value("id", uint64_t{0}) != *id || doc->contains("event")) continue;
    if (!doc->value("ok", false)) return fail(doc->value("error", std::string("monit failed")));
    break;
  }
  bool tty = ::isatty(STDOUT_FILENO) && ::isatty(STDIN_FILENO);
  if (!tty) return plain_loop(*c, logs, o, *id);
  std::string err = tty_loop(*c, logs, o, *id);
  return err.empty() ? 0 : fail(err);
}

}  // namespace corral::cli
