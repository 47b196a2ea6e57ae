// The launcher's HTTP side end to end, with a real 2-rank job under
// dpcnn-launch: /metrics checked by promtool and against GetStatus, a real
// Prometheus server scraping it, the web page in headless Chromium, the
// token on the HTTP control calls, HTTPS, and the loopback rule.
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <map>
#include <regex>

#include "checkpoint/checkpoint.h"
#include "launch_fixture.h"

namespace dpcnn {
namespace {

using namespace testing;

// The value of the series `name{labels}` in a text exposition ("" labels: the
// unlabelled one); NaN when absent. Labels as the serializer writes them:
// sorted, `k="v"` joined by commas.
double metric(const std::string& text, const std::string& name, const std::string& labels = "") {
  const std::string key = labels.empty() ? name + " " : name + "{" + labels + "} ";
  for (size_t pos = 0; (pos = text.find(key, pos)) != std::string::npos; pos += key.size())
    if (pos == 0 || text[pos - 1] == '\n') return std::stod(text.substr(pos + key.size()));
  return std::nan("");
}

// A free TCP port on loopback (for Prometheus' own web listener).
int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

class Monitoring : public Launch {
 protected:
  // The address in run_dir/metrics.addr once it is there.
  std::string wait_metrics_addr() {
    const auto until = Clock::now() + 60s;
    while (Clock::now() < until) {
      const std::string a = slurp(run_dir / "metrics.addr");
      if (!a.empty() && a.back() == '\n') return a.substr(0, a.size() - 1);
      std::this_thread::sleep_for(20ms);
    }
    return "";
  }
  void SetUp() override {
    Launch::SetUp();
    out_dir = fs::path(DPCNN_BIN_DIR).parent_path() / "test-output" /
              ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::create_directories(out_dir);
  }
  // Starts a long job and waits until every rank has reported figures.
  void start_job(const std::string& sets = "") {
    start("--set train.epochs=50 " + sets);
    ASSERT_NO_FATAL_FAILURE(connect());
    maddr = wait_metrics_addr();
    ASSERT_FALSE(maddr.empty()) << log();
    const pb::JobStatus s = wait_for([](const pb::JobStatus& s) {
      return s.step() > 10 && s.rank_stats_size() == 2 && s.rank_stats(0).steps() > 0 &&
             s.rank_stats(1).steps() > 0;
    });
    ASSERT_EQ(s.rank_stats_size(), 2) << log();
  }
  fs::path out_dir;
  std::string maddr;
};

TEST_F(Monitoring, MetricsMatchStatusAndPassPromtool) {
  ASSERT_NO_FATAL_FAILURE(start_job());
  httplib::Client http("http://" + maddr);
  const pb::JobStatus before = get();
  const auto res = http.Get("/metrics");
  const pb::JobStatus after = get();
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  ASSERT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  const std::string& m = res->body;
  std::ofstream(out_dir / "metrics.txt") << m;
  std::printf("metrics: %s\n", (out_dir / "metrics.txt").c_str());

  // promtool reads the exposition from stdin and lints it.
  if (access("/usr/bin/promtool", X_OK) == 0) {
    std::string out;
    EXPECT_EQ(
        run_sync("/usr/bin/promtool check metrics < " + (out_dir / "metrics.txt").string(), &out),
        0)
        << out;
  } else {
    ADD_FAILURE() << "promtool missing (apt-get install prometheus)";
  }

  EXPECT_EQ(metric(m, "dpcnn_job_state", "state=\"running\""), 1) << m;
  EXPECT_EQ(metric(m, "dpcnn_job_state", "state=\"failed\""), 0) << m;
  EXPECT_EQ(metric(m, "dpcnn_ranks"), 2);
  EXPECT_EQ(metric(m, "dpcnn_epochs"), before.epochs());
  EXPECT_EQ(metric(m, "dpcnn_total_steps"), static_cast<double>(before.total_steps()));
  EXPECT_EQ(metric(m, "dpcnn_restarts_total"), before.restarts());
  // Between the two GetStatus calls: the same snapshot sequence.
  const double step = metric(m, "dpcnn_step");
  EXPECT_GE(step, static_cast<double>(before.step()));
  EXPECT_LE(step, static_cast<double>(after.step()));
  EXPECT_GE(metric(m, "dpcnn_epoch"), before.epoch());
  EXPECT_LE(metric(m, "dpcnn_epoch"), after.epoch());
  if (before.step() == after.step()) {
    EXPECT_DOUBLE_EQ(metric(m, "dpcnn_loss", "split=\"train\""), before.loss());
    EXPECT_DOUBLE_EQ(metric(m, "dpcnn_accuracy_ratio", "split=\"train\""), before.accuracy());
    EXPECT_DOUBLE_EQ(metric(m, "dpcnn_images_per_second"), before.images_per_sec());
    EXPECT_DOUBLE_EQ(metric(m, "dpcnn_learning_rate"), before.lr());
    EXPECT_FLOAT_EQ(metric(m, "dpcnn_learning_rate"), 1e-3f);  // mnist-small's constant rate
  }
  EXPECT_TRUE(std::isnan(metric(m, "dpcnn_loss", "split=\"test\"")));  // not evaluated yet
  EXPECT_NE(
      m.find("dpcnn_job_info{config_name=\"mnist-small\",run_id=\"" + before.run_id() + "\"} 1"),
      std::string::npos)
      << m;
  // Per rank, labelled with the rank and its host, as GetStatus has them.
  for (const auto& r : after.rank_stats()) {
    const std::string l = "host=\"" + r.host() + "\",rank=\"" + std::to_string(r.rank()) + "\"";
    EXPECT_GT(metric(m, "dpcnn_rank_step_seconds", l), 0) << l << "\n" << m;
    EXPECT_GT(metric(m, "dpcnn_rank_peak_rss_bytes", l), 1 << 20) << l;
    EXPECT_GE(metric(m, "dpcnn_rank_allreduce_wait_seconds", l), 0) << l;
    EXPECT_GT(metric(m, "dpcnn_rank_phase_seconds",
                     "host=\"" + r.host() + "\",phase=\"forward_backward\",rank=\"" +
                         std::to_string(r.rank()) + "\""),
              0)
        << l;
    EXPECT_EQ(r.host(), after.hosts(r.rank()));
  }
  EXPECT_TRUE(std::isnan(metric(m, "dpcnn_rank_step_seconds", "host=\"x\",rank=\"2\"")));

  // A checkpoint now: its step and age appear. An epoch end may have written
  // one already (the job runs on while the test looks): count from there.
  const pb::JobStatus b = wait_for([](const pb::JobStatus&) { return true; });
  const int before_ckpts = b.checkpoints_size();
  if (before_ckpts == 0) {
    EXPECT_TRUE(std::isnan(metric(m, "dpcnn_last_checkpoint_step")));
  }
  auto ck = http.Post(
      "/api/checkpoint",
      httplib::Headers{{"Authorization", "Bearer " + slurp(run_dir / "token").substr(0, 32)}}, "",
      "text/plain");
  ASSERT_TRUE(ck);
  EXPECT_EQ(ck->status, 200) << ck->body;
  const pb::JobStatus c =
      wait_for([&](const pb::JobStatus& s) { return s.checkpoints_size() > before_ckpts; });
  ASSERT_GT(c.checkpoints_size(), before_ckpts) << log();
  const std::string m2 = http.Get("/metrics")->body;
  EXPECT_GE(metric(m2, "dpcnn_last_checkpoint_step"),
            static_cast<double>(c.last_checkpoint_step()));
  EXPECT_GE(metric(m2, "dpcnn_last_checkpoint_age_seconds"), 0);
  EXPECT_EQ(c.checkpoints(c.checkpoints_size() - 1).step(), c.last_checkpoint_step());
}

// A real Prometheus (Debian's prometheus) scrapes the job every second; its
// HTTP API returns the dpcnn_step series, rising.
TEST_F(Monitoring, PrometheusScrapesTheStepSeries) {
  if (access("/usr/bin/prometheus", X_OK) != 0)
    GTEST_SKIP() << "/usr/bin/prometheus missing (apt-get install prometheus)";
  ASSERT_NO_FATAL_FAILURE(start_job());
  const fs::path cfg = tmp / "prometheus.yml";
  std::ofstream(cfg) << "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                        "scrape_configs:\n  - job_name: dpcnn\n    static_configs:\n"
                        "      - targets: ['"
                     << maddr << "']\n";
  const int port = free_port();
  const std::string web = "127.0.0.1:" + std::to_string(port);
  pid_t prom = spawn("/usr/bin/prometheus --config.file=" + cfg.string() + " --storage.tsdb.path=" +
                         (tmp / "tsdb").string() + " --web.listen-address=" + web,
                     tmp / "prometheus.log");
  others.push_back(prom);
  httplib::Client api("http://" + web);
  std::string body;
  std::vector<double> values;
  const auto until = Clock::now() + 60s;
  while (Clock::now() < until) {
    // The last 60 s of dpcnn_step, one point a second.
    const long now = static_cast<long>(std::time(nullptr));
    auto r = api.Get("/api/v1/query_range?query=dpcnn_step&start=" + std::to_string(now - 60) +
                     "&end=" + std::to_string(now) + "&step=1");
    if (r && r->status == 200) {
      body = r->body;
      values.clear();
      static const std::regex point(R"(\[[0-9.]+,\"([0-9.e+]+)\"\])");
      for (std::sregex_iterator it(body.begin(), body.end(), point), end; it != end; ++it)
        values.push_back(std::stod((*it)[1]));
      if (values.size() >= 3 && values.back() > values.front()) break;
    }
    std::this_thread::sleep_for(500ms);
  }
  std::printf("prometheus query_range dpcnn_step: %s\n", body.substr(0, 600).c_str());
  ASSERT_GE(values.size(), 3u) << body << slurp(tmp / "prometheus.log");
  EXPECT_GT(values.back(), values.front()) << body;
  EXPECT_TRUE(std::is_sorted(values.begin(), values.end())) << body;
  EXPECT_NE(body.find("\"job\":\"dpcnn\""), std::string::npos) << body;
  // The instant query, as a dashboard would use it.
  auto q = api.Get("/api/v1/query?query=dpcnn_rank_peak_rss_bytes");
  ASSERT_TRUE(q);
  EXPECT_NE(q->body.find("\"rank\":\"1\""), std::string::npos) << q->body;
  std::printf("prometheus query dpcnn_rank_peak_rss_bytes: %s\n", q->body.c_str());
}

// The page in headless Chromium, live: the step grows between two looks, the
// curves gain points, both ranks are listed, and its Checkpoint button works
// with the token it took from the URL fragment. Saves a screenshot.
TEST_F(Monitoring, WebPageInHeadlessChromium) {
  if (access("/usr/bin/chromium", X_OK) != 0)
    GTEST_SKIP() << "/usr/bin/chromium missing (apt-get install chromium)";
  ASSERT_NO_FATAL_FAILURE(start_job());
  const std::string token = slurp(run_dir / "token").substr(0, 32);
  std::string out;
  const int rc = run_sync("python3 " + std::string(DPCNN_SOURCE_DIR) +
                              "/tests/launcher/page_check.py --url http://" + maddr + "/ --out " +
                              out_dir.string() + " --token " + token,
                          &out);
  std::printf("%s", out.c_str());
  ASSERT_EQ(rc, 0) << out;
  std::map<std::string, std::string> kv;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);)
    if (auto eq = line.find('='); eq != std::string::npos)
      kv[line.substr(0, eq)] = line.substr(eq + 1);
  ASSERT_GT(std::stol(kv["step_first"]), 0) << out;
  ASSERT_TRUE(kv.count("step_later")) << "the page's step did not grow\n" << out;
  EXPECT_GT(std::stol(kv["step_later"]), std::stol(kv["step_first"]));
  EXPECT_GT(std::stol(kv["loss_points_later"]), std::stol(kv["loss_points_first"]));
  EXPECT_EQ(kv["ranks"], "2");
  const pb::JobStatus s = get();
  EXPECT_EQ(kv["hosts"], "0@" + s.hosts(0) + ",1@" + s.hosts(1));
  EXPECT_EQ(kv["state"], "running");
  EXPECT_EQ(kv["token_in_url"], "0");  // the page takes the token out of the address bar
  EXPECT_TRUE(fs::file_size(kv["screenshot"]) > 10000) << kv["screenshot"];
  EXPECT_EQ(kv["control"].substr(0, 4), "200:") << out;
  EXPECT_GE(std::stol(kv["checkpoint_rows"]), 1) << out;
}

// POST /api/stop: 401 without a token, 403 with a wrong one (the job runs
// on), then with the run's token the job checkpoints, ends and exits 0.
TEST_F(Monitoring, StopOverHttpNeedsTheToken) {
  ASSERT_NO_FATAL_FAILURE(start_job());
  httplib::Client http("http://" + maddr);
  auto none = http.Post("/api/stop", "", "text/plain");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 401) << none->body;
  EXPECT_EQ(none->get_header_value("WWW-Authenticate"), "Bearer realm=\"dpcnn\"");
  auto wrong =
      http.Post("/api/stop", httplib::Headers{{"Authorization", "Bearer 0123"}}, "", "text/plain");
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 403) << wrong->body;
  auto get_stop = http.Get("/api/stop");  // only POST changes anything
  ASSERT_TRUE(get_stop);
  EXPECT_EQ(get_stop->status, 404);
  const pb::JobStatus s = get();
  const pb::JobStatus later =
      wait_for([&](const pb::JobStatus& t) { return t.step() > s.step() + 5; });
  EXPECT_EQ(later.state(), pb::JOB_STATE_RUNNING);
  const std::string token = slurp(run_dir / "token").substr(0, 32);
  auto ok = http.Post("/api/stop", httplib::Headers{{"Authorization", "Bearer " + token}},
                      "from the test", "text/plain");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
  EXPECT_EQ(wait_exit(60s), 0) << log();
  EXPECT_NE(log().find("stopped cleanly"), std::string::npos) << log();
  EXPECT_TRUE(fs::exists(run_dir / "checkpoints" / "latest")) << log();
  EXPECT_FALSE(fs::exists(run_dir / "metrics.addr"));  // gone with the launcher
}

// HTTPS with the gRPC port's certificate; a plaintext request gets nothing.
TEST_F(Monitoring, HttpsWithTheStatusCertificate) {
  const fs::path key = tmp / "key.pem", cert = tmp / "cert.pem";
  ASSERT_TRUE(make_self_signed_cert(key, cert));
  start("--set train.epochs=50 --set status.tls_cert=" + cert.string() +
        " --set status.tls_key=" + key.string());
  const auto until = Clock::now() + 60s;
  while (announced_run(log()).empty() && Clock::now() < until) std::this_thread::sleep_for(20ms);
  run_dir = announced_run(log());
  maddr = wait_metrics_addr();
  ASSERT_FALSE(maddr.empty()) << log();
  EXPECT_NE(log().find("web: https://" + maddr + "/"), std::string::npos) << log();
  httplib::SSLClient https(maddr.substr(0, maddr.rfind(':')),
                           std::stoi(maddr.substr(maddr.rfind(':') + 1)));
  https.set_ca_cert_path(cert.c_str());
  https.enable_server_certificate_verification(true);
  auto r = https.Get("/metrics");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("dpcnn_job_state"), std::string::npos);
  httplib::Client plain("http://" + maddr);
  plain.set_read_timeout(3);
  auto p = plain.Get("/metrics");
  EXPECT_TRUE(!p || p->status != 200);
}

// The per-rank gather rides on the command broadcast and reads clocks only: a
// launched job (gathering every second, scraped meanwhile) ends with weights
// bit-identical to the same job run by plain mpirun (no launcher, no gather).
TEST_F(Monitoring, RankStatsGatherLeavesTrainingBitIdentical) {
  // Long enough (about 8 s at bf16 speed on an idle machine) for several
  // gathers to happen before the end.
  const std::string steps =
      " --set train.epochs=20 --set train.max_steps=1000 --set train.eval=false";
  start(steps);
  ASSERT_NO_FATAL_FAILURE(connect());
  maddr = wait_metrics_addr();
  const pb::JobStatus s = wait_for([](const pb::JobStatus& s) {
    return s.rank_stats_size() == 2 && s.rank_stats(0).steps() > 0;
  });
  EXPECT_EQ(s.rank_stats_size(), 2) << log();
  httplib::Client http("http://" + maddr);
  EXPECT_TRUE(http.Get("/metrics"));
  ASSERT_EQ(wait_exit(), 0) << log();
  std::string out;
  ASSERT_EQ(run_sync(std::string(DPCNN_SOURCE_DIR) + "/scripts/mpirun.sh -np 2 " + DPCNN_BIN_DIR +
                         "/dpcnn-train --config configs/mnist-small.yaml --set data.dir=" + data +
                         " --set runs_dir=" + (tmp / "plain").string() +
                         " --set distributed.threads_per_rank=1" + steps,
                     &out),
            0)
      << out;
  const CheckpointData a = read_checkpoint(resolve_checkpoint_path(run_dir.string()));
  const CheckpointData b =
      read_checkpoint(resolve_checkpoint_path((tmp / "plain" / "mnist-small").string()));
  EXPECT_EQ(a.global_step, 1000);
  EXPECT_EQ(b.global_step, 1000);
  ASSERT_EQ(a.params.size(), b.params.size());
  for (size_t i = 0; i < a.params.size(); ++i)
    EXPECT_TRUE(a.params[i].data == b.params[i].data) << "tensor " << i << " differs";
}

TEST_F(Monitoring, NonLoopbackMetricsListenNeedsTlsOrInsecure) {
  start("--set status.metrics_listen=0.0.0.0:0");
  EXPECT_EQ(wait_exit(), 2);
  EXPECT_NE(log().find("status.metrics_listen '0.0.0.0:0' is not a loopback address"),
            std::string::npos)
      << log();
}

// A taken metrics port is the same one line and exit 3 as a taken status port,
// before any run directory exists.
TEST_F(Monitoring, TakenMetricsPortIsExit3) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  const std::string port = std::to_string(ntohs(a.sin_port));
  start("--set status.metrics_listen=127.0.0.1:" + port);
  EXPECT_EQ(wait_exit(), 3);
  close(fd);
  EXPECT_NE(log().find("status.metrics_listen 127.0.0.1:" + port + ": the port is in use"),
            std::string::npos)
      << log();
  EXPECT_FALSE(fs::exists(experiment)) << log();
}

TEST_F(Monitoring, MetricsListenOffServesNoHttp) {
  start("--set train.epochs=50 --set status.metrics_listen=off");
  ASSERT_NO_FATAL_FAILURE(connect());
  wait_for([](const pb::JobStatus& s) { return s.step() > 0; });
  EXPECT_FALSE(fs::exists(run_dir / "metrics.addr"));
  EXPECT_EQ(log().find("web: "), std::string::npos) << log();
}

}  // namespace
}  // namespace dpcnn
