#include "daemon/output_reader.hpp"

#include <cstring>

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <cerrno>

#include "core/handle.hpp"
#include "daemon/log_lines.hpp"

namespace corral::daemon {
namespace {

constexpr std::size_t chunk = 64 * 1024;  // a peek's most; also the longest line (line_splitter's cut)

// One buffer for every stream: the loop is single threaded, and each chunk is
// cut into lines (copied into the logs) or discarded before the next read.
char* scratch() {
  static char buf[chunk];
  return buf;
}

}  // namespace

struct output_reader::state : std::enable_shared_from_this<state> {
  unique_fd fd;
  unique_fd ep;  // epoll set: fd, edge-triggered
  sink s;
  detail::uv_handle_ptr<uv_poll_t> poll;  // watches ep
  line_splitter lines{chunk};
  bool fresh = true;       // bytes may have come since the last peek
  bool hup = false;        // every writer is gone: what is queued is all there will be
  std::size_t taking = 0;  // bytes whose lines wait for the disk, still queued
  bool held = false;       // the log is behind: read on when it calls back
  bool over = false;       // ended or drained: reads no more
  bool pumping = false, again = false;  // (a log that answers at once must not recurse)

  void on_events() {
    epoll_event ev[4];
    int n;
    while ((n = ::epoll_wait(ep.get(), ev, 4, 0)) > 0)
      for (int k = 0; k < n; ++k) {
        fresh = true;
        if (ev[k].events & (EPOLLHUP | EPOLLRDHUP | EPOLLERR)) hup = true;
      }
    pump();
  }

  void emit(std::string_view line) { s.line(line); }

  void pump() {
    if (pumping) {
      again = true;
      return;
    }
    pumping = true;
    do {
      again = false;
      pump_once();
    } while (again && !over);
    pumping = false;
  }

  void pump_once() {
    if (over || held || taking > 0 || !fresh) return;
    fresh = false;
    ssize_t n = ::recv(fd.get(), scratch(), chunk, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;  // nothing queued: the next arrival is an event
    if (n <= 0) return end();  // EOF (every writer gone, nothing queued) or an error
    auto got = static_cast<std::size_t>(n);
    if (got == chunk) fresh = true;  // more may be queued past it
    lines.feed(std::string_view(scratch(), got), [this](std::string_view l) { emit(l); });
    std::size_t whole = got - lines.partial_size();
    if (hup && whole == 0 && got < chunk) {
      // The last bytes there will be: the partial last line goes out.
      lines.finish([this](std::string_view l) { emit(l); });
      whole = got;
    }
    lines.drop_partial();  // its bytes stay queued; the next peek reads them again
    if (whole == 0) return;  // a partial line: its newline comes with a later event
    taking = whole;
    std::weak_ptr<state> weak = weak_from_this();
    s.written([weak] {
      if (auto self = weak.lock()) self->take_out();
    });
  }

  // The chunk's lines are on disk (or counted as dropped): out of the socket.
  void take_out() {
    if (over) return;
    if (!discard(taking)) return end();
    taking = 0;
    // A partial line left with no writer: nothing else would wake us for it.
    if (hup) fresh = true;
    std::weak_ptr<state> weak = weak_from_this();
    held = s.hold([weak] {
      if (auto self = weak.lock()) {
        self->held = false;
        self->pump();
      }
    });
    pump();
  }

  bool discard(std::size_t n) {
    while (n > 0) {
      ssize_t got = ::recv(fd.get(), scratch(), std::min(n, chunk), MSG_DONTWAIT);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) return false;  // the queued bytes are gone: not expected
      n -= static_cast<std::size_t>(got);
    }
    return true;
  }

  void end() {
    if (over) return;
    over = true;
    poll.reset();
    auto ended = std::move(s.ended);
    if (ended) ended();  // last: it may destroy the reader
  }
};

result<std::unique_ptr<output_reader>> output_reader::start(uv_loop_t* loop, unique_fd fd, sink s) {
  auto failed = [](const char* what, int uv_status) {
    return error(std::error_code(-uv_status, std::generic_category()),
                 std::string(what) + ": " + std::strerror(-uv_status) + " (" + uv_err_name(uv_status) + ")");
  };
  auto st = std::make_shared<state>();
  st->s = std::move(s);
  st->ep.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!st->ep) return failed("epoll_create1", -errno);
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
  if (::epoll_ctl(st->ep.get(), EPOLL_CTL_ADD, fd.get(), &ev) != 0) return failed("epoll_ctl", -errno);
  st->poll = detail::uv_handle_ptr<uv_poll_t>::make();
  if (int e = uv_poll_init(loop, st->poll.get(), st->ep.get()); e != 0) {
    st->poll.reset();
    return failed("uv_poll_init", e);
  }
  st->fd = std::move(fd);
  st->poll->data = st.get();
  uv_poll_start(st->poll.get(), UV_READABLE, [](uv_poll_t* p, int status, int) {
    auto* raw = static_cast<state*>(p->data);
    if (!raw) return;
    auto self = raw->shared_from_this();  // `ended` may destroy the reader
    if (status < 0) return self->end();
    self->on_events();
  });
  return std::unique_ptr<output_reader>(new output_reader(std::move(st)));
}

output_reader::~output_reader() {
  st_->over = true;
  st_->poll.reset();  // (uv_close: out of the loop's epoll before ep closes with st_)
}

unique_fd output_reader::duplicate_fd() const { return unique_fd(::fcntl(st_->fd.get(), F_DUPFD_CLOEXEC, 3)); }

void output_reader::drain() {
  state& st = *st_;
  if (st.over) return;
  st.over = true;
  st.poll.reset();
  // A chunk waiting for the disk was given already: only its bytes go.
  if (st.taking > 0 && st.discard(st.taking)) st.taking = 0;
  if (st.taking == 0) {
    // At most 16 reads: more than the socket holds many times over, and a
    // bound if a grandchild still writes into it.
    for (int reads = 0; reads < 16;) {
      ssize_t n = ::recv(st.fd.get(), scratch(), chunk, MSG_DONTWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // EOF, nothing more now, or an error
      st.lines.feed(std::string_view(scratch(), static_cast<std::size_t>(n)), [&st](std::string_view l) { st.emit(l); });
      ++reads;
    }
  }
  st.lines.finish([&st](std::string_view l) { st.emit(l); });
  // The sink only queued these lines: this starts their write (nothing waits).
  if (st.s.written) st.s.written([] {});
}

}  // namespace corral::daemon
