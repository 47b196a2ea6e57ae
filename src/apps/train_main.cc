// dpcnn-train: one training worker. Started alone it trains in one process;
// started by mpirun it is one rank of a data-parallel job. The only file of the
// worker that knows about MPI. Parses arguments, loads the config and data,
// runs the Trainer, and maps every failure to one line and a non-zero exit.
#include <omp.h>
#include <sched.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <memory>
#include <thread>

#include <cstdlib>
#include <filesystem>
#include <new>

#include "apps/fatal_signal.h"
#include "comm/mpi_communicator.h"
#include "config/config.h"
#include "core/error.h"
#include "core/version.h"
#include "data/augment.h"
#include "data/dataset.h"
#include "image/image.h"
#include "layers/dnnl_info.h"
#include "layers/precision.h"
#include "report/reporter.h"
#include "report/rpc_versions.h"
#include "run/run_dir.h"
#include "train/load_data.h"
#include "train/memory_estimate.h"
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

// Rank 0's choice of run directory. Nothing that a run wrote is moved or
// deleted: a new run gets the next version_N, a resumed run continues in its
// own, --evaluate-only only reads. `existing` is known before the model is
// built; a new run's directory is created only once every check has passed.
struct RunChoice {
  std::string existing;  // the run to continue (or to read, for --evaluate-only)
  std::string resume;    // what Trainer::resume reads ("" when fresh)
  bool create = false;   // make a new version_N after the checks
};

RunChoice choose_run(const dpcnn::Config& cfg, const std::string& resume,
                     const std::string& run_dir, bool evaluate_only) {
  const std::string exp = cfg.runs_dir + "/" + cfg.name;
  RunChoice c;
  c.resume = resume;
  if (evaluate_only) {
    if (!resume.empty() && resume != "auto") return c;  // read that checkpoint, write nothing
    const std::string dir = dpcnn::newest_run_with_checkpoint(exp);
    if (dir.empty())
      throw dpcnn::InputError("--evaluate-only: no checkpoint of run '" + cfg.name + "' under " +
                              exp + " (train it first, or pass --resume PATH)");
    std::printf("evaluating the newest checkpoint of %s\n", dir.c_str());
    c.resume = dir + "/checkpoints";
    return c;
  }
  if (!run_dir.empty()) {  // dpcnn-launch chose it
    std::error_code ec;
    std::filesystem::create_directories(run_dir, ec);
    if (ec) throw dpcnn::Error("cannot create run directory '" + run_dir + "': " + ec.message());
    c.existing = run_dir;
  } else if (resume == "auto") {
    c.existing = dpcnn::newest_run_with_checkpoint(exp);
    if (c.existing.empty()) c.create = true;  // "no checkpoint ...: starting fresh"
  } else if (!resume.empty()) {
    c.existing = dpcnn::run_of(resume);  // continue the run the checkpoint belongs to
    c.create = c.existing.empty();
  } else {
    c.create = true;
  }
  return c;
}

std::string command_line(int argc, char** argv) {
  std::string s;
  for (int i = 0; i < argc; ++i) s += (i ? " " : "") + std::string(argv[i]);
  return s;
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
  std::string precision;
  app.add_option("--precision", precision,
                 "fp32, bf16 or auto: overrides train.precision (auto: bf16 where the CPU "
                 "computes it fast, i.e. AMX; fp32 elsewhere)")
      ->check(CLI::IsMember({"fp32", "bf16", "auto"}));
  bool profile = false;
  app.add_flag("--profile", profile,
               "time every layer's forward and backward (rank 0 prints a table at the end; "
               "slows training slightly)");
  bool evaluate_only = false;
  app.add_flag("--evaluate-only", evaluate_only,
               "evaluate the initial (or --resume'd) model on the test set and exit");
  std::string augment_grid;
  app.add_option("--augment-grid", augment_grid,
                 "write a PNG of training digits and their augmented versions (data.augment, "
                 "epochs 0-7) and exit");
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
  std::string run_dir;
  app.add_option("--run-dir", run_dir,
                 "write into this run directory (dpcnn-launch passes it; by default a new "
                 "<runs_dir>/<name>/version_N, or the resumed run's own)");
  app.set_version_flag(
      "--version",
      [] {
        std::vector<dpcnn::VersionLine> libs = {dpcnn::onednn_version_line(),
                                                {"MPI", dpcnn::MpiContext::library_version()}};
        for (const auto& l : dpcnn::rpc_version_lines()) libs.push_back(l);
        std::string v = dpcnn::version_report("dpcnn-train", libs);
        v.pop_back();  // CLI11 ends the line itself
        return v;
      },
      "print versions (dpcnn, commit, oneDNN and its CPU ISA, MPI, gRPC, Protobuf)");
  const std::string command = command_line(argc, argv);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    std::fprintf(stderr, "dpcnn-train: %s (see --help)\n", e.what());
    return dpcnn::exit_code::kBadInput;
  }

  std::unique_ptr<dpcnn::MpiContext> mpi;
  std::unique_ptr<dpcnn::Communicator> comm;
  try {
    if (dpcnn::MpiContext::launched_by_mpirun()) {
      // Named from mpirun's environment before MPI_Init (which can take
      // seconds), then again after it, since Open MPI installs handlers of its own.
      if (const char* r = std::getenv("OMPI_COMM_WORLD_RANK")) {
        char host[256] = "?";
        ::gethostname(host, sizeof host - 1);
        dpcnn::name_rank_on_fatal_signal(std::atoi(r), host);
      }
      mpi = std::make_unique<dpcnn::MpiContext>(&argc, &argv);
      comm = dpcnn::make_mpi_communicator();
      dpcnn::name_rank_on_fatal_signal(comm->rank(), comm->host());
    } else {
      comm = dpcnn::make_self_communicator();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dpcnn-train: %s\n", e.what());
    return 1;
  }
  try {
    if (!precision.empty()) overrides.push_back("train.precision=" + precision);
    dpcnn::Config cfg = dpcnn::load_config(config_path, overrides);
    const int threads = choose_threads(cfg, *comm);
    omp_set_num_threads(threads);
    const dpcnn::PrecisionChoice prec =
        dpcnn::choose_precision(cfg.train.precision, dpcnn::detect_cpu_bf16(),
                                precision.empty() ? "train.precision" : "--precision");
    opts.precision = prec.precision;
    if (comm->rank() == 0)
      std::printf(
          "dpcnn-train: %s, %d rank(s) x %d thread(s), global batch %d, precision %s (%s)\n",
          cfg.name.c_str(), comm->size(), threads, cfg.train.batch_size,
          dpcnn::precision_name(prec.precision), prec.why.c_str());
    const dpcnn::DataSplit data = dpcnn::load_job_data(cfg, *comm);
    // Class folders name the classes: into the config, and so into every checkpoint.
    if (cfg.data.class_names.empty() && !data.class_names.empty())
      cfg = dpcnn::with_class_names(cfg, data.class_names);
    if (comm->rank() == 0 && data.val.count > 0)
      std::printf(
          "validation: %d of %d training images held out (train.validation_split %g, stratified "
          "by class, seed %llu)\n",
          data.val.count, data.val.count + data.train.count,
          static_cast<double>(cfg.train.validation_split),
          static_cast<unsigned long long>(cfg.seed));
    if (!augment_grid.empty()) {
      if (comm->rank() == 0) {
        int w = 0, h = 0;
        const auto px =
            dpcnn::augment_grid(data.train, cfg.data.augment, cfg.seed, 10, 9, 2, &w, &h);
        dpcnn::write_image(augment_grid, px.data(), w, h);
        std::printf("wrote %s: 10 training images (left) and their augmentations in epochs 0-7\n",
                    augment_grid.c_str());
      }
      return dpcnn::exit_code::kOk;
    }
    dpcnn::check_memory(cfg, data, comm->size(), comm->local_size());
    // Every rank calls resume() when any may (it is collective); rank 0 alone
    // chooses and locks the run directory and reads the checkpoint.
    if (evaluate_only && opts.resume.empty()) opts.resume = "auto";
    dpcnn::RunLock lock;
    RunChoice run;
    const bool own_lock = std::getenv(dpcnn::kRunLockHolderEnv) == nullptr;
    if (comm->rank() == 0) {
      run = choose_run(cfg, opts.resume, run_dir, evaluate_only);
      opts.resume = run.resume;
      if (!run.existing.empty() && !evaluate_only) {
        if (own_lock) lock = dpcnn::RunLock::acquire(run.existing, command);
        opts.run_dir = run.existing;
      }
    }
    opts.live_progress = progress == "bar" || (progress == "auto" && isatty(STDOUT_FILENO) && !mpi);
    std::unique_ptr<dpcnn::TrainingObserver> reporter;
    opts.commands = !report_to.empty();  // the same on every rank: one command line
    if (!report_to.empty() && comm->rank() == 0) {
      reporter = dpcnn::make_grpc_reporter(report_to, run_id);
      opts.observer = reporter.get();
    }
    if (!evaluate_only) opts.stop_flag = dpcnn::stop_on_sigterm();  // after MPI_Init's handlers
    dpcnn::Trainer trainer(cfg, *comm, data, opts);
    if (comm->rank() == 0 && run.create) {
      trainer.set_run_dir(dpcnn::create_run(cfg.runs_dir + "/" + cfg.name));
      if (own_lock) lock = dpcnn::RunLock::acquire(trainer.run_dir(), command);
    }
    if (comm->rank() == 0 && !evaluate_only)
      std::printf("run directory: %s\n", trainer.run_dir().c_str());
    if (comm->rank() == 0 && trainer.complete() && !evaluate_only)
      std::printf(
          "this run is already complete at step %lld of %lld (train.epochs %d, "
          "train.max_steps %lld): nothing to train; raise them to train on\n",
          static_cast<long long>(trainer.global_step()),
          static_cast<long long>(trainer.total_steps()), cfg.train.epochs,
          static_cast<long long>(cfg.train.max_steps));
    trainer.model().set_profiling(profile);
    if (evaluate_only)
      trainer.print_summary(trainer.evaluate());
    else
      trainer.run();
    if (profile && comm->rank() == 0)
      std::printf("profile (rank 0's slice; conv+relu+pool runs as conv, pool, relu):\n%s",
                  trainer.model().profile_table("step").c_str());
    if (!save_params.empty() && comm->rank() == 0) save_raw(save_params, trainer.model());
  } catch (const std::exception& e) {
    std::fflush(stdout);
    const auto* err = dynamic_cast<const dpcnn::Error*>(&e);
    const int code = err ? err->exit_code() : dpcnn::exit_code::kFailure;
    std::string what = e.what();
    if (dynamic_cast<const std::bad_alloc*>(&e))
      what =
          "out of memory (the memory estimate passed, so something else on this host took "
          "it, or the estimate is short: lower train.batch_size)";
    if (comm->size() > 1) {
      std::fprintf(stderr, "rank %d on %s: %s\n", comm->rank(), comm->host().c_str(), what.c_str());
      comm->abort(code);  // ends every rank now: no peer is left waiting in a collective
    }
    std::fprintf(stderr, "dpcnn-train: %s\n", what.c_str());
    return code;
  }
  return dpcnn::exit_code::kOk;
}
