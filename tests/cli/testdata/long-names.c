/* Target of first-hour.test.ts: listens on 127.0.0.1:<argv[1]> (accepting and
 * closing connections) and has functions whose names are longer than a
 * terminal line, as C++ and Rust programs have (Node's own binary used to be
 * the test's target; its functions are JavaScript ones now). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LONG_NAME(n) coral_long_name_of_a_function_that_does_not_fit_in_one_line_of_a_terminal_at_all_not_even_a_wide_one_number_##n

__attribute__((noinline, used)) int LONG_NAME(one)(int x) { return x + 1; }
__attribute__((noinline, used)) int LONG_NAME(two)(int x) { return x * 2; }
__attribute__((noinline, used)) int LONG_NAME(three)(int x) { return x - 3; }
__attribute__((noinline, used)) int coral_short(int x) { return x; }

int main(int argc, char **argv) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)atoi(argc > 1 ? argv[1] : "0"));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 16) != 0) return 2;
  for (;;) {
    int c = accept(s, 0, 0);
    if (c >= 0) close(c + LONG_NAME(one)(0) - 1 + LONG_NAME(two)(0) + LONG_NAME(three)(3) + coral_short(0));
  }
}
