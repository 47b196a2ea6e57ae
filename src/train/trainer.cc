#include "train/trainer.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "checkpoint/checkpoint.h"
#include "core/error.h"
#include "data/augment.h"
#include "train/progress.h"

namespace dpcnn {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

Slice rank_slice(int64_t total, int rank, int ranks) {
  const int64_t base = total / ranks, rem = total % ranks;
  return {rank * base + std::min<int64_t>(rank, rem), static_cast<int>(base + (rank < rem))};
}

void Trainer::set_run_dir(std::string dir) {
  run_dir_ = std::move(dir);
  if (comm_.rank() == 0 && !run_dir_.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(run_dir_, ec);
    if (ec) throw Error("cannot create run directory '" + run_dir_ + "': " + ec.message());
  }
}

uint64_t checksum(const float* data, size_t n) {
  const auto* p = reinterpret_cast<const unsigned char*>(data);
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n * sizeof(float); ++i) h = (h ^ p[i]) * 1099511628211ULL;
  return h;
}

namespace {

// The best checkpoint follows early stopping's mode when both watch one metric.
std::string best_mode(const Config& cfg) {
  const auto& es = cfg.train.early_stopping;
  return es.enabled && es.monitor == best_monitor(cfg) ? es.mode : "auto";
}

}  // namespace

Trainer::Trainer(const Config& cfg, Communicator& comm, const DataSplit& data,
                 const TrainerOptions& options)
    : cfg_(cfg),
      comm_(comm),
      data_(data),
      opts_(options),
      model_(cfg.model, options.precision),
      early_(cfg.train.early_stopping),
      best_(best_monitor(cfg), best_mode(cfg)) {
  const int b = cfg.train.batch_size;
  if (b < comm.size())
    throw InputError("train.batch_size " + std::to_string(b) + " is smaller than the rank count " +
                     std::to_string(comm.size()) + ": every rank needs at least one sample a step");
  if (data.train.image_size() != model_.input_size())
    throw InputError("data in '" + cfg.data.dir + "' has images of " +
                     std::to_string(data.train.channels) + "x" + std::to_string(data.train.height) +
                     "x" + std::to_string(data.train.width) + ", model.input expects " +
                     std::to_string(cfg.model.input[0]) + "x" + std::to_string(cfg.model.input[1]) +
                     "x" + std::to_string(cfg.model.input[2]));
  steps_per_epoch_ = (data.train.count + b - 1) / b;
  total_steps_ = steps_per_epoch_ * cfg.train.epochs;
  if (cfg.train.max_steps > 0) total_steps_ = std::min<int64_t>(total_steps_, cfg.train.max_steps);
  set_run_dir(options.run_dir);
  if (comm.size() > 1) model_.set_batch_stats_reducer(&batch_stats_);
  // Evaluation in f32 whatever trains: the accuracy is then the same for any
  // rank count (a bf16 kernel's rounding may depend on the slice's size) and
  // what dpcnn-predict and the ONNX export compute by default.
  model_.set_inference_precision(Precision::kFp32);
  // Rank 0's initial weights are everyone's (as DDP and Horovod do).
  model_.init(cfg.seed);
  opt_ = make_optimizer(cfg.optimizer, model_.param_count());
  if (!opts_.resume.empty()) {
    resume(opts_.resume);  // broadcasts rank 0's checkpoint
  } else {
    comm_.broadcast(model_.params(), model_.param_count() * sizeof(float), 0);
    comm_.broadcast(model_.state(), model_.state_count() * sizeof(float), 0);
  }
  reducer_ = comm_.make_reducer(model_.grads(), model_.param_count(),
                                static_cast<size_t>(cfg.distributed.bucket_kb) * 1024,
                                cfg.distributed.overlap);
  // A batch larger than the training set is one step of the whole set (as in
  // Keras and PyTorch); buffers are sized for what a step can really hold.
  const int per_rank = rank_slice(std::min<int64_t>(b, data.train.count), 0, comm.size()).n;
  x_.resize(static_cast<size_t>(per_rank) * model_.input_size());
  y_.resize(per_rank);
}

void Trainer::record_times(Clock::time_point t0, Clock::time_point t1, Clock::time_point t2,
                           Clock::time_point t3, int64_t images) {
  const auto now = Clock::now();
  auto sec = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
  times_.data += sec(t0, t1);
  times_.forward_backward += sec(t1, t2);
  times_.allreduce_wait += reducer_->take_wait_seconds();
  times_.optimizer += sec(t3, now);
  times_.wall += sec(t0, now);
  times_.steps++;
  times_.images += images;
}

EvalResult Trainer::run() {
  hosts_ = comm_.allgather(comm_.host());
  if (comm_.rank() == 0 && opts_.observer)
    opts_.observer->on_start({cfg_.name, run_dir_, comm_.size(), hosts_, cfg_.train.epochs,
                              steps_per_epoch_, total_steps_, global_step_});
  // Ends when the steps are done, so max_steps on an epoch boundary does not
  // start (and log) an empty epoch.
  if (early_stopped_ && comm_.rank() == 0)
    std::printf(
        "this run stopped early at epoch %d: %s; nothing to train (raise "
        "train.early_stopping.patience, or remove train.early_stopping, to train on)\n",
        early_.stopped_epoch(), early_reason_.c_str());
  for (int epoch = start_epoch_;
       epoch < cfg_.train.epochs && !done_ && !complete() && !early_stopped_; ++epoch)
    train_epoch(epoch);
  if (stopped_) {
    if (comm_.rank() == 0 && opts_.observer) opts_.observer->on_finish({0, 0, 0, 0, true, ""});
    return {};
  }
  const EvalResult r = evaluate();
  print_summary(r);
  if (comm_.rank() == 0 && opts_.observer) {
    const double ips = times_.wall > 0 ? times_.images / times_.wall : 0;
    opts_.observer->on_finish({r.loss, r.accuracy, r.count, ips, false, early_reason_});
  }
  return r;
}

// One step of the global batch starting at position s*B of `order`: this
// rank's slice, forward + backward (buckets reduced as they become final),
// wait for the allreduce, update. Every rank runs it with the same s.
LossResult Trainer::step(const std::vector<int64_t>& order, int epoch, int64_t s) {
  const int64_t b = cfg_.train.batch_size;
  const auto t0 = Clock::now();
  const int64_t gbegin = s * b, gsize = std::min(b, data_.train.count - gbegin);  // global batch
  const Slice mine = rank_slice(gsize, comm_.rank(), comm_.size());  // this rank's part
  const int64_t* samples = order.data() + gbegin + mine.begin;
  if (cfg_.data.augment.enabled())  // drawn per (seed, epoch, sample): any rank count alike
    fill_batch_augmented(data_.train, samples, mine.n, x_.data(), y_.data(), cfg_.data.augment,
                         cfg_.seed, epoch);
  else
    fill_batch(data_.train, samples, mine.n, x_.data(), y_.data());
  const auto t1 = Clock::now();
  const StepInfo info{cfg_.seed, static_cast<uint64_t>(global_step_), mine.begin};
  const float scale = 1.0f / static_cast<float>(gsize);  // mean over the GLOBAL batch
  auto ready = [this](size_t offset) { reducer_->ready_from(offset); };
  const LossResult r = model_.train_step(x_.data(), y_.data(), mine.n, scale, info, ready);
  const auto t2 = Clock::now();
  reducer_->finish();  // grads = sum over ranks of per-sample grads / global batch
  const auto t3 = Clock::now();
  lr_ = learning_rate(cfg_.optimizer, global_step_, steps_per_epoch_, total_steps_);
  opt_->step(model_.params(), model_.grads(), model_.param_count(), lr_);
  ++global_step_;
  if (global_step_ > kWarmupSteps)
    record_times(t0, t1, t2, t3, gsize);
  else
    reducer_->take_wait_seconds();
  return r;
}

// One epoch from the resume position; a command (checkpoint, stop) is taken
// between steps, on every rank at the same step.
void Trainer::train_epoch(int epoch) {
  const std::vector<int64_t> order = epoch_order(cfg_.seed, epoch, data_.train.count);
  ProgressOptions po;
  po.enabled = comm_.rank() == 0;
  po.live = opts_.live_progress;
  po.interval_s = cfg_.train.progress_interval_s;
  Progress progress(po);
  const int64_t first = epoch == start_epoch_ ? start_step_ : 0;
  // max_steps may end this epoch early: the bar ends at the true count.
  const int64_t last = std::min(steps_per_epoch_, first + (total_steps_ - global_step_));
  progress.begin_epoch(epoch + 1, cfg_.train.epochs, last, first);
  const auto epoch_start = Clock::now();
  double loss_sum = 0, correct = 0;
  int64_t seen = 0;
  int64_t s = first;
  for (; s < steps_per_epoch_; ++s) {
    if (handle_command(epoch, s) || global_step_ >= total_steps_) {
      done_ = true;
      break;
    }
    const LossResult r = step(order, epoch, s);
    loss_sum += r.loss_sum;
    correct += static_cast<double>(r.correct);
    seen += r.count;
    progress.step(s + 1, loss_sum / seen, correct / seen);
    if (comm_.rank() == 0 && opts_.observer) {
      const double el = since(epoch_start), imgs = (s + 1 - first) * cfg_.train.batch_size;
      opts_.observer->on_progress({epoch + 1, s + 1, global_step_, total_steps_, loss_sum / seen,
                                   correct / seen, el > 0 ? imgs / el : 0, lr_});
    }
    if (cfg_.checkpoint.every_steps > 0 && global_step_ % cfg_.checkpoint.every_steps == 0)
      save_checkpoint(epoch, s + 1);
  }
  if (stopped_) return;
  EpochMetrics m = end_epoch(epoch, loss_sum, correct, seen, since(epoch_start));
  std::string extra;
  char buf[96];
  if (m.val_accuracy >= 0) {
    std::snprintf(buf, sizeof buf, " - val_loss: %.4f - val_accuracy: %.4f", m.val_loss,
                  m.val_accuracy);
    extra += buf;
  }
  if (m.test_accuracy >= 0) {
    std::snprintf(buf, sizeof buf, " - test_loss: %.4f - test_accuracy: %.4f", m.test_loss,
                  m.test_accuracy);
    extra += buf;
  }
  char ips[48];
  std::snprintf(ips, sizeof ips, " - %.0f img/s", m.images_per_sec);
  progress.end_epoch(s, m.loss, m.accuracy, extra + ips);
  if (comm_.rank() == 0 && opts_.observer) opts_.observer->on_epoch_end(m);
  if (s == steps_per_epoch_)
    save_checkpoint(epoch + 1, 0);
  else
    save_checkpoint(epoch, s);  // max_steps ended the run mid-epoch
  after_epoch_checkpoint(m);
}

// checkpoints/best, then early stopping: rank 0 decides (only it holds the
// history of a resumed run) and every rank ends after the same epoch, with
// the epoch's checkpoint already written.
void Trainer::after_epoch_checkpoint(EpochMetrics& m) {
  if (comm_.rank() == 0 && m.best && !run_dir_.empty()) {
    const std::string path = CheckpointDir(run_dir_ + "/checkpoints").set_best(global_step_);
    std::printf("best checkpoint %s (%s %.4f)\n", path.c_str(), best_.monitor().c_str(),
                best_.best());
    std::fflush(stdout);
    if (opts_.observer) opts_.observer->on_best(path);
  }
  int32_t stop = 0;
  if (comm_.rank() == 0 && early_.on_epoch_end(m)) {
    stop = 1;
    early_reason_ = early_.reason();
    std::printf("early stopping after epoch %d: %s\n", m.epoch, early_reason_.c_str());
    std::fflush(stdout);
  }
  comm_.broadcast(&stop, sizeof stop, 0);
  if (stop) done_ = early_stopped_ = true;
}

// Rank 0 asks its observer; every rank acts on the same command at this step.
// A stop signal on any rank counts as a Stop command; one reduction carries
// both, and whether to gather the ranks' figures now.
bool Trainer::handle_command(int epoch, int64_t step_in_epoch) {
  const bool signals = opts_.stop_flag != nullptr;
  if (!opts_.commands && !signals && comm_.size() > 1) return false;  // nobody can send one
  // {rank 0's command, signalled, gather rank stats}: rank 0's clock decides
  // when to gather, the reduction makes every rank gather at the same step.
  double v[3] = {0, signals && *opts_.stop_flag ? 1.0 : 0.0, 0};
  if (comm_.rank() == 0 && opts_.observer) {
    v[0] = static_cast<double>(opts_.observer->poll_command());
    v[2] = opts_.observer->wants_rank_stats() ? 1.0 : 0.0;
  }
  if (comm_.size() > 1) comm_.allreduce_sum(v, 3);
  if (v[2] > 0) gather_rank_stats();
  int32_t cmd = static_cast<int32_t>(v[0]);
  const bool signalled = v[1] > 0;
  if (signalled) cmd = static_cast<int32_t>(Command::kStop);
  if (cmd == static_cast<int32_t>(Command::kNone)) return false;
  save_checkpoint(epoch, step_in_epoch, /*on_command=*/true);
  if (cmd != static_cast<int32_t>(Command::kStop)) return false;
  if (comm_.rank() == 0)
    std::printf("stopped at step %lld%s\n", static_cast<long long>(global_step_),
                signalled ? " (SIGTERM: final checkpoint written)" : "");
  stopped_ = true;
  return true;
}

// Every rank's phase times since the last gather and its peak RSS, to rank 0's
// observer. Timing only: nothing here touches the model, so training numbers
// are the same with or without it.
void Trainer::gather_rank_stats() {
  const PhaseTimes& t = times_;
  const PhaseTimes& w = window_start_;
  const int64_t steps = t.steps - w.steps;
  if (steps > 0) {
    const double n = static_cast<double>(steps);
    last_window_.step = (t.wall - w.wall) / n;
    last_window_.data = (t.data - w.data) / n;
    last_window_.forward_backward = (t.forward_backward - w.forward_backward) / n;
    last_window_.allreduce_wait = (t.allreduce_wait - w.allreduce_wait) / n;
    last_window_.optimizer = (t.optimizer - w.optimizer) / n;
  }
  window_start_ = times_;
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  constexpr size_t kFields = 7;
  const std::vector<double> mine = {static_cast<double>(steps),
                                    last_window_.step,
                                    last_window_.data,
                                    last_window_.forward_backward,
                                    last_window_.allreduce_wait,
                                    last_window_.optimizer,
                                    static_cast<double>(ru.ru_maxrss) * 1024.0};
  const std::vector<double> all = comm_.allgather(mine);
  if (comm_.rank() != 0 || !opts_.observer) return;
  std::vector<RankStats> stats(static_cast<size_t>(comm_.size()));
  for (size_t r = 0; r < stats.size(); ++r) {
    const double* v = all.data() + r * kFields;
    RankStats& s = stats[r];
    s.rank = static_cast<int>(r);
    s.host = r < hosts_.size() ? hosts_[r] : "";
    s.steps = static_cast<int64_t>(v[0]);
    s.step = v[1], s.data = v[2], s.forward_backward = v[3], s.allreduce_wait = v[4];
    s.optimizer = v[5];
    s.peak_rss_bytes = static_cast<uint64_t>(v[6]);
  }
  opts_.observer->on_rank_stats(stats);
}

EpochMetrics Trainer::end_epoch(int epoch, double loss_sum, double correct, int64_t seen,
                                double seconds) {
  double sums[3] = {loss_sum, correct, static_cast<double>(seen)};
  comm_.allreduce_sum(sums, 3);
  check_replicas_agree(epoch);
  EpochMetrics m;
  m.epoch = epoch + 1;
  m.step = global_step_;
  m.loss = sums[2] > 0 ? sums[0] / sums[2] : 0;
  m.accuracy = sums[2] > 0 ? sums[1] / sums[2] : 0;
  m.lr = learning_rate(cfg_.optimizer, std::max<int64_t>(0, global_step_ - 1), steps_per_epoch_,
                       total_steps_);
  m.seconds = seconds;
  m.images_per_sec = seconds > 0 ? sums[2] / seconds : 0;
  if (cfg_.train.eval && data_.val.count > 0) {
    const EvalResult e = evaluate_validation();
    m.val_loss = e.loss;
    m.val_accuracy = e.accuracy;
  }
  if (cfg_.train.eval && cfg_.train.test_each_epoch) {
    const EvalResult e = evaluate();
    m.test_loss = e.loss;
    m.test_accuracy = e.accuracy;
  }
  m.best = best_.improves(m);
  history_.push_back(m);
  if (comm_.rank() == 0 && !run_dir_.empty()) {
    append_metrics(run_dir_ + "/metrics.jsonl", m);
    write_file_atomic(run_dir_ + "/curves.svg", curves_svg(history_, cfg_.name));
  }
  return m;
}

void Trainer::check_replicas_agree(int epoch) {
  const std::vector<uint64_t> sums =
      comm_.allgather(checksum(model_.params(), model_.param_count()));
  std::string bad;
  for (size_t r = 1; r < sums.size(); ++r)
    if (sums[r] != sums[0]) {
      if (!bad.empty()) bad += ',';
      bad += std::to_string(r);
    }
  if (!bad.empty())
    throw Error("after epoch " + std::to_string(epoch + 1) + " the weights of rank(s) " + bad +
                " differ from rank 0's: replicas diverged");
}

EvalResult Trainer::evaluate() {
  const Dataset& test = data_.test;
  // This rank's slice, as positions in `test` (which may hold just that slice).
  const int total = data_.test_total >= 0 ? data_.test_total : test.count;
  Slice mine = rank_slice(total, comm_.rank(), comm_.size());
  if (data_.test_total >= 0) {
    if (mine.begin != data_.test_begin || mine.n != test.count)
      throw Error("the test slice loaded does not match this rank's evaluation slice");
    mine.begin = 0;
  }
  return evaluate_slice(test, mine);
}

EvalResult Trainer::evaluate_validation() {
  return evaluate_slice(data_.val, rank_slice(data_.val.count, comm_.rank(), comm_.size()));
}

// Samples [mine.begin, mine.begin + mine.n) of `test` on this rank, summed
// over all ranks (collective).
EvalResult Trainer::evaluate_slice(const Dataset& test, Slice mine) {
  const int eb =
      cfg_.train.eval_batch_size > 0 ? cfg_.train.eval_batch_size : cfg_.train.batch_size;
  const int chunk = std::max(1, (eb + comm_.size() - 1) / comm_.size());
  std::vector<float> x(static_cast<size_t>(std::min(chunk, std::max(mine.n, 1))) *
                       model_.input_size());
  std::vector<int32_t> y(x.size() / model_.input_size());
  std::vector<int64_t> idx(y.size());
  double sums[3] = {0, 0, static_cast<double>(mine.n)};
  for (int64_t i = 0; i < mine.n; i += chunk) {
    const int n = static_cast<int>(std::min<int64_t>(chunk, mine.n - i));
    for (int k = 0; k < n; ++k) idx[k] = mine.begin + i + k;
    fill_batch(test, idx.data(), n, x.data(), y.data());
    const LossResult r = model_.evaluate(x.data(), y.data(), n);
    sums[0] += r.loss_sum;
    sums[1] += static_cast<double>(r.correct);
  }
  comm_.allreduce_sum(sums, 3);
  EvalResult e;
  e.count = static_cast<int64_t>(sums[2]);
  e.loss = e.count > 0 ? sums[0] / e.count : 0;
  e.correct = static_cast<int64_t>(sums[1]);
  e.accuracy = e.count > 0 ? sums[1] / e.count : 0;
  return e;
}

void Trainer::print_summary(const EvalResult& e) {
  // Collective (every rank's peak RSS), then rank 0 prints.
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  const std::vector<uint64_t> rss_kb = comm_.allgather(static_cast<uint64_t>(ru.ru_maxrss));
  if (comm_.rank() != 0) return;
  const PhaseTimes& t = times_;
  const double steps = std::max<int64_t>(1, t.steps);
  std::string rss;
  for (uint64_t kb : rss_kb) {
    if (!rss.empty()) rss += ',';
    rss += std::to_string(kb / 1024);
  }
  std::printf("test_loss %.4f test_acc %.4f (%lld/%lld)\n", e.loss, e.accuracy,
              static_cast<long long>(e.correct), static_cast<long long>(e.count));
  std::printf(
      "perf {\"ranks\":%d,\"steps\":%lld,\"images\":%lld,\"images_per_sec\":%.1f,"
      "\"step_ms\":{\"data\":%.3f,\"forward_backward\":%.3f,\"allreduce_wait\":%.3f,"
      "\"optimizer\":%.3f,\"total\":%.3f},\"peak_rss_mb\":[%s]}\n",
      comm_.size(), static_cast<long long>(t.steps), static_cast<long long>(t.images),
      t.wall > 0 ? t.images / t.wall : 0.0, 1e3 * t.data / steps, 1e3 * t.forward_backward / steps,
      1e3 * t.allreduce_wait / steps, 1e3 * t.optimizer / steps, 1e3 * t.wall / steps, rss.c_str());
  std::fflush(stdout);
}

}  // namespace dpcnn
