#include "layers/dnnl_info.h"

#include <oneapi/dnnl/dnnl.h>

namespace dpcnn {
namespace {

const char* isa_name(dnnl_cpu_isa_t isa) {
  switch (isa) {
    case dnnl_cpu_isa_sse41:
      return "sse41";
    case dnnl_cpu_isa_avx:
      return "avx";
    case dnnl_cpu_isa_avx2:
      return "avx2";
    case dnnl_cpu_isa_avx512_mic:
      return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops:
      return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core:
      return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni:
      return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16:
      return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx:
      return "avx512_core_amx";
    case dnnl_cpu_isa_avx2_vnni:
      return "avx2_vnni";
    case dnnl_cpu_isa_all:
      return "all";
  }
  return "unknown";
}

}  // namespace

VersionLine onednn_version_line() {
  const dnnl_version_t* v = dnnl_version();
  std::string text =
      std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
  if (v->hash && *v->hash && std::string(v->hash) != "N/A")
    text += std::string(" (commit ") + v->hash + ")";
  text += std::string(", CPU ISA ") + isa_name(dnnl_get_effective_cpu_isa());
  return {"oneDNN", text};
}

}  // namespace dpcnn
