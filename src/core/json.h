// JSON text helpers for the tools' machine-readable output (dpcnn-predict
// --json, the ONNX export's metadata). Pure functions; any thread.
#pragma once

#include <string>

namespace dpcnn {

// `s` as a quoted JSON string: quotes and backslashes escaped, control
// characters as \u00XX; other bytes (UTF-8) pass through.
std::string json_string(const std::string& s);

}  // namespace dpcnn
