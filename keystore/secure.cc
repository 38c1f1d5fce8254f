#include "secure.h"

#include <sodium.h>

#include <cstring>
#include <new>
#include <utility>

namespace certvault {

bool sodium_ready() {
  static const bool ok = sodium_init() >= 0;
  return ok;
}

SecureBytes::SecureBytes(size_t size) : size_(size) {
  if (!sodium_ready()) throw std::bad_alloc();
  // sodium_malloc(0) still returns a guarded region; keep one byte so data() is valid.
  data_ = static_cast<uint8_t*>(sodium_malloc(size ? size : 1));
  if (!data_) throw std::bad_alloc();
  sodium_memzero(data_, size ? size : 1);
}

SecureBytes::SecureBytes(const void* data, size_t size) : SecureBytes(size) {
  if (size) std::memcpy(data_, data, size);
}

SecureBytes SecureBytes::random(size_t size) {
  SecureBytes out(size);
  randombytes_buf(out.data_, size);
  return out;
}

SecureBytes::~SecureBytes() {
  clear();
}

SecureBytes::SecureBytes(SecureBytes&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

SecureBytes& SecureBytes::operator=(SecureBytes&& other) noexcept {
  if (this != &other) {
    clear();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

void SecureBytes::truncate(size_t size) {
  if (size >= size_) return;
  sodium_memzero(data_ + size, size_ - size);
  size_ = size;
}

void SecureBytes::clear() {
  if (data_) sodium_free(data_);  // sodium_free wipes before releasing
  data_ = nullptr;
  size_ = 0;
}

bool SecureBytes::operator==(const SecureBytes& other) const {
  return size_ == other.size_ && (size_ == 0 || sodium_memcmp(data_, other.data_, size_) == 0);
}

}  // namespace certvault
