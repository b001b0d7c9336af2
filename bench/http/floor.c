/* The floor: the least an HTTP/1.1 server can do on this kernel. N processes,
 * each with its own SO_REUSEPORT socket and an edge-triggered epoll loop; a
 * request is "everything up to a blank line" (no parsing beyond that); each
 * gets one canned response; pipelined requests in one read get one write.
 * "Connection: close" in a request closes after its response.
 * It uses every trick Corral's server does: TCP_NODELAY set once on the
 * listening socket (accepted sockets inherit it), TCP_DEFER_ACCEPT (the
 * kernel hands over a connection with its request), and a read right after
 * accept, so a connection answered and closed at once never enters epoll.
 *
 *   floor <port> <processes>
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static const char keep[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nHello World";
static const char closing[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nConnection: close\r\n\r\nHello World";

static char in[65536], out[65536 * 2];

/* Reads what is there, answers each complete request, closes if asked.
 * Returns 0 once fd is closed. */
static int handle(int fd) {
  for (;;) {
    ssize_t r = read(fd, in, sizeof in);
    if (r <= 0) {
      if (r == 0 || errno != EAGAIN) return close(fd), 0;
      return 1;
    }
    size_t o = 0;
    int close_after = 0;
    for (char* p = in; (p = memmem(p, in + r - p, "\r\n\r\n", 4)); p += 4) {
      if (memmem(in, p - in, "Connection: close", 17) || memmem(in, p - in, "connection: close", 17)) {
        memcpy(out + o, closing, sizeof closing - 1), o += sizeof closing - 1, close_after = 1;
        break;
      }
      memcpy(out + o, keep, sizeof keep - 1), o += sizeof keep - 1;
    }
    if (o && write(fd, out, o) < 0) close_after = 1;
    if (close_after) return close(fd), 0;
    if (r < (ssize_t)sizeof in) return 1;
  }
}

static void serve(int port) {
  int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
  setsockopt(l, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(l, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(l, IPPROTO_TCP, TCP_DEFER_ACCEPT, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY)};
  if (bind(l, (struct sockaddr*)&a, sizeof a) || listen(l, 4096)) { perror("bind"); exit(1); }
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = l}, evs[256];
  epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == l) {
        int c;
        while ((c = accept4(l, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          if (!handle(c)) continue; /* the request was there: answered and closed */
          struct epoll_event ce = {.events = EPOLLIN | EPOLLET, .data.fd = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
          handle(c); /* (edge-triggered: what came between the read and the add) */
        }
        continue;
      }
      handle(fd);
    }
  }
}

int main(int argc, char** argv) {
  int port = argc > 1 ? atoi(argv[1]) : 8080, procs = argc > 2 ? atoi(argv[2]) : 2;
  for (int i = 0; i < procs; i++)
    if (fork() == 0) { serve(port); return 0; }
  while (wait(NULL) > 0) {}
  return 0;
}
