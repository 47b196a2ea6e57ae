#include "report/reporter.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <mutex>
#include <thread>

#include "dpcnn/v1/status.grpc.pb.h"
#include "dpcnn/v1/status.pb.h"

namespace dpcnn {
namespace {

namespace pb = dpcnn::v1;

// Folds `newer` into `older` so that a report that failed can go out together
// with what came after it: latest progress/checkpoint/finish win, epochs add up.
void merge_report(pb::ReportRequest& older, const pb::ReportRequest& newer) {
  if (newer.has_start()) *older.mutable_start() = newer.start();
  if (newer.has_progress()) *older.mutable_progress() = newer.progress();
  for (const auto& e : newer.epochs()) *older.add_epochs() = e;
  if (newer.has_checkpoint()) *older.mutable_checkpoint() = newer.checkpoint();
  if (newer.has_finish()) *older.mutable_finish() = newer.finish();
  if (newer.rank_stats_size() > 0) *older.mutable_rank_stats() = newer.rank_stats();
  if (!newer.early_stop().empty()) older.set_early_stop(newer.early_stop());
  if (!newer.best_checkpoint().empty()) older.set_best_checkpoint(newer.best_checkpoint());
}

// TLS when the launcher serves it: it passes the certificate to trust in
// $DPCNN_TLS_CA (a path), like the token, through the environment.
std::shared_ptr<grpc::ChannelCredentials> channel_credentials() {
  const char* ca = std::getenv("DPCNN_TLS_CA");
  if (!ca || !*ca) return grpc::InsecureChannelCredentials();
  std::ifstream f(ca);
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs.assign(std::istreambuf_iterator<char>(f), {});
  return grpc::SslCredentials(ssl);
}

class GrpcReporter final : public TrainingObserver {
 public:
  GrpcReporter(const std::string& address, const std::string& run_id, const ReporterOptions& opt)
      : address_(address),
        run_id_(run_id),
        opt_(opt),
        stub_(pb::Reporter::NewStub(grpc::CreateChannel(address, channel_credentials()))),
        thread_([this] { loop(); }) {}

  ~GrpcReporter() override {
    {
      std::lock_guard lock(mu_);
      closing_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }

  void on_start(const RunInfo& r) override {
    std::lock_guard lock(mu_);
    auto* s = pending_.mutable_start();
    s->set_name(r.name);
    s->set_run_dir(r.run_dir);
    s->set_ranks(r.ranks);
    s->clear_hosts();
    for (const auto& h : r.hosts) s->add_hosts(h);
    s->set_epochs(r.epochs);
    s->set_steps_per_epoch(r.steps_per_epoch);
    s->set_total_steps(r.total_steps);
    s->set_start_step(r.start_step);
    urgent_locked();
  }

  void on_progress(const ProgressInfo& p) override {
    std::lock_guard lock(mu_);
    auto* q = pending_.mutable_progress();
    q->set_epoch(p.epoch);
    q->set_step_in_epoch(p.step_in_epoch);
    q->set_global_step(p.global_step);
    q->set_total_steps(p.total_steps);
    q->set_loss(p.loss);
    q->set_accuracy(p.accuracy);
    q->set_images_per_sec(p.images_per_sec);
    q->set_lr(p.lr);
    // The first step goes out at once (the launcher learns the job trains);
    // later ones wait for the sender's tick, so a step costs a few stores and
    // an uncontended lock.
    if (!stepped_) {
      stepped_ = true;
      urgent_locked();
    }
  }

  void on_epoch_end(const EpochMetrics& m) override {
    std::lock_guard lock(mu_);
    auto* e = pending_.add_epochs();
    e->set_epoch(m.epoch);
    e->set_step(m.step);
    e->set_loss(m.loss);
    e->set_accuracy(m.accuracy);
    e->set_val_loss(m.val_loss);
    e->set_val_accuracy(m.val_accuracy);
    e->set_lr(m.lr);
    e->set_seconds(m.seconds);
    e->set_images_per_sec(m.images_per_sec);
    e->set_test_loss(m.test_loss);
    e->set_test_accuracy(m.test_accuracy);
    e->set_best(m.best);
    urgent_locked();
  }

  void on_best(const std::string& path) override {
    std::lock_guard lock(mu_);
    pending_.set_best_checkpoint(path);
    urgent_locked();
  }

  void on_checkpoint(const std::string& path, int64_t global_step) override {
    std::lock_guard lock(mu_);
    pending_.mutable_checkpoint()->set_path(path);
    pending_.mutable_checkpoint()->set_global_step(global_step);
    urgent_locked();
  }

  void on_finish(const FinalResult& f) override {
    std::lock_guard lock(mu_);
    auto* r = pending_.mutable_finish();
    r->set_test_loss(f.test_loss);
    r->set_test_accuracy(f.test_accuracy);
    r->set_test_count(f.test_count);
    r->set_images_per_sec(f.images_per_sec);
    r->set_stopped(f.stopped);
    pending_.set_early_stop(f.early_stop);
    urgent_locked();
  }

  // One gather a report interval: a collective of a few doubles a second.
  bool wants_rank_stats() override {
    const auto now = std::chrono::steady_clock::now();
    if (now < next_gather_) return false;
    next_gather_ = now + opt_.interval;
    return true;
  }

  void on_rank_stats(const std::vector<RankStats>& stats) override {
    std::lock_guard lock(mu_);
    pending_.clear_rank_stats();
    for (const RankStats& r : stats) {
      auto* p = pending_.add_rank_stats();
      p->set_rank(r.rank);
      p->set_host(r.host);
      p->set_steps(r.steps);
      p->set_step_seconds(r.step);
      p->set_data_seconds(r.data);
      p->set_forward_backward_seconds(r.forward_backward);
      p->set_allreduce_wait_seconds(r.allreduce_wait);
      p->set_optimizer_seconds(r.optimizer);
      p->set_peak_rss_bytes(r.peak_rss_bytes);
    }
  }

  // A checkpoint request is acted on once; a stop stays (the launcher repeats
  // it in every reply anyway, and the trainer ends on the first one it sees).
  Command poll_command() override {
    int32_t c = command_.load(std::memory_order_relaxed);
    if (c == static_cast<int32_t>(Command::kCheckpoint))
      command_.compare_exchange_strong(c, static_cast<int32_t>(Command::kNone));
    return static_cast<Command>(c);
  }

 private:
  void urgent_locked() {
    urgent_ = true;
    cv_.notify_one();
  }

  void loop() {
    auto next = std::chrono::steady_clock::now();
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait_until(lock, next, [&] { return urgent_ || closing_; });
      const bool last = closing_;
      urgent_ = false;
      pb::ReportRequest req;
      req.Swap(&pending_);
      lock.unlock();
      const bool ok = send(req, last);
      lock.lock();
      if (!ok) {
        merge_report(req, pending_);
        pending_.Swap(&req);
      }
      if (last) return;
      next = std::chrono::steady_clock::now() + opt_.interval;
    }
  }

  bool send(pb::ReportRequest& req, bool last) {
    if (last && req.ByteSizeLong() == 0) return true;  // nothing left to say
    req.set_run_id(run_id_);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + opt_.rpc_timeout);
    if (!opt_.token.empty()) ctx.AddMetadata("authorization", "Bearer " + opt_.token);
    pb::ReportReply reply;
    const grpc::Status st = stub_->Report(&ctx, req, &reply);
    req.clear_run_id();
    if (!st.ok()) {
      // Once per outage, not once per second: training goes on regardless.
      if (!failing_)
        std::fprintf(stderr, "dpcnn-train: status reporter: %s: %s (training continues)\n",
                     address_.c_str(), st.error_message().c_str());
      failing_ = true;
      // A refused token or run id will not get better: drop the data rather
      // than grow; anything else (unreachable, timeout) is retried.
      const auto c = st.error_code();
      return c == grpc::StatusCode::UNAUTHENTICATED || c == grpc::StatusCode::PERMISSION_DENIED ||
             c == grpc::StatusCode::INVALID_ARGUMENT ||
             c == grpc::StatusCode::FAILED_PRECONDITION ||
             c == grpc::StatusCode::RESOURCE_EXHAUSTED;
    }
    if (failing_)
      std::fprintf(stderr, "dpcnn-train: status reporter: %s: reachable again\n", address_.c_str());
    failing_ = false;
    if (reply.command() == pb::COMMAND_STOP)
      command_.store(static_cast<int32_t>(Command::kStop));
    else if (reply.command() == pb::COMMAND_CHECKPOINT) {
      int32_t none = static_cast<int32_t>(Command::kNone);
      command_.compare_exchange_strong(none, static_cast<int32_t>(Command::kCheckpoint));
    }
    return true;
  }

  const std::string address_, run_id_;
  const ReporterOptions opt_;
  std::unique_ptr<pb::Reporter::Stub> stub_;
  std::atomic<int32_t> command_{0};
  bool failing_ = false;                                 // sender thread only
  std::chrono::steady_clock::time_point next_gather_{};  // training thread only

  std::mutex mu_;  // guards pending_, urgent_, closing_, stepped_
  std::condition_variable cv_;
  pb::ReportRequest pending_;
  bool urgent_ = false, closing_ = false;
  bool stepped_ = false;

  std::thread thread_;  // last: starts after everything above exists
};

}  // namespace

std::unique_ptr<TrainingObserver> make_grpc_reporter(const std::string& address,
                                                     const std::string& run_id) {
  ReporterOptions opt;
  if (const char* t = std::getenv("DPCNN_RUN_TOKEN")) opt.token = t;
  return make_grpc_reporter(address, run_id, opt);
}

std::unique_ptr<TrainingObserver> make_grpc_reporter(const std::string& address,
                                                     const std::string& run_id,
                                                     const ReporterOptions& options) {
  return std::make_unique<GrpcReporter>(address, run_id, options);
}

}  // namespace dpcnn
