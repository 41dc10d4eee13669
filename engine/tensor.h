// Tensor: shared contiguous storage + byte offset + shape + dtype + device (+ a layout tag).
// Views (reshape, flat slices of a parameter block) share storage. No general striding.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "engine/check.h"
#include "engine/dtype.h"

namespace mc {

using Shape = std::vector<int64_t>;
int64_t numel_of(const Shape& s);
std::string shape_str(const Shape& s);  // "[2, 3, 4]"

// Owns one allocation on one device. Memory comes from engine/memory.h (caching on CUDA).
struct Storage {
  void* ptr = nullptr;
  size_t bytes = 0;
  Device device;
  Storage(size_t bytes, Device d);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

struct AutogradMeta;  // engine/autograd.h

class Tensor {
 public:
  Tensor() = default;

  // ---- creation (CPU unless a device is given; contents of empty() are undefined) ----
  static Tensor empty(const Shape& shape, DType dt = DType::F32, Device dev = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dt = DType::F32, Device dev = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dt = DType::F32,
                     Device dev = Device::cpu());
  template <class T>
  static Tensor from(const std::vector<T>& values, const Shape& shape);
  // Wraps memory we don't own (e.g. a memory-mapped file); `keep` keeps it alive.
  static Tensor from_blob(void* ptr, const Shape& shape, DType dt, std::shared_ptr<void> keep);

  // ---- metadata ----
  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int64_t dim() const { return int64_t(shape_.size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const { return numel_of(shape_); }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  bool is_cuda() const { return device_.is_cuda(); }
  Layout layout() const { return layout_; }
  Tensor& set_layout(Layout l) { layout_ = l; return *this; }
  std::string str() const;  // "f32[2, 3] cpu"

  // ---- data ----
  void* raw() const;
  template <class T> T* data() const;  // checks dtype
  bool shares_storage(const Tensor& o) const { return storage_ == o.storage_; }

  // ---- views and copies ----
  Tensor view(const Shape& shape) const;  // same numel, shares storage; -1 infers one dim
  Tensor flat_slice(int64_t offset, const Shape& shape) const;  // elements [offset, offset+numel)
  Tensor clone() const;
  Tensor to(DType dt) const;       // cast (returns *this when already dt)
  Tensor to(Device dev) const;     // copy (returns *this when already there)
  Tensor& copy_(const Tensor& src);  // same numel; converts dtype and device
  Tensor& fill_(double v);
  Tensor& zero_() { return fill_(0.0); }
  double item() const;  // one element, as double (syncs if on GPU)
  template <class T> std::vector<T> to_vector() const;  // any device, converts dtype

  // ---- autograd (engine/autograd.h) ----
  bool requires_grad() const;
  Tensor& set_requires_grad(bool r);
  Tensor grad() const;          // undefined tensor if none
  void set_grad(const Tensor& g);
  void zero_grad();             // drops the gradient (PyTorch's set_to_none)
  Tensor detach() const;        // same storage, no history
  void backward() const;  // scalar: seeds with 1
  void backward(const Tensor& grad_out) const;
  const std::shared_ptr<AutogradMeta>& autograd_meta() const { return ag_; }
  std::shared_ptr<AutogradMeta>& autograd_meta() { return ag_; }

 private:
  std::shared_ptr<Storage> storage_;
  std::shared_ptr<void> external_;  // keeps wrapped memory alive (from_blob)
  void* blob_ = nullptr;
  size_t offset_ = 0;  // bytes into storage
  Shape shape_;
  DType dtype_ = DType::F32;
  Device device_;
  Layout layout_ = Layout::NCDHW;
  std::shared_ptr<AutogradMeta> ag_;
};

// A copy of CPU tensor `host` on `dev` that never blocks the host (engine/memory.h's
// device_upload; page-locked sources copy asynchronously); `host` stays referenced until the copy
// has read it, so release it freely. On the CPU, `host` itself.
Tensor upload(const Tensor& host, Device dev);

}  // namespace mc
