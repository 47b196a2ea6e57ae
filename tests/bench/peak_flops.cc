// peak_flops: measures this machine's fp32 AVX-512 FMA throughput, the
// denominator of the MFU figure that tests/bench/bench.py reports.
//
// Each thread is pinned to its own core and runs a loop of independent
// `vfmadd` chains on zmm registers. FMA latency is 4 cycles and a core retires
// up to 2 per cycle, so at least 8 independent accumulators are needed to keep
// the units busy; we use 16 (ample, and still well within the 32 zmm registers).
// One zmm FMA = 16 lanes x 2 FLOP = 32 FLOP.
//
//   g++ -O2 -mavx512f -mfma -pthread tests/bench/peak_flops.cc -o peak_flops
//   peak_flops [--threads N] [--seconds S]
//
// Prints one line on stdout:
//   PEAK {"threads":N,"gflops":..,"gflops_per_thread":[..],"seconds":..,"accumulators":16}
// Run it with nothing else busy: any competing process lowers the figure.
// Single-threaded per caller thread; not a library.
#include <immintrin.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr int kAcc = 16;
constexpr double kFlopPerFma = 32.0;  // 16 fp32 lanes x (mul + add)

// Runs `iters` iterations of kAcc independent FMAs; returns a value derived from
// every accumulator so the compiler cannot drop the work.
__attribute__((noinline)) float fma_kernel(long iters, float seed) {
  // a = a*m + c converges to c/(1-m) = 1: no overflow, no denormals.
  const __m512 m = _mm512_set1_ps(0.999f);
  const __m512 c = _mm512_set1_ps(0.001f);
  __m512 a[kAcc];
  for (int i = 0; i < kAcc; ++i) a[i] = _mm512_set1_ps(seed + 0.01f * i);
  for (long it = 0; it < iters; ++it) {
    // Unrolled by hand so every accumulator stays in a register.
    a[0] = _mm512_fmadd_ps(a[0], m, c);
    a[1] = _mm512_fmadd_ps(a[1], m, c);
    a[2] = _mm512_fmadd_ps(a[2], m, c);
    a[3] = _mm512_fmadd_ps(a[3], m, c);
    a[4] = _mm512_fmadd_ps(a[4], m, c);
    a[5] = _mm512_fmadd_ps(a[5], m, c);
    a[6] = _mm512_fmadd_ps(a[6], m, c);
    a[7] = _mm512_fmadd_ps(a[7], m, c);
    a[8] = _mm512_fmadd_ps(a[8], m, c);
    a[9] = _mm512_fmadd_ps(a[9], m, c);
    a[10] = _mm512_fmadd_ps(a[10], m, c);
    a[11] = _mm512_fmadd_ps(a[11], m, c);
    a[12] = _mm512_fmadd_ps(a[12], m, c);
    a[13] = _mm512_fmadd_ps(a[13], m, c);
    a[14] = _mm512_fmadd_ps(a[14], m, c);
    a[15] = _mm512_fmadd_ps(a[15], m, c);
  }
  __m512 s = a[0];
  for (int i = 1; i < kAcc; ++i) s = _mm512_add_ps(s, a[i]);
  return _mm512_reduce_add_ps(s);
}

void pin_to_core(int core) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(core, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);  // best effort
}

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 1;
  double seconds = 1.0;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--seconds") && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--threads N] [--seconds S]\n", argv[0]);
      return 2;
    }
  }
  if (threads < 1 || seconds <= 0) {
    std::fprintf(stderr, "peak_flops: --threads must be >= 1 and --seconds > 0\n");
    return 2;
  }
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  // Calibrate the iteration count on one thread (also warms the clock up).
  long iters = 1 << 20;
  for (;;) {
    const double t0 = now();
    volatile float sink = fma_kernel(iters, 1.0f);
    (void)sink;
    const double dt = now() - t0;
    if (dt > 0.1) {
      iters = static_cast<long>(iters * (seconds / dt));
      break;
    }
    iters *= 2;
  }

  // Each thread: best of 3 repetitions (drops preemption hiccups). All start
  // together so that the figure is concurrent throughput.
  std::vector<double> best(threads, 0.0);
  std::atomic<int> ready{0};
  std::vector<std::thread> pool;
  float total = 0;
  std::vector<float> sinks(threads, 0.f);
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      pin_to_core(t % cores);
      ready.fetch_add(1);
      while (ready.load() < threads) {
      }
      for (int rep = 0; rep < 3; ++rep) {
        const double t0 = now();
        sinks[t] += fma_kernel(iters, 1.0f + rep);
        const double dt = now() - t0;
        best[t] = std::max(best[t], iters * kAcc * kFlopPerFma / dt / 1e9);
      }
    });
  }
  for (auto& th : pool) th.join();
  double sum = 0;
  std::string per;
  for (int t = 0; t < threads; ++t) {
    sum += best[t];
    total += sinks[t];
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s%.1f", t ? "," : "", best[t]);
    per += buf;
  }
  std::printf(
      "PEAK {\"threads\":%d,\"gflops\":%.1f,\"gflops_per_thread\":[%s],\"seconds\":%.2f,"
      "\"accumulators\":%d,\"checksum\":%.3f}\n",
      threads, sum, per.c_str(), seconds, kAcc, total);
  return 0;
}
