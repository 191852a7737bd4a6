/*
 * FMA peak microbenchmark for `npm run bench` (scripts/bench.mjs compiles it at run time with
 * `gcc -O3 -march=native -pthread`; -march=native is fine for a microbenchmark, never for the
 * product).
 *
 * Each thread runs NCHAINS independent chains of fused multiply-adds on full-width vectors
 * (AVX-512 if the compiler targets it, else AVX2+FMA), so the FMA pipes never wait on a result's
 * latency. FLOP = 2 per lane per FMA. Prints one line, "RESULT " and JSON:
 *   RESULT {"isa":"avx2","threads":2,"gflops":...,"seconds":...}
 *
 * usage: fma THREADS [SECONDS]   (default 1 thread, ~SECONDS = 0.5 s per timed run; best of 3 runs)
 */
#define _GNU_SOURCE
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define NCHAINS 14

#if defined(__AVX512F__)
typedef __m512 vec;
#define ISA "avx512"
#define LANES 16
#define VSET1 _mm512_set1_ps
#define VFMA _mm512_fmadd_ps
#define VADD _mm512_add_ps
#define VSUM(x) _mm512_reduce_add_ps(x)
#elif defined(__AVX2__) && defined(__FMA__)
typedef __m256 vec;
#define ISA "avx2"
#define LANES 8
#define VSET1 _mm256_set1_ps
#define VFMA _mm256_fmadd_ps
#define VADD _mm256_add_ps
static float VSUM(__m256 x) {
  float t[8];
  _mm256_storeu_ps(t, x);
  return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}
#else
#error "needs AVX2+FMA or AVX-512"
#endif

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct {
  long iters;   /* outer iterations; each does NCHAINS FMAs */
  float seed;   /* runtime value so the compiler cannot fold the loop */
  float result; /* written back so the chains are live */
} job;

static void *work(void *arg) {
  job *j = (job *)arg;
  vec acc[NCHAINS];
  for (int c = 0; c < NCHAINS; c++) acc[c] = VSET1(j->seed + (float)c * 1e-3f);
  /* a·x + b with a ≈ 1 keeps values finite over billions of steps (no denormals, no infinities) */
  const vec a = VSET1(0.999999f), b = VSET1(1e-7f);
  for (long i = 0; i < j->iters; i++) {
#pragma GCC unroll 16
    for (int c = 0; c < NCHAINS; c++) acc[c] = VFMA(acc[c], a, b);
  }
  vec s = acc[0];
  for (int c = 1; c < NCHAINS; c++) s = VADD(s, acc[c]);
  j->result = VSUM(s);
  return NULL;
}

/* run `threads` threads of `iters` each; return wall seconds */
static double run(int threads, long iters, float *sink) {
  pthread_t tid[256];
  job jobs[256];
  double t0 = now();
  for (int t = 0; t < threads; t++) {
    jobs[t].iters = iters;
    jobs[t].seed = 1.0f + t;
    pthread_create(&tid[t], NULL, work, &jobs[t]);
  }
  for (int t = 0; t < threads; t++) {
    pthread_join(tid[t], NULL);
    *sink += jobs[t].result;
  }
  return now() - t0;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 1;
  double target = argc > 2 ? atof(argv[2]) : 0.5;
  if (threads < 1 || threads > 256) threads = 1;
  float sink = 0;
  /* calibrate: grow the iteration count until one run takes ≥ 50 ms (also warms the clocks up) */
  long iters = 1 << 16;
  double dt;
  while ((dt = run(threads, iters, &sink)) < 0.05) iters *= 2;
  iters = (long)(iters * (target / dt));
  if (iters < 1) iters = 1;
  double best = 1e30;
  for (int r = 0; r < 3; r++) {
    dt = run(threads, iters, &sink);
    if (dt < best) best = dt;
  }
  double flop = 2.0 * LANES * NCHAINS * (double)iters * threads;
  printf("RESULT {\"isa\":\"%s\",\"threads\":%d,\"chains\":%d,\"gflops\":%.2f,\"seconds\":%.4f,\"sink\":%g}\n",
         ISA, threads, NCHAINS, flop / best * 1e-9, best, (double)sink);
  return 0;
}
