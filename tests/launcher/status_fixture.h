// A StatusService behind the launcher's own gRPC server (its limits
// included) on a free loopback port, for tests that talk to it over real
// gRPC: the fixture of status_service_test and status_tool_test.
#pragma once

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <utility>

#include "launcher/status_server.h"
#include "launcher/status_service.h"

namespace dpcnn::launcher {

class LoopbackStatusTest : public ::testing::Test {
 protected:
  // The job the service describes: `run_id`, config `name` (configs/<name>.yaml),
  // global batch 32 and the run token.
  LoopbackStatusTest(std::string run_id, std::string name, std::string token)
      : run_id_(std::move(run_id)), name_(std::move(name)), token_(std::move(token)) {}

  void SetUp() override {
    JobInfo info;
    info.run_id = run_id_;
    info.config_name = name_;
    info.config_path = "configs/" + name_ + ".yaml";
    info.batch_size = 32;
    info.token = token_;
    service = std::make_unique<StatusService>(info);
    StatusServer started =
        start_status_server("127.0.0.1:0", grpc::InsecureServerCredentials(), *service);
    server = std::move(started.server);
    ASSERT_TRUE(server);
    addr = started.addr;
  }
  void TearDown() override {
    service->shutdown();
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }

  std::unique_ptr<StatusService> service;
  std::unique_ptr<grpc::Server> server;
  std::string addr;

 private:
  std::string run_id_, name_, token_;
};

}  // namespace dpcnn::launcher
