/* The floors for round trips: ping-pong of a small message between two
 * processes over a bare Unix socketpair, no JSON, no library, in three ways
 * of waiting for the peer's message:
 *
 *   read   blocking read/write: two system calls per message, the least
 *          any program can do with a socket it reads and writes itself;
 *   epoll  epoll_wait, then read, then write: what every event loop (libuv,
 *          and so Node and Corral) must do, one more system call per message;
 *   uring  io_uring (when built with liburing): one io_uring_enter per
 *          message submits the reply and waits for the next message.
 *
 *   ipc_floor [N] [read|epoll|uring]
 *      prints "floor <N> <seconds> <round trips per second> <mode>"
 *
 * With IPC_PIN=1 the parent runs on CPU 0 and the child on CPU 1, so every
 * message crosses cores (otherwise the scheduler often keeps both on one).
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef CORRAL_HAVE_LIBURING
#include <liburing.h>
#endif

enum mode { MODE_READ, MODE_EPOLL, MODE_URING };

struct side {
  int fd;
  enum mode mode;
  int epfd;
#ifdef CORRAL_HAVE_LIBURING
  struct io_uring ring;
#endif
};

static int setup(struct side* s) {
  if (s->mode == MODE_EPOLL) {
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = s->fd};
    if (s->epfd < 0 || epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->fd, &ev) != 0) return -1;
  }
#ifdef CORRAL_HAVE_LIBURING
  if (s->mode == MODE_URING) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    int r = io_uring_queue_init_params(8, &s->ring, &p);
    if (r < 0) return fprintf(stderr, "ipc_floor: io_uring: %s\n", strerror(-r)), -1;
  }
#endif
  return 0;
}

#ifdef CORRAL_HAVE_LIBURING
/* Queues a send of len bytes (no completion wanted unless it fails). */
static void queue_send(struct side* s, const char* buf, size_t len) {
  struct io_uring_sqe* sqe = io_uring_get_sqe(&s->ring);
  io_uring_prep_send(sqe, s->fd, buf, len, 0);
  sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  sqe->user_data = 0;
}

/* Submits what is queued and waits for len bytes: one io_uring_enter per
 * message unless the message arrives in pieces or the send fails. */
static int uring_receive(struct side* s, char* buf, size_t len) {
  size_t got = 0;
  while (got < len) {
    struct io_uring_sqe* sqe = io_uring_get_sqe(&s->ring);
    io_uring_prep_recv(sqe, s->fd, buf + got, len - got, 0);
    sqe->user_data = 1;
    for (;;) {
      struct io_uring_cqe* cqe;
      int r = io_uring_submit_and_wait(&s->ring, 1);
      if (r < 0) return -1;
      if (io_uring_peek_cqe(&s->ring, &cqe) != 0) continue;
      int res = cqe->res;
      unsigned long long data = cqe->user_data;
      io_uring_cqe_seen(&s->ring, cqe);
      if (res <= 0) return -1; /* a failed send, or the peer left */
      if (data == 1) {
        got += (size_t)res;
        break;
      }
    }
  }
  return 0;
}
#endif

/* Waits until fd is readable (the epoll floor), then reads up to len. */
static int receive(struct side* s, char* buf, size_t len) {
  size_t got = 0;
  while (got < len) {
    if (s->mode == MODE_EPOLL) {
      struct epoll_event ev;
      if (epoll_wait(s->epfd, &ev, 1, -1) != 1) return -1;
    }
    ssize_t n = read(s->fd, buf + got, len - got);
    if (n <= 0) return -1;
    got += (size_t)n;
  }
  return 0;
}

static int exchange(struct side* s, char* buf, size_t len, int write_first) {
#ifdef CORRAL_HAVE_LIBURING
  if (s->mode == MODE_URING) {
    if (write_first) queue_send(s, buf, len);
    if (uring_receive(s, buf, len) != 0) return -1;
    if (!write_first) queue_send(s, buf, len);
    return 0;
  }
#endif
  if (write_first && write(s->fd, buf, len) != (ssize_t)len) return -1;
  if (receive(s, buf, len) != 0) return -1;
  if (!write_first && write(s->fd, buf, len) != (ssize_t)len) return -1;
  return 0;
}

static void finish(struct side* s) {
#ifdef CORRAL_HAVE_LIBURING
  if (s->mode == MODE_URING) io_uring_submit(&s->ring); /* the last reply */
#else
  (void)s;
#endif
}

static void pin(int cpu) {
  const char* env = getenv("IPC_PIN");
  if (!env || strcmp(env, "1") != 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) perror("sched_setaffinity");
}

int main(int argc, char** argv) {
  long total = argc > 1 ? atol(argv[1]) : 20000;
  const char* name = argc > 2 ? argv[2] : "read";
  enum mode mode;
  if (strcmp(name, "read") == 0) {
    mode = MODE_READ;
  } else if (strcmp(name, "epoll") == 0) {
    mode = MODE_EPOLL;
  } else if (strcmp(name, "uring") == 0) {
#ifdef CORRAL_HAVE_LIBURING
    mode = MODE_URING;
#else
    fprintf(stderr, "ipc_floor: built without liburing (apt install liburing-dev)\n");
    return 2;
#endif
  } else {
    fprintf(stderr, "ipc_floor: unknown mode '%s' (read, epoll or uring)\n", name);
    return 2;
  }
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return perror("socketpair"), 1;
  char msg[] = "{\"seq\":12345}\n"; /* the size of a ping-pong message */
  size_t len = sizeof msg - 1;
  pid_t pid = fork();
  if (pid == 0) {
    pin(1);
    close(sv[0]);
    struct side child = {.fd = sv[1], .mode = mode, .epfd = -1};
    char buf[64];
    if (setup(&child) != 0) _exit(1);
    for (long i = 0; i < total; ++i)
      if (exchange(&child, buf, len, 0) != 0) _exit(1);
    finish(&child);
    _exit(0);
  }
  pin(0);
  close(sv[1]);
  struct side parent = {.fd = sv[0], .mode = mode, .epfd = -1};
  if (setup(&parent) != 0) return fprintf(stderr, "ipc_floor: setup failed\n"), 1;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (long i = 0; i < total; ++i)
    if (exchange(&parent, msg, len, 1) != 0) return fprintf(stderr, "ipc_floor: peer failed\n"), 1;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  int st;
  waitpid(pid, &st, 0);
  double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("floor %ld %.6f %.0f %s\n", total, s, (double)total / s, name);
  return 0;
}
