// dpcnn-launch: runs a training job under supervision. Validates the config,
// serves the job's status over gRPC (dpcnn.v1.Status, plus health and
// reflection), starts a new run directory (or continues one with --resume)
// and holds its lock, starts mpirun with dpcnn-train in its own process group,
// and restarts the job from its last checkpoint when it fails or stalls.
// Ctrl-C stops the job cleanly (a final checkpoint); a second Ctrl-C kills it.
// Every failure is one line and an exit code from src/core/exit_codes.h.
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "config/config.h"
#include "core/error.h"
#include "core/exit_codes.h"
#include "core/version.h"
#include "launcher/checkpoint_check.h"
#include "launcher/cli.h"
#include "launcher/console.h"
#include "launcher/files.h"
#include "launcher/grpc_log.h"
#include "launcher/host_pool.h"
#include "launcher/http_server.h"
#include "launcher/run_paths.h"
#include "launcher/status_server.h"
#include "launcher/status_service.h"
#include "launcher/status_text.h"
#include "launcher/supervisor.h"
#include "report/rpc_versions.h"
#include "run/run_dir.h"

namespace {

namespace fs = std::filesystem;
using dpcnn::InputError;
using dpcnn::launcher::Console;
using dpcnn::launcher::ElasticOptions;
using dpcnn::launcher::HostPool;

std::string random_hex(size_t bytes) {
  std::ifstream f("/dev/urandom", std::ios::binary);
  std::string raw(bytes, '\0');
  if (!f.read(raw.data(), static_cast<std::streamsize>(bytes)))
    throw std::runtime_error("cannot read /dev/urandom");
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) out += hex[c >> 4], out += hex[c & 15];
  return out;
}

std::string read_pem(const std::string& path, const std::string& key) {
  std::ifstream f(path);
  std::string text((std::istreambuf_iterator<char>(f)), {});
  if (!f || text.find("-----BEGIN") == std::string::npos)
    throw InputError(key + ": cannot read a PEM file at '" + path + "'");
  return text;
}

// This launcher as the run lock records it for the next one who finds it held.
std::string command_line(int argc, char** argv) {
  std::string cmd = fs::path(argv[0]).filename().string();
  for (int i = 1; i < argc; ++i) cmd += std::string(" ") + argv[i];
  return cmd;
}

std::string self_dir() {
  std::error_code ec;
  const fs::path p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? "." : p.parent_path().string();
}

}  // namespace

int main(int argc, char** argv) {
  // Before gRPC exists: its log lines never reach the user raw.
  dpcnn::launcher::quiet_grpc_log();
  CLI::App app{"dpcnn-launch: run a training job under supervision, with a gRPC status service"};
  std::string config_path, hostfile, train_bin, resume;
  std::vector<std::string> sets;
  int np = 0;  // 0: not given
  bool insecure = false;
  app.add_option("--config", config_path, "experiment YAML file")->required();
  app.add_option("--np", np,
                 "number of ranks (default: the config's distributed.ranks, which defaults to 1)")
      ->check(CLI::Range(1, 4096));
  app.add_option("--hostfile", hostfile, "mpirun hostfile");
  std::string starter = "mpirun";
  app.add_option("--starter", starter,
                 "what starts the ranks: mpirun (default), or srun inside a Slurm allocation "
                 "(sbatch/salloc; srun --mpi=pmix -n NP): Slurm then starts, signals and "
                 "accounts each rank, and scancel ends the job as soon as the workers' final "
                 "checkpoint is written")
      ->check(CLI::IsMember({"mpirun", "srun"}));
  std::vector<std::string> mpirun_args;
  app.add_option("--mpirun-arg", mpirun_args,
                 "an argument passed to mpirun (srun under --starter srun) as is, repeatable: "
                 "--mpirun-arg=--mca --mpirun-arg=btl_tcp_if_include --mpirun-arg=10.0.0.0/24")
      ->allow_extra_args(false);
  app.add_option("--set", sets, "override a config key, e.g. --set train.epochs=1");
  app.add_option("--resume", resume,
                 "continue a stopped or failed job: 'auto' (the newest run of the config's name) "
                 "or a checkpoint file / checkpoints directory / run directory");
  app.add_flag(
      "--insecure", insecure,
      "allow a non-loopback status.listen without TLS (the token still guards control calls)");
  app.add_option("--train-bin", train_bin,
                 "the worker binary (default: dpcnn-train next to this one)");
  app.footer(
      "The launcher's config keys (--set launcher.KEY=V; README.md, Configuration reference):\n"
      "  max_restarts (3), stall_timeout_s (120); with --hostfile, elastic (false): restart on "
      "the hosts that answer,\n  min_ranks (1), host_timeout_s (10) and probe_port (22): the "
      "TCP port of the host probe (cluster/README.md)");
  app.set_version_flag(
      "--version",
      [] {
        // The launcher links no oneDNN: its own libraries only.
        std::string v = dpcnn::version_report("dpcnn-launch", dpcnn::rpc_version_lines());
        v.pop_back();  // CLI11 ends the line itself
        return v;
      },
      "print versions (dpcnn, commit, gRPC, Protobuf)");
  if (const int code = dpcnn::launcher::parse_command_line(app, argc, argv, "dpcnn-launch");
      code >= 0)
    return code;

  // Before any thread exists: every thread inherits the mask, so these signals
  // reach only the signal thread below. SIGPIPE: a closed stdout must not kill
  // the supervisor of a running job.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);
  // Orphaned workers (their mpirun died) become our children, so terminate()
  // can still reap them.
  prctl(PR_SET_CHILD_SUBREAPER, 1);

  dpcnn::Config cfg;
  dpcnn::launcher::LaunchOptions opt;
  std::string run_dir, addr_file, metrics_addr_file;
  dpcnn::RunLock lock;
  std::optional<dpcnn::launcher::ElasticOptions> elastic;
  std::unique_ptr<dpcnn::launcher::StatusService> service;
  dpcnn::launcher::StatusServer server;
  std::unique_ptr<dpcnn::launcher::HttpServer> http;  // before `service` goes
  try {
    // Every check first; the run directory and its files come last.
    try {
      cfg = dpcnn::load_config(config_path, sets);
    } catch (const std::exception& e) {
      throw InputError(e.what());
    }
    // TLS when status.tls_cert/tls_key are set; off loopback it is required
    // (the token would otherwise cross the network in clear) unless --insecure.
    const bool tls = !cfg.status.tls_cert.empty() || !cfg.status.tls_key.empty();
    if (tls && (cfg.status.tls_cert.empty() || cfg.status.tls_key.empty()))
      throw InputError("status.tls_cert and status.tls_key must be given together");
    if (!dpcnn::launcher::is_loopback_address(cfg.status.listen) && !tls && !insecure)
      throw InputError("status.listen '" + cfg.status.listen +
                       "' is not a loopback address: set status.tls_cert and status.tls_key "
                       "(PEM) to serve TLS, or pass --insecure to accept that anyone on the "
                       "network can read the job's status and see the token in transit");
    // The HTTP side follows the same rule, and serves TLS with the same files.
    const bool http_on = cfg.status.metrics_listen != "off";
    if (http_on && !dpcnn::launcher::is_loopback_address(cfg.status.metrics_listen) && !tls &&
        !insecure)
      throw InputError("status.metrics_listen '" + cfg.status.metrics_listen +
                       "' is not a loopback address: set status.tls_cert and status.tls_key "
                       "(PEM) to serve HTTPS, or pass --insecure to accept that anyone on the "
                       "network can read the job's metrics and see the token in transit");
    std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
    if (tls) {
      grpc::SslServerCredentialsOptions ssl;
      ssl.pem_key_cert_pairs.push_back({read_pem(cfg.status.tls_key, "status.tls_key"),
                                        read_pem(cfg.status.tls_cert, "status.tls_cert")});
      creds = grpc::SslServerCredentials(ssl);
      opt.tls_ca = fs::absolute(cfg.status.tls_cert).string();  // workers trust our certificate
    }
    opt.srun = starter == "srun";
    if (opt.srun) {
      const char* job = std::getenv("SLURM_JOB_ID");
      if (!job || !*job)
        throw InputError(
            "--starter srun starts the ranks in this Slurm allocation, and SLURM_JOB_ID is not "
            "set: run under sbatch or salloc, or leave --starter out (mpirun)");
      if (!hostfile.empty())
        throw InputError(
            "--hostfile is mpirun's: under --starter srun the Slurm allocation names the hosts");
      if (cfg.launcher.elastic)
        throw InputError(
            "launcher.elastic: true needs mpirun and --hostfile (the hosts to leave out and "
            "take back); under --starter srun Slurm's allocation is fixed");
    }
    opt.mpirun = dpcnn::launcher::find_executable(starter);
    if (opt.mpirun.empty())
      throw InputError(opt.srun ? "--starter srun: srun not found on PATH (apt-get install "
                                  "slurm-client)"
                                : "mpirun not found on PATH (apt-get install openmpi-bin)");
    opt.train_bin = train_bin.empty() ? self_dir() + "/dpcnn-train" : train_bin;
    if (access(opt.train_bin.c_str(), X_OK) != 0)
      throw InputError("worker binary '" + opt.train_bin + "' not found or not executable");
    if (!hostfile.empty() && access(hostfile.c_str(), R_OK) != 0)
      throw InputError("cannot read hostfile '" + hostfile + "'");
    if (cfg.launcher.elastic) {
      // The elastic contract (launcher/host_pool.h): hosts and slots from
      // the hostfile, ranks = the slots of the live hosts, same global batch.
      if (hostfile.empty())
        throw InputError(
            "launcher.elastic: true needs --hostfile (the hosts to run on, with "
            "their slots)");
      ElasticOptions e;
      e.hosts = dpcnn::launcher::read_hostfile(hostfile);
      const int slots = HostPool(e.hosts).total_ranks();
      if (app.count("--np") > 0 && np != slots)
        throw InputError("--np " + std::to_string(np) +
                         " with launcher.elastic: the ranks are "
                         "the slots of the hostfile's live hosts (" +
                         std::to_string(slots) + " in " + hostfile +
                         "); leave --np out or make them agree");
      if (cfg.launcher.min_ranks > slots)
        throw InputError("launcher.min_ranks " + std::to_string(cfg.launcher.min_ranks) +
                         " is more than the " + std::to_string(slots) + " slot(s) of " + hostfile);
      e.min_ranks = cfg.launcher.min_ranks;
      e.host_timeout = std::chrono::seconds(cfg.launcher.host_timeout_s);
      e.probe_port = cfg.launcher.probe_port;
      e.wait_for_hosts = std::chrono::seconds(cfg.launcher.stall_timeout_s);
      e.batch_size = cfg.train.batch_size;
      elastic = e;
    }
    const std::string experiment_dir = cfg.runs_dir + "/" + cfg.name;
    dpcnn::launcher::ResumeTarget target;
    if (!resume.empty()) {
      target = dpcnn::launcher::resolve_resume(resume, experiment_dir);
      if (target.worker_resume != "auto") try {
          dpcnn::launcher::check_resumable(target.worker_resume);
        } catch (const std::exception& e) {
          throw InputError(std::string("--resume: ") + e.what());
        }
    }

    const std::string token = random_hex(16);
    dpcnn::launcher::JobInfo info;
    info.run_id = cfg.name + "-" + random_hex(4);
    info.config_name = cfg.name;
    info.config_path = config_path;
    info.config_path_absolute = fs::absolute(config_path).lexically_normal().string();
    info.max_restarts = cfg.launcher.max_restarts;
    info.batch_size = cfg.train.batch_size;
    info.token = token;
    service = std::make_unique<dpcnn::launcher::StatusService>(info);
    server = dpcnn::launcher::start_status_server(cfg.status.listen, creds, *service);
    if (http_on) {
      http = std::make_unique<dpcnn::launcher::HttpServer>(*service);
      http->start(cfg.status.metrics_listen, cfg.status.tls_cert, cfg.status.tls_key);
    }

    // The run directory: a new version_<N>, or the one being continued, held
    // for the launcher's whole life (its workers see DPCNN_RUN_LOCK_HOLDER and
    // do not take the lock themselves).
    const bool fresh = target.run_dir.empty();
    run_dir = fresh ? dpcnn::create_run(experiment_dir) : target.run_dir;
    lock = dpcnn::RunLock::acquire(run_dir, command_line(argc, argv));  // BusyError if held
    service->set_run_dir(run_dir, fs::absolute(run_dir).lexically_normal().string());
    if (fresh)
      std::printf(
          "launcher: new run %s%s\n", run_dir.c_str(),
          target.worker_resume.empty() ? "" : (", starting from " + target.worker_resume).c_str());
    else
      std::printf(
          "launcher: continuing run %s from %s\n", run_dir.c_str(),
          target.worker_resume == "auto" ? "its newest checkpoint" : target.worker_resume.c_str());
    // The token file never exists with wider permissions, whatever the umask.
    dpcnn::launcher::write_file_checked(run_dir + "/token", token + "\n", 0600);
    // dpcnn-status finds the certificate to trust here (absent: plaintext).
    if (tls) {
      dpcnn::launcher::write_file_checked(run_dir + "/status.ca", opt.tls_ca + "\n");
    } else {
      std::error_code ec;
      fs::remove(run_dir + "/status.ca", ec);  // an earlier TLS launch of this run
    }
    {
      // An earlier launch's final status (a --resume of this run): this job's
      // goes there when it ends.
      std::error_code ec;
      fs::remove(run_dir + "/status.json", ec);
    }
    addr_file = run_dir + "/status.addr";
    dpcnn::launcher::write_file_checked(addr_file, server.addr + "\n");
    std::printf("status: listening on %s (in %s)\n", server.addr.c_str(), addr_file.c_str());
    metrics_addr_file = run_dir + "/metrics.addr";
    if (http) {
      dpcnn::launcher::write_file_checked(metrics_addr_file, http->addr() + "\n");
      std::printf("web: %s/ (Prometheus: %s/metrics; address in %s)\n", http->url().c_str(),
                  http->url().c_str(), metrics_addr_file.c_str());
    } else {
      std::error_code ec;
      fs::remove(metrics_addr_file, ec);  // an earlier launch of this run
    }
    std::fflush(stdout);

    opt.np = np > 0 ? np : cfg.distributed.ranks;
    opt.hostfile = hostfile;
    opt.mpirun_args = mpirun_args;
    opt.config_path = config_path;
    opt.sets = sets;
    opt.run_dir = fs::absolute(run_dir).lexically_normal().string();
    opt.resume = target.worker_resume;
    opt.env = {std::string(dpcnn::kRunLockHolderEnv) + "=" + std::to_string(getpid())};
    opt.report_to = server.addr;
    opt.run_id = info.run_id;
    opt.token = token;
    opt.max_restarts = cfg.launcher.max_restarts;
    opt.stall_timeout_s = cfg.launcher.stall_timeout_s;
    if (elastic) {
      elastic->hostfile_out = opt.run_dir + "/hostfile.elastic";
      opt.np = HostPool(elastic->hosts).total_ranks();
      opt.elastic = elastic;
    }
    std::printf("launcher: %d rank(s)%s\n", opt.np,
                elastic  ? " (the hostfile's slots: launcher.elastic)"
                : np > 0 ? ""
                         : " (the config's distributed.ranks; --np N overrides)");
    if (!hostfile.empty() && dpcnn::launcher::is_loopback_address(server.addr))
      std::printf("launcher: note: rank 0 reports to %s, so it must run on this host\n",
                  server.addr.c_str());
  } catch (const std::exception& e) {
    // The one place setup errors become a line and an exit code: bad input
    // (2), a taken port or run directory (3), anything else (1).
    std::fprintf(stderr, "dpcnn-launch: %s\n", e.what());
    const auto* known = dynamic_cast<const dpcnn::Error*>(&e);
    return known ? known->exit_code() : dpcnn::exit_code::kFailure;
  }

  Console console;
  dpcnn::launcher::Supervisor supervisor(opt, *service, console);
  std::thread([&sigs, &supervisor, &console] {
    for (int n = 1;; ++n) {
      int sig = 0;
      if (sigwait(&sigs, &sig) != 0) return;
      console.say(n == 1 ? std::string(strsignal(sig)) +
                               ": stopping after a checkpoint (again to kill at once)"
                         : std::string(strsignal(sig)) + ": killing the job");
      supervisor.on_signal(sig);
    }
  }).detach();

  int code = dpcnn::exit_code::kFailure;
  try {
    code = supervisor.run();
  } catch (const std::exception& e) {
    console.say(std::string("error: ") + e.what());
    service->set_state(dpcnn::v1::JOB_STATE_FAILED, "launcher error", e.what());
  }
  // The final status stays readable after the launcher (dpcnn-status --run
  // reads it): written whole before status.addr goes.
  const std::string final_status = run_dir + "/status.json";
  try {
    dpcnn::launcher::write_file_checked(
        final_status, dpcnn::launcher::status_json(service->snapshot(), true) + "\n");
  } catch (const std::exception& e) {
    console.say(std::string("cannot write the final status: ") + e.what());
  }
  // Watchers get the final state, then the server goes; status.addr goes with
  // it, so dpcnn-status never dials a port that may belong to someone else.
  service->shutdown();
  server.server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  if (http) http->stop();
  std::error_code ec;
  fs::remove(addr_file, ec);
  fs::remove(metrics_addr_file, ec);
  return code;
}
