/* bench/uprobe target: for every line "N" on stdin, calls cheap() N times in a
 * tight loop and prints the mean nanoseconds per call. With "serve <port>" it
 * also listens on 127.0.0.1:<port> (so an agent can find it) and calls
 * cheap() every millisecond from a second thread. */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

__attribute__((noinline)) long cheap(long i) { return i * 2 + 1; }

static void *ticker(void *arg) {
  (void)arg;
  volatile long sink = 0;
  for (long i = 0;; i++) { sink += cheap(i); usleep(1000); }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc > 2 && strcmp(argv[1], "serve") == 0) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)atoi(argv[2]));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 4) != 0) return 1;
    pthread_t t;
    pthread_create(&t, NULL, ticker, NULL);
  }
  char line[64];
  volatile long sink = 0;
  while (fgets(line, sizeof line, stdin)) {
    long n = atol(line);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++) sink += cheap(i);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
    printf("%.1f\n", n ? ns / (double)n : 0.0);
    fflush(stdout);
  }
  return (int)(sink & 1);
}
