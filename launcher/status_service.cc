#include "launcher/status_service.h"

#include <arpa/inet.h>
#include <google/protobuf/util/time_util.h>
#include <netinet/in.h>

#include <algorithm>

namespace dpcnn::launcher {

namespace pb = dpcnn::v1;
using Clock = std::chrono::steady_clock;
using google::protobuf::util::TimeUtil;

namespace {

bool is_terminal(pb::JobState s) {
  return s == pb::JOB_STATE_FINISHED || s == pb::JOB_STATE_FAILED;
}

// Compares every byte whatever the first mismatch, so that response times do
// not reveal how much of a guessed token was right.
bool same_secret(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= a[i] ^ b[i % std::max<size_t>(1, b.size())];
  return diff == 0;
}

}  // namespace

class StatusService::StatusApi final : public pb::Status::Service {
 public:
  explicit StatusApi(StatusService& s) : s_(s) {}
  grpc::Status GetStatus(grpc::ServerContext*, const pb::GetStatusRequest*,
                         pb::JobStatus* reply) override {
    *reply = s_.snapshot();
    return grpc::Status::OK;
  }
  grpc::Status WatchStatus(grpc::ServerContext* ctx, const pb::WatchStatusRequest* req,
                           grpc::ServerWriter<pb::JobStatus>* writer) override {
    return s_.watch(ctx, *req, writer);
  }
  grpc::Status Stop(grpc::ServerContext* ctx, const pb::StopRequest* req,
                    pb::StopReply* reply) override {
    return s_.stop(*ctx, *req, reply);
  }
  grpc::Status Checkpoint(grpc::ServerContext* ctx, const pb::CheckpointRequest*,
                          pb::CheckpointReply* reply) override {
    return s_.checkpoint(*ctx, reply);
  }

 private:
  StatusService& s_;
};

class StatusService::ReporterApi final : public pb::Reporter::Service {
 public:
  explicit ReporterApi(StatusService& s) : s_(s) {}
  grpc::Status Report(grpc::ServerContext* ctx, const pb::ReportRequest* req,
                      pb::ReportReply* reply) override {
    return s_.report(*ctx, *req, reply);
  }

 private:
  StatusService& s_;
};

StatusService::StatusService(JobInfo info)
    : info_(std::move(info)),
      status_api_(std::make_unique<StatusApi>(*this)),
      reporter_api_(std::make_unique<ReporterApi>(*this)) {
  status_.set_state(pb::JOB_STATE_STARTING);
  status_.set_run_id(info_.run_id);
  status_.set_config_name(info_.config_name);
  status_.set_config_path(info_.config_path);
  status_.set_max_restarts(info_.max_restarts);
  *status_.mutable_start_time() = TimeUtil::GetCurrentTime();
  *status_.mutable_update_time() = status_.start_time();
  health_.last_progress = Clock::now();
}

StatusService::~StatusService() = default;

void StatusService::register_with(grpc::ServerBuilder& builder) {
  builder.RegisterService(status_api_.get());
  builder.RegisterService(reporter_api_.get());
}

void StatusService::touch_locked() {
  ++version_;
  *status_.mutable_update_time() = TimeUtil::GetCurrentTime();
  changed_.notify_all();
}

void StatusService::begin_attempt(int attempt) {
  std::lock_guard lock(mu_);
  status_.set_attempt(attempt);
  if (!health_.stop_requested) status_.set_state(pb::JOB_STATE_STARTING);
  health_.reported = false;
  health_.finished = false;
  health_.finish_stopped = false;
  health_.restart_requested = false;
  health_.last_progress = Clock::now();
  // This attempt's ranks and hosts come with its start report (an elastic
  // restart may run on fewer): never show the last attempt's as this one's.
  status_.set_ranks(0);
  status_.clear_hosts();
  touch_locked();
}

void StatusService::set_run_dir(const std::string& run_dir) {
  std::lock_guard lock(mu_);
  status_.set_run_dir(run_dir);
  touch_locked();
}

void StatusService::set_state(pb::JobState state, const std::string& message,
                              const std::string& error) {
  std::lock_guard lock(mu_);
  status_.set_state(state);
  if (!message.empty()) status_.set_message(message);
  if (!error.empty()) status_.set_error(error);
  touch_locked();
}

void StatusService::count_restart(const std::string& why) {
  std::lock_guard lock(mu_);
  status_.set_restarts(status_.restarts() + 1);
  status_.set_state(pb::JOB_STATE_RESTARTING);
  status_.set_error(why);
  status_.set_message("restarting from the last checkpoint: " + why);
  touch_locked();
}

bool StatusService::request_stop(const std::string& reason) {
  std::lock_guard lock(mu_);
  if (health_.stop_requested) return false;
  health_.stop_requested = true;
  health_.stop_reason = reason;
  if (!is_terminal(status_.state())) status_.set_state(pb::JOB_STATE_STOPPING);
  status_.set_message("stopping: " + reason);
  touch_locked();
  return true;
}

void StatusService::request_restart(const std::string& reason) {
  std::lock_guard lock(mu_);
  health_.restart_requested = true;
  status_.set_message(reason);
  touch_locked();
}

void StatusService::set_hosts(const std::vector<std::string>& live,
                              const std::vector<std::string>& lost, int min_ranks) {
  std::lock_guard lock(mu_);
  status_.set_elastic(true);
  status_.set_min_ranks(min_ranks);
  status_.clear_live_hosts();
  for (const auto& h : live) status_.add_live_hosts(h);
  status_.clear_lost_hosts();
  for (const auto& h : lost) status_.add_lost_hosts(h);
  touch_locked();
}

void StatusService::add_host_change(const pb::HostChange& change) {
  std::lock_guard lock(mu_);
  pb::HostChange& c = *status_.add_host_changes() = change;
  c.set_step(status_.step());
  *c.mutable_time() = TimeUtil::GetCurrentTime();
  status_.set_message("host " + c.host() + (c.lost() ? " lost: " : " back: ") + c.reason());
  touch_locked();
}

AttemptHealth StatusService::health() const {
  std::lock_guard lock(mu_);
  return health_;
}

pb::JobStatus StatusService::snapshot() const {
  std::lock_guard lock(mu_);
  return status_;
}

void StatusService::shutdown() {
  std::lock_guard lock(mu_);
  shutting_down_ = true;
  changed_.notify_all();
}

grpc::Status StatusService::check_token(const grpc::ServerContext& ctx) const {
  const auto& md = ctx.client_metadata();
  std::string presented;
  bool found = false;
  if (auto it = md.find("authorization"); it != md.end()) {
    const std::string v(it->second.data(), it->second.size());
    const std::string prefix = "Bearer ";
    if (v.size() < prefix.size() || v.compare(0, prefix.size(), prefix) != 0)
      return {grpc::StatusCode::UNAUTHENTICATED, "authorization must be 'Bearer <run token>'"};
    presented = v.substr(prefix.size());
    found = true;
  } else if (auto it2 = md.find("x-dpcnn-token"); it2 != md.end()) {
    presented.assign(it2->second.data(), it2->second.size());
    found = true;
  }
  if (!found || presented.empty())
    return {grpc::StatusCode::UNAUTHENTICATED,
            "this call needs the run token (runs/<name>/version_<N>/token) as 'authorization: "
            "Bearer <token>'"};
  if (info_.token.empty() || !same_secret(presented, info_.token))
    return {grpc::StatusCode::PERMISSION_DENIED, "wrong run token"};
  return grpc::Status::OK;
}

grpc::Status StatusService::watch(grpc::ServerContext* ctx, const pb::WatchStatusRequest& req,
                                  grpc::ServerWriter<pb::JobStatus>* writer) {
  const auto interval = std::chrono::milliseconds(
      std::clamp(req.min_interval_ms() ? req.min_interval_ms() : 200, 100, 60000));
  std::unique_lock lock(mu_);
  if (shutting_down_) return {grpc::StatusCode::UNAVAILABLE, "the launcher is shutting down"};
  if (watchers_ >= kMaxWatchers) return {grpc::StatusCode::RESOURCE_EXHAUSTED, "too many watchers"};
  ++watchers_;
  uint64_t sent = ~uint64_t{0};
  auto next = Clock::now();
  for (;;) {
    // Wake every second even without news, to notice a client that went away.
    while (!shutting_down_ && version_ == sent && !ctx->IsCancelled())
      changed_.wait_for(lock, std::chrono::seconds(1));
    if (ctx->IsCancelled()) break;
    // Rate limit: a change that comes early waits, and the newest state goes out.
    if (!shutting_down_ && Clock::now() < next)
      changed_.wait_until(lock, next, [&] { return shutting_down_; });
    const pb::JobStatus snap = status_;
    sent = version_;
    const bool end = shutting_down_ || is_terminal(snap.state());
    lock.unlock();
    const bool ok = writer->Write(snap);
    lock.lock();
    if (!ok || end) break;
    next = Clock::now() + interval;
  }
  --watchers_;
  return grpc::Status::OK;
}

grpc::Status StatusService::report(const grpc::ServerContext& ctx, const pb::ReportRequest& req,
                                   pb::ReportReply* reply) {
  if (grpc::Status st = check_token(ctx); !st.ok()) return st;
  if (req.run_id() != info_.run_id)
    return {grpc::StatusCode::FAILED_PRECONDITION,
            "report for run '" + req.run_id() + "', this launcher runs '" + info_.run_id + "'"};
  std::lock_guard lock(mu_);
  const bool first = !health_.reported;
  health_.reported = true;
  bool news = first;
  if (req.has_start()) {
    const auto& s = req.start();
    status_.set_ranks(s.ranks());
    status_.mutable_hosts()->CopyFrom(s.hosts());
    status_.set_epochs(s.epochs());
    status_.set_steps_per_epoch(s.steps_per_epoch());
    status_.set_total_steps(s.total_steps());
    status_.set_resumed_from_step(s.start_step());  // 0: this attempt started afresh
    if (s.start_step() > 0) {
      status_.set_step(s.start_step());
      status_.set_message("resumed at step " + std::to_string(s.start_step()));
    }
    news = true;
  }
  if (req.has_progress()) {
    const auto& p = req.progress();
    if (p.global_step() != status_.step()) news = true;
    if (p.global_step() > 0) health_.ever_stepped = true;
    status_.set_epoch(p.epoch());
    status_.set_step(p.global_step());
    if (p.total_steps() > 0) status_.set_total_steps(p.total_steps());
    status_.set_loss(p.loss());
    status_.set_accuracy(p.accuracy());
    status_.set_images_per_sec(p.images_per_sec());
    const int64_t left = std::max<int64_t>(0, status_.total_steps() - p.global_step());
    status_.set_eta_seconds(p.images_per_sec() > 0 && info_.batch_size > 0
                                ? left * double(info_.batch_size) / p.images_per_sec()
                                : 0);
  }
  for (const auto& e : req.epochs()) {
    // A resumed attempt may finish an epoch the history already has: replace it.
    auto* h = status_.mutable_history();
    auto it = std::find_if(h->begin(), h->end(),
                           [&](const pb::EpochRecord& r) { return r.epoch() >= e.epoch(); });
    while (it != h->end()) it = h->erase(it);
    *status_.add_history() = e;
    news = true;
  }
  if (req.has_checkpoint()) {
    status_.set_last_checkpoint(req.checkpoint().path());
    status_.set_last_checkpoint_step(req.checkpoint().global_step());
    news = true;
  }
  if (req.has_finish()) {
    const auto& f = req.finish();
    status_.set_has_result(true);
    status_.set_test_loss(f.test_loss());
    status_.set_test_accuracy(f.test_accuracy());
    status_.set_test_count(f.test_count());
    if (f.images_per_sec() > 0) status_.set_images_per_sec(f.images_per_sec());
    health_.finished = true;
    health_.finish_stopped = f.stopped();
    news = true;
  }
  if (status_.state() == pb::JOB_STATE_STARTING || status_.state() == pb::JOB_STATE_RESTARTING)
    status_.set_state(pb::JOB_STATE_RUNNING);
  if (news) {
    health_.last_progress = Clock::now();
    touch_locked();
  }
  if (health_.stop_requested || health_.restart_requested) {
    reply->set_command(pb::COMMAND_STOP);
  } else if (checkpoint_pending_) {
    reply->set_command(pb::COMMAND_CHECKPOINT);
    checkpoint_pending_ = false;
  }
  return grpc::Status::OK;
}

grpc::Status StatusService::stop(const grpc::ServerContext& ctx, const pb::StopRequest& req,
                                 pb::StopReply* reply) {
  if (grpc::Status st = check_token(ctx); !st.ok()) return st;
  if (req.reason().size() > 1000)
    return {grpc::StatusCode::INVALID_ARGUMENT, "reason longer than 1000 bytes"};
  const std::string reason =
      "Stop from " + ctx.peer() + (req.reason().empty() ? "" : " (" + req.reason() + ")");
  {
    std::lock_guard lock(mu_);
    if (is_terminal(status_.state()))
      return {grpc::StatusCode::FAILED_PRECONDITION, "the job has already ended"};
  }
  reply->set_message(request_stop(reason)
                         ? "stopping: workers write a checkpoint at their next step and end"
                         : "already stopping");
  return grpc::Status::OK;
}

grpc::Status StatusService::checkpoint(const grpc::ServerContext& ctx, pb::CheckpointReply* reply) {
  if (grpc::Status st = check_token(ctx); !st.ok()) return st;
  std::lock_guard lock(mu_);
  if (is_terminal(status_.state()) || health_.stop_requested)
    return {grpc::StatusCode::FAILED_PRECONDITION, "the job is ending"};
  checkpoint_pending_ = true;
  status_.set_message("checkpoint requested by " + ctx.peer());
  touch_locked();
  reply->set_message(
      "requested: rank 0 writes a checkpoint at its next step after its next report");
  return grpc::Status::OK;
}

bool is_loopback_address(const std::string& host_port) {
  std::string host = host_port;
  if (host.rfind("ipv4:", 0) == 0) host = host.substr(5);
  if (host.rfind("ipv6:", 0) == 0) host = host.substr(5);
  if (!host.empty() && host[0] == '[') {
    host = host.substr(1, host.find(']') - 1);
  } else if (auto colon = host.rfind(':'); colon != std::string::npos && host.find(':') == colon) {
    host = host.substr(0, colon);
  }
  if (host == "localhost") return true;
  in_addr v4;
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6;
  return inet_pton(AF_INET6, host.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

}  // namespace dpcnn::launcher
