// The launcher's gRPC service against the real server over loopback, driven by
// the real reporter (src/report) from a fake training loop: what a report
// changes, the token rules, command delivery, WatchStatus, limits, and many
// concurrent readers while a run reports. Also the process-group handling.
#include "launcher/status_service.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include "launcher/status_server.h"
#include "launcher/status_text.h"
#include "launcher/supervisor.h"
#include "report/reporter.h"
#include "status_fixture.h"

namespace dpcnn::launcher {
namespace {

namespace pb = dpcnn::v1;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const char* kToken = "0123456789abcdef0123456789abcdef";

class StatusServiceTest : public LoopbackStatusTest {
 protected:
  StatusServiceTest() : LoopbackStatusTest("test-run", "test", kToken) {}
  void SetUp() override {
    LoopbackStatusTest::SetUp();
    channel = grpc::CreateChannel(addr, grpc::InsecureChannelCredentials());
    stub = pb::Status::NewStub(channel);
  }

  std::unique_ptr<TrainingObserver> reporter(const std::string& token = kToken) {
    ReporterOptions o;
    o.interval = 50ms;
    o.token = token;
    return make_grpc_reporter(addr, "test-run", o);
  }

  pb::JobStatus get() {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    pb::JobStatus s;
    EXPECT_TRUE(stub->GetStatus(&ctx, {}, &s).ok());
    return s;
  }

  grpc::Status stop(const std::string& key, const std::string& value, size_t reason_len = 0) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    if (!key.empty()) ctx.AddMetadata(key, value);
    pb::StopRequest req;
    req.set_reason(std::string(reason_len, 'x'));
    pb::StopReply reply;
    return stub->Stop(&ctx, req, &reply);
  }

  // Waits until `pred(status)` holds (or 10 s).
  template <class P>
  pb::JobStatus wait_for(P pred) {
    const auto until = Clock::now() + 10s;
    pb::JobStatus s = get();
    while (!pred(s) && Clock::now() < until) {
      std::this_thread::sleep_for(20ms);
      s = get();
    }
    return s;
  }

  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::Status::Stub> stub;
};

RunInfo run_info() {
  RunInfo r;
  r.name = "test";
  r.ranks = 2;
  r.hosts = {"h0", "h1"};
  r.epochs = 2;
  r.steps_per_epoch = 50;
  r.total_steps = 100;
  return r;
}

ProgressInfo progress(int64_t step) {
  ProgressInfo p;
  p.epoch = static_cast<int>(step / 50) + 1;
  p.step_in_epoch = step % 50;
  p.global_step = step;
  p.total_steps = 100;
  p.loss = 1.0 / (1 + step);
  p.accuracy = 0.5;
  p.images_per_sec = 3200;
  return p;
}

TEST_F(StatusServiceTest, ReportsBecomeStatus) {
  EXPECT_EQ(get().state(), pb::JOB_STATE_STARTING);
  {
    auto r = reporter();
    r->on_start(run_info());
    for (int64_t s = 1; s <= 60; ++s) r->on_progress(progress(s));
    EpochMetrics m;
    m.epoch = 1;
    m.step = 50;
    m.loss = 0.5;
    m.accuracy = 0.8;
    m.val_loss = 0.4;
    m.val_accuracy = 0.9;
    r->on_epoch_end(m);
    r->on_checkpoint("runs/test/checkpoints/ckpt-50.pb", 50);
    r->on_finish({0.3, 0.95, 203, 3000, false, ""});
  }  // the destructor flushes
  const pb::JobStatus s = get();
  EXPECT_EQ(s.state(), pb::JOB_STATE_RUNNING);
  EXPECT_EQ(s.ranks(), 2);
  ASSERT_EQ(s.hosts_size(), 2);
  EXPECT_EQ(s.hosts(1), "h1");
  EXPECT_EQ(s.step(), 60);
  EXPECT_EQ(s.total_steps(), 100);
  EXPECT_EQ(s.epoch(), 2);
  ASSERT_EQ(s.history_size(), 1);
  EXPECT_DOUBLE_EQ(s.history(0).val_accuracy(), 0.9);
  EXPECT_EQ(s.last_checkpoint(), "runs/test/checkpoints/ckpt-50.pb");
  EXPECT_EQ(s.last_checkpoint_step(), 50);
  EXPECT_TRUE(s.has_result());
  EXPECT_DOUBLE_EQ(s.test_accuracy(), 0.95);
  // 40 steps of 32 images left at 3200 images/s.
  EXPECT_NEAR(s.eta_seconds(), 40 * 32 / 3200.0, 1e-9);
  EXPECT_TRUE(service->health().ever_stepped);
  EXPECT_TRUE(service->health().finished);
}

TEST_F(StatusServiceTest, ReportsNeedTheRunTokenAndRunId) {
  {
    auto r = reporter("wrong-token");
    r->on_start(run_info());
    r->on_progress(progress(5));
  }
  EXPECT_EQ(get().step(), 0);
  EXPECT_FALSE(service->health().reported);

  auto rep = pb::Reporter::NewStub(channel);
  auto report = [&](const std::string& key, const std::string& value, const std::string& run) {
    grpc::ClientContext ctx;
    if (!key.empty()) ctx.AddMetadata(key, value);
    pb::ReportRequest req;
    req.set_run_id(run);
    pb::ReportReply reply;
    return rep->Report(&ctx, req, &reply).error_code();
  };
  EXPECT_EQ(report("", "", "test-run"), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(report("authorization", "Basic abc", "test-run"), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(report("authorization", "Bearer nope", "test-run"),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(report("authorization", std::string("Bearer ") + kToken, "other-run"),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(report("x-dpcnn-token", kToken, "test-run"), grpc::StatusCode::OK);
}

TEST_F(StatusServiceTest, StopNeedsTheTokenAndReachesTheWorker) {
  auto r = reporter();
  r->on_start(run_info());
  r->on_progress(progress(3));
  wait_for([](const pb::JobStatus& s) { return s.step() == 3; });

  EXPECT_EQ(stop("", "").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(stop("authorization", "Bearer ").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(stop("authorization", "Bearer 0123").error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(stop("x-dpcnn-token", std::string(kToken) + "0").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  // Refused calls change nothing.
  std::this_thread::sleep_for(200ms);
  EXPECT_FALSE(service->health().stop_requested);
  EXPECT_EQ(get().state(), pb::JOB_STATE_RUNNING);
  EXPECT_EQ(r->poll_command(), Command::kNone);

  EXPECT_TRUE(stop("authorization", std::string("Bearer ") + kToken).ok());
  EXPECT_TRUE(service->health().stop_requested);
  EXPECT_EQ(get().state(), pb::JOB_STATE_STOPPING);
  const auto until = Clock::now() + 5s;
  Command c = Command::kNone;
  while ((c = r->poll_command()) == Command::kNone && Clock::now() < until)
    std::this_thread::sleep_for(10ms);
  EXPECT_EQ(c, Command::kStop);
  EXPECT_EQ(r->poll_command(), Command::kStop);  // stays until the trainer ends
}

TEST_F(StatusServiceTest, CheckpointCommandIsDeliveredOnce) {
  auto r = reporter();
  r->on_start(run_info());
  grpc::ClientContext bad;
  pb::CheckpointReply reply;
  EXPECT_EQ(stub->Checkpoint(&bad, {}, &reply).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", std::string("Bearer ") + kToken);
  ASSERT_TRUE(stub->Checkpoint(&ctx, {}, &reply).ok());
  const auto until = Clock::now() + 5s;
  Command c = Command::kNone;
  while ((c = r->poll_command()) == Command::kNone && Clock::now() < until)
    std::this_thread::sleep_for(10ms);
  EXPECT_EQ(c, Command::kCheckpoint);
  std::this_thread::sleep_for(200ms);  // several more reports
  EXPECT_EQ(r->poll_command(), Command::kNone);
}

// The learning rate passes through; paths come absolute beside the relative
// ones; the ETA says "unknown" before any speed and after a failure, and
// "done" (known, 0) once no step is left; a restart keeps its reason.
TEST_F(StatusServiceTest, LrPathsEtaAndRestartReason) {
  pb::JobStatus s = get();
  EXPECT_FALSE(s.eta_known());
  EXPECT_EQ(s.config_path(), "configs/test.yaml");
  EXPECT_EQ(s.config_path_absolute(),
            (std::filesystem::current_path() / "configs/test.yaml").string());
  service->set_run_dir("runs/test/version_3");
  s = get();
  EXPECT_EQ(s.run_dir(), "runs/test/version_3");
  EXPECT_EQ(s.run_dir_absolute(),
            (std::filesystem::current_path() / "runs/test/version_3").string());
  EXPECT_EQ(s.status_file(), s.run_dir_absolute() + "/status.json");
  {
    auto r = reporter();
    r->on_start(run_info());
    ProgressInfo p = progress(60);
    p.lr = 2.5e-4;
    r->on_progress(p);
    r->on_checkpoint("runs/test/version_3/checkpoints/ckpt-0000000060.pb", 60);
  }
  s = get();
  EXPECT_DOUBLE_EQ(s.lr(), 2.5e-4);
  EXPECT_TRUE(s.eta_known());
  EXPECT_NEAR(s.eta_seconds(), 40 * 32 / 3200.0, 1e-9);
  EXPECT_EQ(s.last_checkpoint(), "runs/test/version_3/checkpoints/ckpt-0000000060.pb");
  EXPECT_EQ(s.last_checkpoint_absolute(), s.run_dir_absolute() + "/checkpoints/ckpt-0000000060.pb");
  service->count_restart("mpirun exited with status 1: rank 1 on h1: out of memory");
  s = get();
  EXPECT_FALSE(s.eta_known());  // the next attempt's speed is not known yet
  EXPECT_EQ(s.last_restart_reason(), "mpirun exited with status 1: rank 1 on h1: out of memory");
  EXPECT_GT(s.last_restart_time().seconds(), 0);
  {
    auto r = reporter();
    r->on_progress(progress(100));
  }
  s = get();
  EXPECT_TRUE(s.eta_known());
  EXPECT_EQ(s.eta_seconds(), 0);
  EXPECT_EQ(eta_text(s), "done");
  service->set_state(pb::JOB_STATE_FAILED, "gave up", "worker died");
  EXPECT_FALSE(get().eta_known());
  EXPECT_EQ(eta_text(get()), "unknown");
  service->set_state(pb::JOB_STATE_FINISHED, "finished");
  EXPECT_TRUE(get().eta_known());
  EXPECT_EQ(eta_text(get()), "done");
}

// A Checkpoint call that waits is answered with the step and path of the
// checkpoint rank 0 wrote for it: a fake training loop that steps, polls its
// command like the trainer and checkpoints when told. A checkpoint written
// before the request (an epoch end) is not taken for the requested one.
TEST_F(StatusServiceTest, CheckpointReplySaysTheStepItWasWrittenAt) {
  auto r = reporter();
  r->on_start(run_info());
  std::atomic<bool> end{false};
  std::atomic<int64_t> written{-1};
  std::thread loop([&] {
    for (int64_t step = 1; !end; ++step) {
      if (r->poll_command() == Command::kCheckpoint) {
        // Stored first: on_checkpoint releases the reply, and the client may
        // read `written` before this thread gets past the call.
        written = step;
        r->on_checkpoint("runs/test/checkpoints/ckpt-" + std::to_string(step) + ".pb", step);
      }
      r->on_progress(progress(step % 100));
      if (step == 5) r->on_checkpoint("runs/test/checkpoints/ckpt-5.pb", 5);  // before the request
      std::this_thread::sleep_for(5ms);
    }
  });
  wait_for([](const pb::JobStatus& s) { return s.last_checkpoint_step() == 5; });
  auto call = [&](int wait_ms, pb::CheckpointReply* reply) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 30s);
    ctx.AddMetadata("authorization", std::string("Bearer ") + kToken);
    pb::CheckpointRequest req;
    req.set_wait_ms(wait_ms);
    return stub->Checkpoint(&ctx, req, reply);
  };
  pb::CheckpointReply reply;
  ASSERT_TRUE(call(20000, &reply).ok());
  EXPECT_TRUE(reply.written()) << reply.message();
  EXPECT_EQ(reply.step(), written.load());
  EXPECT_GT(reply.step(), 5);
  EXPECT_EQ(reply.path(), (std::filesystem::current_path() /
                           ("runs/test/checkpoints/ckpt-" + std::to_string(reply.step()) + ".pb"))
                              .string());
  EXPECT_EQ(reply.message(),
            "written at step " + std::to_string(reply.step()) + ": " + reply.path());
  // Without a wait (an old client): at once, the step it comes after.
  pb::CheckpointReply quick;
  ASSERT_TRUE(call(0, &quick).ok());
  EXPECT_FALSE(quick.written());
  EXPECT_GE(quick.step(), 0);
  EXPECT_NE(quick.message().find("requested"), std::string::npos) << quick.message();
  EXPECT_EQ(call(-1, &quick).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  end = true;
  loop.join();
}

// At most kMaxWatchers streams; one more is refused with a message that says
// the limit, and a GetStatus still answers.
TEST_F(StatusServiceTest, WatcherLimitIsSaidInTheError) {
  std::vector<std::unique_ptr<grpc::ClientContext>> ctxs;
  std::vector<std::unique_ptr<grpc::ClientReader<pb::JobStatus>>> readers;
  for (int i = 0; i < StatusService::kMaxWatchers; ++i) {
    ctxs.push_back(std::make_unique<grpc::ClientContext>());
    readers.push_back(stub->WatchStatus(ctxs.back().get(), {}));
    pb::JobStatus s;
    ASSERT_TRUE(readers.back()->Read(&s)) << i;  // it holds a slot now
  }
  grpc::ClientContext extra;
  auto reader = stub->WatchStatus(&extra, {});
  pb::JobStatus s;
  EXPECT_FALSE(reader->Read(&s));
  const grpc::Status st = reader->Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(st.error_message(),
            "too many watchers: this launcher serves at most 64 WatchStatus streams at once "
            "(GetStatus has no limit)");
  EXPECT_EQ(get().run_id(), "test-run");
  for (auto& c : ctxs) c->TryCancel();
  for (auto& r : readers) r->Finish();
}

TEST_F(StatusServiceTest, OversizedAndBadRequestsGetErrorCodes) {
  EXPECT_EQ(stop("authorization", std::string("Bearer ") + kToken, 2 << 20).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  // Just under the 1 MB limit the request gets through to the service (which
  // refuses a reason over 1,000 bytes itself): the limit is 1 MB, not less.
  EXPECT_EQ(stop("authorization", std::string("Bearer ") + kToken, 1000000).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(stop("authorization", std::string("Bearer ") + kToken, 5000).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_FALSE(service->health().stop_requested);
  // Garbage bytes where a message should be.
  grpc::GenericStub generic(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 5s);
  const char junk[] = "\xff\xff\xff\xff\xff";
  grpc::Slice slice(junk, sizeof junk - 1);
  grpc::ByteBuffer req(&slice, 1), resp;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status st;
  generic.UnaryCall(&ctx, "/dpcnn.v1.Status/GetStatus", grpc::StubOptions(), &req, &resp,
                    [&](grpc::Status s) {
                      std::lock_guard l(mu);
                      st = s, done = true;
                      cv.notify_one();
                    });
  std::unique_lock l(mu);
  cv.wait(l, [&] { return done; });
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INTERNAL);  // unparsable request
}

TEST_F(StatusServiceTest, WatchStreamsGrowingStepsAndEndsWithTheJob) {
  // Updates at most every 250 ms; the reporter sends every 50 ms, each with a
  // new step, so without the rate limit the stream would carry ~5x as many.
  constexpr double kInterval = 0.25;
  std::vector<int64_t> steps;
  std::vector<Clock::time_point> arrivals;
  pb::JobState last = pb::JOB_STATE_UNSPECIFIED;
  std::thread watcher([&] {
    grpc::ClientContext ctx;
    pb::WatchStatusRequest req;
    req.set_min_interval_ms(static_cast<int>(kInterval * 1000));
    auto reader = stub->WatchStatus(&ctx, req);
    pb::JobStatus s;
    while (reader->Read(&s))
      steps.push_back(s.step()), last = s.state(), arrivals.push_back(Clock::now());
    EXPECT_TRUE(reader->Finish().ok());
  });
  {
    auto r = reporter();
    r->on_start(run_info());
    for (int64_t s = 1; s <= 100; ++s) {
      r->on_progress(progress(s));
      std::this_thread::sleep_for(20ms);
    }
  }
  wait_for([](const pb::JobStatus& s) { return s.step() == 100; });
  service->set_state(pb::JOB_STATE_FINISHED, "finished");
  watcher.join();
  EXPECT_EQ(last, pb::JOB_STATE_FINISHED);
  ASSERT_GE(steps.size(), 4u);
  EXPECT_TRUE(std::is_sorted(steps.begin(), steps.end()));
  EXPECT_EQ(steps.back(), 100);
  // Rate-limited, judged against the stream's own duration (so a slow,
  // loaded machine cannot make it fail): the server sends at most one update
  // per interval, so n updates span at least (n - 1) intervals; one interval
  // of slack for delivery jitter. The median gap says the same per update.
  const double span = std::chrono::duration<double>(arrivals.back() - arrivals.front()).count();
  EXPECT_LE(static_cast<double>(steps.size()), span / kInterval + 2) << span << " s";
  std::vector<double> gaps;
  for (size_t i = 1; i < arrivals.size(); ++i)
    gaps.push_back(std::chrono::duration<double>(arrivals[i] - arrivals[i - 1]).count());
  std::nth_element(gaps.begin(), gaps.begin() + gaps.size() / 2, gaps.end());
  EXPECT_GE(gaps[gaps.size() / 2], 0.8 * kInterval);
}

// 20 watchers and 1,000 GetStatus calls while a run reports: none fails, and
// every watcher keeps getting updates (the run reports until each has seen
// at least 3, however slowly a loaded machine runs the threads).
TEST_F(StatusServiceTest, ManyConcurrentReadersDuringARun) {
  constexpr int kWatchers = 20;
  std::atomic<int> failures{0}, gets{0};
  std::vector<std::atomic<int>> updates(kWatchers);
  std::vector<std::thread> threads;
  for (int w = 0; w < kWatchers; ++w)
    threads.emplace_back([&, w] {
      grpc::ClientContext ctx;
      pb::WatchStatusRequest req;
      req.set_min_interval_ms(100);
      auto reader = stub->WatchStatus(&ctx, req);
      pb::JobStatus s;
      while (reader->Read(&s)) ++updates[w];
      if (!reader->Finish().ok() || s.state() != pb::JOB_STATE_FINISHED) ++failures;
    });
  std::atomic<bool> reporting{true};
  std::thread trainer([&] {
    auto r = reporter();
    r->on_start(run_info());
    for (int64_t s = 1; reporting; ++s) {
      r->on_progress(progress(s));
      std::this_thread::sleep_for(2ms);
    }
  });
  for (int g = 0; g < 4; ++g)
    threads.emplace_back([&] {
      auto own = pb::Status::NewStub(grpc::CreateChannel(addr, grpc::InsecureChannelCredentials()));
      for (int i = 0; i < 250; ++i) {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + 10s);
        pb::JobStatus s;
        if (own->GetStatus(&ctx, {}, &s).ok())
          ++gets;
        else
          ++failures;
      }
    });
  for (size_t i = kWatchers; i < threads.size(); ++i) threads[i].join();
  auto least = [&] {
    int m = INT32_MAX;
    for (auto& u : updates) m = std::min(m, u.load());
    return m;
  };
  const auto until = Clock::now() + 60s;
  while (least() < 3 && Clock::now() < until) std::this_thread::sleep_for(20ms);
  reporting = false;
  trainer.join();
  service->set_state(pb::JOB_STATE_FINISHED, "finished");
  for (int i = 0; i < kWatchers; ++i) threads[i].join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(gets.load(), 1000);
  for (int w = 0; w < kWatchers; ++w) EXPECT_GE(updates[w].load(), 3) << "watcher " << w;
}

// An unreachable launcher costs the training thread nothing.
TEST(Reporter, UnreachableLauncherDoesNotSlowTraining) {
  ReporterOptions o;
  o.interval = 20ms;
  o.token = kToken;
  const auto t0 = Clock::now();
  {
    auto r = make_grpc_reporter("127.0.0.1:1", "x", o);  // nothing listens on port 1
    r->on_start(run_info());
    const auto s0 = Clock::now();
    for (int64_t s = 1; s <= 100000; ++s) {
      r->on_progress(progress(s));
      if (s % 1000 == 0) r->on_epoch_end(EpochMetrics{});
      EXPECT_EQ(r->poll_command(), Command::kNone);
    }
    EXPECT_LT(std::chrono::duration<double>(Clock::now() - s0).count(), 1.0);
    r->on_finish({});
  }
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 5.0);
}

TEST(Launcher, LoopbackAddresses) {
  EXPECT_TRUE(is_loopback_address("127.0.0.1:50051"));
  EXPECT_TRUE(is_loopback_address("127.1.2.3:0"));
  EXPECT_TRUE(is_loopback_address("localhost:50051"));
  EXPECT_TRUE(is_loopback_address("[::1]:50051"));
  EXPECT_FALSE(is_loopback_address("0.0.0.0:50051"));
  EXPECT_FALSE(is_loopback_address("[::]:50051"));
  EXPECT_FALSE(is_loopback_address("10.0.0.1:50051"));
  EXPECT_FALSE(is_loopback_address("127.example.com:1"));  // documented: a name, not 127/8
}

TEST(Launcher, MpirunCommand) {
  LaunchOptions o;
  o.mpirun = "/usr/bin/mpirun";
  o.np = 3;
  o.hostfile = "hosts";
  o.train_bin = "bin/dpcnn-train";
  o.config_path = "c.yaml";
  o.sets = {"train.epochs=1"};
  o.report_to = "127.0.0.1:5";
  o.run_id = "r";
  o.token = "secret";
  o.run_dir = "/r/x/version_2";
  auto a = mpirun_command(o, "");
  std::string joined;
  for (auto& s : a) joined += s + " ";
  EXPECT_NE(joined.find("--oversubscribe"), std::string::npos);
  EXPECT_EQ(joined.find("--allow-run-as-root") != std::string::npos, geteuid() == 0);
  EXPECT_NE(joined.find("--hostfile hosts -np 3 bin/dpcnn-train --config c.yaml --set "
                        "train.epochs=1 --report-to 127.0.0.1:5 --run-id r --run-dir "
                        "/r/x/version_2 "),
            std::string::npos);
  EXPECT_EQ(joined.find("secret"), std::string::npos);  // the token goes by environment
  EXPECT_EQ(joined.find("--resume"), std::string::npos);
  a = mpirun_command(o, "auto");
  EXPECT_EQ(a[a.size() - 2], "--resume");
  EXPECT_EQ(a.back(), "auto");
  o.mpirun_args = {"--mca", "btl_tcp_if_include", "10.77.0.0/24"};
  joined.clear();
  for (auto& s : mpirun_command(o, "")) joined += s + " ";
  EXPECT_NE(joined.find("--hostfile hosts --mca btl_tcp_if_include 10.77.0.0/24 -np 3 "),
            std::string::npos)
      << joined;
}

// --starter srun: Slurm's PMIx starts the ranks; none of mpirun's flags, and
// one failing rank ends the step (as mpirun ends the job).
TEST(Launcher, SrunCommand) {
  LaunchOptions o;
  o.mpirun = "/usr/bin/srun";
  o.srun = true;
  o.np = 2;
  o.train_bin = "bin/dpcnn-train";
  o.config_path = "c.yaml";
  o.report_to = "127.0.0.1:5";
  o.run_id = "r";
  o.run_dir = "/r/x/version_2";
  o.mpirun_args = {"--cpu-bind=cores"};
  std::string joined;
  for (auto& s : mpirun_command(o, "auto")) joined += s + " ";
  EXPECT_EQ(joined,
            "/usr/bin/srun --mpi=pmix --kill-on-bad-exit=1 --cpu-bind=cores -n 2 bin/dpcnn-train "
            "--config c.yaml --report-to 127.0.0.1:5 --run-id r --run-dir /r/x/version_2 "
            "--resume auto ");
}

bool alive(pid_t p) { return kill(p, 0) == 0; }

// terminate() reaches every process of the group, including one that ignores
// SIGTERM, and the token travels in the environment.
TEST(ProcessGroup, TerminateKillsTheWholeGroup) {
  prctl(PR_SET_CHILD_SUBREAPER, 1);  // as the launcher: orphans are ours to reap
  const std::string pidfile = ::testing::TempDir() + "/pg-" + std::to_string(getpid());
  ProcessGroup g({"/bin/sh", "-c",
                  "trap '' TERM; (trap '' TERM; sleep 60) & echo $! > " + pidfile +
                      "; echo token=$DPCNN_RUN_TOKEN; sleep 60"},
                 {"DPCNN_RUN_TOKEN=abc"});
  char buf[256] = {};
  std::string out;
  while (out.find('\n') == std::string::npos) {
    const ssize_t n = read(g.stdout_fd(), buf, sizeof buf);
    ASSERT_GT(n, 0);
    out.append(buf, n);
  }
  EXPECT_EQ(out, "token=abc\n");
  pid_t grandchild = 0;
  FILE* f = fopen(pidfile.c_str(), "r");
  ASSERT_TRUE(f);
  ASSERT_EQ(fscanf(f, "%d", &grandchild), 1);
  fclose(f);
  EXPECT_FALSE(g.exited());
  const auto t0 = Clock::now();
  g.terminate(300ms);
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 3.0);
  EXPECT_FALSE(alive(g.pid()));
  for (int i = 0; i < 50 && alive(grandchild); ++i) std::this_thread::sleep_for(20ms);
  EXPECT_FALSE(alive(grandchild));
  unlink(pidfile.c_str());
}

// Open MPI makes every rank a process group leader of its own, so killing
// mpirun's group does not reach them: terminate() must find them (as the
// children of the group's leader, or as ours once it is dead) and end them,
// even stopped ones, even with no grace at all.
TEST(ProcessGroup, TerminateReachesChildrenInTheirOwnGroups) {
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  const std::string pidfile = ::testing::TempDir() + "/pg-own-" + std::to_string(getpid());
  ProcessGroup g({"/bin/sh", "-c",
                  "setsid sh -c 'trap \"\" TERM; sleep 60' & echo $! > " + pidfile +
                      "; echo started; sleep 60"},
                 {});
  char buf[64] = {};
  std::string out;
  while (out.find('\n') == std::string::npos) {
    const ssize_t n = read(g.stdout_fd(), buf, sizeof buf);
    ASSERT_GT(n, 0);
    out.append(buf, n);
  }
  pid_t rank = 0;
  FILE* f = fopen(pidfile.c_str(), "r");
  ASSERT_TRUE(f);
  ASSERT_EQ(fscanf(f, "%d", &rank), 1);
  fclose(f);
  for (int i = 0; i < 100 && getpgid(rank) != rank; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_EQ(getpgid(rank), rank);  // a group of its own, like an MPI rank
  ASSERT_EQ(kill(rank, SIGSTOP), 0);
  g.terminate(0ms);
  EXPECT_FALSE(alive(g.pid()));
  for (int i = 0; i < 50 && alive(rank); ++i) std::this_thread::sleep_for(20ms);
  EXPECT_FALSE(alive(rank));
  unlink(pidfile.c_str());
}

}  // namespace
}  // namespace dpcnn::launcher
