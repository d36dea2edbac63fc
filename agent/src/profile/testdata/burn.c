/* A CPU-bound target for the profiler tests (compiled by them with
 * gcc -O1 -fno-omit-frame-pointer). One thread spends three quarters of its
 * CPU time in hot_loop and one quarter in warm_loop: the same loop, each run
 * until its share of a round of this thread's CPU time has passed.
 *
 * A round lasts 0.618… (the golden ratio's fraction) of a period of the
 * profiler's 99 Hz clock, so successive samples fall at phases of the round
 * spread as evenly as can be: the split they measure then carries far less
 * noise than independent samples would (rounds of a fixed iteration count
 * beat against the sampling clock and carry more).
 *
 * Given any argument, it first prints the runtime addresses of both
 * functions ("hot_loop 0x…"), for the symbolizer's test. */
#include <stdio.h>
#include <time.h>

#define CHUNK 400000UL

static double cpu_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* Spins until this thread has used `until` ms of CPU time (checking every CHUNK iterations). */
__attribute__((noinline, noipa)) unsigned long hot_loop(double until) {
  volatile unsigned long x = 0;
  while (cpu_ms() < until)
    for (unsigned long i = 0; i < CHUNK; i++) x += i;
  return x;
}

__attribute__((noinline, noipa)) unsigned long warm_loop(double until) {
  volatile unsigned long x = 0;
  while (cpu_ms() < until)
    for (unsigned long i = 0; i < CHUNK; i++) x += i;
  return x;
}

int main(int argc, char **argv) {
  (void)argv;
  if (argc > 1) {
    printf("hot_loop %p\nwarm_loop %p\n", (void *)hot_loop, (void *)warm_loop);
    fflush(stdout);
  }
  /* Rounds on a fixed grid of CPU time: a loop that overshoots its end by
   * part of a chunk takes it from the next one, so neither gains on average. */
  const double round_ms = 1000.0 / 99 * 0.6180339887;
  unsigned long sum = 0;
  for (double t = cpu_ms();; t += round_ms) {
    sum += hot_loop(t + 0.75 * round_ms);
    sum += warm_loop(t + round_ms);
  }
  return (int)sum;
}
