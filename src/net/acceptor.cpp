#include "net/acceptor.hpp"

#include <sys/socket.h>
#include <uv.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/handle.hpp"

namespace corral::net::detail {
namespace {
constexpr int max_accepts_per_wakeup = 128;  // then let other handles run
constexpr uint64_t emfile_pause_ms = 100;
}  // namespace

struct acceptor::impl {
  int fd;
  batch_fn on_batch;
  corral::detail::uv_handle_ptr<uv_poll_t> poll = corral::detail::uv_handle_ptr<uv_poll_t>::make();
  corral::detail::uv_handle_ptr<uv_timer_t> backoff;
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
  bool paused = false;
  std::vector<unique_fd> spare;  // a batch's storage, kept between wakeups

  void start() {
    uv_poll_start(poll.get(), UV_READABLE, [](uv_poll_t* h, int status, int) {
      auto* self = static_cast<impl*>(h->data);
      if (self && status == 0) self->on_readable();
    });
  }

  void on_readable() {
    // The batch is handed over as ours, not a member: on_batch may destroy
    // this acceptor (a listener closed from its connection callback), and
    // the connections not yet delivered must outlive it.
    std::vector<unique_fd> batch = std::move(spare);
    batch.clear();
    for (int i = 0; i < max_accepts_per_wakeup; ++i) {
      int c = ::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (c >= 0) {
        batch.emplace_back(c);
        continue;
      }
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        std::fprintf(stderr, "corral: accept on fd %d: %s; pausing accepts for %llu ms\n", fd,
                     std::strerror(errno), static_cast<unsigned long long>(emfile_pause_ms));
        back_off();
      }
      break;  // EAGAIN, or an error the next wakeup will report again
    }
    if (batch.empty()) {
      spare = std::move(batch);
      return;
    }
    auto guard = alive;
    auto deliver = on_batch;  // may be destroyed with us while it runs
    deliver(batch);
    if (!*guard) return;  // what was not taken closes with `batch`
    batch.clear();
    spare = std::move(batch);
  }

  void back_off() {
    uv_poll_stop(poll.get());
    if (!backoff) {
      backoff = corral::detail::uv_handle_ptr<uv_timer_t>::make();
      uv_timer_init(poll->loop, backoff.get());
      backoff->data = this;
    }
    uv_timer_start(backoff.get(), [](uv_timer_t* t) {
      auto* self = static_cast<impl*>(t->data);
      if (self && !self->paused) self->start();
    }, emfile_pause_ms, 0);
  }
};

acceptor::acceptor(int listen_fd, batch_fn on_batch) : impl_(std::make_unique<impl>()) {
  impl_->fd = listen_fd;
  impl_->on_batch = std::move(on_batch);
  uv_poll_init_socket(uv_default_loop(), impl_->poll.get(), listen_fd);
  impl_->poll->data = impl_.get();
  impl_->start();
}

acceptor::~acceptor() { *impl_->alive = false; }

void acceptor::pause() {
  impl_->paused = true;
  uv_poll_stop(impl_->poll.get());
}

void acceptor::resume() {
  impl_->paused = false;
  impl_->start();
}

}  // namespace corral::net::detail
