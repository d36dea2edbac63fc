/* Target of inline.test.ts (gcc -O2 -g -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer: spin is a leaf once mix is inlined): nearly all
 * of its CPU is spent in mix, which is always inlined into spin, so only the
 * DWARF knows it is there. */
static inline __attribute__((always_inline)) unsigned long mix(unsigned long x) {
  for (int j = 0; j < 1000; j++) x = x * 6364136223846793005UL + 1442695040888963407UL;
  return x;
}

__attribute__((noinline)) unsigned long spin(unsigned long x) {
  return mix(x) ^ (x >> 3);
}

int main(void) {
  volatile unsigned long s = 0;
  for (;;) s = spin(s + 1);
}
