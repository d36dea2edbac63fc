/* A service whose work happens in short-lived children, for the profiler's
 * fork test (gcc -O1 -fno-omit-frame-pointer). The parent sleeps and forks
 * a child every 100 ms; each child spins in child_work for about 200 ms,
 * then exits. Children die with the parent (PR_SET_PDEATHSIG). */
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

__attribute__((noinline, noipa)) unsigned long child_work(double ms) {
  volatile unsigned long x = 0;
  double end = now_ms() + ms;
  while (now_ms() < end)
    for (int i = 0; i < 1000; i++) x += i;
  return x;
}

int main(void) {
  for (;;) {
    pid_t pid = fork();
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      child_work(200);
      _exit(0);
    }
    usleep(100 * 1000);
    while (waitpid(-1, 0, WNOHANG) > 0) {
    }
  }
}
