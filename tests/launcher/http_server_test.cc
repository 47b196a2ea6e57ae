// The launcher's HTTP server without a job: what a server bound to loopback
// answers (DNS rebinding), over real HTTP on loopback.
#include "launcher/http_server.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <string>

#include "launcher/status_service.h"

namespace dpcnn::launcher {
namespace {

TEST(HttpServer, LoopbackHostHeaders) {
  for (const char* h : {"localhost", "LOCALHOST:9100", "127.0.0.1", "127.0.0.1:80", "127.9.8.7:1",
                        "[::1]", "[::1]:9100"})
    EXPECT_TRUE(loopback_host_header(h)) << h;
  for (const char* h : {"evil.example", "evil.example:9100", "localhost.evil.example",
                        "128.0.0.1:80", "10.0.0.1", "[::2]:80", "[::1", "", "127.0.0.1.nip.io"})
    EXPECT_FALSE(loopback_host_header(h)) << h;
}

class HttpServerTest : public ::testing::Test {
 protected:
  HttpServerTest() : service(info()) {}
  static JobInfo info() {
    JobInfo i;
    i.run_id = "http-test";
    i.config_name = "http";
    i.token = "0123456789abcdef0123456789abcdef";
    return i;
  }
  void TearDown() override { service.shutdown(); }
  int status(HttpServer& server, const std::string& path, const std::string& host) {
    httplib::Client c("http://" + server.addr());
    auto r = c.Get(path, httplib::Headers{{"Host", host}});
    return r ? r->status : -1;
  }
  StatusService service;
};

// A page on another site whose name resolves to 127.0.0.1 sends its own name
// as Host: it gets 421 and nothing of the status; loopback names are served.
TEST_F(HttpServerTest, OnLoopbackOnlyLoopbackNamesAreAnswered) {
  HttpServer server(service);
  server.start("127.0.0.1:0", "", "");
  const std::string port = server.addr().substr(server.addr().rfind(':'));
  for (const char* path : {"/api/status", "/metrics", "/"}) {
    SCOPED_TRACE(path);
    EXPECT_EQ(status(server, path, "evil.example" + port), 421);
    EXPECT_EQ(status(server, path, "localhost" + port), 200);
    EXPECT_EQ(status(server, path, "127.0.0.1" + port), 200);
  }
  httplib::Client c("http://" + server.addr());
  auto stop = c.Post("/api/stop",
                     httplib::Headers{{"Host", "evil.example" + port},
                                      {"Authorization", "Bearer " + info().token}},
                     "", "text/plain");
  ASSERT_TRUE(stop);
  EXPECT_EQ(stop->status, 421);
  EXPECT_NE(stop->body.find("loopback names only"), std::string::npos) << stop->body;
  server.stop();
}

// Bound to every address (the launcher asks for TLS or --insecure there), the
// server is meant to be reached by other names.
TEST_F(HttpServerTest, OnAWildcardAddressEveryNameIsAnswered) {
  HttpServer server(service);
  server.start("0.0.0.0:0", "", "");
  EXPECT_EQ(status(server, "/api/status", "trainer.example.org:9100"), 200);
  server.stop();
}

}  // namespace
}  // namespace dpcnn::launcher
