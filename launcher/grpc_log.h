// Keeps gRPC's own log lines (e.g. the 700-character `chttp2_server.cc` line on
// a taken port) away from the user: the tools print one line of their own and
// may ask here what gRPC said last to choose it. DPCNN_GRPC_LOG=1 passes
// gRPC's lines through to stderr for debugging.
//
// quiet_grpc_log() is called once at the top of main, before any gRPC object
// exists; last_grpc_error() may be called from any thread.
#pragma once

#include <string>

namespace dpcnn::launcher {

void quiet_grpc_log();
// The newest ERROR-level message gRPC logged ("" if none).
std::string last_grpc_error();
// True when gRPC said the address was already in use (a taken port).
bool grpc_said_address_in_use();

}  // namespace dpcnn::launcher
