/* Target for the live-debugging integration tests, compiled by the tests with
 * gcc -O0 -g -fno-inline. Listens on 127.0.0.1:<port> (argv[1]) so an agent
 * can find it. Each connection sends "N AMOUNT\n"; the program calls
 * validate_card(AMOUNT) N times (each sleeps AMOUNT*100 us and returns
 * AMOUNT*2) and answers "ok <sum>\n". With "loop" as argv[2] a second thread
 * also calls validate_card(10..50) forever, so sessions always see calls. */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

__attribute__((noinline)) int validate_card(int amount) {
  usleep((useconds_t)amount * 100);
  return amount * 2;
}

__attribute__((noinline)) int never_called(int x) { return x + 1; }

static void *loop(void *arg) {
  (void)arg;
  volatile int sink = 0;
  for (;;)
    for (int a = 1; a <= 5; a++) sink += validate_card(a * 10);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  int s = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {0};
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)atoi(argv[1]));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(s, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(s, 16) != 0) return 1;
  if (argc > 2 && strcmp(argv[2], "loop") == 0) {
    pthread_t t;
    pthread_create(&t, NULL, loop, NULL);
  }
  for (;;) {
    int c = accept(s, NULL, NULL);
    if (c < 0) continue;
    char buf[64] = {0};
    ssize_t n = read(c, buf, sizeof buf - 1);
    int calls = 0, amount = 0;
    if (n > 0 && sscanf(buf, "%d %d", &calls, &amount) == 2) {
      long sum = 0;
      for (int i = 0; i < calls; i++) sum += validate_card(amount);
      char out[64];
      int len = snprintf(out, sizeof out, "ok %ld\n", sum);
      if (write(c, out, (size_t)len) < 0) { /* caller went away */ }
    }
    close(c);
  }
}
