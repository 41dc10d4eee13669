// The device layer: dispatch, compute modes, plan keys, device flags, host buffers and uploads
// (everywhere); error macros (everywhere a CUDA build exists: without a driver every call fails,
// which is what they report); and on a GPU the caching allocator, copies, uploads, device flags,
// and the promise that a warm training step makes no cudaMalloc.
#include <gtest/gtest.h>

#include <cstring>

#include "engine/cuda/conv_plan.h"
#include "engine/device.h"
#include "engine/dispatch.h"
#include "engine/memory.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "engine/precision.h"
#include "engine/prims.h"
#include "test_util.h"
#ifdef MC_HAVE_CUDA
#include "engine/cuda/check.h"
#include "engine/cuda/runtime.h"
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
  {
    PrecisionScope s(Precision::BF16);
    EXPECT_EQ(precision(), Precision::BF16);
    EXPECT_EQ(activation_dtype(), DType::BF16);
  }
  EXPECT_EQ(precision(), before);
}

// The precision config decides the layout, for every program alike (issue: bf16/tf32 training
// ran NCDHW while mc_bench timed NDHWC).
TEST(ComputeMode, PrecisionDecidesTheLayout) {
  const Device gpu = Device::cuda(), cpu = Device::cpu();
  EXPECT_EQ(compute_mode_for(Precision::FP32, gpu).layout, Layout::NCDHW);
  EXPECT_EQ(compute_mode_for(Precision::TF32, gpu).layout, Layout::NDHWC);
  EXPECT_EQ(compute_mode_for(Precision::BF16, gpu).layout, Layout::NDHWC);
  for (Precision p : {Precision::FP32, Precision::TF32, Precision::BF16}) {
    EXPECT_EQ(compute_mode_for(p, cpu).layout, Layout::NCDHW) << precision_name(p);
    EXPECT_EQ(compute_mode_for(p, gpu).precision, p);
  }
  const Precision before = precision();
  apply(compute_mode_for(Precision::TF32, gpu));
  EXPECT_EQ(precision(), Precision::TF32);
  set_precision(before);
  // The model input is converted once, by the same op everywhere; on the CPU that is a no-op.
  const Tensor x = test::randn({1, 2, 3, 3, 3}, 1);
  EXPECT_TRUE(to_layout(x, compute_mode_for(Precision::BF16, cpu).layout).shares_storage(x));
}

// A CUDA device is an error wherever no GPU can run it: never a silent no-op (issue: AdamW::step
// on a CUDA tensor did nothing in a build without CUDA).
TEST(Dispatch, CudaDeviceWithoutAGpuIsAnError) {
  if (test::have_gpu()) GTEST_SKIP() << "a GPU is present";
  float v = 1.f;
  kernels::AdamWArgs a;
  test::expect_error([&] { MC_DISPATCH(Device::cuda(), adamw_step, &v, &v, &v, &v, 1, a); },
                     {"cuda"});
  test::expect_error([&] { Tensor::zeros({3}, DType::F32, Device::cuda()); }, {"cuda"});
  int calls = 0;
  on_device(Device::cpu(), "probe", [&](kernels::Stream s) { calls += s == nullptr; },
            [&](kernels::Stream) { calls += 100; });
  EXPECT_EQ(calls, 1);
}

// Issue: the cuDNN plan cache key ignored pointer alignment, and parameters are packed unpadded.
TEST(ConvPlanKey, AlignmentIsPartOfTheKey) {
  alignas(256) static char buf[1024];
  EXPECT_EQ(cuda::alignment_class(buf), 256);
  EXPECT_EQ(cuda::alignment_class(buf + 4), 4);
  EXPECT_EQ(cuda::alignment_class(buf + 12), 4);
  EXPECT_EQ(cuda::alignment_class(buf + 16), 16);
  EXPECT_EQ(cuda::alignment_class(buf + 1), 1);
  EXPECT_EQ(cuda::alignment_class(nullptr), 256);
  kernels::ConvGeom g;
  g.N = 2, g.C = 4, g.D = g.H = g.W = 8, g.O = 8, g.k = {3, 3, 3};
  const auto key = [&](const void* w) {
    return cuda::conv_plan_key(cuda::ConvDir::Fwd, DType::F32, Layout::NCDHW, 0, false, g, buf, w,
                               buf);
  };
  EXPECT_EQ(key(buf + 256), key(buf + 512));      // same classes: one plan
  EXPECT_FALSE(key(buf + 256) == key(buf + 12));  // a 4-byte aligned weight: its own plan
  EXPECT_NE(cuda::ConvPlanKeyHash{}(key(buf + 256)), cuda::ConvPlanKeyHash{}(key(buf + 12)));
}

// Issue: a bad label on the GPU was silently dropped; the trainer checks the flags every N steps.
TEST(DeviceFlags, CheckEveryNSteps) {
  test::expect_error([] { DeviceFlagCheck(Device::cpu(), 0); }, {"every"});
  DeviceFlagCheck c(Device::cpu(), 3);
  for (int i = 0; i < 7; ++i) c.step();
  EXPECT_EQ(c.checks(), 2);
  EXPECT_NO_THROW(check_device_flags(Device::cpu()));
}

TEST(HostBuffer, PageableWithoutAGpuAndUploadToTheCpuIsTheTensor) {
  HostBuffer b(1000, true);
  EXPECT_EQ(b.pinned(), test::have_gpu());
  std::memset(b.data(), 7, b.bytes());
  EXPECT_EQ(static_cast<unsigned char*>(b.data())[999], 7);
  const Tensor x = test::randn({5}, 2);
  EXPECT_TRUE(upload(x, Device::cpu()).shares_storage(x));
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
  // The same through the engine's periodic check, and through the backward's device-dloss path.
  Tensor lg = logits.clone().set_requires_grad(true);
  cross_entropy(lg, labels).backward();
  DeviceFlagCheck every2(Device::cuda(), 2);
  EXPECT_NO_THROW(every2.step());
  EXPECT_THROW(every2.step(), Error);
}

// Issue: the device-dloss overload skipped the label, offset and weight checks on the GPU.
TEST(CudaRuntime, BothCrossEntropyOverloadsCheckTheSameThings) {
  MC_SKIP_WITHOUT_GPU();
  const Device g = Device::cuda();
  const Tensor logits = test::randn({4, 3}, 3).to(g);
  const Tensor labels = Tensor::from<int64_t>({0, 1, 2, 2}, {4}).to(g);
  const Tensor dloss = Tensor::full({}, 1.0, DType::F32, g);
  const std::vector<std::pair<prims::CrossEntropyArgs, Tensor>> bad = {
      {{}, labels.to(DType::I32)},                                     // i32 labels
      {{}, Tensor::from<int64_t>({0, 1, 2}, {3}).to(g)},               // wrong length
      {{.weight = Tensor::full({2}, 1.0, DType::F32, g)}, labels},     // weight of 2 classes
      {{.offset = Tensor::full({3}, 1.0, DType::F64, g)}, labels},     // f64 offset
      {{.offset = Tensor::full({3}, 1.0, DType::F32)}, labels}};       // offset on the CPU
  for (const auto& [args, y] : bad) {
    Tensor d;
    EXPECT_THROW(prims::cross_entropy(logits, y, args, &d, 1.0), Error);
    EXPECT_THROW(prims::cross_entropy(logits, y, args, &d, dloss), Error);
  }
  Tensor d;
  EXPECT_THROW(prims::cross_entropy(logits, labels, {}, &d, Tensor::full({}, 1.0, DType::F32)),
               Error);  // d(loss) on the host
}

// Issue: a copy between two GPUs did not order the source's stream after it.
TEST(CudaRuntime, PeerCopyOrdersBothStreams) {
  MC_SKIP_WITHOUT_GPU();
  if (cuda_device_count() < 2) GTEST_SKIP() << "needs two GPUs";
  const Tensor h = test::randn({1 << 20}, 4);
  for (int i = 0; i < 3; ++i) {
    Tensor a = h.to(Device::cuda(0));
    Tensor b = a.to(Device::cuda(1));  // then a's block goes back to cuda:0's cache at once
    a = Tensor();
    Tensor c = Tensor::full({1 << 20}, -1.0, DType::F32, Device::cuda(0));  // may reuse it
    EXPECT_EQ(b.to_vector<float>(), h.to_vector<float>());
    EXPECT_EQ(c.to_vector<float>()[0], -1.f);
  }
}

// Uploads do not block the host, hold their source until the copy has read it, and order the
// device's later work after them.
TEST(CudaRuntime, UploadsHoldTheirSourceAndOrderTheStream) {
  MC_SKIP_WITHOUT_GPU();
  const Device g = Device::cuda();
  HostBuffer pinned(4 << 20, true);
  EXPECT_TRUE(pinned.pinned());
  auto* f = static_cast<float*>(pinned.data());
  for (int i = 0; i < (1 << 20); ++i) f[i] = float(i % 1000) * 0.5f;
  auto released = std::make_shared<int>(0);
  std::shared_ptr<void> keep(nullptr, [released](void*) { ++*released; });
  Tensor src = Tensor::from_blob(f, {1 << 20}, DType::F32, keep);
  keep.reset();
  Tensor d = upload(src, g);
  src = Tensor();
  Tensor doubled = prims::scale(d, 2.0);  // on the compute stream: after the copy
  synchronize(g);
  EXPECT_EQ(*released, 1);
  EXPECT_EQ(cuda::pending_uploads(0), 0u);
  const auto v = doubled.to_vector<float>();
  for (int i = 0; i < (1 << 20); i += 4099) ASSERT_EQ(v[size_t(i)], float(i % 1000)) << i;
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
