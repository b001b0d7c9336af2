/* The floor for round trips: ping-pong of a small message between two
 * processes over a bare Unix socketpair, blocking read/write, no JSON, no
 * event loop. Nothing over a socketpair can do better.
 *
 *   ipc_floor [N]   prints "floor <N> <seconds> <round trips per second>"
 *
 * With IPC_PIN=1 the parent runs on CPU 0 and the child on CPU 1, so every
 * message crosses cores (otherwise the scheduler often keeps both on one).
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int exchange(int fd, char* buf, size_t len, int write_first) {
  if (write_first && write(fd, buf, len) != (ssize_t)len) return -1;
  size_t got = 0;
  while (got < len) {
    ssize_t n = read(fd, buf + got, len - got);
    if (n <= 0) return -1;
    got += (size_t)n;
  }
  if (!write_first && write(fd, buf, len) != (ssize_t)len) return -1;
  return 0;
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
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return perror("socketpair"), 1;
  char msg[] = "{\"seq\":12345}\n"; /* the size of a ping-pong message */
  size_t len = sizeof msg - 1;
  pid_t pid = fork();
  if (pid == 0) {
    pin(1);
    close(sv[0]);
    char buf[64];
    for (long i = 0; i < total; ++i)
      if (exchange(sv[1], buf, len, 0) != 0) _exit(1);
    _exit(0);
  }
  pin(0);
  close(sv[1]);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (long i = 0; i < total; ++i)
    if (exchange(sv[0], msg, len, 1) != 0) return fprintf(stderr, "ipc_floor: peer failed\n"), 1;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  int st;
  waitpid(pid, &st, 0);
  double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("floor %ld %.6f %.0f\n", total, s, (double)total / s);
  return 0;
}
