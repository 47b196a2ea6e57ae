// train.precision / --precision on the real binaries: what auto picks and says
// on the first line, bf16 refused clearly on a CPU without native bf16
// (emulated with oneDNN's DNNL_MAX_CPU_ISA), bf16 reruns bit-identical for 1
// and 2 ranks under real mpirun, and dpcnn-predict running one checkpoint in
// either precision.
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <regex>

#include "layers/precision.h"
#include "process_testing.h"
#include "synthetic_data.h"

namespace dpcnn {
namespace {

namespace fs = std::filesystem;
using testing::read_floats;
using testing::Result;
using testing::sh;

class PrecisionCli : public testing::WorkerTest {
 protected:
  PrecisionCli() : WorkerTest("dpcnn-precision-test") {}
  void SetUp() override {
    WorkerTest::SetUp();
    data = testing::synthetic_mnist_dir();
  }
  static bool native_bf16() { return detect_cpu_bf16().isa_bf16; }

  // dpcnn-train alone (np 0) or under mpirun; `env` goes before the command.
  Result train(int np, const std::string& args, std::vector<float>* params = nullptr,
               const std::string& env = "") {
    return WorkerTest::train(np, "configs/mnist.yaml",
                             "data.dir=" + data + " train.max_steps=12 train.eval=false", params,
                             "--progress lines " + args, env);
  }
  static std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

  std::string data;
};

// An AVX2 machine, as oneDNN would see it: auto says fp32 and why; bf16 is
// one line naming the setting and exit 2 (bad input), for the config key and
// for the command-line option.
TEST_F(PrecisionCli, WithoutNativeBf16AutoIsFp32AndBf16IsRefused) {
  const std::string avx2 = "DNNL_MAX_CPU_ISA=AVX2";
  Result a = train(0, "", nullptr, avx2);
  ASSERT_EQ(a.status, 0) << a.output;
  EXPECT_NE(first_line(a.output).find("precision fp32 (auto: no native bf16"), std::string::npos)
      << a.output;
  Result b = train(0, "--precision bf16", nullptr, avx2);
  EXPECT_EQ(b.status, 2) << b.output;
  EXPECT_EQ(b.output,
            "dpcnn-train: --precision bf16: this CPU has no native bf16 arithmetic (oneDNN ISA "
            "avx2; needs avx512_bf16 or amx_bf16): use fp32 or auto\n");
  Result c = train(0, "--set train.precision=bf16", nullptr, avx2);
  EXPECT_EQ(c.status, 2) << c.output;
  EXPECT_NE(c.output.find("train.precision bf16: this CPU has no native bf16"), std::string::npos)
      << c.output;
  Result d = train(0, "--set train.precision=bf17");
  EXPECT_EQ(d.status, 2) << d.output;
  EXPECT_NE(d.output.find("'train.precision' must be one of"), std::string::npos) << d.output;
}

// This CPU: auto names what it found (AMX: bf16; AVX512_BF16 alone: bf16,
// measured faster; neither: fp32), on the run's first line.
TEST_F(PrecisionCli, AutoSaysWhatItPickedAndWhy) {
  Result r = train(0, "");
  ASSERT_EQ(r.status, 0) << r.output;
  const CpuBf16Support cpu = detect_cpu_bf16();
  const std::string line = first_line(r.output);
  if (cpu.isa_amx && cpu.cpu_amx_bf16)
    EXPECT_NE(line.find("precision bf16 (auto: AMX"), std::string::npos) << line;
  else if (cpu.isa_bf16)
    EXPECT_NE(line.find("precision bf16 (auto: avx512_bf16 without AMX"), std::string::npos)
        << line;
  else
    EXPECT_NE(line.find("precision fp32 (auto: no native bf16"), std::string::npos) << line;
  Result f = train(0, "--precision fp32");
  EXPECT_NE(first_line(f.output).find("precision fp32 (requested)"), std::string::npos) << f.output;
}

// bf16 keeps bit-identical reruns for a given rank count (1 and 2 ranks).
TEST_F(PrecisionCli, Bf16RerunsAreBitIdenticalOnOneAndTwoRanks) {
  if (!native_bf16()) GTEST_SKIP() << "no native bf16 on this CPU";
  for (int np : {1, 2}) {
    std::vector<float> a, b;
    Result ra = train(np, "--precision bf16", &a);
    ASSERT_EQ(ra.status, 0) << ra.output;
    EXPECT_NE(first_line(ra.output).find("precision bf16 (requested"), std::string::npos)
        << ra.output;
    ASSERT_EQ(train(np, "--precision bf16", &b).status, 0);
    ASSERT_FALSE(a.empty());
    EXPECT_EQ(a, b) << np << " rank(s)";
  }
}

// One checkpoint (trained in bf16; checkpoints are f32), predicted in fp32
// and in bf16: the same accuracy within a sample or two; bf16 refused
// clearly where the CPU has none.
TEST_F(PrecisionCli, PredictRunsACheckpointInEitherPrecision) {
  if (!native_bf16()) GTEST_SKIP() << "no native bf16 on this CPU";
  ASSERT_EQ(train(0, "--precision bf16 --set train.max_steps=24 name=p").status, 0);
  const std::string predict = std::string(DPCNN_BIN_DIR) + "/dpcnn-predict --checkpoint " +
                              (tmp / "p").string() + " --idx " + data + "/t10k-images-idx3-ubyte " +
                              data + "/t10k-labels-idx1-ubyte";
  auto correct = [](const Result& r) {
    std::smatch m;
    EXPECT_TRUE(std::regex_search(r.output, m, std::regex(R"(accuracy \S+ \((\d+)/203\))")))
        << r.output;
    return m.size() > 1 ? std::stoi(m[1].str()) : -1;
  };
  Result f = sh(predict);
  Result b = sh(predict + " --precision bf16");
  ASSERT_EQ(f.status, 0) << f.output;
  ASSERT_EQ(b.status, 0) << b.output;
  EXPECT_NE(b.output.find("precision bf16 (requested"), std::string::npos) << b.output;
  EXPECT_GT(correct(f), 150);
  EXPECT_LE(std::abs(correct(f) - correct(b)), 3);
  Result refused = sh("DNNL_MAX_CPU_ISA=AVX2 " + predict + " --precision bf16");
  EXPECT_EQ(refused.status, 2) << refused.output;
  EXPECT_NE(refused.output.find("--precision bf16: this CPU has no native bf16"),
            std::string::npos);
}

}  // namespace
}  // namespace dpcnn
