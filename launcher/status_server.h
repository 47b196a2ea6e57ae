// The launcher's gRPC server: the status service (plus health and reflection)
// on status.listen, one job per port. gRPC turns SO_REUSEPORT on by default,
// which lets a second launcher bind the same port and take half of the first
// one's calls; we turn it off so a taken port is an error. Main thread.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "launcher/status_service.h"

namespace dpcnn::launcher {

struct StatusServer {
  std::unique_ptr<grpc::Server> server;
  std::string addr;  // host:port for clients to dial (a wildcard host becomes loopback)
};

// Binds `listen` (port 0: a free port) and starts serving. Throws
// dpcnn::BusyError when the port is taken, dpcnn::InputError when the address
// cannot be bound.
StatusServer start_status_server(const std::string& listen,
                                 const std::shared_ptr<grpc::ServerCredentials>& creds,
                                 StatusService& service);

}  // namespace dpcnn::launcher
