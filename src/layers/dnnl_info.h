// What oneDNN says about itself for `--version`: its version and commit and
// the instruction set its CPU kernels dispatch on this machine (the best the
// CPU offers unless ONEDNN_MAX_CPU_ISA lowers it). Callable from any thread;
// asking for the ISA fixes oneDNN's ISA choice for the process, so mains call
// it only for --version.
#pragma once

#include "core/version.h"

namespace dpcnn {

// {"oneDNN", "2.6.3 (commit ...), CPU ISA avx512_core_amx"}
VersionLine onednn_version_line();

}  // namespace dpcnn
