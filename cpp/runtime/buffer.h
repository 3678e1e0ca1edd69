// A 64-byte aligned, *uninitialised* array for large scratch (gate buffers, gradients):
// std::vector would zero-fill megabytes that the kernels overwrite anyway. The alignment also
// matters for state that threads share by row: threads own units in multiples of 16 floats
// (64 bytes), so with an aligned base no cache line is written by two threads (std::vector's
// 16-byte alignment made the split points share lines, depending on where malloc put them).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <utility>

namespace rnnkit {

template <class T>
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(size_t n) { resize(n); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept : data_(o.data_), size_(o.size_), capacity_(o.capacity_) {
    o.data_ = nullptr;
    o.size_ = o.capacity_ = 0;
  }
  Buffer& operator=(Buffer&& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    std::swap(capacity_, o.capacity_);
    return *this;
  }
  ~Buffer() { std::free(data_); }

  // Contents are unspecified after a resize that grows. If the allocation fails it throws
  // std::bad_alloc and leaves the buffer exactly as it was (old memory, size and capacity), so
  // an object that keeps a Buffer across calls stays usable after a MemoryError.
  void resize(size_t n) {
    if (n <= capacity_) {  // includes n == 0, for which aligned_alloc may return nullptr
      size_ = n;
      return;
    }
    if (n > (SIZE_MAX - 63) / sizeof(T)) throw std::bad_alloc();
    const size_t bytes = ((n * sizeof(T) + 63) / 64) * 64;
    T* fresh = static_cast<T*>(std::aligned_alloc(64, bytes));
    if (!fresh) throw std::bad_alloc();
    std::free(data_);
    data_ = fresh;
    size_ = capacity_ = n;
  }
  // resize(n), then every element set to `value`.
  void assign(size_t n, T value) {
    resize(n);
    for (size_t i = 0; i < n; ++i) data_[i] = value;
  }
  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  T* data_ = nullptr;
  size_t size_ = 0, capacity_ = 0;
};

}  // namespace rnnkit
