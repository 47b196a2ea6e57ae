// dpcnn-status: asks a running dpcnn-launch for its job's status (once, or
// live with --watch), as text or as protobuf JSON, and with the run's token
// (read from runs/<name>/token) stops it or asks for a checkpoint now.
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "dpcnn/v1/status.grpc.pb.h"

namespace {

namespace fs = std::filesystem;
namespace pb = dpcnn::v1;

std::string read_first_line(const fs::path& p) {
  std::ifstream f(p);
  std::string s;
  std::getline(f, s);
  return s;
}

// The run directories of running launchers (they remove status.addr on exit).
std::vector<fs::path> live_runs(const fs::path& runs) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& d : fs::directory_iterator(runs, ec))
    if (fs::exists(d.path() / "status.addr")) out.push_back(d.path());
  return out;
}

const char* state_name(pb::JobState s) {
  const std::string& n = pb::JobState_Name(s);
  return n.size() > 10 ? n.c_str() + 10 : n.c_str();  // drop "JOB_STATE_"
}

std::string duration(double s) {
  char b[64];
  if (s < 60)
    std::snprintf(b, sizeof b, "%.0fs", s);
  else if (s < 3600)
    std::snprintf(b, sizeof b, "%dm%02ds", int(s) / 60, int(s) % 60);
  else
    std::snprintf(b, sizeof b, "%dh%02dm", int(s) / 3600, int(s) / 60 % 60);
  return b;
}

std::string one_line(const pb::JobStatus& s) {
  char b[512];
  std::snprintf(b, sizeof b,
                "%s epoch %d/%d step %lld/%lld loss %.4f acc %.4f %.0f img/s ETA %s restarts %d",
                state_name(s.state()), s.epoch(), s.epochs(), static_cast<long long>(s.step()),
                static_cast<long long>(s.total_steps()), s.loss(), s.accuracy(), s.images_per_sec(),
                duration(s.eta_seconds()).c_str(), s.restarts());
  return b;
}

void print_text(const pb::JobStatus& s) {
  using google::protobuf::util::TimeUtil;
  std::printf("run         %s (%s, %s)\n", s.run_id().c_str(), s.config_name().c_str(),
              s.config_path().c_str());
  std::printf("state       %s, attempt %d, restarts %d/%d\n", state_name(s.state()), s.attempt(),
              s.restarts(), s.max_restarts());
  std::string hosts;
  for (const auto& h : s.hosts()) hosts += (hosts.empty() ? "" : ", ") + h;
  std::printf("ranks       %d%s%s\n", s.ranks(), hosts.empty() ? "" : " on ", hosts.c_str());
  const double pct = s.total_steps() > 0 ? 100.0 * s.step() / s.total_steps() : 0;
  std::printf("progress    epoch %d/%d, step %lld/%lld (%.1f%%), loss %.4f, accuracy %.4f\n",
              s.epoch(), s.epochs(), static_cast<long long>(s.step()),
              static_cast<long long>(s.total_steps()), pct, s.loss(), s.accuracy());
  std::printf("speed       %.0f images/s, ETA %s\n", s.images_per_sec(),
              duration(s.eta_seconds()).c_str());
  if (!s.last_checkpoint().empty())
    std::printf("checkpoint  %s (step %lld)\n", s.last_checkpoint().c_str(),
                static_cast<long long>(s.last_checkpoint_step()));
  for (const auto& e : s.history()) {
    std::printf("epoch %-5d loss %.4f accuracy %.4f", e.epoch(), e.loss(), e.accuracy());
    if (e.val_loss() >= 0)
      std::printf(" val_loss %.4f val_accuracy %.4f", e.val_loss(), e.val_accuracy());
    std::printf(" (%.0f img/s)\n", e.images_per_sec());
  }
  if (s.has_result())
    std::printf("result      test_loss %.4f test_acc %.4f (%lld samples)\n", s.test_loss(),
                s.test_accuracy(), static_cast<long long>(s.test_count()));
  const auto started = s.start_time();
  const double ago = double(TimeUtil::TimestampToMilliseconds(TimeUtil::GetCurrentTime()) -
                            TimeUtil::TimestampToMilliseconds(started)) /
                     1000;
  std::printf("started     %s (%s ago)\n", TimeUtil::ToString(started).c_str(),
              duration(ago).c_str());
  if (!s.message().empty()) std::printf("message     %s\n", s.message().c_str());
  if (!s.error().empty()) std::printf("error       %s\n", s.error().c_str());
}

std::string to_json(const pb::JobStatus& s, bool pretty) {
  google::protobuf::util::JsonPrintOptions o;
  o.add_whitespace = pretty;
  o.always_print_primitive_fields = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(s, &out, o);
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

int fail(const std::string& what, const grpc::Status& st) {
  std::fprintf(stderr, "dpcnn-status: %s: %s (%d)\n", what.c_str(), st.error_message().c_str(),
               static_cast<int>(st.error_code()));
  return st.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
                 st.error_code() == grpc::StatusCode::PERMISSION_DENIED
             ? 3
             : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dpcnn-status: status and control of a running dpcnn-launch"};
  std::string addr, run;
  bool watch = false, json = false, stop = false, checkpoint = false;
  double timeout = 5;
  app.add_option("--addr", addr,
                 "launcher address (default: runs/*/status.addr if one, else 127.0.0.1:50051)");
  app.add_option("--run", run, "run directory (runs/<name>): its status.addr and token");
  app.add_flag("--watch", watch, "follow the status live until the job ends");
  app.add_flag("--json", json, "protobuf JSON mapping (one object a line with --watch)");
  auto* stop_opt =
      app.add_flag("--stop", stop, "checkpoint and stop the job (needs the run token)");
  app.add_flag("--checkpoint", checkpoint, "write a checkpoint now (needs the run token)")
      ->excludes(stop_opt);
  app.add_option("--timeout", timeout, "seconds to wait for the launcher");
  std::string tls_ca;
  app.add_option("--tls-ca", tls_ca,
                 "PEM certificate to trust for a TLS launcher (default: the run's status.ca)");
  CLI11_PARSE(app, argc, argv);

  fs::path run_dir = run;
  if (addr.empty()) {
    if (run.empty()) {
      const auto runs = live_runs("runs");
      if (runs.size() == 1)
        run_dir = runs[0];
      else if (runs.size() > 1)
        std::fprintf(stderr, "dpcnn-status: %zu runs are live under runs/; pick one with --run\n",
                     runs.size());
    }
    if (!run_dir.empty()) addr = read_first_line(run_dir / "status.addr");
    if (addr.empty()) {
      if (!run.empty()) {
        std::fprintf(stderr, "dpcnn-status: no launcher is serving '%s' (no status.addr)\n",
                     run.c_str());
        return 1;
      }
      addr = "127.0.0.1:50051";
    }
  } else if (run.empty()) {
    for (const auto& d : live_runs("runs"))  // the run whose launcher is at --addr, for its token
      if (read_first_line(d / "status.addr") == addr) run_dir = d;
  }

  if (tls_ca.empty() && !run_dir.empty()) tls_ca = read_first_line(run_dir / "status.ca");
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  if (!tls_ca.empty()) {
    std::ifstream f(tls_ca);
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs.assign(std::istreambuf_iterator<char>(f), {});
    if (!f || ssl.pem_root_certs.empty()) {
      std::fprintf(stderr, "dpcnn-status: cannot read the certificate '%s'\n", tls_ca.c_str());
      return 1;
    }
    creds = grpc::SslCredentials(ssl);
  }
  auto stub = pb::Status::NewStub(grpc::CreateChannel(addr, creds));
  auto deadline = [&] {
    return std::chrono::system_clock::now() + std::chrono::milliseconds(int64_t(timeout * 1000));
  };

  if (stop || checkpoint) {
    std::string token = run_dir.empty() ? "" : read_first_line(run_dir / "token");
    if (token.empty())
      if (const char* t = std::getenv("DPCNN_RUN_TOKEN")) token = t;
    if (token.empty())
      std::fprintf(stderr,
                   "dpcnn-status: no token found (runs/<name>/token; use --run); trying without\n");
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline());
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    grpc::Status st;
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
    if (!st.ok()) return fail(addr, st);
    std::printf("%s\n", msg.c_str());
    return 0;
  }

  if (watch) {
    grpc::ClientContext ctx;
    ctx.set_wait_for_ready(false);
    pb::WatchStatusRequest req;
    req.set_min_interval_ms(500);
    auto reader = stub->WatchStatus(&ctx, req);
    pb::JobStatus s;
    const bool tty = isatty(STDOUT_FILENO) && !json;
    pb::JobState last = pb::JOB_STATE_UNSPECIFIED;
    while (reader->Read(&s)) {
      if (json)
        std::printf("%s\n", to_json(s, false).c_str());
      else if (tty)
        std::printf("\r%s\033[K%s", one_line(s).c_str(), s.state() != last ? "\n" : "");
      else
        std::printf("%s\n", one_line(s).c_str());
      last = s.state();
      std::fflush(stdout);
    }
    if (tty) std::printf("\n");
    const grpc::Status st = reader->Finish();
    if (!st.ok()) return fail(addr, st);
    return s.state() == pb::JOB_STATE_FAILED ? 1 : 0;
  }

  grpc::ClientContext ctx;
  ctx.set_deadline(deadline());
  pb::JobStatus s;
  const grpc::Status st = stub->GetStatus(&ctx, pb::GetStatusRequest(), &s);
  if (!st.ok()) return fail(addr, st);
  if (json)
    std::printf("%s\n", to_json(s, true).c_str());
  else
    print_text(s);
  return 0;
}
