#include "engine/tensor.h"

#include <cstring>
#include <sstream>

#include "engine/dispatch.h"
#include "engine/memory.h"
#include "kernels/elementwise.h"

namespace mc {

int64_t numel_of(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::string shape_str(const Shape& s) {
  std::ostringstream o;
  o << '[';
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << ']';
  return o.str();
}

Storage::Storage(size_t b, Device d) : bytes(b), device(d) { ptr = device_alloc(b, d); }
Storage::~Storage() { device_free(ptr, bytes, device); }

Tensor Tensor::empty(const Shape& shape, DType dt, Device dev) {
  for (int64_t d : shape) MC_CHECK(d >= 0, "negative dimension in shape ", shape_str(shape));
  Tensor t;
  t.storage_ = std::make_shared<Storage>(size_t(numel_of(shape)) * dtype_size(dt), dev);
  t.shape_ = shape;
  t.dtype_ = dt;
  t.device_ = dev;
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dt, Device dev) {
  Tensor t = empty(shape, dt, dev);
  device_memset0(t.raw(), t.nbytes(), dev);
  return t;
}

Tensor Tensor::full(const Shape& shape, double value, DType dt, Device dev) {
  Tensor t = empty(shape, dt, dev);
  t.fill_(value);
  return t;
}

template <class T>
Tensor Tensor::from(const std::vector<T>& values, const Shape& shape) {
  MC_CHECK(int64_t(values.size()) == numel_of(shape), "Tensor::from: ", values.size(),
           " values for shape ", shape_str(shape));
  Tensor t = empty(shape, dtype_of<T>());
  if (!values.empty()) std::memcpy(t.raw(), values.data(), values.size() * sizeof(T));
  return t;
}
template Tensor Tensor::from(const std::vector<float>&, const Shape&);
template Tensor Tensor::from(const std::vector<double>&, const Shape&);
template Tensor Tensor::from(const std::vector<int32_t>&, const Shape&);
template Tensor Tensor::from(const std::vector<int64_t>&, const Shape&);
template Tensor Tensor::from(const std::vector<uint8_t>&, const Shape&);

Tensor Tensor::from_blob(void* ptr, const Shape& shape, DType dt, std::shared_ptr<void> keep) {
  Tensor t;
  // A zero-byte storage marks the tensor defined; the data pointer is the blob.
  t.storage_ = std::make_shared<Storage>(0, Device::cpu());
  t.blob_ = ptr;
  t.external_ = std::move(keep);
  t.shape_ = shape;
  t.dtype_ = dt;
  return t;
}

int64_t Tensor::size(int64_t d) const {
  int64_t n = dim();
  if (d < 0) d += n;
  MC_CHECK(d >= 0 && d < n, "dimension ", d, " out of range for ", str());
  return shape_[size_t(d)];
}

std::string Tensor::str() const {
  if (!defined()) return "undefined tensor";
  return std::string(dtype_name(dtype_)) + shape_str(shape_) + " " + device_.str();
}

void* Tensor::raw() const {
  MC_CHECK(defined(), "access to an undefined tensor");
  return static_cast<char*>(blob_ ? blob_ : storage_->ptr) + offset_;
}

template <class T>
T* Tensor::data() const {
  MC_CHECK(dtype_ == dtype_of<T>(), "tensor is ", str(), ", asked for ", dtype_name(dtype_of<T>()));
  return static_cast<T*>(raw());
}
template float* Tensor::data<float>() const;
template double* Tensor::data<double>() const;
template int32_t* Tensor::data<int32_t>() const;
template int64_t* Tensor::data<int64_t>() const;
template uint8_t* Tensor::data<uint8_t>() const;

Tensor Tensor::view(const Shape& shape) const {
  Shape s = shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      MC_CHECK(infer < 0, "view: more than one -1 in ", shape_str(shape));
      infer = int64_t(i);
    } else {
      known *= s[i];
    }
  }
  if (infer >= 0) {
    MC_CHECK(known > 0 && numel() % known == 0, "view: cannot infer ", shape_str(shape), " from ", str());
    s[size_t(infer)] = numel() / known;
  }
  MC_CHECK(numel_of(s) == numel(), "view: ", shape_str(shape), " has ", numel_of(s),
           " elements, tensor ", str(), " has ", numel());
  Tensor t = *this;
  t.shape_ = s;
  t.ag_.reset();  // views are not tracked by autograd; ops::reshape is
  return t;
}

Tensor Tensor::flat_slice(int64_t offset, const Shape& shape) const {
  MC_CHECK(offset >= 0 && offset + numel_of(shape) <= numel(), "flat_slice [", offset, ", ",
           offset + numel_of(shape), ") out of range for ", str());
  Tensor t = *this;
  t.offset_ += size_t(offset) * dtype_size(dtype_);
  t.shape_ = shape;
  t.ag_.reset();
  t.layout_ = Layout::NCDHW;
  return t;
}

Tensor Tensor::clone() const {
  Tensor t = empty(shape_, dtype_, device_);
  t.layout_ = layout_;
  device_copy(t.raw(), device_, raw(), device_, nbytes());
  return t;
}

Tensor Tensor::to(DType dt) const {
  if (dt == dtype_) return *this;
  Tensor t = empty(shape_, dt, device_);
  t.layout_ = layout_;
  t.copy_(*this);
  return t;
}

Tensor Tensor::to(Device dev) const {
  if (dev == device_) return *this;
  Tensor t = empty(shape_, dtype_, dev);
  t.layout_ = layout_;
  device_copy(t.raw(), dev, raw(), device_, nbytes());
  return t;
}

Tensor& Tensor::copy_(const Tensor& src) {
  MC_CHECK(src.numel() == numel(), "copy_: ", src.str(), " into ", str());
  if (src.dtype_ == dtype_) {
    device_copy(raw(), device_, src.raw(), src.device_, nbytes());
    return *this;
  }
  Tensor s = src.to(device_);  // cast where the destination lives
  MC_DISPATCH(device_, cast, s.raw(), kdt(s.dtype_), raw(), kdt(dtype_), numel());
  return *this;
}

Tensor& Tensor::fill_(double v) {
  if (numel() == 0) return *this;
  MC_DISPATCH(device_, fill, raw(), kdt(dtype_), v, numel());
  return *this;
}

Tensor upload(const Tensor& host, Device dev) {
  MC_CHECK(host.device().is_cpu(), "upload: the source must be a CPU tensor, got ", host.str());
  if (dev.is_cpu()) return host;
  Tensor t = Tensor::empty(host.shape(), host.dtype(), dev);
  t.set_layout(host.layout());
  // The tensor handle keeps the source's storage (and any wrapped memory) alive until the copy
  // has read it.
  device_upload(t.raw(), dev, host.raw(), host.nbytes(), std::make_shared<Tensor>(host));
  return t;
}

double Tensor::item() const {
  MC_CHECK(numel() == 1, "item() needs one element, tensor is ", str());
  return to_vector<double>()[0];
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  Tensor c = to(Device::cpu()).to(dtype_of<T>());
  const T* p = c.data<T>();
  return std::vector<T>(p, p + c.numel());
}
template std::vector<float> Tensor::to_vector() const;
template std::vector<double> Tensor::to_vector() const;
template std::vector<int32_t> Tensor::to_vector() const;
template std::vector<int64_t> Tensor::to_vector() const;
template std::vector<uint8_t> Tensor::to_vector() const;

}  // namespace mc
