// Secrets live only in libsodium guarded memory (guard pages, mlock, excluded from core
// dumps) and are wiped when freed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace certvault {

// Initialises libsodium once; safe to call from any thread, any number of times.
bool sodium_ready();

class SecureBytes {
 public:
  SecureBytes() = default;
  explicit SecureBytes(size_t size);  // zero-filled
  SecureBytes(const void* data, size_t size);
  static SecureBytes from(std::string_view text) { return SecureBytes(text.data(), text.size()); }
  static SecureBytes random(size_t size);
  ~SecureBytes();
  SecureBytes(SecureBytes&& other) noexcept;
  SecureBytes& operator=(SecureBytes&& other) noexcept;
  SecureBytes(const SecureBytes&) = delete;
  SecureBytes& operator=(const SecureBytes&) = delete;

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::span<const uint8_t> span() const { return {data_, size_}; }
  std::string_view view() const { return {reinterpret_cast<const char*>(data_), size_}; }
  // Drops trailing bytes (e.g. a newline read with a PIN); the memory stays guarded.
  void truncate(size_t size);
  void clear();
  bool operator==(const SecureBytes& other) const;

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace certvault
