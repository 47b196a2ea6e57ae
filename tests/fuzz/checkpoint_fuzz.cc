// Fuzzes the checkpoint reader. The first input byte picks what the rest is:
// even, the bytes of a file; odd, a payload that gets a correct header and
// SHA-256 around it, so the fuzzer reaches the Protobuf parse and the tensor
// checks behind the checksum (which it could never forge).
#include <openssl/sha.h>

#include <string>

#include "checkpoint/checkpoint.h"
#include "core/error.h"
#include "fuzz_seeds.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] & 1) {
    std::string file = "DPCNNCK1";
    for (int i = 0; i < 8; ++i) file += static_cast<char>((bytes.size() >> (8 * i)) & 0xff);
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), md);
    bytes = file + bytes + std::string(reinterpret_cast<const char*>(md), sizeof md);
  }
  try {
    const dpcnn::CheckpointData c = dpcnn::parse_checkpoint_bytes(bytes, "fuzz");
    // What parses must be self-consistent: it serialises back and re-reads.
    (void)dpcnn::parse_checkpoint_bytes(dpcnn::serialize_checkpoint(c), "fuzz-again");
  } catch (const dpcnn::Error&) {
    // Refusing bad input with a message is the correct outcome.
  }
  return 0;
}
