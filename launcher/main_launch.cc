// dpcnn-launch: runs a training job under supervision. Validates the config,
// serves the job's status over gRPC (dpcnn.v1.Status, plus health and
// reflection), starts mpirun with dpcnn-train in its own process group, and
// restarts the job from its last checkpoint when it fails or stalls. Ctrl-C
// stops the job cleanly (a final checkpoint); a second Ctrl-C kills it.
#include <fcntl.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "config/config.h"
#include "core/error.h"
#include "launcher/console.h"
#include "launcher/status_service.h"
#include "launcher/supervisor.h"

namespace {

namespace fs = std::filesystem;
using dpcnn::launcher::Console;

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

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

// The token file is created with 0600 from the start: it never exists with
// wider permissions, whatever the umask.
void write_secret(const std::string& path, const std::string& text) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) throw std::runtime_error("cannot write '" + path + "': " + strerror(errno));
  const bool ok = fchmod(fd, 0600) == 0 &&
                  write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  if (close(fd) != 0 || !ok)
    throw std::runtime_error("cannot write '" + path + "': " + strerror(errno));
}

std::string read_pem(const std::string& path, const std::string& key) {
  std::ifstream f(path);
  std::string text((std::istreambuf_iterator<char>(f)), {});
  if (!f || text.find("-----BEGIN") == std::string::npos)
    throw UsageError(key + ": cannot read a PEM file at '" + path + "'");
  return text;
}

void write_text(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp);
    f << text;
    if (!f) throw std::runtime_error("cannot write '" + tmp + "'");
  }
  fs::rename(tmp, path);
}

// host:port -> its host ("[::1]:5" -> "[::1]"); wildcard hosts become loopback
// for the local reporter to dial.
std::string dial_host(const std::string& listen) {
  std::string host = listen.substr(0, listen.rfind(':'));
  if (host == "0.0.0.0" || host == "[::]" || host == "*" || host.empty()) return "127.0.0.1";
  return host;
}

std::string self_dir() {
  std::error_code ec;
  const fs::path p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? "." : p.parent_path().string();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dpcnn-launch: run a training job under supervision, with a gRPC status service"};
  std::string config_path, hostfile, train_bin;
  std::vector<std::string> sets;
  int np = 1;
  bool insecure = false;
  app.add_option("--config", config_path, "experiment YAML file")->required();
  app.add_option("--np", np, "number of ranks")->check(CLI::Range(1, 4096));
  app.add_option("--hostfile", hostfile, "mpirun hostfile");
  std::vector<std::string> mpirun_args;
  app.add_option("--mpirun-arg", mpirun_args,
                 "an argument passed to mpirun as is, repeatable: --mpirun-arg=--mca "
                 "--mpirun-arg=btl_tcp_if_include --mpirun-arg=10.0.0.0/24")
      ->allow_extra_args(false);
  app.add_option("--set", sets, "override a config key, e.g. --set train.epochs=1");
  app.add_flag(
      "--insecure", insecure,
      "allow a non-loopback status.listen without TLS (the token still guards control calls)");
  app.add_option("--train-bin", train_bin,
                 "the worker binary (default: dpcnn-train next to this one)");
  CLI11_PARSE(app, argc, argv);

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
  std::string run_dir, addr_file;
  std::unique_ptr<dpcnn::launcher::StatusService> service;
  std::unique_ptr<grpc::Server> server;
  try {
    try {
      cfg = dpcnn::load_config(config_path, sets);
    } catch (const std::exception& e) {
      throw UsageError(e.what());
    }
    // TLS when status.tls_cert/tls_key are set; off loopback it is required
    // (the token would otherwise cross the network in clear) unless --insecure.
    const bool tls = !cfg.status.tls_cert.empty() || !cfg.status.tls_key.empty();
    if (tls && (cfg.status.tls_cert.empty() || cfg.status.tls_key.empty()))
      throw UsageError("status.tls_cert and status.tls_key must be given together");
    if (!dpcnn::launcher::is_loopback_address(cfg.status.listen) && !tls && !insecure)
      throw UsageError("status.listen '" + cfg.status.listen +
                       "' is not a loopback address: set status.tls_cert and status.tls_key "
                       "(PEM) to serve TLS, or pass --insecure to accept that anyone on the "
                       "network can read the job's status and see the token in transit");
    std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
    if (tls) {
      grpc::SslServerCredentialsOptions ssl;
      ssl.pem_key_cert_pairs.push_back({read_pem(cfg.status.tls_key, "status.tls_key"),
                                        read_pem(cfg.status.tls_cert, "status.tls_cert")});
      creds = grpc::SslServerCredentials(ssl);
      opt.tls_ca = fs::absolute(cfg.status.tls_cert).string();  // workers trust our certificate
    }
    opt.mpirun = dpcnn::launcher::find_executable("mpirun");
    if (opt.mpirun.empty())
      throw UsageError("mpirun not found on PATH (apt-get install openmpi-bin)");
    opt.train_bin = train_bin.empty() ? self_dir() + "/dpcnn-train" : train_bin;
    if (access(opt.train_bin.c_str(), X_OK) != 0)
      throw UsageError("worker binary '" + opt.train_bin + "' not found or not executable");
    if (!hostfile.empty() && access(hostfile.c_str(), R_OK) != 0)
      throw UsageError("cannot read hostfile '" + hostfile + "'");

    run_dir = cfg.runs_dir + "/" + cfg.name;
    fs::create_directories(run_dir);
    const std::string token = random_hex(16);
    write_secret(run_dir + "/token", token + "\n");

    dpcnn::launcher::JobInfo info;
    info.run_id = cfg.name + "-" + random_hex(4);
    info.config_name = cfg.name;
    info.config_path = config_path;
    info.max_restarts = cfg.launcher.max_restarts;
    info.batch_size = cfg.train.batch_size;
    info.token = token;
    service = std::make_unique<dpcnn::launcher::StatusService>(info);

    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(cfg.status.listen, creds, &port);
    builder.SetMaxReceiveMessageSize(1 << 20);  // requests are tiny; refuse floods
    service->register_with(builder);
    server = builder.BuildAndStart();
    if (!server || port == 0)
      throw UsageError("cannot listen on '" + cfg.status.listen + "' (in use, or not an address)");
    server->GetHealthCheckService()->SetServingStatus("dpcnn.v1.Status", true);
    const std::string addr = dial_host(cfg.status.listen) + ":" + std::to_string(port);
    std::printf("status: listening on %s\n", addr.c_str());
    std::fflush(stdout);
    addr_file = run_dir + "/status.addr";
    write_text(addr_file, addr + "\n");
    // dpcnn-status finds the certificate to trust here (absent: plaintext).
    if (tls)
      write_text(run_dir + "/status.ca", opt.tls_ca + "\n");
    else
      fs::remove(run_dir + "/status.ca");

    opt.np = np;
    opt.hostfile = hostfile;
    opt.mpirun_args = mpirun_args;
    opt.config_path = config_path;
    opt.sets = sets;
    opt.report_to = addr;
    opt.run_id = info.run_id;
    opt.token = token;
    opt.max_restarts = cfg.launcher.max_restarts;
    opt.stall_timeout_s = cfg.launcher.stall_timeout_s;
    if (!hostfile.empty() && dpcnn::launcher::is_loopback_address(addr))
      std::printf("launcher: note: rank 0 reports to %s, so it must run on this host\n",
                  addr.c_str());
  } catch (const UsageError& e) {
    std::fprintf(stderr, "dpcnn-launch: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dpcnn-launch: %s\n", e.what());
    return 1;
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

  int code = 1;
  try {
    code = supervisor.run();
  } catch (const std::exception& e) {
    console.say(std::string("error: ") + e.what());
    service->set_state(dpcnn::v1::JOB_STATE_FAILED, "launcher error", e.what());
  }
  // Watchers get the final state, then the server goes.
  service->shutdown();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  std::error_code ec;
  fs::remove(addr_file, ec);
  return code;
}
