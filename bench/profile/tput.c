/* Throughput target of bench/profile: does units of fixed CPU work for
 * argv[1] seconds of wall time and prints how many it did and the CPU time
 * they took; with argv[2],
 * it first works that many seconds uncounted (a warm-up, during which a
 * long-lived profiler attaches). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

__attribute__((noinline)) static void unit(void) {
  volatile unsigned long x = 0;
  for (unsigned long i = 0; i < 100000UL; i++) x += i;
}

int main(int argc, char **argv) {
  double secs = argc > 1 ? atof(argv[1]) : 3;
  double warmup = argc > 2 ? atof(argv[2]) : 0;
  struct timespec s, n;
  clock_gettime(CLOCK_MONOTONIC, &s);
  if (warmup > 0) {
    for (unsigned long w = 1;; w++) {
      unit();
      if ((w & 15) == 0) {
        clock_gettime(CLOCK_MONOTONIC, &n);
        if ((double)(n.tv_sec - s.tv_sec) + (n.tv_nsec - s.tv_nsec) / 1e9 >= warmup) break;
      }
    }
    s = n;
  }
  struct timespec c0, c1;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
  unsigned long units = 0;
  for (;;) {
    unit();
    units++;
    if ((units & 15) == 0) {
      clock_gettime(CLOCK_MONOTONIC, &n);
      if ((double)(n.tv_sec - s.tv_sec) + (n.tv_nsec - s.tv_nsec) / 1e9 >= secs) break;
    }
  }
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
  /* Units, and the CPU seconds they took: under other load the wall-clock count
   * varies with the CPU the program gets; units per CPU second do not. */
  printf("%lu %.6f\n", units, (double)(c1.tv_sec - c0.tv_sec) + (c1.tv_nsec - c0.tv_nsec) / 1e9);
  return 0;
}
