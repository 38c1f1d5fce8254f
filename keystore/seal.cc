#include "seal.h"

#include <sodium.h>

namespace certvault::seal {

bool kdf_in_range(const KdfParams& kdf) {
  return kdf.ops >= crypto_pwhash_OPSLIMIT_MIN && kdf.ops <= kKdfMaxOps &&
         kdf.mem_bytes >= crypto_pwhash_MEMLIMIT_MIN && kdf.mem_bytes <= kKdfMaxMem;
}

Result<SecureBytes> pin_key(const SecureBytes& pin, std::span<const uint8_t> salt,
                            const KdfParams& kdf) {
  static_assert(kSaltBytes == crypto_pwhash_SALTBYTES);
  if (salt.size() != kSaltBytes || !kdf_in_range(kdf))
    return fail(Code::kTampered, "the vault's key-derivation parameters are out of range");
  SecureBytes key(kKeyBytes);
  if (crypto_pwhash(key.data(), key.size(), reinterpret_cast<const char*>(pin.data()), pin.size(),
                    salt.data(), kdf.ops, kdf.mem_bytes, crypto_pwhash_ALG_ARGON2ID13) != 0)
    return fail(Code::kCrypto, "Argon2id failed (out of memory?); free memory and retry");
  return key;
}

SecureBytes recovery_key(const SecureBytes& recovery, std::span<const uint8_t> salt) {
  static constexpr std::string_view kContext = "certvault recovery key v1";
  SecureBytes key(kKeyBytes);
  crypto_generichash_state st;
  crypto_generichash_init(&st, recovery.data(), recovery.size(), key.size());
  crypto_generichash_update(&st, as_bytes(kContext).data(), kContext.size());
  crypto_generichash_update(&st, salt.data(), salt.size());
  crypto_generichash_final(&st, key.data(), key.size());
  sodium_memzero(&st, sizeof st);
  return key;
}

SecureBytes new_recovery_secret() {
  SecureBytes raw = SecureBytes::random(kKeyBytes);
  SecureBytes text(kKeyBytes * 2 + kKeyBytes / 4 - 1);  // 8 groups of 8 hex digits
  static constexpr char kHex[] = "0123456789abcdef";
  size_t o = 0;
  for (size_t i = 0; i < raw.size(); ++i) {
    if (i && i % 4 == 0) text.data()[o++] = '-';
    text.data()[o++] = kHex[raw.data()[i] >> 4];
    text.data()[o++] = kHex[raw.data()[i] & 15];
  }
  return text;
}

Result<SecureBytes> parse_recovery_secret(const SecureBytes& text) {
  SecureBytes raw(kKeyBytes);
  size_t nibbles = 0;
  for (uint8_t c : text.span()) {
    if (c == '-' || c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    int v = (c >= '0' && c <= '9')   ? c - '0'
            : (c >= 'a' && c <= 'f') ? c - 'a' + 10
            : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                     : -1;
    if (v < 0 || nibbles >= kKeyBytes * 2) nibbles = kKeyBytes * 2 + 1;
    if (nibbles > kKeyBytes * 2) break;
    raw.data()[nibbles / 2] |= static_cast<uint8_t>(nibbles % 2 ? v : v << 4);
    ++nibbles;
  }
  if (nibbles != kKeyBytes * 2)
    return fail(Code::kInvalidInput,
                "the recovery secret is not 64 hex digits; type it as printed by `certvault init`");
  return raw;
}

SecureBytes subkey(const SecureBytes& vault_key, Purpose purpose) {
  SecureBytes out(kKeyBytes);
  crypto_kdf_derive_from_key(out.data(), out.size(), static_cast<uint64_t>(purpose), "cvault01",
                             vault_key.data());
  return out;
}

Bytes seal(const SecureBytes& key, std::span<const uint8_t> plaintext,
           std::span<const uint8_t> ad) {
  constexpr size_t kNonce = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
  Bytes out(kNonce + plaintext.size() + crypto_aead_xchacha20poly1305_ietf_ABYTES);
  randombytes_buf(out.data(), kNonce);
  unsigned long long len = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(out.data() + kNonce, &len, plaintext.data(),
                                             plaintext.size(), ad.data(), ad.size(), nullptr,
                                             out.data(), key.data());
  out.resize(kNonce + len);
  return out;
}

Result<SecureBytes> open(const SecureBytes& key, std::span<const uint8_t> sealed,
                         std::span<const uint8_t> ad) {
  constexpr size_t kNonce = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
  constexpr size_t kTag = crypto_aead_xchacha20poly1305_ietf_ABYTES;
  if (sealed.size() < kNonce + kTag) return fail(Code::kTampered, "sealed data is truncated");
  SecureBytes out(sealed.size() - kNonce - kTag);
  unsigned long long len = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(out.data(), &len, nullptr, sealed.data() + kNonce,
                                                 sealed.size() - kNonce, ad.data(), ad.size(),
                                                 sealed.data(), key.data()) != 0)
    return fail(Code::kTampered, "sealed data failed authentication");
  return out;
}

Bytes mac(const SecureBytes& key, std::span<const uint8_t> data) {
  Bytes out(32);
  crypto_generichash(out.data(), out.size(), data.data(), data.size(), key.data(), key.size());
  return out;
}

bool mac_equal(std::span<const uint8_t> a, std::span<const uint8_t> b) {
  return a.size() == b.size() && sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

Bytes content_hash(std::span<const uint8_t> data) {
  Bytes out(32);
  crypto_generichash(out.data(), out.size(), data.data(), data.size(), nullptr, 0);
  return out;
}

Bytes random_bytes(size_t n) {
  Bytes out(n);
  randombytes_buf(out.data(), n);
  return out;
}

std::string to_hex(std::span<const uint8_t> data) {
  std::string out(data.size() * 2 + 1, '\0');
  sodium_bin2hex(out.data(), out.size(), data.data(), data.size());
  out.pop_back();
  return out;
}

Result<Bytes> from_hex(std::string_view hex) {
  if (hex.empty()) return Bytes{};  // libsodium is not to be handed a NULL buffer
  Bytes out(hex.size() / 2);
  size_t len = 0;
  const char* end = nullptr;
  if (hex.size() % 2 ||
      sodium_hex2bin(out.data(), out.size(), hex.data(), hex.size(), nullptr, &len, &end) != 0 ||
      end != hex.data() + hex.size())
    return fail(Code::kTampered, "malformed hex field");
  out.resize(len);
  return out;
}

std::string to_base64(std::span<const uint8_t> data) {
  constexpr int kVariant = sodium_base64_VARIANT_ORIGINAL;
  std::string out(sodium_base64_ENCODED_LEN(data.size(), kVariant), '\0');
  sodium_bin2base64(out.data(), out.size(), data.data(), data.size(), kVariant);
  out.resize(out.size() - 1);
  return out;
}

std::string to_base64url(std::span<const uint8_t> data) {
  constexpr int kVariant = sodium_base64_VARIANT_URLSAFE_NO_PADDING;
  std::string out(sodium_base64_ENCODED_LEN(data.size(), kVariant), '\0');
  sodium_bin2base64(out.data(), out.size(), data.data(), data.size(), kVariant);
  out.resize(out.size() - 1);
  return out;
}

Result<Bytes> from_base64(std::string_view b64) {
  Bytes out(b64.size() / 4 * 3 + 3);
  size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(out.data(), out.size(), b64.data(), b64.size(), nullptr, &len, &end,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      end != b64.data() + b64.size())
    return fail(Code::kTampered, "malformed base64 field");
  out.resize(len);
  return out;
}

}  // namespace certvault::seal
