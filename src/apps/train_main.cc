// dpcnn-train: one training worker. Started alone it trains in one process;
// started by mpirun it is one rank of a data-parallel job. The only file of the
// worker that knows about MPI. Parses arguments, loads the config and data,
// runs the Trainer, and maps every failure to one line and a non-zero exit.
#include <omp.h>
#include <sched.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <thread>

#include "comm/mpi_communicator.h"
#include "config/config.h"
#include "core/error.h"
#include "data/dataset.h"
#include "report/reporter.h"
#include "train/load_data.h"
#include "train/trainer.h"

namespace {

// distributed.threads_per_rank, by default this host's cores shared evenly by
// the ranks on it, but never more than the cores this rank may run on (mpirun
// binds each rank to one core for np <= 2 unless told --bind-to none).
int choose_threads(const dpcnn::Config& cfg, const dpcnn::Communicator& comm) {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  cpu_set_t set;
  const int allowed = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : cores;
  int threads = cfg.distributed.threads_per_rank;
  if (threads <= 0) return std::max(1, std::min(allowed, cores / std::max(1, comm.local_size())));
  if (allowed < threads && comm.rank() == 0)
    std::fprintf(stderr,
                 "warning: %d threads per rank but this rank may only run on %d core(s); "
                 "pass mpirun --bind-to none (or --map-by slot:PE=%d)\n",
                 threads, allowed, threads);
  return threads;
}

void save_raw(const std::string& path, dpcnn::Model& m) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw dpcnn::Error(dpcnn::errno_message("cannot write '" + path + "'"));
  const size_t n = m.param_count();
  const bool ok = std::fwrite(m.params(), sizeof(float), n, f) == n;
  if (std::fclose(f) != 0 || !ok)
    throw dpcnn::Error(dpcnn::errno_message("cannot write '" + path + "'"));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dpcnn-train: train a CNN from a YAML experiment (alone or under mpirun)"};
  std::string config_path;
  std::vector<std::string> overrides;
  app.add_option("--config", config_path, "experiment YAML file")->required();
  app.add_option("--set", overrides, "override a config key, e.g. --set train.epochs=1");
  std::string save_params;
  app.add_option("--save-params", save_params,
                 "write the final parameters (raw float32, plain layout) to this file (rank 0)");
  bool evaluate_only = false;
  app.add_flag("--evaluate-only", evaluate_only,
               "evaluate the initial (or --resume'd) model on the test set and exit");
  dpcnn::TrainerOptions opts;
  app.add_option("--resume", opts.resume,
                 "continue from a checkpoint: 'auto' (the run's newest valid one, if any) or a "
                 "checkpoint file / 'latest' pointer / checkpoints directory");
  std::string progress = "auto";
  app.add_option("--progress", progress,
                 "progress display: auto (a live bar on a terminal, not under mpirun), bar, lines")
      ->check(CLI::IsMember({"auto", "bar", "lines"}));
  std::string report_to, run_id;
  app.add_option("--report-to", report_to,
                 "report progress to a dpcnn-launch at this gRPC address (rank 0; the run token "
                 "comes from $DPCNN_RUN_TOKEN)");
  app.add_option("--run-id", run_id, "run id to report (with --report-to)");
  CLI11_PARSE(app, argc, argv);

  std::unique_ptr<dpcnn::MpiContext> mpi;
  std::unique_ptr<dpcnn::Communicator> comm;
  try {
    if (dpcnn::MpiContext::launched_by_mpirun()) {
      mpi = std::make_unique<dpcnn::MpiContext>(&argc, &argv);
      comm = dpcnn::make_mpi_communicator();
    } else {
      comm = dpcnn::make_self_communicator();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dpcnn-train: %s\n", e.what());
    return 1;
  }
  try {
    const dpcnn::Config cfg = dpcnn::load_config(config_path, overrides);
    const int threads = choose_threads(cfg, *comm);
    omp_set_num_threads(threads);
    if (comm->rank() == 0)
      std::printf("dpcnn-train: %s, %d rank(s) x %d thread(s), global batch %d\n", cfg.name.c_str(),
                  comm->size(), threads, cfg.train.batch_size);
    const dpcnn::DataSplit data = dpcnn::load_job_data(cfg, *comm);
    opts.live_progress = progress == "bar" || (progress == "auto" && isatty(STDOUT_FILENO) && !mpi);
    std::unique_ptr<dpcnn::TrainingObserver> reporter;
    opts.commands = !report_to.empty();  // the same on every rank: one command line
    if (!report_to.empty() && comm->rank() == 0) {
      reporter = dpcnn::make_grpc_reporter(report_to, run_id);
      opts.observer = reporter.get();
    }
    dpcnn::Trainer trainer(cfg, *comm, data, opts);
    if (evaluate_only)
      trainer.print_summary(trainer.evaluate());
    else
      trainer.run();
    if (!save_params.empty() && comm->rank() == 0) save_raw(save_params, trainer.model());
  } catch (const std::exception& e) {
    std::fflush(stdout);
    if (comm->size() > 1) {
      std::fprintf(stderr, "rank %d on %s: %s\n", comm->rank(), comm->host().c_str(), e.what());
      comm->abort(1);  // ends every rank now: no peer is left waiting in a collective
    }
    std::fprintf(stderr, "dpcnn-train: %s\n", e.what());
    return 1;
  }
  return 0;
}
