// MPI implementation of comm/communicator.h, on MPI_COMM_WORLD. Only the
// worker's main (and the MPI tests) include this: it creates one MpiContext
// before anything else and one communicator from it, and hands the training
// code a Communicator&. MPI is initialised MPI_THREAD_FUNNELED: call MPI (this
// class included) from the main thread only; oneDNN's OpenMP threads never do.
// Errors keep MPI's default MPI_ERRORS_ARE_FATAL, so a failed or lost peer ends
// the job (the launcher restarts it) instead of leaving it hung.
#pragma once

#include <memory>
#include <string>

#include "comm/communicator.h"

namespace dpcnn {

// RAII for MPI_Init_thread(FUNNELED) / MPI_Finalize. Exactly one per process,
// created before and destroyed after every Communicator made from it. Throws
// dpcnn::Error if MPI is already initialised or cannot give FUNNELED.
class MpiContext {
 public:
  MpiContext(int* argc, char*** argv);
  ~MpiContext();
  MpiContext(const MpiContext&) = delete;
  MpiContext& operator=(const MpiContext&) = delete;

  // True if this process was started by mpirun/mpiexec/srun (a process manager
  // set its environment). Lets a main choose between MPI and one-rank mode
  // without initialising MPI; needs no MpiContext.
  static bool launched_by_mpirun();

  // The MPI library's own description for --version (MPI_Get_library_version,
  // which needs no MPI_Init), e.g. "Open MPI v4.1.4".
  static std::string library_version();
};

// A Communicator on MPI_COMM_WORLD. Needs a live MpiContext; throws
// dpcnn::Error otherwise. Collective: every rank must call it.
std::unique_ptr<Communicator> make_mpi_communicator();

}  // namespace dpcnn
