#include "launcher/status_service.h"

#include <arpa/inet.h>
#include <google/protobuf/util/time_util.h>
#include <netinet/in.h>

#include <algorithm>
#include <filesystem>
#include <optional>

namespace dpcnn::launcher {

namespace pb = dpcnn::v1;
using Clock = std::chrono::steady_clock;
using google::protobuf::util::TimeUtil;

namespace {

bool is_terminal(pb::JobState s) {
  return s == pb::JOB_STATE_FINISHED || s == pb::JOB_STATE_FAILED;
}

std::string absolute_path(const std::string& p) {
  if (p.empty()) return p;
  std::error_code ec;
  const auto a = std::filesystem::absolute(p, ec);
  return ec ? p : a.lexically_normal().string();
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
  grpc::Status Checkpoint(grpc::ServerContext* ctx, const pb::CheckpointRequest* req,
                          pb::CheckpointReply* reply) override {
    return s_.checkpoint(*ctx, *req, reply);
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
  status_.set_config_path_absolute(info_.config_path_absolute.empty()
                                       ? absolute_path(info_.config_path)
                                       : info_.config_path_absolute);
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
  health_.started = false;
  health_.finished = false;
  status_.set_eta_known(false);  // no speed of this attempt yet
  status_.set_eta_seconds(0);
  health_.finish_stopped = false;
  health_.restart_requested = false;
  health_.last_progress = Clock::now();
  // This attempt's ranks and hosts come with its start report (an elastic
  // restart may run on fewer): never show the last attempt's as this one's.
  status_.set_ranks(0);
  status_.clear_hosts();
  status_.clear_rank_stats();  // so are its ranks' figures (its first gather brings them)
  touch_locked();
}

void StatusService::set_run_dir(const std::string& run_dir, const std::string& absolute) {
  std::lock_guard lock(mu_);
  status_.set_run_dir(run_dir);
  status_.set_run_dir_absolute(absolute.empty() ? absolute_path(run_dir) : absolute);
  status_.set_status_file(status_.run_dir_absolute() + "/status.json");
  touch_locked();
}

void StatusService::set_state(pb::JobState state, const std::string& message,
                              const std::string& error) {
  std::lock_guard lock(mu_);
  status_.set_state(state);
  if (!message.empty()) status_.set_message(message);
  if (!error.empty()) status_.set_error(error);
  if (is_terminal(state)) {  // done: nothing left (known, 0); failed: no ETA
    status_.set_eta_known(state == pb::JOB_STATE_FINISHED);
    status_.set_eta_seconds(0);
  }
  touch_locked();
}

void StatusService::count_restart(const std::string& why) {
  std::lock_guard lock(mu_);
  status_.set_restarts(status_.restarts() + 1);
  auto* ev = status_.add_restart_events();
  *ev->mutable_time() = TimeUtil::GetCurrentTime();
  ev->set_attempt(status_.restarts() + 1);
  ev->set_step(status_.step());
  ev->set_reason(why);
  status_.set_state(pb::JOB_STATE_RESTARTING);
  status_.set_error(why);
  status_.set_last_restart_reason(why);
  *status_.mutable_last_restart_time() = TimeUtil::GetCurrentTime();
  status_.set_eta_known(false);
  status_.set_eta_seconds(0);
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
  if (watchers_ >= kMaxWatchers)
    return {grpc::StatusCode::RESOURCE_EXHAUSTED,
            "too many watchers: this launcher serves at most " + std::to_string(kMaxWatchers) +
                " WatchStatus streams at once (GetStatus has no limit)"};
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
    health_.started = true;
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
    status_.set_lr(p.lr());
    const int64_t left = std::max<int64_t>(0, status_.total_steps() - p.global_step());
    const bool known = status_.total_steps() > 0 &&
                       (left == 0 || (p.images_per_sec() > 0 && info_.batch_size > 0));
    status_.set_eta_known(known);
    status_.set_eta_seconds(known && left > 0 ? left * double(info_.batch_size) / p.images_per_sec()
                                              : 0);
    sample_locked(p);
  }
  if (req.rank_stats_size() > 0) {
    *status_.mutable_rank_stats() = req.rank_stats();
    *status_.mutable_rank_stats_time() = TimeUtil::GetCurrentTime();
    news = true;
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
    status_.set_last_checkpoint_absolute(absolute_path(req.checkpoint().path()));
    status_.set_last_checkpoint_step(req.checkpoint().global_step());
    ++ckpt_reports_;
    *status_.mutable_last_checkpoint_time() = TimeUtil::GetCurrentTime();
    auto* c = status_.add_checkpoints();
    *c->mutable_time() = status_.last_checkpoint_time();
    c->set_step(req.checkpoint().global_step());
    c->set_path(req.checkpoint().path());
    auto* all = status_.mutable_checkpoints();
    if (all->size() > kMaxCheckpointEvents) all->erase(all->begin());
    news = true;
  }
  if (!req.best_checkpoint().empty()) {
    status_.set_best_checkpoint(req.best_checkpoint());
    news = true;
  }
  if (!req.early_stop().empty()) status_.set_early_stop(req.early_stop());
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
    ckpt_delivered_ = ckpt_requested_;
    ckpt_reports_at_delivery_ = ckpt_reports_;
    changed_.notify_all();
  }
  return grpc::Status::OK;
}

// The newest sample follows every report; a new one starts every
// kSampleSeconds. images/s comes from the steps since the sample before it, so
// it is the recent rate, not the epoch's mean.
void StatusService::sample_locked(const pb::Progress& p) {
  const auto now = Clock::now();
  auto* samples = status_.mutable_samples();
  if (samples->empty() || now - newest_sample_start_ >= std::chrono::seconds(kSampleSeconds)) {
    samples->Add();
    newest_sample_start_ = now;
    if (samples->size() > kMaxSamples) samples->erase(samples->begin());
  }
  pb::StatusSample& s = *samples->rbegin();
  const auto t = TimeUtil::GetCurrentTime();
  *s.mutable_time() = t;
  s.set_epoch(p.epoch());
  s.set_step(p.global_step());
  s.set_loss(p.loss());
  s.set_accuracy(p.accuracy());
  s.set_lr(p.lr());
  s.set_images_per_sec(p.images_per_sec());
  if (samples->size() >= 2 && info_.batch_size > 0) {
    const pb::StatusSample& prev = (*samples)[samples->size() - 2];
    const double dt = TimeUtil::DurationToNanoseconds(t - prev.time()) * 1e-9;
    const int64_t ds = p.global_step() - prev.step();
    if (dt > 0 && ds >= 0) s.set_images_per_sec(ds * double(info_.batch_size) / dt);
  }
}

grpc::Status StatusService::stop(const grpc::ServerContext& ctx, const pb::StopRequest& req,
                                 pb::StopReply* reply) {
  if (grpc::Status st = check_token(ctx); !st.ok()) return st;
  std::string out;
  if (!stop_job(ctx.peer(), req.reason(), &out))
    return {out.rfind("reason", 0) == 0 ? grpc::StatusCode::INVALID_ARGUMENT
                                        : grpc::StatusCode::FAILED_PRECONDITION,
            out};
  reply->set_message(out);
  return grpc::Status::OK;
}

grpc::Status StatusService::checkpoint(const grpc::ServerContext& ctx,
                                       const pb::CheckpointRequest& req,
                                       pb::CheckpointReply* reply) {
  if (grpc::Status st = check_token(ctx); !st.ok()) return st;
  if (req.wait_ms() < 0 || req.wait_ms() > kMaxCheckpointWaitMs)
    return {grpc::StatusCode::INVALID_ARGUMENT,
            "wait_ms must be in [0, " + std::to_string(kMaxCheckpointWaitMs) + "]"};
  std::unique_lock lock(mu_);
  const uint64_t mine = request_checkpoint_locked(ctx.peer());
  if (mine == 0) return {grpc::StatusCode::FAILED_PRECONDITION, "the job is ending"};
  reply->set_step(status_.step());
  reply->set_message(
      "requested: rank 0 writes a checkpoint at its next step after its next report "
      "(after step " +
      std::to_string(status_.step()) + ")");
  if (req.wait_ms() == 0) return grpc::Status::OK;
  // Wait for the first checkpoint rank 0 reports after it got the command,
  // until wait_ms, the call's deadline, the client leaving or the job ending.
  auto until = std::chrono::system_clock::now() + std::chrono::milliseconds(req.wait_ms());
  until = std::min(until, ctx.deadline());
  std::optional<uint64_t> base;
  for (;;) {
    if (!base && ckpt_delivered_ >= mine) base = ckpt_reports_at_delivery_;
    if (base && ckpt_reports_ > *base) {
      reply->set_written(true);
      reply->set_step(status_.last_checkpoint_step());
      reply->set_path(status_.last_checkpoint_absolute());
      reply->set_message("written at step " + std::to_string(status_.last_checkpoint_step()) +
                         ": " + status_.last_checkpoint_absolute());
      return grpc::Status::OK;
    }
    const auto now = std::chrono::system_clock::now();
    if (now >= until || ctx.IsCancelled() || shutting_down_ || is_terminal(status_.state()) ||
        health_.stop_requested)
      break;
    changed_.wait_for(
        lock, std::min<std::chrono::system_clock::duration>(until - now, std::chrono::seconds(1)));
  }
  reply->set_step(status_.step());
  reply->set_message(std::string(base ? "rank 0 got the request but has not reported the "
                                        "checkpoint yet"
                                      : "rank 0 has not fetched the request yet") +
                     " (at step " + std::to_string(status_.step()) +
                     "); it stays requested: see last_checkpoint_step");
  return grpc::Status::OK;
}

bool StatusService::token_matches(const std::string& presented) const {
  return !info_.token.empty() && !presented.empty() && same_secret(presented, info_.token);
}

bool StatusService::stop_job(const std::string& who, const std::string& reason, std::string* out) {
  if (reason.size() > 1000) {
    *out = "reason longer than 1000 bytes";
    return false;
  }
  {
    std::lock_guard lock(mu_);
    if (is_terminal(status_.state())) {
      *out = "the job has already ended";
      return false;
    }
  }
  *out = request_stop("Stop from " + who + (reason.empty() ? "" : " (" + reason + ")"))
             ? "stopping: workers write a checkpoint at their next step and end"
             : "already stopping";
  return true;
}

bool StatusService::checkpoint_job(const std::string& who, std::string* out) {
  std::lock_guard lock(mu_);
  if (request_checkpoint_locked(who) == 0) {
    *out = "the job is ending";
    return false;
  }
  *out = "requested: rank 0 writes a checkpoint at its next step after its next report";
  return true;
}

// The one place a checkpoint is asked for (gRPC and HTTP): its ticket for a
// caller that waits, 0 when the job is ending.
uint64_t StatusService::request_checkpoint_locked(const std::string& who) {
  if (is_terminal(status_.state()) || health_.stop_requested) return 0;
  checkpoint_pending_ = true;
  status_.set_message("checkpoint requested by " + who);
  touch_locked();
  return ++ckpt_requested_;
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
