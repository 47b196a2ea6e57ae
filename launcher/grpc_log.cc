#include "launcher/grpc_log.h"

#include <grpc/support/log.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace dpcnn::launcher {
namespace {

std::mutex mu;  // guards the two below; gRPC logs from any of its threads
std::string last_error;
bool address_in_use = false;
bool pass_through = false;  // set once before gRPC starts

void keep(gpr_log_func_args* args) {
  const std::string msg = args->message ? args->message : "";
  if (pass_through)
    std::fprintf(stderr, "grpc %s %s:%d: %s\n", gpr_log_severity_string(args->severity),
                 args->file ? args->file : "?", args->line, msg.c_str());
  if (args->severity != GPR_LOG_SEVERITY_ERROR) return;
  std::lock_guard lock(mu);
  last_error = msg;
  if (msg.find("Address already in use") != std::string::npos) address_in_use = true;
}

}  // namespace

void quiet_grpc_log() {
  const char* debug = std::getenv("DPCNN_GRPC_LOG");
  pass_through = debug && *debug && std::string(debug) != "0";
  gpr_set_log_function(keep);
}

std::string last_grpc_error() {
  std::lock_guard lock(mu);
  return last_error;
}

bool grpc_said_address_in_use() {
  std::lock_guard lock(mu);
  return address_in_use;
}

}  // namespace dpcnn::launcher
