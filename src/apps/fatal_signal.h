// Names the rank when a worker dies of a fatal signal (SIGFPE, SIGSEGV,
// SIGBUS, SIGILL, SIGABRT). An exception becomes "rank R on HOST: <reason>" in
// train_main's catch, but a signal kills before any such line: mpirun then
// only reports "exited on signal 8" for some process. The handler writes the
// same kind of line (async-signal-safe: one prepared buffer, write(2)) and
// re-raises the signal with its default action, so the exit status and core
// dump are unchanged. Install from the main thread once the rank is known (again
// after MPI_Init, which installs handlers of its own).
#pragma once

#include <csignal>
#include <string>

namespace dpcnn {

void name_rank_on_fatal_signal(int rank, const std::string& host);

// SIGTERM (scancel, a preempting scheduler, mpirun passing on a Ctrl-C) sets
// the returned flag instead of killing: the Trainer then stops at the next
// step boundary with a final checkpoint, which --resume auto continues. A
// second SIGTERM has the default action (the signal's sender escalates to
// SIGKILL anyway: Slurm after KillWait, mpirun after odls_base_sigkill_timeout).
const volatile std::sig_atomic_t* stop_on_sigterm();

}  // namespace dpcnn
