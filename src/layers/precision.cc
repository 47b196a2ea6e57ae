#include "layers/precision.h"

#include <oneapi/dnnl/dnnl.h>

#include <fstream>
#include <sstream>

#include "core/error.h"

namespace dpcnn {
namespace {

bool has_all(dnnl_cpu_isa_t isa, dnnl_cpu_isa_t want) {
  return (static_cast<unsigned>(isa) & static_cast<unsigned>(want)) == static_cast<unsigned>(want);
}

std::string isa_text(dnnl_cpu_isa_t isa) {
  if (has_all(isa, dnnl_cpu_isa_avx512_core_amx)) return "avx512_core_amx";
  if (has_all(isa, dnnl_cpu_isa_avx512_core_bf16)) return "avx512_core_bf16";
  if (has_all(isa, dnnl_cpu_isa_avx512_core_vnni)) return "avx512_core_vnni";
  if (has_all(isa, dnnl_cpu_isa_avx512_core)) return "avx512_core";
  if (has_all(isa, dnnl_cpu_isa_avx2_vnni)) return "avx2_vnni";
  if (has_all(isa, dnnl_cpu_isa_avx2)) return "avx2";
  if (has_all(isa, dnnl_cpu_isa_avx)) return "avx";
  if (has_all(isa, dnnl_cpu_isa_sse41)) return "sse41";
  return "unknown";
}

// The "flags" line of the first processor in /proc/cpuinfo, space-padded.
std::string cpu_flags() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  std::string out = " ";
  while (std::getline(in, line))
    if (line.rfind("flags", 0) == 0) {
      out.append(line, line.find(':') + 1, std::string::npos);
      break;
    }
  out += ' ';
  return out;
}

}  // namespace

const char* precision_name(Precision p) { return p == Precision::kBf16 ? "bf16" : "fp32"; }

CpuBf16Support detect_cpu_bf16() {
  CpuBf16Support s;
  const dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
  s.isa = isa_text(isa);
  s.isa_bf16 = has_all(isa, dnnl_cpu_isa_avx512_core_bf16);
  s.isa_amx = has_all(isa, dnnl_cpu_isa_avx512_core_amx);
  const std::string flags = cpu_flags();
  s.cpu_avx512_bf16 = flags.find(" avx512_bf16 ") != std::string::npos;
  s.cpu_amx_bf16 = flags.find(" amx_bf16 ") != std::string::npos;
  return s;
}

PrecisionChoice choose_precision(const std::string& requested, const CpuBf16Support& cpu,
                                 const std::string& what) {
  // oneDNN's ISA is what its kernels will use (an emulated lesser CPU included);
  // the flags say the hardware agrees.
  const bool native = cpu.isa_bf16 && (cpu.cpu_avx512_bf16 || cpu.cpu_amx_bf16);
  const bool amx = native && cpu.isa_amx && cpu.cpu_amx_bf16;
  if (requested == "fp32") return {Precision::kFp32, "requested"};
  if (requested == "bf16") {
    if (!native)
      throw InputError(what + " bf16: this CPU has no native bf16 arithmetic (oneDNN ISA " +
                       cpu.isa + "; needs avx512_bf16 or amx_bf16): use fp32 or auto");
    return {Precision::kBf16, std::string("requested; oneDNN ISA ") + cpu.isa};
  }
  if (requested != "auto")
    throw InputError(what + " must be fp32, bf16 or auto, got '" + requested + "'");
  if (amx) return {Precision::kBf16, "auto: AMX bf16 tiles (oneDNN ISA " + cpu.isa + ")"};
  if (native)
    return {Precision::kBf16, "auto: avx512_bf16 without AMX (oneDNN ISA " + cpu.isa +
                                  "), measured faster than fp32 here too"};
  return {Precision::kFp32, "auto: no native bf16 on this CPU (oneDNN ISA " + cpu.isa + ")"};
}

}  // namespace dpcnn
