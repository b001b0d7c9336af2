// net::connection: a small buffered stream over libuv (TCP or Unix).
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstring>

#include "core/defer.hpp"
#include "core/handle.hpp"
#include "corral/net.hpp"
#include "net/socket.hpp"

namespace corral::net {
namespace {

// A uv_tcp_t or a uv_pipe_t, both usable as uv_stream_t.
union any_stream {
  uv_handle_t handle;
  uv_stream_t stream;
  uv_tcp_t tcp;
  uv_pipe_t pipe;
};

struct write_req {
  uv_write_t req;
  std::string data;
  std::function<void(const error*)> done;
};

}  // namespace

struct connection::impl {
  corral::detail::uv_handle_ptr<any_stream> h = corral::detail::uv_handle_ptr<any_stream>::make();
  std::string peer;
  data_fn on_data;
  end_fn on_end;
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
  std::vector<std::function<void()>> close_waiters;

  uv_stream_t* stream() { return &h->stream; }
  ~impl() { *alive = false; }
};

result<std::unique_ptr<connection>> connection::open(unique_fd fd) {
  auto im = std::make_unique<impl>();
  int domain = AF_UNSPEC;
  socklen_t len = sizeof domain;
  ::getsockopt(fd.get(), SOL_SOCKET, SO_DOMAIN, &domain, &len);
  int r;
  if (domain == AF_UNIX) {
    uv_pipe_init(uv_default_loop(), &im->h->pipe, 0);
    r = uv_pipe_open(&im->h->pipe, fd.get());
    im->peer = "unix";
  } else {
    uv_tcp_init(uv_default_loop(), &im->h->tcp);
    r = uv_tcp_open(&im->h->tcp, fd.get());
    if (r == 0) uv_tcp_nodelay(&im->h->tcp, 1);
    sockaddr_storage ss{};
    int sl = sizeof ss;
    if (uv_tcp_getpeername(&im->h->tcp, reinterpret_cast<sockaddr*>(&ss), &sl) == 0) {
      char host[64] = {};
      int port = 0;
      if (ss.ss_family == AF_INET) {
        auto* in = reinterpret_cast<sockaddr_in*>(&ss);
        uv_ip4_name(in, host, sizeof host);
        port = ntohs(in->sin_port);
        im->peer = std::string(host) + ":" + std::to_string(port);
      } else if (ss.ss_family == AF_INET6) {
        auto* in = reinterpret_cast<sockaddr_in6*>(&ss);
        uv_ip6_name(in, host, sizeof host);
        port = ntohs(in->sin6_port);
        im->peer = "[" + std::string(host) + "]:" + std::to_string(port);
      }
    }
  }
  if (r < 0) return error::from_uv(r, "open connection fd " + std::to_string(fd.get()));
  fd.release();  // the handle owns it now
  im->h->handle.data = im.get();
  return std::unique_ptr<connection>(new connection(std::move(im)));
}

connection::connection(std::unique_ptr<impl> im) : impl_(std::move(im)) {}
connection::~connection() = default;

void connection::read_start(data_fn data, end_fn end) {
  impl_->on_data = std::move(data);
  impl_->on_end = std::move(end);
  uv_read_start(
      impl_->stream(),
      [](uv_handle_t*, size_t, uv_buf_t* buf) {
        static char chunk[64 * 1024];  // callbacks run on one thread, one at a time
        *buf = uv_buf_init(chunk, sizeof chunk);
      },
      [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
        auto* self = static_cast<impl*>(s->data);
        if (!self) return;
        if (n > 0) {
          if (self->on_data) self->on_data(std::string_view(buf->base, static_cast<std::size_t>(n)));
          return;
        }
        if (n == 0) return;
        uv_read_stop(s);
        if (!self->on_end) return;
        if (n == UV_EOF) {
          self->on_end(nullptr);
        } else {
          error e = error::from_uv(static_cast<int>(n), "read from " + self->peer);
          self->on_end(&e);
        }
      });
}

void connection::read_stop() { uv_read_stop(impl_->stream()); }

void connection::write(std::string_view bytes, std::function<void(const error*)> done) {
  auto* w = new write_req{{}, std::string(bytes), std::move(done)};
  uv_buf_t b = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
  w->req.data = w;
  int r = uv_write(&w->req, impl_->stream(), &b, 1, [](uv_write_t* req, int status) {
    auto* w = static_cast<write_req*>(req->data);
    if (w->done) {
      if (status < 0) {
        error e = error::from_uv(status, "write");
        w->done(&e);
      } else {
        w->done(nullptr);
      }
    }
    delete w;
  });
  if (r < 0) {
    if (w->done) {
      error e = error::from_uv(r, "write to " + impl_->peer);
      w->done(&e);
    }
    delete w;
  }
}

void connection::shutdown() {
  auto* req = new uv_shutdown_t;
  if (uv_shutdown(req, impl_->stream(), [](uv_shutdown_t* r, int) { delete r; }) < 0) delete req;
}

void connection::close(std::function<void()> done) {
  impl_->h.reset();  // uv_close now; the memory goes in the close callback
  if (done) corral::detail::defer(std::move(done));
}

std::string connection::peer() const { return impl_->peer; }

}  // namespace corral::net
