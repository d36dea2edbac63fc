/* A server whose work happens in child processes, for the process-set tests
 * (compiled by the tests with gcc -O0 -g -fno-inline). Listens on
 * 127.0.0.1:<port> (argv[1]); argv[2] picks the model:
 *   fork       a child per connection (the parent only accepts)
 *   pool N     N pre-forked workers sharing the listening socket
 *   plain      no children: the listening process serves (a stand-in for an
 *              unrelated process that runs the same binary)
 * Each connection sends one line:
 *   "N AMOUNT"  calls handle_request(AMOUNT) N times (each sleeps AMOUNT*100 us
 *               and returns AMOUNT*2); answers "ok <sum> <pid>"
 *   "burn MS"   spins on the CPU for MS milliseconds; answers "ok 0 <pid>"
 * Workers touch argv[4] MB (pool: argv[4], default 0) of memory so the set's
 * memory is visibly more than the parent's. Children die with the parent
 * (PR_SET_PDEATHSIG), so killing the parent ends the whole server. */
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

__attribute__((noinline)) int handle_request(int amount) {
  usleep((useconds_t)amount * 100);
  return amount * 2;
}

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void serve(int c) {
  char buf[64] = {0};
  ssize_t n = read(c, buf, sizeof buf - 1);
  int calls = 0, amount = 0, ms = 0;
  long sum = 0;
  if (n > 0 && sscanf(buf, "burn %d", &ms) == 1) {
    volatile unsigned long x = 0;
    double end = now_ms() + ms;
    while (now_ms() < end) x++;
  } else if (n > 0 && sscanf(buf, "%d %d", &calls, &amount) == 2) {
    for (int i = 0; i < calls; i++) sum += handle_request(amount);
  }
  char out[64];
  int len = snprintf(out, sizeof out, "ok %ld %d\n", sum, (int)getpid());
  if (write(c, out, (size_t)len) < 0) { /* caller went away */ }
  close(c);
}

static void touch_memory(int mb) {
  if (mb <= 0) return;
  char *p = malloc((size_t)mb << 20);
  if (p) memset(p, 1, (size_t)mb << 20);
}

static void die_with_parent(void) { prctl(PR_SET_PDEATHSIG, SIGKILL); }

static void worker_loop(int s, int mb) {
  touch_memory(mb);
  for (;;) {
    int c = accept(s, NULL, NULL);
    if (c >= 0) serve(c);
  }
}

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  signal(SIGCHLD, SIG_IGN); /* children are reaped by the kernel */
  int s = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {0};
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)atoi(argv[1]));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(s, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(s, 128) != 0) return 1;

  if (strcmp(argv[2], "pool") == 0) {
    int n = argc > 3 ? atoi(argv[3]) : 4;
    int mb = argc > 4 ? atoi(argv[4]) : 0;
    for (int i = 0; i < n; i++)
      if (fork() == 0) {
        die_with_parent();
        worker_loop(s, mb);
      }
    for (;;) pause(); /* the parent holds the socket and waits */
  }
  if (strcmp(argv[2], "fork") == 0) {
    for (;;) {
      int c = accept(s, NULL, NULL);
      if (c < 0) continue;
      if (fork() == 0) {
        die_with_parent();
        close(s);
        serve(c);
        _exit(0);
      }
      close(c);
    }
  }
  worker_loop(s, 0); /* plain */
}
