// The gRPC and Protobuf versions a binary was built with, for --version of the
// binaries that link them (dpcnn-train, dpcnn-launch, dpcnn-status). Header
// only, so the launcher uses it without linking the worker's reporter. Any thread.
#pragma once

#include <google/protobuf/stubs/common.h>
#include <grpcpp/grpcpp.h>

#include <vector>

#include "core/version.h"

namespace dpcnn {

inline std::vector<VersionLine> rpc_version_lines() {
  return {{"gRPC", grpc::Version()},
          {"Protobuf", google::protobuf::internal::VersionString(GOOGLE_PROTOBUF_VERSION)}};
}

}  // namespace dpcnn
