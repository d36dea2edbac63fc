/* Target for the live-debugging tests: compiled by the tests with
 * gcc -O0 -g -fno-inline. Calls validate_card(amount) forever with amounts
 * 10, 20, 30, 40, 50 in turn; each call sleeps amount*100 us (1..5 ms) and
 * returns amount*2. After each round it calls nest(4), which recurses down to
 * nest(0), sleeping 200 us per level. Prints nothing. */
#include <unistd.h>

__attribute__((noinline)) int validate_card(int amount) {
  usleep((useconds_t)amount * 100);
  return amount * 2;
}

/* nest(n) returns n*(n+1)/2, so a return value names the depth it closes. */
__attribute__((noinline)) int nest(int n) {
  usleep(200);
  return n == 0 ? 0 : nest(n - 1) + n;
}

__attribute__((noinline)) int unused_helper(int x) { return x + 1; }

int main(void) {
  volatile int sink = 0;
  for (;;) {
    for (int a = 1; a <= 5; a++) sink += validate_card(a * 10);
    sink += nest(4);
  }
  return sink;
}
