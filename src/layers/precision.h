// Precision: which number format the network computes in (fp32, or bf16 mixed
// precision), and the choice behind train.precision / --precision "auto".
//
// bf16 mixed precision keeps fp32 master weights, optimizer state, loss and
// gradients (the flat buffers stay fp32); only the copies a primitive reads
// (weights, activations, their gradients between layers) are bf16. bf16 has
// fp32's 8-bit exponent, so gradients do not underflow where fp32's would not:
// no loss scaling (unlike fp16). Which layers compute in bf16 is Model's rule
// (model.cc: plan_precision).
//
// choose_precision() reads oneDNN's effective ISA (which DNNL_MAX_CPU_ISA /
// ONEDNN_MAX_CPU_ISA can lower, to emulate a lesser CPU) and /proc/cpuinfo.
// Asking oneDNN for its ISA fixes it for the process: call it once at start,
// from the main thread, before any primitive is made.
#pragma once

#include <string>

namespace dpcnn {

enum class Precision { kFp32, kBf16 };

const char* precision_name(Precision p);

// What this CPU can do for bf16, as oneDNN will dispatch it.
struct CpuBf16Support {
  std::string isa;        // oneDNN's effective ISA, e.g. "avx512_core_bf16"
  bool isa_bf16 = false;  // that ISA computes bf16 natively (AVX512_BF16 or AMX)
  bool isa_amx = false;   // ... with AMX tiles
  bool cpu_avx512_bf16 = false, cpu_amx_bf16 = false;  // /proc/cpuinfo flags
};
CpuBf16Support detect_cpu_bf16();

struct PrecisionChoice {
  Precision precision = Precision::kFp32;
  std::string why;  // one phrase: "auto: ..." or "requested"
};

// `requested` is "fp32", "bf16" or "auto"; `what` names the setting in errors
// ("train.precision", "--precision"). auto picks bf16 wherever the CPU
// computes it natively: with AMX, and with AVX512_BF16 alone (AMD Zen 4),
// where the seed model was measured 1.5-2x faster in bf16 than in fp32
// (README, "Precision"); fp32 elsewhere.
// bf16 on a CPU without native bf16 throws InputError (one line): oneDNN would
// otherwise run a slow emulation or refuse primitive by primitive.
PrecisionChoice choose_precision(const std::string& requested, const CpuBf16Support& cpu,
                                 const std::string& what);

}  // namespace dpcnn
