// render_metrics on a JobStatus with every part filled in (restarts, val and
// test results, a checkpoint, two ranks): the series and values it gives, and
// promtool's lint of the whole exposition when promtool is installed.
#include "launcher/metrics.h"

#include <google/protobuf/util/time_util.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>

namespace dpcnn::launcher {
namespace {

namespace pb = dpcnn::v1;
using google::protobuf::util::TimeUtil;

double value(const std::string& text, const std::string& series) {
  const std::string key = series + " ";
  for (size_t pos = 0; (pos = text.find(key, pos)) != std::string::npos; pos += key.size())
    if (pos == 0 || text[pos - 1] == '\n') return std::stod(text.substr(pos + key.size()));
  return std::nan("");
}

pb::JobStatus full_status() {
  pb::JobStatus s;
  s.set_state(pb::JOB_STATE_FINISHED);
  s.set_run_id("r-1");
  s.set_config_name("mnist");
  s.set_ranks(2);
  s.set_epoch(3);
  s.set_epochs(3);
  s.set_step(300);
  s.set_total_steps(300);
  s.set_loss(0.25);
  s.set_accuracy(0.9);
  s.set_images_per_sec(1234.5);
  s.set_restarts(2);
  s.set_max_restarts(3);
  s.set_has_result(true);
  s.set_test_loss(0.3);
  s.set_test_accuracy(0.88);
  auto* e1 = s.add_history();
  e1->set_epoch(1), e1->set_val_loss(0.5), e1->set_val_accuracy(0.8);
  auto* e2 = s.add_history();
  e2->set_epoch(2), e2->set_val_loss(0.4), e2->set_val_accuracy(0.85);
  auto* e3 = s.add_history();  // not evaluated: the last evaluated epoch counts
  e3->set_epoch(3), e3->set_val_loss(-1), e3->set_val_accuracy(-1);
  s.set_last_checkpoint_step(300);
  *s.mutable_last_checkpoint_time() = TimeUtil::SecondsToTimestamp(1000);
  s.set_lr(0.01);
  s.set_eta_known(true);  // finished: known, and 0
  for (int r = 0; r < 2; ++r) {
    auto* k = s.add_rank_stats();
    k->set_rank(r);
    k->set_host(r ? "b" : "a");
    k->set_step_seconds(0.1 + r);
    k->set_forward_backward_seconds(0.05);
    k->set_allreduce_wait_seconds(0.02 * (r + 1));
    k->set_peak_rss_bytes(1 << 20);
  }
  return s;
}

TEST(Metrics, EverySeriesOfAFullStatus) {
  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1030));
  const std::string m = render_metrics(full_status(), now);
  EXPECT_EQ(value(m, "dpcnn_job_state{state=\"finished\"}"), 1);
  EXPECT_EQ(value(m, "dpcnn_job_state{state=\"running\"}"), 0);
  EXPECT_EQ(value(m, "dpcnn_step"), 300);
  EXPECT_EQ(value(m, "dpcnn_images_per_second"), 1234.5);
  EXPECT_EQ(value(m, "dpcnn_learning_rate"), 0.01);
  EXPECT_EQ(value(m, "dpcnn_eta_seconds"), 0);
  EXPECT_EQ(value(m, "dpcnn_loss{split=\"train\"}"), 0.25);
  EXPECT_EQ(value(m, "dpcnn_loss{split=\"val\"}"), 0.4);
  EXPECT_EQ(value(m, "dpcnn_accuracy_ratio{split=\"val\"}"), 0.85);
  EXPECT_EQ(value(m, "dpcnn_accuracy_ratio{split=\"test\"}"), 0.88);
  EXPECT_EQ(value(m, "dpcnn_restarts_total"), 2);
  EXPECT_EQ(value(m, "dpcnn_last_checkpoint_step"), 300);
  EXPECT_NEAR(value(m, "dpcnn_last_checkpoint_age_seconds"), 30, 1e-6);
  EXPECT_EQ(value(m, "dpcnn_rank_step_seconds{host=\"b\",rank=\"1\"}"), 1.1);
  EXPECT_EQ(value(m, "dpcnn_rank_allreduce_wait_seconds{host=\"b\",rank=\"1\"}"), 0.04);
  EXPECT_EQ(value(m, "dpcnn_rank_phase_seconds{host=\"a\",phase=\"allreduce_wait\",rank=\"0\"}"),
            0.02);
  EXPECT_EQ(value(m, "dpcnn_rank_peak_rss_bytes{host=\"a\",rank=\"0\"}"), 1 << 20);
  EXPECT_NE(m.find("# HELP dpcnn_rank_peak_rss_bytes "), std::string::npos);
  EXPECT_NE(m.find("# TYPE dpcnn_restarts_total counter"), std::string::npos);

  if (access("/usr/bin/promtool", X_OK) != 0) GTEST_SKIP() << "promtool missing";
  const std::string path = ::testing::TempDir() + "/dpcnn-metrics-" + std::to_string(getpid());
  std::ofstream(path) << m;
  FILE* p = popen(("/usr/bin/promtool check metrics < " + path + " 2>&1").c_str(), "r");
  std::string out;
  char buf[512];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  EXPECT_EQ(pclose(p), 0) << out;
  std::remove(path.c_str());
}

TEST(Metrics, NothingYetMeansNoSplitsNoRanksNoCheckpoint) {
  pb::JobStatus s;
  s.set_state(pb::JOB_STATE_STARTING);
  const std::string m = render_metrics(s, std::chrono::system_clock::now());
  EXPECT_EQ(value(m, "dpcnn_job_state{state=\"starting\"}"), 1);
  EXPECT_EQ(m.find("dpcnn_loss{"), std::string::npos) << m;
  EXPECT_EQ(m.find("dpcnn_rank_step_seconds{"), std::string::npos) << m;
  EXPECT_EQ(m.find("dpcnn_last_checkpoint_step "), std::string::npos) << m;
  EXPECT_EQ(m.find("dpcnn_learning_rate "), std::string::npos) << m;
  EXPECT_EQ(m.find("dpcnn_eta_seconds "), std::string::npos) << m;  // unknown: no series
}

}  // namespace
}  // namespace dpcnn::launcher
