/* Target for the profiling tests, compiled by them with gcc -O1
 * -fno-omit-frame-pointer: listens on 127.0.0.1:<argv[1]> (so an agent finds
 * it; connections are accepted and closed) and spends its CPU in two
 * functions, three quarters in parse_request and one quarter in
 * render_page, by CPU time (each runs until its share of a short round of
 * this thread's CPU time has passed), both called from serve. */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double cpu_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

__attribute__((noinline, noipa)) double parse_request(double until) {
  volatile unsigned long x = 0;
  double now;
  while ((now = cpu_ms()) < until)
    for (unsigned long i = 0; i < 100000UL; i++) x += i;
  return now;
}

__attribute__((noinline, noipa)) double render_page(double until) {
  volatile unsigned long x = 0;
  double now;
  while ((now = cpu_ms()) < until)
    for (unsigned long i = 0; i < 100000UL; i++) x += i;
  return now;
}

__attribute__((noinline, noipa)) void serve(void) {
  /* 0.618 of a 99 Hz period: samples fall at evenly spread phases of a round. */
  const double round_ms = 1000.0 / 99 * 0.6180339887;
  double t = cpu_ms();
  for (;;) {
    t = parse_request(t + 0.75 * round_ms);
    t = render_page(t + 0.25 * round_ms);
  }
}

static void *accept_loop(void *arg) {
  int fd = *(int *)arg;
  for (;;) {
    int c = accept(fd, NULL, NULL);
    if (c >= 0) close(c);
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)atoi(argv[1]));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 64) != 0) return 1;
  pthread_t t;
  pthread_create(&t, NULL, accept_loop, &fd);
  serve();
  return 0;
}
