// Names the rank when a worker dies of a fatal signal (SIGFPE, SIGSEGV,
// SIGBUS, SIGILL, SIGABRT). An exception becomes "rank R on HOST: <reason>" in
// train_main's catch, but a signal kills before any such line: mpirun then
// only reports "exited on signal 8" for some process. The handler writes the
// same kind of line (async-signal-safe: one prepared buffer, write(2)) and
// re-raises the signal with its default action, so the exit status and core
// dump are unchanged. Install from the main thread once the rank is known (again
// after MPI_Init, which installs handlers of its own).
#pragma once

#include <string>

namespace dpcnn {

void name_rank_on_fatal_signal(int rank, const std::string& host);

}  // namespace dpcnn
