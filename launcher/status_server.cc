#include "launcher/status_server.h"

#include <grpc/grpc.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include "core/error.h"
#include "launcher/grpc_log.h"

namespace dpcnn::launcher {
namespace {

// host:port -> its host ("[::1]:5" -> "[::1]"); wildcard hosts become loopback
// for the local reporter to dial.
std::string dial_host(const std::string& listen) {
  std::string host = listen.substr(0, listen.rfind(':'));
  if (host == "0.0.0.0" || host == "[::]" || host == "*" || host.empty()) return "127.0.0.1";
  return host;
}

}  // namespace

StatusServer start_status_server(const std::string& listen,
                                 const std::shared_ptr<grpc::ServerCredentials>& creds,
                                 StatusService& service) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, creds, &port);
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(1 << 20);  // requests are tiny; refuse floods
  service.register_with(builder);
  StatusServer s;
  s.server = builder.BuildAndStart();
  if (!s.server || port == 0) {
    if (grpc_said_address_in_use())
      throw dpcnn::BusyError("status.listen " + listen +
                             ": the port is in use (another job or program listens there; port 0 "
                             "picks a free one)");
    const std::string why = last_grpc_error();
    throw dpcnn::InputError("status.listen " + listen + ": cannot listen there" +
                            (why.find("Cannot assign requested address") != std::string::npos
                                 ? " (not an address of this host)"
                                 : ""));
  }
  s.server->GetHealthCheckService()->SetServingStatus("dpcnn.v1.Status", true);
  s.addr = dial_host(listen) + ":" + std::to_string(port);
  return s;
}

}  // namespace dpcnn::launcher
