#include "core/error.h"

#include <cerrno>
#include <cstring>

namespace dpcnn {

std::string errno_message(const std::string& what) { return what + ": " + std::strerror(errno); }

}  // namespace dpcnn
