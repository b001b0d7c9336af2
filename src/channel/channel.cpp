// The channel's I/O: a uv_poll_t on a non-blocking Unix stream socket, with
// sendmsg/recvmsg so that several fds can ride on one line (uv_write2 passes
// only one) and so that queued lines leave in one write.
#include "corral/channel.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "channel/json_codec.hpp"
#include "core/handle.hpp"
#include "core/json_nesting.hpp"

namespace corral {
namespace {

constexpr std::size_t read_chunk = 64 * 1024;
constexpr int max_reads_per_wakeup = 16;  // then yield to other handles
constexpr int max_fds_per_message = 253;  // SCM_MAX_FD

// Closes a batch of fds with one close_range() per run of consecutive
// numbers: a round-robin primary passes batches of sockets it has just
// accepted, whose numbers are mostly consecutive, and closing them one by
// one was half of its system calls.
void close_batch(std::vector<unique_fd>& fds) {
  if (fds.size() < 2) {
    fds.clear();
    return;
  }
  std::vector<int> raw;
  raw.reserve(fds.size());
  for (auto& f : fds) raw.push_back(f.release());
  fds.clear();
  std::sort(raw.begin(), raw.end());
  for (std::size_t i = 0; i < raw.size();) {
    std::size_t j = i + 1;
    while (j < raw.size() && raw[j] == raw[j - 1] + 1) ++j;
    if (j - i == 1 || ::close_range(static_cast<unsigned>(raw[i]), static_cast<unsigned>(raw[j - 1]), 0) != 0)
      for (std::size_t k = i; k < j; ++k) ::close(raw[k]);  // one, or a kernel without close_range
    i = j;
  }
}

std::string preview(const char* p, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n && i < 40; ++i) {
    unsigned char c = static_cast<unsigned char>(p[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  if (n > 40) out += "...";
  return out;
}

error errno_error(int err, const std::string& what) {
  return error(std::error_code(err, std::generic_category()), what + ": " + std::strerror(err));
}

}  // namespace

struct channel::handles {
  detail::uv_handle_ptr<uv_poll_t> poll = detail::uv_handle_ptr<uv_poll_t>::make();
  detail::uv_handle_ptr<uv_idle_t> idle = detail::uv_handle_ptr<uv_idle_t>::make();
  // Runs after each iteration's I/O callbacks: the next message sent leaves
  // at once again. (A check handle, unlike an idle one, does not make the
  // loop poll without blocking, so a ping-pong costs no extra iteration.)
  detail::uv_handle_ptr<uv_check_t> turn = detail::uv_handle_ptr<uv_check_t>::make();
  int poll_events = 0;
};

bool is_internal_message(const json& msg) noexcept {
  return msg.is_object() && msg.contains("corral");
}

result<std::pair<unique_fd, unique_fd>> channel::socketpair() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return errno_error(errno, "socketpair for a channel");
  // Both ends are close-on-exec: the spawner places the child's end at its
  // fd number explicitly (dup2 clears the flag), so no other child inherits it.
  return std::pair{unique_fd(sv[0]), unique_fd(sv[1])};
}

result<std::unique_ptr<channel>> channel::open(int fd, channel_options options, uv_loop_t* loop) {
  unique_fd owned(fd);
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0)
    return errno_error(errno, "channel fd " + std::to_string(fd));
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  std::unique_ptr<channel> ch(new channel(owned.release(), std::move(options)));
  int r = uv_poll_init_socket(loop, ch->h_->poll.get(), fd);
  if (r < 0) return error::from_uv(r, "channel to " + ch->peer() + " (fd " + std::to_string(fd) + ")");
  ch->h_->poll->data = ch.get();
  uv_idle_init(loop, ch->h_->idle.get());
  ch->h_->idle->data = ch.get();
  uv_check_init(loop, ch->h_->turn.get());
  ch->h_->turn->data = ch.get();
  uv_check_start(ch->h_->turn.get(), [](uv_check_t* h) {
    if (auto* self = static_cast<channel*>(h->data)) self->wrote_this_turn_ = false;
  });
  uv_unref(ch->h_->turn.handle());  // it never keeps the loop alive by itself
  ch->update_poll();
  return ch;
}

channel::channel(int fd, channel_options options)
    : fd_(fd), options_(std::move(options)), alive_(std::make_shared<bool>(true)),
      h_(std::make_unique<handles>()) {
  in_cap_ = read_chunk * 2;
  in_.reset(new char[in_cap_]);  // uninitialised on purpose
}

channel::~channel() {
  *alive_ = false;
  // handles close asynchronously and free themselves; the fd closes now.
}

bool channel::send(const json& msg, std::vector<unique_fd> fds) {
  if (state_ != state::open || peer_gone_) return false;
  if (fds.size() > max_fds_per_message) std::abort();  // caller bug: split batches
  std::size_t offset = out_base_ + out_.size();
  // Serialised straight into the queue: no temporary string per message.
  if (fds.empty()) {
    detail::append_json(out_, msg);
  } else {
    out_.append(R"({"corral":"fds","n":)");
    out_.append(std::to_string(fds.size()));
    out_.append(R"(,"msg":)");
    detail::append_json(out_, msg);
    out_.push_back('}');
  }
  out_.push_back('\n');
  return queued(offset, std::move(fds));
}

bool channel::send_serialized(std::string_view json_text) { return enqueue(json_text, {}); }

bool channel::enqueue(std::string_view line, std::vector<unique_fd> fds) {
  if (state_ != state::open || peer_gone_) return false;
  std::size_t offset = out_base_ + out_.size();
  out_.append(line);
  out_.push_back('\n');
  return queued(offset, std::move(fds));
}

// A line starting at `offset` was appended to the queue.
bool channel::queued(std::size_t offset, std::vector<unique_fd> fds) {
  if (!fds.empty()) out_fds_.push_back({offset, std::move(fds)});
  if (!want_write_) {
    if (!wrote_this_turn_) {
      // The first message of an iteration leaves at once (lowest latency);
      // the ones that follow in the same iteration pile up and leave
      // together on the next flush.
      wrote_this_turn_ = true;
      if (!flush() || peer_gone_) return false;
    } else {
      schedule_flush();
    }
  }
  if (queued_bytes() > options_.high_water) above_high_water_ = true;
  return !above_high_water_;
}

void channel::schedule_flush() {
  if (flush_scheduled_ || !h_->idle) return;
  flush_scheduled_ = true;
  uv_idle_start(h_->idle.get(), [](uv_idle_t* h) {
    auto* self = static_cast<channel*>(h->data);
    if (!self) return;
    uv_idle_stop(h);
    self->flush_scheduled_ = false;
    if (!self->want_write_ && !self->flush()) return;
    if (self->state_ == state::closing && self->queued_bytes() == 0) self->finish_close();
  });
}

// Writes what is queued until done or EAGAIN. False if the channel stopped
// (failed, closed, or destroyed by a callback): touch nothing then.
bool channel::flush() {
  while (out_pos_ < out_.size()) {
    std::size_t abs = out_base_ + out_pos_;
    std::size_t end = out_.size();
    bool with_fds = !out_fds_.empty() && out_fds_.front().offset == abs;
    // A write never crosses into the next line that carries fds, so that each
    // sendmsg attaches one batch at the first byte of its line.
    std::size_t next = with_fds ? (out_fds_.size() > 1 ? out_fds_[1].offset : SIZE_MAX)
                                : (out_fds_.empty() ? SIZE_MAX : out_fds_.front().offset);
    if (next != SIZE_MAX) end = std::min(end, next - out_base_);
    iovec iov{out_.data() + out_pos_, end - out_pos_};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * max_fds_per_message)];
    if (with_fds) {
      auto& batch = out_fds_.front().fds;
      mh.msg_control = cbuf;
      mh.msg_controllen = CMSG_SPACE(sizeof(int) * batch.size());
      cmsghdr* cm = CMSG_FIRSTHDR(&mh);
      cm->cmsg_level = SOL_SOCKET;
      cm->cmsg_type = SCM_RIGHTS;
      cm->cmsg_len = CMSG_LEN(sizeof(int) * batch.size());
      int* p = reinterpret_cast<int*>(CMSG_DATA(cm));
      for (auto& f : batch) *p++ = f.get();
    }
    ssize_t n = ::sendmsg(fd_.get(), &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        want_write_ = true;
        update_poll();
        return true;
      }
      if (errno == EPIPE || errno == ECONNRESET) {
        // The peer is gone. Drop our output but keep reading: what it wrote
        // before dying is still delivered, then EOF closes the channel.
        peer_gone_ = true;
        out_base_ += out_.size();
        out_.clear();
        out_pos_ = 0;
        out_fds_.clear();
        want_write_ = false;
        update_poll();
        if (state_ == state::closing) {
          finish_close();
          return false;
        }
        return true;
      }
      fail(errno_error(errno, "writing to channel to " + options_.peer));
      return false;
    }
    if (with_fds) {  // the kernel holds copies now
      close_batch(out_fds_.front().fds);
      out_fds_.erase(out_fds_.begin());
    }
    out_pos_ += static_cast<std::size_t>(n);
  }
  out_base_ += out_.size();
  out_.clear();
  out_pos_ = 0;
  if (want_write_) {
    want_write_ = false;
    update_poll();
  }
  if (above_high_water_) {
    above_high_water_ = false;
    if (on_drain_) {
      auto alive = alive_;
      on_drain_();
      if (!*alive) return false;
    }
  }
  return state_ != state::closed;
}

void channel::update_poll() {
  if (!h_->poll || state_ == state::closed) return;
  // An unref'd channel (set_ref(false)) still keeps the loop alive while it
  // has output waiting, or the program would exit with messages unsent.
  if (ref_ || want_write_) uv_ref(h_->poll.handle());
  else uv_unref(h_->poll.handle());
  int events = (state_ == state::open ? UV_READABLE : 0) | (want_write_ ? UV_WRITABLE : 0);
  if (events == h_->poll_events) return;
  h_->poll_events = events;
  if (events == 0) {
    uv_poll_stop(h_->poll.get());
    return;
  }
  uv_poll_start(h_->poll.get(), events, [](uv_poll_t* h, int status, int ev) {
    auto* self = static_cast<channel*>(h->data);
    if (!self) return;
    if (status < 0) {
      // libuv reports POLLERR as UV_EBADF. The usual cause is a peer that died
      // (reset): read what is left, which ends in EOF or the real error.
      auto alive = self->alive_;
      if (self->state_ == state::open) self->on_readable();
      if (!*alive || self->state_ == state::closed) return;
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(self->fd_.get(), SOL_SOCKET, SO_ERROR, &err, &len);
      if (err == 0 || err == ECONNRESET || err == EPIPE) {
        self->finish_close();
      } else {
        self->fail(errno_error(err, "channel to " + self->options_.peer));
      }
      return;
    }
    if (ev & UV_WRITABLE) {
      self->want_write_ = false;
      if (!self->flush()) return;
      if (self->state_ == state::closing && self->queued_bytes() == 0) {
        self->finish_close();
        return;
      }
      self->update_poll();
    }
    if ((ev & UV_READABLE) && self->state_ == state::open) self->on_readable();
  });
}

void channel::on_readable() {
  auto alive = alive_;
  for (int i = 0; i < max_reads_per_wakeup; ++i) {
    if (!read_some()) return;  // EOF, error, or a callback closed/destroyed us
    if (!*alive || state_ != state::open) return;
  }
}

// Reads once; returns true if more may be waiting.
bool channel::read_some() {
  if (in_pos_ == in_len_) in_pos_ = in_len_ = scan_pos_ = 0;
  if (in_cap_ - in_len_ < read_chunk) {
    std::memmove(in_.get(), in_.get() + in_pos_, in_len_ - in_pos_);
    in_len_ -= in_pos_;
    scan_pos_ -= in_pos_;
    in_pos_ = 0;
    if (in_cap_ - in_len_ < read_chunk) {
      std::size_t cap = std::max(in_cap_ * 2, in_len_ + read_chunk);
      std::unique_ptr<char[]> bigger(new char[cap]);
      std::memcpy(bigger.get(), in_.get(), in_len_);
      in_ = std::move(bigger);
      in_cap_ = cap;
    }
  }
  std::size_t cap = in_cap_ - in_len_;
  iovec iov{in_.get() + in_len_, cap};
  alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * max_fds_per_message)];
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = cbuf;
  mh.msg_controllen = sizeof cbuf;
  ssize_t n = ::recvmsg(fd_.get(), &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  if (n < 0) {
    if (errno == EINTR) return true;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
    if (errno == ECONNRESET) {  // the peer died: a hang-up, not a protocol error
      finish_close();
      return false;
    }
    fail(errno_error(errno, "reading from channel to " + options_.peer));
    return false;
  }
  for (cmsghdr* cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
    std::size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const int* p = reinterpret_cast<const int*>(CMSG_DATA(cm));
    for (std::size_t k = 0; k < count; ++k) in_fds_.emplace_back(p[k]);
  }
  if (mh.msg_flags & MSG_CTRUNC) {
    fail(error(std::make_error_code(std::errc::protocol_error),
               "channel to " + options_.peer + ": file descriptors were truncated (too many in one message)"));
    return false;
  }
  if (n == 0) {
    if (in_len_ > in_pos_) {
      fail(error(std::make_error_code(std::errc::protocol_error),
                 "channel to " + options_.peer + " closed in the middle of a message (" +
                     std::to_string(in_len_ - in_pos_) + " bytes of an unfinished line: \"" +
                     preview(in_.get() + in_pos_, in_len_ - in_pos_) + "\")"));
    } else {
      finish_close();
    }
    return false;
  }
  in_len_ += static_cast<std::size_t>(n);
  if (!dispatch_lines()) return false;
  return static_cast<std::size_t>(n) == cap;
}

// Delivers every complete line; false if the channel stopped (closed, failed
// or destroyed by a callback).
bool channel::dispatch_lines() {
  auto alive = alive_;
  for (;;) {
    char* base = in_.get();
    auto* nl = static_cast<char*>(std::memchr(base + scan_pos_, '\n', in_len_ - scan_pos_));
    if (!nl) {
      scan_pos_ = in_len_;
      if (in_len_ - in_pos_ > options_.max_line) {
        fail(error(std::make_error_code(std::errc::message_size),
                   "channel to " + options_.peer + ": message longer than " +
                       std::to_string(options_.max_line) + " bytes (no newline within the limit)"));
        return false;
      }
      return true;
    }
    const char* start = base + in_pos_;
    std::size_t len = static_cast<std::size_t>(nl - start);
    in_pos_ = scan_pos_ = static_cast<std::size_t>(nl - base) + 1;
    if (len > options_.max_line) {
      fail(error(std::make_error_code(std::errc::message_size),
                 "channel to " + options_.peer + ": message of " + std::to_string(len) +
                     " bytes is longer than the limit of " + std::to_string(options_.max_line)));
      return false;
    }
    if (len == 0 || (len == 1 && *start == '\r')) continue;
    json msg = detail::parse_json_line(start, nl);
    if (msg.is_discarded()) {
      fail(error(std::make_error_code(std::errc::protocol_error),
                 "channel to " + options_.peer +
                     (detail::json_nests_deeper_than(std::string_view(start, len), detail::max_json_nesting)
                          ? ": message nests deeper than " + std::to_string(detail::max_json_nesting) + " levels: \""
                          : ": message is not JSON: \"") +
                     preview(start, len) + "\""));
      return false;
    }
    if (!deliver(std::move(msg))) return false;
    if (!*alive || state_ != state::open) return false;
  }
}

bool channel::deliver(json&& msg) {
  std::vector<unique_fd> fds;
  if (msg.is_object()) {
    auto it = msg.find("corral");
    if (it != msg.end() && *it == "fds") {
      auto n_it = msg.find("n");
      std::size_t n = (n_it != msg.end() && n_it->is_number_unsigned()) ? n_it->get<std::size_t>() : SIZE_MAX;
      if (n > in_fds_.size() || !msg.contains("msg")) {
        fail(error(std::make_error_code(std::errc::protocol_error),
                   "channel to " + options_.peer + ": message announces " +
                       (n == SIZE_MAX ? std::string("an invalid number of") : std::to_string(n)) +
                       " file descriptors but " + std::to_string(in_fds_.size()) + " arrived"));
        return false;
      }
      fds.reserve(n);
      for (std::size_t k = 0; k < n; ++k) fds.push_back(std::move(in_fds_[k]));
      in_fds_.erase(in_fds_.begin(), in_fds_.begin() + static_cast<std::ptrdiff_t>(n));
      json inner = std::move(msg["msg"]);
      msg = std::move(inner);
    }
  }
  if (on_message_) on_message_(std::move(msg), std::move(fds));
  return true;
}

void channel::set_ref(bool ref) noexcept {
  ref_ = ref;
  update_poll();
}

void channel::close() {
  if (state_ != state::open) return;
  state_ = state::closing;
  update_poll();
  schedule_flush();  // finishes the close once the queue is empty
}

void channel::fail(error e) {
  if (state_ == state::closed) return;
  auto alive = alive_;
  state_ = state::closed;  // no more I/O from here on
  if (on_error_) on_error_(e);
  if (!*alive) return;
  state_ = state::closing;
  finish_close();
}

void channel::finish_close() {
  if (state_ == state::closed && !fd_) return;
  state_ = state::closed;
  if (h_->poll) uv_poll_stop(h_->poll.get());
  h_->poll_events = 0;
  if (h_->idle) uv_idle_stop(h_->idle.get());
  flush_scheduled_ = false;
  want_write_ = false;
  // The poll handle must stop watching the fd before it is closed.
  h_->poll.reset();
  h_->idle.reset();
  h_->turn.reset();
  fd_.reset();
  out_.clear();
  out_pos_ = 0;
  out_fds_.clear();
  in_fds_.clear();
  if (on_close_) on_close_();
}

}  // namespace corral
