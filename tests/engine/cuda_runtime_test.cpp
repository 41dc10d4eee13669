// The CUDA runtime layer: allocator size classes and precision settings (everywhere), error
// macros (everywhere a CUDA build exists: without a driver every call fails, which is what they
// report), and on a GPU the caching allocator, copies, device flags, and the promise that a warm
// training step makes no cudaMalloc.
#include <gtest/gtest.h>

#include "engine/memory.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "engine/precision.h"
#include "test_util.h"
#ifdef MC_HAVE_CUDA
#include "engine/cuda_check.h"
#include "engine/cuda_runtime.h"
#endif

namespace mc {
namespace {

TEST(CudaPrecision, NamesRoundTripAndBadValuesNameTheChoices) {
  for (Precision p : {Precision::FP32, Precision::TF32, Precision::BF16})
    EXPECT_EQ(parse_precision(precision_name(p)), p);
  try {
    parse_precision("fp16");
    FAIL() << "accepted fp16";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fp32, tf32, bf16"), std::string::npos) << e.what();
  }
}

TEST(CudaPrecision, ScopeRestores) {
  const Precision before = precision();
  const bool cl = channels_last();
  {
    PrecisionScope s(Precision::BF16, true);
    EXPECT_EQ(precision(), Precision::BF16);
    EXPECT_EQ(activation_dtype(), DType::BF16);
    EXPECT_TRUE(channels_last());
  }
  EXPECT_EQ(precision(), before);
  EXPECT_EQ(channels_last(), cl);
}

TEST(CudaRuntime, DeviceCountIsZeroOrMoreNeverThrows) {
  EXPECT_GE(cuda_device_count(), 0);
  EXPECT_EQ(cuda_available(), cuda_device_count() > 0);
}

#ifdef MC_HAVE_CUDA

TEST(CudaAllocator, SizeClasses) {
  EXPECT_EQ(cuda::round_size(0), 512u);
  EXPECT_EQ(cuda::round_size(1), 512u);
  EXPECT_EQ(cuda::round_size(512), 512u);
  EXPECT_EQ(cuda::round_size(513), 1024u);
  EXPECT_EQ(cuda::round_size(4097), 4608u);  // 4096 + 512
  EXPECT_EQ(cuda::round_size((1u << 20) + 1), (1u << 20) + (1u << 17));
  size_t prev = 0;
  for (size_t b = 1; b < (size_t(1) << 34); b = b * 3 / 2 + 7) {
    const size_t r = cuda::round_size(b);
    EXPECT_GE(r, b);
    EXPECT_EQ(r % 512, 0u) << b;             // every block stays 512-byte aligned
    EXPECT_EQ(cuda::round_size(r), r) << b;  // a class maps to itself
    EXPECT_GE(r, prev) << b;                 // monotonic
    if (b > 4096) EXPECT_LT(double(r - b), 0.125 * double(b)) << b;  // < 12.5% waste
    prev = r;
  }
}

TEST(CudaCheck, MessagesNameCallFileAndLibraryText) {
  // Without a GPU every runtime call fails (error 35); with one, device 9999 does not exist.
  try {
    MC_CUDA_CHECK(cudaSetDevice(9999));
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("cudaSetDevice(9999)"), std::string::npos) << m;
    EXPECT_NE(m.find("cuda_runtime_test.cpp"), std::string::npos) << m;
    EXPECT_NE(m.find("cuda"), std::string::npos) << m;
  }
  try {
    MC_CUDNN_CHECK(CUDNN_STATUS_BAD_PARAM);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("CUDNN_STATUS_BAD_PARAM"), std::string::npos) << e.what();
  }
  try {
    MC_CUBLAS_CHECK(CUBLAS_STATUS_INVALID_VALUE);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("CUBLAS_STATUS_INVALID_VALUE"), std::string::npos)
        << e.what();
  }
  EXPECT_NO_THROW(MC_CUDA_CHECK_NOTHROW(cudaSetDevice(9999)));  // reports on stderr only
  (void)cudaGetLastError();
}

TEST(CudaAllocator, ReusesBlocksAndCountsBytes) {
  MC_SKIP_WITHOUT_GPU();
  auto& a = cuda::allocator(0);
  void* p = a.allocate(1000);
  const size_t mallocs = a.device_allocations(), used = a.current_bytes;
  a.release(p, 1000);
  EXPECT_EQ(a.current_bytes, used - 1024);
  void* q = a.allocate(1010);  // same size class: the cached block, no cudaMalloc
  EXPECT_EQ(q, p);
  EXPECT_EQ(a.device_allocations(), mallocs);
  EXPECT_GE(a.peak_bytes, a.current_bytes);
  a.release(q, 1010);
  a.empty_cache();
  EXPECT_EQ(a.cached_bytes(), 0u);
}

TEST(CudaAllocator, OutOfMemorySaysWhatWasAskedAndWhatIsFree) {
  MC_SKIP_WITHOUT_GPU();
  try {
    cuda::allocator(0).allocate(size_t(1) << 50);  // 1 PiB
    FAIL() << "allocated a petabyte";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("out of memory"), std::string::npos) << m;
    EXPECT_NE(m.find("asked for"), std::string::npos) << m;
    EXPECT_NE(m.find("free of"), std::string::npos) << m;
    EXPECT_NE(m.find("smaller batch"), std::string::npos) << m;
  }
}

TEST(CudaRuntime, CopiesRoundTripAndMemsetZeroes) {
  MC_SKIP_WITHOUT_GPU();
  Tensor h = test::randn({3, 1000}, 1);
  Tensor d = h.to(Device::cuda());
  Tensor d2 = d.clone();  // device to device
  EXPECT_EQ(d2.to_vector<float>(), h.to_vector<float>());
  d2.zero_();
  for (float v : d2.to_vector<float>()) ASSERT_EQ(v, 0.f);
}

TEST(CudaRuntime, BadLabelRaisesADeviceFlag) {
  MC_SKIP_WITHOUT_GPU();
  Tensor logits = test::randn({4, 3}, 2).to(Device::cuda());
  Tensor labels = Tensor::from<int64_t>({0, 1, 7, 2}, {4}).to(Device::cuda());
  if (cuda::sync_check_enabled()) {  // MC_SYNC_CHECK=1 checks right after the launch
    EXPECT_THROW(cross_entropy(logits, labels), Error);
    return;
  }
  cross_entropy(logits, labels);  // no host sync, so no error yet
  EXPECT_THROW(cuda::check_device_flags(0), Error);
  EXPECT_NO_THROW(cuda::check_device_flags(0));  // cleared
}

// A warm step (forward, loss, backward, AdamW) takes every block it needs from the cache.
TEST(CudaAllocator, WarmTrainingStepMakesNoCudaMalloc) {
  MC_SKIP_WITHOUT_GPU();
  const Device dev = Device::cuda();
  Tensor w1 = test::randn({8, 1, 3, 3, 3}, 3, DType::F32, 0.2).to(dev).set_requires_grad(true);
  Tensor g1 = Tensor::full({8}, 1.0, DType::F32, dev).set_requires_grad(true);
  Tensor b1 = Tensor::zeros({8}, DType::F32, dev).set_requires_grad(true);
  Tensor rm = Tensor::zeros({8}, DType::F32, dev), rv = Tensor::full({8}, 1.0, DType::F32, dev);
  Tensor fw = test::randn({3, 8}, 4, DType::F32, 0.3).to(dev).set_requires_grad(true);
  Tensor fb = Tensor::zeros({3}, DType::F32, dev).set_requires_grad(true);
  AdamW opt({&w1, &g1, &b1, &fw, &fb});
  Tensor x = test::randn({2, 1, 12, 12, 12}, 5).to(dev);
  Tensor y = Tensor::from<int64_t>({0, 2}, {2}).to(dev);
  auto step = [&] {
    for (Tensor* p : {&w1, &g1, &b1, &fw, &fb}) p->zero_grad();
    Tensor h =
        relu(batch_norm(conv3d(x, w1, Tensor(), {{2, 2, 2}, {1, 1, 1}}), g1, b1, rm, rv, true));
    h = global_avg_pool3d(max_pool3d(h, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}));
    Tensor loss = cross_entropy(linear(h, fw, fb), y);
    loss.backward();
    opt.step();
  };
  step();
  step();
  const size_t mallocs = cuda::allocator(0).device_allocations();
  step();
  step();
  cuda::synchronize(0);
  EXPECT_EQ(cuda::allocator(0).device_allocations(), mallocs);
}

#endif  // MC_HAVE_CUDA

}  // namespace
}  // namespace mc
