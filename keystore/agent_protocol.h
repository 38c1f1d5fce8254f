// The agent's wire protocol (docs/agent-protocol.md): length-prefixed frames of tagged
// fields over a Unix stream socket. Every frame is bounded; a frame that does not decode
// ends its connection and nothing else. No key material ever crosses it; a PIN does, in
// an unlock request only, and every buffer that held one is wiped.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "error.h"
#include "secure.h"

namespace certvault::agent {

inline constexpr uint8_t kProtocolVersion = 1;
// Header: 4-byte big-endian body length. Body: version, message type, then fields.
inline constexpr size_t kHeaderSize = 4;
inline constexpr size_t kMaxBody = 256 * 1024;
inline constexpr size_t kMaxFields = 4096;

enum class Type : uint8_t {
  // requests
  kStatus = 1,     // every served vault, as JSON
  kUnlock = 2,     // vault, pin, [ttl]
  kLock = 3,       // [vault]; none: every vault
  kResolve = 4,    // vault, nickname, [serial]: one usable generation, public data
  kList = 5,       // vault, [offset]: the entries this peer may see, as JSON
  kSign = 6,       // vault, nickname, generation, key id, mechanism, [digest...], data
  kToken = 7,      // vault: label, id, locked, PIN failures (PKCS#11 token info)
  kSetAccess = 8,  // vault, nickname, json (one change): the owner's `certvault access`
  kCheckPin = 9,   // vault, pin: a PKCS#11 C_Login that gave a PIN; a wrong one counts
  // vault, json {"op", ...arguments}, [data], [password]: one of the owner's CLI commands,
  // carried out while the agent holds the vault unlocked; the reply: json {"op",
  // "nickname"}, [data] (a PKCS#12 file, a CSR), [password] (the export's, shown once).
  kOwner = 10,
  // replies
  kOk = 0x80,
  kError = 0x81,  // code, message
};

enum class Tag : uint8_t {
  kVault = 1,
  kNickname = 2,
  kGeneration = 3,  // u64
  kSerial = 4,
  kKeyId = 5,
  kMechanism = 6,   // "ecdsa", "rsa-pkcs1", "rsa-pss", "ed25519"
  kDigest = 7,      // "sha256"...; absent: the data is already what is signed
  kSaltLength = 8,  // u64, RSA-PSS
  kMgf1Digest = 9,
  kData = 10,
  kSignature = 11,
  kPin = 12,
  kTtl = 13,   // u64 seconds; 0: no limit
  kCode = 14,  // u64, agent::ErrorCode
  kMessage = 15,
  kCertificate = 16,
  kChain = 17,  // repeated, issuer first
  kSpki = 18,
  kKeyType = 19,
  kJson = 20,
  kOffset = 21,    // u64
  kPassword = 22,  // a PKCS#12 file's password (import: given; export: generated)
  // u64, in a signature's reply: the core the connection's loop stays on, so that the
  // client does not look for its next answer there (it would hold up the signer). A hint:
  // absent when the agent does not keep its loops on cores.
  kCore = 23,
  // u64, in an error's reply: the keystore's Remedy, for the CLI's advice (with kNickname
  // when it is about an entry). Programs leave both out of what they show.
  kRemedy = 24,
};

// Error codes on the wire: the keystore's, and one of the protocol's own.
enum class ErrorCode : uint8_t {
  kInvalidInput = 1,
  kNotFound,
  kExists,
  kRefused,
  kWrongPin,
  kPinLocked,
  kLocked,
  kTampered,
  kBadPermissions,
  kIo,
  kCrypto,
  kNotServed = 100,  // this agent serves no such vault: the client works in-process
};
ErrorCode to_wire(Code code);
Code from_wire(uint64_t code);

// A decoded frame: views into the bytes it was decoded from, which must outlive it.
struct Message {
  Type type = Type::kError;
  std::vector<std::pair<Tag, std::string_view>> fields;

  std::optional<std::string_view> get(Tag tag) const;
  std::vector<std::string_view> all(Tag tag) const;
  std::optional<uint64_t> get_u64(Tag tag) const;  // nullopt when absent or not 8 bytes
  std::string text(Tag tag) const;                 // empty when absent
};

// Builds one frame. Its bytes are wiped when it is destroyed or cleared, since an unlock
// request carries a PIN.
class Frame {
 public:
  explicit Frame(Type type);
  ~Frame();
  Frame(Frame&&) = default;
  Frame& operator=(Frame&&) = default;

  Frame& add(Tag tag, std::span<const uint8_t> value);
  Frame& add(Tag tag, std::string_view value);
  Frame& add_u64(Tag tag, uint64_t value);
  // The complete frame, header included; false when it would exceed kMaxBody.
  bool fits() const { return bytes_.size() - kHeaderSize <= kMaxBody; }
  std::span<const uint8_t> bytes();
  Type type() const { return static_cast<Type>(bytes_[kHeaderSize + 1]); }

 private:
  std::vector<uint8_t> bytes_;
};

// The body length a header announces, or an error when it is out of bounds.
Result<size_t> body_length(std::span<const uint8_t, kHeaderSize> header);
// Decodes a body (without its header). Fails on an unknown version, a truncated field or
// too many fields; never reads past `body`.
Result<Message> decode(std::span<const uint8_t> body);

// The error reply for `e`, and the Error an error reply carries.
Frame error_frame(const Error& e);
Frame error_frame(ErrorCode code, std::string_view message);
Error error_of(const Message& reply);

}  // namespace certvault::agent
