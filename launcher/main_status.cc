// dpcnn-status: asks a running dpcnn-launch for its job's status (once, or
// live with --watch), as text or as protobuf JSON, and with the run's token
// (read from the run directory's `token`) stops it or asks for a checkpoint.
// It finds the launcher through the run directory's status.addr (--run, or
// the newest served run under ./runs), or dials --addr; --timeout waits for a
// launcher that has not started yet. A run whose launcher has ended is shown
// from its final status.json. --watch redraws one screen on a terminal (like
// top) and prints one line per update otherwise. Every failure is one line
// and an exit code from src/core/exit_codes.h.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <ctime>
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
  std::string final_status;  // the run's status.json: its launcher has ended
  std::string missing;       // "" when found
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
  if (!t.run_dir.empty() && fs::exists(t.run_dir + "/status.json"))
    t.final_status = t.run_dir + "/status.json";
  if (t.addr.empty()) {
    t.addr = read_first_line(t.run_dir + "/status.addr");
    if (t.addr.empty() && t.final_status.empty())
      t.missing = "no launcher is serving " + t.run_dir + " (no status.addr)";
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
    case grpc::StatusCode::UNIMPLEMENTED:
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::UNKNOWN:
      std::fprintf(stderr,
                   "dpcnn-status: %s does not answer as a dpcnn-launch status service (%s)\n",
                   where.c_str(), st.error_message().c_str());
      return dpcnn::exit_code::kFailure;
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

// The screen of --watch on a terminal: cleared and redrawn whole, like top.
void draw_screen(const Target& t, const pb::JobStatus& s) {
  char clock[16] = "";
  const std::time_t now = std::time(nullptr);
  std::strftime(clock, sizeof clock, "%H:%M:%S", std::localtime(&now));
  std::printf("\033[H\033[2J%s  dpcnn-status --watch  %s  (Ctrl-C leaves, the job goes on)\n\n%s",
              clock, t.addr.c_str(), dpcnn::launcher::status_text(s).c_str());
}

// A run whose launcher has ended: its final status.json, shown like a live
// one. Returns the exit code.
int show_final(const Target& t, bool json, bool watch, bool control) {
  std::ifstream f(t.final_status);
  const std::string text((std::istreambuf_iterator<char>(f)), {});
  pb::JobStatus s;
  std::string error;
  if (!dpcnn::launcher::status_from_json(text, &s, &error)) {
    error = error.substr(0, error.find('\n'));  // protobuf adds the text and a caret
    std::fprintf(stderr, "dpcnn-status: %s: not a final status (%s)\n", t.final_status.c_str(),
                 error.c_str());
    return dpcnn::exit_code::kFailure;
  }
  const char* state = pb::JobState_Name(s.state()).c_str() + 10;  // drop "JOB_STATE_"
  if (control) {
    std::fprintf(stderr, "dpcnn-status: the job of %s has ended (%s); its final status is %s\n",
                 t.run_dir.c_str(), state, t.final_status.c_str());
    return dpcnn::exit_code::kFailure;
  }
  if (json)
    std::printf("%s\n", dpcnn::launcher::status_json(s, !watch).c_str());
  else if (watch)
    std::printf("%s\n", dpcnn::launcher::status_line(s).c_str());
  else
    std::printf("%s(final status from %s: the launcher has ended)\n",
                dpcnn::launcher::status_text(s).c_str(), t.final_status.c_str());
  return watch && s.state() == pb::JOB_STATE_FAILED ? dpcnn::exit_code::kFailure
                                                    : dpcnn::exit_code::kOk;
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
  app.add_flag("--watch", watch,
               "follow the status live until the job ends: one screen redrawn in place on a "
               "terminal, one line per update when piped");
  app.add_flag("--json", json, "protobuf JSON mapping (one object a line with --watch)");
  auto* stop_opt =
      app.add_flag("--stop", stop, "checkpoint and stop the job (needs the run token)");
  app.add_flag("--checkpoint", checkpoint,
               "write a checkpoint now and wait (up to 60 s) to print its step and path (needs "
               "the run token)")
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
    if (t.addr.empty()) {  // ended: with --timeout, a new launch of it may yet come
      if (waiting()) {
        pause();
        continue;
      }
      return show_final(t, json, watch, stop || checkpoint);
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
        // Waits until rank 0 says the checkpoint is written, and says where.
        const int wait_ms = 60000;
        ctx.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::milliseconds(wait_ms + 5000));
        pb::CheckpointRequest req;
        req.set_wait_ms(wait_ms);
        pb::CheckpointReply reply;
        st = stub->Checkpoint(&ctx, req, &reply);
        if (st.ok() && !reply.written()) {
          std::fprintf(stderr, "dpcnn-status: checkpoint not written within %d s: %s\n",
                       wait_ms / 1000, reply.message().c_str());
          return dpcnn::exit_code::kFailure;
        }
        msg = "checkpoint written at step " + std::to_string(reply.step()) + ": " + reply.path();
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
      bool any = false;
      while (reader->Read(&s)) {
        any = true;
        if (json)
          std::printf("%s\n", dpcnn::launcher::status_json(s, false).c_str());
        else if (tty)
          draw_screen(t, s);
        else
          std::printf("%s\n", dpcnn::launcher::status_line(s).c_str());
        std::fflush(stdout);
      }
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
    // Gone, with its final status written (it ended between our reads).
    if (st.error_code() == grpc::StatusCode::UNAVAILABLE && !t.run_dir.empty() &&
        fs::exists(t.run_dir + "/status.json")) {
      Target done = t;
      done.final_status = t.run_dir + "/status.json";
      return show_final(done, json, watch, stop || checkpoint);
    }
    return fail(t, st);
  }
}
