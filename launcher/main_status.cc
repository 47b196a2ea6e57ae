// dpcnn-status: asks a running dpcnn-launch for its job's status (once, or
// live with --watch), as text or as protobuf JSON, and with the run's token
// (read from the run directory's `token`) stops it or asks for a checkpoint.
// It finds the launcher through the run directory's status.addr (--run, or
// the newest served run under ./runs), or dials --addr; --timeout waits for a
// launcher that has not started yet. Every failure is one line and an exit
// code from src/core/exit_codes.h.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/exit_codes.h"
#include "core/version.h"
#include "dpcnn/v1/status.grpc.pb.h"
#include "launcher/cli.h"
#include "launcher/files.h"
#include "launcher/grpc_log.h"
#include "launcher/run_paths.h"
#include "launcher/status_text.h"
#include "report/rpc_versions.h"

namespace {

namespace fs = std::filesystem;
namespace pb = dpcnn::v1;
using dpcnn::launcher::read_first_line;
using Clock = std::chrono::steady_clock;

// Where the launcher is, or why it cannot be found yet.
struct Target {
  std::string addr, run_dir;
  std::string missing;  // "" when found
  int code = dpcnn::exit_code::kFailure;
};

Target locate(const std::string& addr, const std::string& run) {
  Target t;
  if (!run.empty()) {
    std::error_code ec;
    if (!fs::exists(run, ec)) {
      t.missing = "no run or experiment directory '" + run + "'";
      t.code = dpcnn::exit_code::kBadInput;
      return t;
    }
    t.run_dir = dpcnn::launcher::run_to_query(run);
    if (t.run_dir.empty()) {
      t.missing = "'" + run + "' holds no run (no version_<N> directory)";
      return t;
    }
  } else if (addr.empty()) {
    t.run_dir = dpcnn::launcher::newest_served_run("runs");
    if (t.run_dir.empty()) {
      t.missing =
          "no launcher found: no runs/<name>/version_<N>/status.addr here (pass --run DIR or "
          "--addr HOST:PORT)";
      return t;
    }
  }
  t.addr = addr;
  if (!addr.empty() && run.empty())  // the run served there, for its token and certificate
    t.run_dir = dpcnn::launcher::served_run_at("runs", addr);
  if (t.addr.empty()) {
    t.addr = read_first_line(t.run_dir + "/status.addr");
    if (t.addr.empty()) t.missing = "no launcher is serving " + t.run_dir + " (no status.addr)";
  }
  return t;
}

// One line for a failed call; "wrong token" and such are the caller's input.
int fail(const Target& t, const grpc::Status& st) {
  const std::string where = t.addr + (t.run_dir.empty() ? "" : " (" + t.run_dir + ")");
  switch (st.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      std::fprintf(stderr,
                   "dpcnn-status: no launcher answers at %s: it has ended or not started yet "
                   "(--timeout S waits for it)\n",
                   where.c_str());
      return dpcnn::exit_code::kFailure;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      std::fprintf(stderr, "dpcnn-status: the launcher at %s did not answer in time\n",
                   where.c_str());
      return dpcnn::exit_code::kFailure;
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::INVALID_ARGUMENT:
      std::fprintf(stderr, "dpcnn-status: %s: %s\n", where.c_str(), st.error_message().c_str());
      return dpcnn::exit_code::kBadInput;
    default:
      std::fprintf(stderr, "dpcnn-status: %s: %s\n", where.c_str(), st.error_message().c_str());
      return dpcnn::exit_code::kFailure;
  }
}

std::shared_ptr<grpc::ChannelCredentials> credentials(const std::string& ca_path) {
  if (ca_path.empty()) return grpc::InsecureChannelCredentials();
  std::ifstream f(ca_path);
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs.assign(std::istreambuf_iterator<char>(f), {});
  if (!f || ssl.pem_root_certs.empty())
    throw std::runtime_error("cannot read the certificate '" + ca_path + "'");
  return grpc::SslCredentials(ssl);
}

}  // namespace

int main(int argc, char** argv) {
  dpcnn::launcher::quiet_grpc_log();
  CLI::App app{"dpcnn-status: status and control of a running dpcnn-launch"};
  std::string addr, run, tls_ca;
  bool watch = false, json = false, stop = false, checkpoint = false;
  double timeout = 0;
  app.add_option("--addr,--address", addr,
                 "launcher address host:port (default: the run's status.addr)");
  app.add_option("--run", run,
                 "run directory (runs/<name>/version_<N>) or experiment directory (runs/<name>: "
                 "its newest run); default: the newest run under ./runs with a status.addr");
  app.add_flag("--watch", watch, "follow the status live until the job ends");
  app.add_flag("--json", json, "protobuf JSON mapping (one object a line with --watch)");
  auto* stop_opt =
      app.add_flag("--stop", stop, "checkpoint and stop the job (needs the run token)");
  app.add_flag("--checkpoint", checkpoint, "write a checkpoint now (needs the run token)")
      ->excludes(stop_opt);
  app.add_option("--timeout", timeout,
                 "wait up to this many seconds for the launcher (its status.addr and its "
                 "server) to appear, instead of failing at once")
      ->check(CLI::Range(0.0, 1e6));
  app.add_option("--tls-ca", tls_ca,
                 "PEM certificate to trust for a TLS launcher (default: the run's status.ca)");
  app.set_version_flag(
      "--version",
      [] {
        // The launcher links no oneDNN: its own libraries only.
        std::string v = dpcnn::version_report("dpcnn-status", dpcnn::rpc_version_lines());
        v.pop_back();  // CLI11 ends the line itself
        return v;
      },
      "print versions (dpcnn, commit, gRPC, Protobuf)");
  if (const int code = dpcnn::launcher::parse_command_line(app, argc, argv, "dpcnn-status");
      code >= 0)
    return code;

  const auto until = Clock::now() + std::chrono::milliseconds(int64_t(timeout * 1000));
  auto waiting = [&] { return Clock::now() < until; };
  auto pause = [] { std::this_thread::sleep_for(std::chrono::milliseconds(200)); };
  std::string announced;
  for (;;) {
    const Target t = locate(addr, run);
    if (!t.missing.empty()) {
      if (waiting()) {
        pause();
        continue;
      }
      std::fprintf(stderr, "dpcnn-status: %s\n", t.missing.c_str());
      return t.code;
    }
    if (run.empty() && addr.empty() && announced != t.run_dir) {
      std::fprintf(stderr, "dpcnn-status: %s (the newest run under ./runs with a status.addr)\n",
                   t.run_dir.c_str());
      announced = t.run_dir;
    }
    std::shared_ptr<grpc::ChannelCredentials> creds;
    try {
      std::string ca = tls_ca;
      if (ca.empty() && !t.run_dir.empty()) ca = read_first_line(t.run_dir + "/status.ca");
      creds = credentials(ca);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "dpcnn-status: %s\n", e.what());
      return dpcnn::exit_code::kBadInput;
    }
    auto stub = pb::Status::NewStub(grpc::CreateChannel(t.addr, creds));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    grpc::Status st;

    if (stop || checkpoint) {
      std::string token = t.run_dir.empty() ? "" : read_first_line(t.run_dir + "/token");
      if (token.empty())
        if (const char* env = std::getenv("DPCNN_RUN_TOKEN")) token = env;
      if (token.empty()) {
        std::fprintf(stderr,
                     "dpcnn-status: no run token (the run directory's token file; pass --run, or "
                     "set DPCNN_RUN_TOKEN)\n");
        return dpcnn::exit_code::kBadInput;
      }
      ctx.AddMetadata("authorization", "Bearer " + token);
      std::string msg;
      if (stop) {
        pb::StopRequest req;
        req.set_reason("dpcnn-status --stop");
        pb::StopReply reply;
        st = stub->Stop(&ctx, req, &reply);
        msg = reply.message();
      } else {
        pb::CheckpointReply reply;
        st = stub->Checkpoint(&ctx, pb::CheckpointRequest(), &reply);
        msg = reply.message();
      }
      if (st.ok()) {
        std::printf("%s\n", msg.c_str());
        return dpcnn::exit_code::kOk;
      }
    } else if (watch) {
      grpc::ClientContext wctx;  // no deadline: it follows the job to its end
      pb::WatchStatusRequest req;
      req.set_min_interval_ms(500);
      auto reader = stub->WatchStatus(&wctx, req);
      pb::JobStatus s;
      const bool tty = isatty(STDOUT_FILENO) && !json;
      pb::JobState last = pb::JOB_STATE_UNSPECIFIED;
      bool any = false;
      while (reader->Read(&s)) {
        any = true;
        if (json)
          std::printf("%s\n", dpcnn::launcher::status_json(s, false).c_str());
        else if (tty)
          std::printf("\r%s\033[K%s", dpcnn::launcher::status_line(s).c_str(),
                      s.state() != last ? "\n" : "");
        else
          std::printf("%s\n", dpcnn::launcher::status_line(s).c_str());
        last = s.state();
        std::fflush(stdout);
      }
      if (tty && any) std::printf("\n");
      st = reader->Finish();
      if (st.ok())
        return s.state() == pb::JOB_STATE_FAILED ? dpcnn::exit_code::kFailure
                                                 : dpcnn::exit_code::kOk;
      if (any) return fail(t, st);  // the launcher went away mid-watch: not a late start
    } else {
      pb::JobStatus s;
      st = stub->GetStatus(&ctx, pb::GetStatusRequest(), &s);
      if (st.ok()) {
        std::fputs(
            (json ? dpcnn::launcher::status_json(s, true) + "\n" : dpcnn::launcher::status_text(s))
                .c_str(),
            stdout);
        return dpcnn::exit_code::kOk;
      }
    }
    // Not up yet (or gone): with --timeout, look again, the address may change.
    if (st.error_code() == grpc::StatusCode::UNAVAILABLE && waiting()) {
      pause();
      continue;
    }
    return fail(t, st);
  }
}
