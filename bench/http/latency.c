/* An open-loop HTTP/1.1 load generator: requests are due at a fixed rate,
 * whatever the server does, and each one's latency runs from the moment it
 * was due (not the moment it could be sent), so a server that stalls is
 * charged for every request that queued behind the stall. wrk is closed-loop:
 * its 100 connections wait for their answers, so a faster server is offered
 * more load and its p99 is measured at a different point; at a fixed rate
 * every server is offered the same load, and the latencies compare. (wrk2
 * does this, but Debian does not ship it.)
 *
 *   latency <port> <requests/s> <seconds> [connections]   (default 100)
 *
 * Keep-alive, one request in flight per connection; a due request goes to the
 * connection idle the longest (so every connection carries its share, as
 * with wrk's, and each server worker gets the connections the kernel gave
 * it), or waits for one. A connection the server closes while idle (its
 * keep-alive timeout) is opened again; one closed with a request in flight
 * counts as an error. The first second is a warm-up and is not counted.
 * Prints one line:
 *   "rate <offered> <achieved> p50 <ms> p90 <ms> p99 <ms> p999 <ms> max <ms> errors <n> reopened <n>"
 * and exits 1 if the server fell behind (more than a second's requests
 * waiting, or fewer than 98% of the offered rate answered): the rate is above
 * what it can do, and the percentiles would measure the queue.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

static const char request[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

struct conn {
  int fd;
  int busy;        /* a request is in flight */
  int64_t due;     /* when that request was due (ns) */
  size_t have;     /* bytes of the response read so far */
  char buf[4096];
};

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int connect_to(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr*)&a, sizeof a) != 0) {
    perror("latency: connect");
    exit(2);
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

/* The length of a whole response at the start of buf, 0 if it is not all
 * there yet, -1 if it is not one we understand (no Content-Length). */
static long response_length(const char* buf, size_t len) {
  const char* end = memmem(buf, len, "\r\n\r\n", 4);
  if (!end) return len >= 4096 ? -1 : 0;
  size_t head = (size_t)(end - buf) + 4;
  for (const char* p = buf; p < end; ++p) {
    if ((p == buf || p[-1] == '\n') && strncasecmp(p, "content-length:", 15) == 0) {
      long body = strtol(p + 15, NULL, 10);
      return head + (size_t)body <= len ? (long)(head + (size_t)body) : 0;
    }
  }
  return -1;
}

static int cmp(const void* a, const void* b) {
  int64_t x = *(const int64_t*)a, y = *(const int64_t*)b;
  return (x > y) - (x < y);
}

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: latency <port> <requests/s> <seconds> [connections]\n");
    return 2;
  }
  int port = atoi(argv[1]);
  double rate = atof(argv[2]);
  double seconds = atof(argv[3]);
  int nconn = argc > 4 ? atoi(argv[4]) : 100;
  signal(SIGPIPE, SIG_IGN);
  if (port <= 0 || rate <= 0 || seconds <= 0 || nconn <= 0) return fprintf(stderr, "latency: bad arguments\n"), 2;

  int ep = epoll_create1(0);
  struct conn* conns = calloc((size_t)nconn, sizeof *conns);
  int* idle = malloc(sizeof(int) * (size_t)nconn); /* a ring of idle connections, oldest first */
  int nidle = 0, idle_head = 0;
#define PUSH_IDLE(i) (idle[(idle_head + nidle++) % nconn] = (i))
#define POP_IDLE() (--nidle, idle[idle_head++ % nconn])
  for (int i = 0; i < nconn; ++i) {
    conns[i].fd = connect_to(port);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
    PUSH_IDLE(i);
  }
  int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
  struct epoll_event tev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
  epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &tev);

  const double interval = 1e9 / rate;
  const int64_t start = now_ns() + 1000000, warm = start + 1000000000;
  const long total = (long)(rate * (seconds + 1)); /* one warm-up second */
  int64_t* lat = malloc(sizeof(int64_t) * (size_t)total);
  long sent = 0, done = 0, counted = 0, errors = 0, reopened = 0;
  int64_t first_counted = 0, last_done = 0;

  while (done < total) {
    int64_t now = now_ns();
    /* Send every request that is due, while a connection is idle. */
    while (sent < total && nidle > 0) {
      int64_t due = start + (int64_t)((double)sent * interval);
      if (due > now) break;
      struct conn* c = &conns[POP_IDLE()];
      c->busy = 1, c->due = due, c->have = 0;
      if (write(c->fd, request, sizeof request - 1) != (ssize_t)(sizeof request - 1)) {
        /* Closed by the server while idle, and not yet seen: open it again. */
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = connect_to(port);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)(c - conns)};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
        ++reopened;
        if (write(c->fd, request, sizeof request - 1) != (ssize_t)(sizeof request - 1)) {
          perror("latency: write");
          return 2;
        }
      }
      ++sent;
    }
    if (sent < total) {
      int64_t due = start + (int64_t)((double)sent * interval);
      if (now - due > 1000000000) {
        fprintf(stderr, "latency: the server is more than a second behind at %.0f requests/s\n", rate);
        return 1;
      }
      /* Wake when the next one is due (if a connection is idle to take it). */
      if (nidle > 0) {
        struct itimerspec its = {.it_value = {.tv_sec = due / 1000000000, .tv_nsec = due % 1000000000}};
        timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
      }
    }
    struct epoll_event evs[256];
    int n = epoll_wait(ep, evs, 256, 2000);
    if (n == 0) {
      fprintf(stderr, "latency: no answer for 2 s\n");
      return 2;
    }
    for (int i = 0; i < n; ++i) {
      if (evs[i].data.u32 == UINT32_MAX) {
        uint64_t ticks;
        if (read(tfd, &ticks, sizeof ticks) < 0 && errno != EAGAIN) perror("latency: timerfd");
        continue;
      }
      int ci = (int)evs[i].data.u32;
      struct conn* c = &conns[ci];
      ssize_t r = read(c->fd, c->buf + c->have, sizeof c->buf - c->have);
      if (r < 0 && errno == EAGAIN) continue;
      if (r <= 0) {
        /* Closed (or reset): open it again. An idle one is the server's
         * keep-alive timeout; one with a request in flight lost it. */
        close(c->fd);
        c->fd = connect_to(port);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)ci};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
        ++reopened;
        if (c->busy) {
          ++errors, ++done, c->busy = 0;
          PUSH_IDLE(ci);
        }
        continue;
      }
      c->have += (size_t)r;
      long len = response_length(c->buf, c->have);
      if (len == 0) continue;
      if (len < 0 || (size_t)len != c->have || !c->busy) {
        fprintf(stderr, "latency: a response this tool does not understand\n");
        return 2;
      }
      int64_t t = now_ns();
      if (memcmp(c->buf, "HTTP/1.1 200", 12) != 0) ++errors;
      if (c->due >= warm) {
        if (counted == 0) first_counted = c->due;
        lat[counted++] = t - c->due;
      }
      last_done = t;
      c->busy = 0;
      PUSH_IDLE(ci);
      ++done;
    }
  }
  qsort(lat, (size_t)counted, sizeof *lat, cmp);
#define PCT(p) ((double)lat[(long)((double)(counted - 1) * (p))] / 1e6)
  double achieved = (double)counted / ((double)(last_done - first_counted) / 1e9);
  printf("rate %.0f %.0f p50 %.3f p90 %.3f p99 %.3f p999 %.3f max %.3f errors %ld reopened %ld\n", rate, achieved,
         PCT(0.5), PCT(0.9), PCT(0.99), PCT(0.999), PCT(1.0), errors, reopened);
  if (achieved < 0.98 * rate) {
    fprintf(stderr, "latency: the server fell behind: %.0f of %.0f requests/s answered\n", achieved, rate);
    return 1;
  }
  return 0;
}
