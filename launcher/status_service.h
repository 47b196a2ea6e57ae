// The launcher's job state and the gRPC services over it: dpcnn.v1.Status (for
// users: GetStatus, WatchStatus, and the token-guarded Stop and Checkpoint) and
// dpcnn.v1.Reporter (for rank 0's reporter: progress in, command out).
//
// One object owns all of the job's state behind one mutex (as grpc's
// route_guide_server.cc does); gRPC's server threads call the RPC handlers and
// the supervisor thread calls the public methods, all concurrently. Register
// with a ServerBuilder before BuildAndStart; call shutdown() before the
// server's Shutdown() so that WatchStatus streams end.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dpcnn/v1/status.grpc.pb.h"
#include "dpcnn/v1/status.pb.h"

namespace dpcnn::launcher {

struct JobInfo {
  std::string run_id, config_name, config_path;
  std::string config_path_absolute;
  int max_restarts = 3;
  int batch_size = 0;  // global; turns images/s into an ETA
  std::string token;   // the run token: Stop, Checkpoint and Report need it
};

// What the supervisor needs to decide about the current attempt.
struct AttemptHealth {
  bool reported = false;        // rank 0 has reported in this attempt
  bool started = false;         // ... and its start report (ranks, steps) has arrived
  bool ever_stepped = false;    // some report with step > 0, in any attempt
  bool finished = false;        // rank 0 reported on_finish in this attempt
  bool finish_stopped = false;  // ... and said it ended on a stop
  std::chrono::steady_clock::time_point last_progress;  // attempt start, or last new step/event
  bool stop_requested = false;
  std::string stop_reason;
  // Elastic: the workers were asked to checkpoint and end so that the next
  // attempt runs on other hosts (not a stop of the job). Per attempt.
  bool restart_requested = false;
};

class StatusService {
  using Clock = std::chrono::steady_clock;

 public:
  explicit StatusService(JobInfo info);
  ~StatusService();
  StatusService(const StatusService&) = delete;
  StatusService& operator=(const StatusService&) = delete;

  void register_with(grpc::ServerBuilder& builder);

  // Supervisor side.
  void begin_attempt(int attempt);  // STARTING (unless stopping); resets the stall clock
  // Once it exists (after the server starts); `absolute` is the same directory
  // resolved on this host (JobStatus.run_dir_absolute, status_file).
  void set_run_dir(const std::string& run_dir, const std::string& absolute = "");
  void set_state(v1::JobState state, const std::string& message, const std::string& error = "");
  void count_restart(const std::string& why);  // RESTARTING, restarts += 1
  // Sends STOP to the workers in every following report reply. Returns false if
  // a stop was already requested.
  bool request_stop(const std::string& reason);
  // Elastic: STOP to the workers of this attempt only (they checkpoint and
  // end); the job goes on in the next attempt. The state stays as it is.
  void request_restart(const std::string& reason);
  // Elastic: the hosts the next attempt runs on and those left out.
  void set_hosts(const std::vector<std::string>& live, const std::vector<std::string>& lost,
                 int min_ranks);
  // Elastic: one host lost or taken back, also made the status message.
  void add_host_change(const v1::HostChange& change);
  AttemptHealth health() const;

  // The control calls without gRPC (the HTTP side, launcher/http_server.h):
  // the same checks and effects as Stop and Checkpoint. `who` names the caller
  // in the job's message. On refusal they return false and say why in *out;
  // on success *out is the reply's message.
  bool token_matches(const std::string& presented) const;  // constant-time
  bool stop_job(const std::string& who, const std::string& reason, std::string* out);
  bool checkpoint_job(const std::string& who, std::string* out);
  v1::JobStatus snapshot() const;
  // Ends every WatchStatus stream (after one last snapshot) and refuses new ones.
  void shutdown();

  // Limits, public for tests. kMaxWatchers is documented in status.proto and
  // the README: change all three together.
  static constexpr int kMaxWatchers = 64;
  static constexpr int kMaxCheckpointWaitMs = 600000;
  static constexpr int kSampleSeconds = 5;  // JobStatus.samples: one per 5 s ...
  static constexpr int kMaxSamples = 120;   // ... for 10 minutes
  static constexpr int kMaxCheckpointEvents = 50;

 private:
  class StatusApi;
  class ReporterApi;

  grpc::Status check_token(const grpc::ServerContext& ctx) const;
  void touch_locked();                                         // bump the version, wake watchers
  uint64_t request_checkpoint_locked(const std::string& who);  // 0: the job is ending
  void sample_locked(const v1::Progress& p);                   // JobStatus.samples
  grpc::Status watch(grpc::ServerContext* ctx, const v1::WatchStatusRequest& req,
                     grpc::ServerWriter<v1::JobStatus>* writer);
  grpc::Status report(const grpc::ServerContext& ctx, const v1::ReportRequest& req,
                      v1::ReportReply* reply);
  grpc::Status stop(const grpc::ServerContext& ctx, const v1::StopRequest& req,
                    v1::StopReply* reply);
  grpc::Status checkpoint(const grpc::ServerContext& ctx, const v1::CheckpointRequest& req,
                          v1::CheckpointReply* reply);

  const JobInfo info_;
  std::unique_ptr<StatusApi> status_api_;
  std::unique_ptr<ReporterApi> reporter_api_;

  mutable std::mutex mu_;  // guards everything below
  std::condition_variable changed_;
  v1::JobStatus status_;
  uint64_t version_ = 0;
  AttemptHealth health_;
  bool checkpoint_pending_ = false;
  // Checkpoint requests handed out, and checkpoint reports seen: a Checkpoint
  // call that waits is answered by the first report after its request went
  // out to rank 0.
  uint64_t ckpt_requested_ = 0, ckpt_delivered_ = 0;
  uint64_t ckpt_reports_ = 0, ckpt_reports_at_delivery_ = 0;
  bool shutting_down_ = false;
  int watchers_ = 0;
  Clock::time_point newest_sample_start_{};  // when samples' newest point was appended
};

// True when the host part of host:port is a literal in 127.0.0.0/8, ::1, or
// "localhost"; any other name counts as non-loopback (we do not resolve).
bool is_loopback_address(const std::string& host_port);

}  // namespace dpcnn::launcher
