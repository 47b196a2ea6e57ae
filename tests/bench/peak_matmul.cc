// peak_matmul: the bf16 (and fp32) matmul throughput oneDNN reaches on this
// machine, the denominator of the bf16 MFU figures in tests/bench/bench.py
// (the fp32 ones use peak_flops.cc's FMA loop). A large square matmul is as
// close to the hardware's peak as oneDNN gets: AMX tiles where present,
// AVX512_BF16 dot products (vdpbf16ps) otherwise.
//
//   g++ -O2 -fopenmp tests/bench/peak_matmul.cc -ldnnl -o peak_matmul
//   peak_matmul [--threads N] [--seconds S] [--type bf16|f32] [--size M]
//
// Prints one line: PEAK_MATMUL {"type":..,"threads":N,"gflops":..,"size":M,"isa":..}
// Single-threaded caller; oneDNN's OpenMP threads do the work.
#include <omp.h>
#include <oneapi/dnnl/dnnl.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

int main(int argc, char** argv) {
  int threads = 1, size = 2048;
  double seconds = 1.0;
  std::string type = "bf16";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--seconds")) seconds = std::atof(argv[i + 1]);
    if (!std::strcmp(argv[i], "--type")) type = argv[i + 1];
    if (!std::strcmp(argv[i], "--size")) size = std::atoi(argv[i + 1]);
  }
  omp_set_num_threads(threads);
  using namespace dnnl;
  engine eng(engine::kind::cpu, 0);
  stream s(eng);
  const auto dt = type == "bf16" ? memory::data_type::bf16 : memory::data_type::f32;
  const memory::dim m = size;
  const memory::desc a({m, m}, dt, memory::format_tag::ab), b({m, m}, dt, memory::format_tag::any),
      c({m, m}, memory::data_type::f32, memory::format_tag::ab);
  const matmul::primitive_desc pd(matmul::desc(a, b, c), eng);
  memory ma(a, eng), mb(pd.weights_desc(), eng), mc(c, eng);
  std::memset(ma.get_data_handle(), 0, a.get_size());
  std::memset(mb.get_data_handle(), 0, pd.weights_desc().get_size());
  matmul mm(pd);
  auto run = [&] {
    mm.execute(s, {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}});
  };
  run();  // warm-up (JIT, first touch)
  s.wait();
  long n = 0;
  const auto t0 = std::chrono::steady_clock::now();
  double el = 0;
  while (el < seconds) {
    run();
    s.wait();
    ++n;
    el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  const double gflops = 2.0 * m * m * m * n / el / 1e9;
  std::printf(
      "PEAK_MATMUL {\"type\":\"%s\",\"threads\":%d,\"gflops\":%.1f,\"size\":%d,\"impl\":\"%s\"}\n",
      type.c_str(), threads, gflops, size, pd.impl_info_str());
  return 0;
}
