// Plain values that describe what a vault holds. No secrets here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "error.h"

namespace certvault {

enum class KeyType { kEcP256, kEcP384, kRsa2048, kRsa3072, kRsa4096, kEd25519 };
enum class Hash { kSha256, kSha384, kSha512 };
enum class Status { kActive, kSuperseded, kDisabled, kPending };
enum class IssuerKind { kVaultCa, kSelfSigned, kExternal };
enum class ExportRule { kOnce, kNever };
enum class P12Encryption { kAes256, kTripleDes };
// Why a certificate was revoked: RFC 5280 5.3.1 CRLReason, with its values. certificateHold
// (6) is not offered, since a revocation here is never undone; cACompromise (2) and the
// reasons of attribute authorities are not a client certificate's.
enum class RevocationReason {
  kUnspecified = 0,
  kKeyCompromise = 1,
  kAffiliationChanged = 3,
  kSuperseded = 4,
  kCessationOfOperation = 5,
  kPrivilegeWithdrawn = 9,
};

// Names as users type them: "ec-p256", "sha384", "active", "vault-ca", "once", "aes-256".
std::string_view to_string(KeyType v);
std::string_view to_string(Hash v);
std::string_view to_string(Status v);
std::string_view to_string(IssuerKind v);
std::string_view to_string(ExportRule v);
std::string_view to_string(RevocationReason v);  // "keyCompromise": RFC 5280's names
Result<KeyType> parse_key_type(std::string_view text);
Result<Hash> parse_hash(std::string_view text);
Result<ExportRule> parse_export_rule(std::string_view text);
Result<P12Encryption> parse_p12_encryption(std::string_view text);
Result<Status> parse_status(std::string_view text);
Result<IssuerKind> parse_issuer_kind(std::string_view text);
Result<RevocationReason> parse_revocation_reason(std::string_view text);
// The names parse_revocation_reason takes, comma-separated, for help and messages.
std::string revocation_reason_names();

// Seconds since the Unix epoch, UTC.
using Time = int64_t;
Time now();

// One key and its certificate. A nickname resolves to its newest active generation.
struct Generation {
  uint32_t number = 0;
  Status status = Status::kPending;
  KeyType key_type = KeyType::kEcP256;
  Hash hash = Hash::kSha256;
  IssuerKind issuer = IssuerKind::kVaultCa;
  std::string key_id;       // hex SHA-1 of the subjectPublicKey bits, as in SKI / CKA_ID
  std::string fingerprint;  // hex SHA-256 of the certificate DER; empty while pending
  std::string serial;       // hex, upper case; empty while pending
  std::string subject;      // RFC 2253 form
  std::string issuer_name;  // RFC 2253 form
  Time not_before = 0;
  Time not_after = 0;
  Time created_at = 0;
  Time exported_at = 0;       // 0: never exported
  bool key_imported = false;  // the key was made outside the vault (import), not in it
};

// Who may use an entry's key through the agent (and see it listed, unless the entry is
// public). The vault owner and root always may; otherwise a matching deny rule refuses,
// then a matching allow rule admits, and no match refuses.
enum class PeerKind { kUid, kGid, kUnit, kExe };
struct AccessRule {
  bool allow = true;
  PeerKind kind = PeerKind::kUid;
  std::string value;  // decimal uid or gid, a systemd unit name, an absolute executable path
  bool operator==(const AccessRule&) const = default;
};
std::string_view to_string(PeerKind v);  // "uid", "gid", "unit", "exe"
Result<PeerKind> parse_peer_kind(std::string_view text);

// When the vault renews an entry's certificate by itself (docs/lifecycle.md): a fixed time
// before its end, or once a fraction of its lifetime has passed; or never.
struct RenewRule {
  enum class Kind { kOff, kBefore, kAt };
  Kind kind = Kind::kOff;
  Time before = 0;   // kBefore: seconds before notAfter
  uint32_t num = 0;  // kAt: num/den of the lifetime, 0 < num < den <= 1000
  uint32_t den = 0;
  bool operator==(const RenewRule&) const = default;
};

// How an entry's renewals have gone since its last success: what `check` reports and what
// spaces the retries.
struct RenewalState {
  uint32_t failures = 0;        // consecutive failed attempts, 0 after a success
  uint64_t failures_total = 0;  // every failed attempt, ever
  Time last_failure = 0;        // when the last one failed
  std::string last_error;       // its reason, one line
  Time not_before = 0;          // the CA asked not to be asked again before this; 0: no
  bool operator==(const RenewalState&) const = default;
};

// Files certvault rewrites whenever an entry's current certificate changes, for programs
// that read a certificate file (docs/lifecycle.md, "File targets"). Absolute, normalised
// paths; empty: not written.
struct PublishTargets {
  std::string cert;               // the certificate, PEM
  std::string chain;              // the certificates above it, issuer first
  std::string fullchain;          // the certificate, then its chain
  std::string key_uri;            // the URI-in-PEM key file the certvault provider reads
  std::optional<uint32_t> owner;  // uid the files are given; nullopt: whoever writes them
  uint32_t mode = 0644;
  bool operator==(const PublishTargets&) const = default;
};

// A certificate taken back before its end (`revoke`): one of the vault CA's, which its CRL
// lists; or one from the entry's outside issuer (an `external` generation), which that
// issuer revoked when asked and which no CRL of the vault CA lists.
struct Revocation {
  uint32_t generation = 0;
  std::string serial;  // upper-case hex, as the generation's
  RevocationReason reason = RevocationReason::kUnspecified;
  Time at = 0;  // the CRL's revocationDate
  bool operator==(const Revocation&) const = default;
};

// The protocol an outside issuer speaks (docs/lifecycle.md, "Outside CAs: CMP", "... ACME").
enum class IssuerProtocol { kCmp, kAcme };

// An outside CA that the vault enrolls from by protocol (CMP or ACME; docs/lifecycle.md,
// "Outside CAs: CMP"). Public data: a shared secret or ACME account key is sealed in the
// vault and never part of this.
struct OutsideIssuer {
  std::string name;  // the rules of a nickname
  IssuerProtocol protocol = IssuerProtocol::kCmp;
  std::string url;            // http://host[:port]/path of the CMP server; ACME: directory URL
  std::string account;        // ACME: the account URL (kid) once registered; "" before
  std::string http01_listen;  // ACME: address:port the http-01 responder listens on; "" none
  std::string dns01_hook;     // ACME: shell command that presents and cleans up dns-01 TXT
                              // records (docs/lifecycle.md, "dns-01 hook"); "" none
  std::string eab_kid;        // ACME: external account binding key id (RFC 8555 7.3.4); "" none
  std::string reference;      // the sender KID sent with the shared secret (PBM)
  bool has_secret = false;    // a shared secret (CMP) or an account key (ACME) is sealed
  std::string client_cert;    // ... or with this entry's current certificate and key
  std::vector<std::vector<uint8_t>> trust;      // DER: issued certificates must chain to one
  std::vector<std::vector<uint8_t>> server_ca;  // DER: anchors for an https server; may be none
  bool operator==(const OutsideIssuer&) const = default;
};

struct Entry {
  std::string id;  // random, stable for the life of the entry (hex)
  std::string nickname;
  std::vector<Generation> generations;  // ascending by number
  std::vector<AccessRule> access;       // in the order they were added
  bool listed_publicly = false;         // certificates and public keys listed to any peer
  std::optional<RenewRule> renew_rule;  // nullopt: the vault policy's rule
  std::string renew_hook;               // a shell command run after each renewal; "" none
  RenewalState renewal;
  std::optional<PublishTargets> publish;
  std::vector<Revocation> revoked;  // in the order they were revoked
  std::string issuer;               // the outside issuer it enrolls from and renews with; "" none
  // Newest active generation, or nullptr.
  const Generation* current() const;
  const Generation* newest() const;
  const Generation* generation(uint32_t number) const;
  const Revocation* revocation(uint32_t generation) const;  // nullptr: not revoked
};

// Whether a generation is revoked at its entry's outside issuer (`entry_issuer`, "" none),
// by protocol, rather than by the vault CA: an external certificate of an entry enrolled
// from one. Such a revocation is never on the vault CA's CRL.
bool revoked_at_issuer(std::string_view entry_issuer, const Generation& g);

// A PIN chosen with certvault init, passwd or unlock-reset has at least this many bytes,
// unless the vault's policy says otherwise.
inline constexpr uint32_t kDefaultMinPinLength = 8;
inline constexpr uint32_t kMaxMinPinLength = 64;

struct Policy {
  std::optional<Time> max_end_date;
  KeyType default_key_type = KeyType::kEcP256;
  Hash default_hash = Hash::kSha256;
  ExportRule export_rule = ExportRule::kOnce;
  RenewRule renew;                   // for entries without a rule of their own
  std::optional<Time> max_lifetime;  // seconds: no certificate ends later than now + this
  uint32_t min_pin_length = kDefaultMinPinLength;  // for a PIN chosen at the CLI: 1-64
};

struct CaInfo {
  std::string id;
  KeyType key_type = KeyType::kEcP256;
  std::string key_id;
  std::string fingerprint;
  std::string serial;
  std::string subject;
  Time not_before = 0;
  Time not_after = 0;
  bool active = true;
};

// The vault CA's certificate revocation lists: the last one `ca crl` made.
struct CrlState {
  uint64_t number = 0;  // its cRLNumber; the next CRL has this + 1
  Time last_issued = 0;
  Time next_update = 0;
  std::string file;  // the absolute path it was written to; "" for stdout
  bool operator==(const CrlState&) const = default;
};

// Argon2id cost for the PIN. Defaults: libsodium's "interactive" limits.
// A PKCS#11 data object (CKO_DATA, v3.0 4.5) kept in the vault: what may be listed of it.
// Its value (CKA_VALUE) is read with Vault::data_object_value. docs/vault-format.md,
// "Data objects".
struct DataObject {
  std::string id;                  // 32 hex, random, stable for the object's life
  std::string application;         // CKA_APPLICATION, UTF-8; may be empty
  std::vector<uint8_t> object_id;  // CKA_OBJECT_ID: DER of an OID, or empty
  std::string label;               // CKA_LABEL, UTF-8; may be empty
  bool is_private = true;          // CKA_PRIVATE: listed and read only once unlocked
  uint32_t value_size = 0;         // bytes of CKA_VALUE
  bool operator==(const DataObject&) const = default;
};
// What a vault holds of data objects at most (checked at create; one clear error).
inline constexpr size_t kDataValueMax = 64 * 1024;  // CKA_VALUE bytes
inline constexpr size_t kDataTextMax = 256;         // CKA_APPLICATION or CKA_LABEL bytes
inline constexpr size_t kDataObjectIdMax = 128;     // CKA_OBJECT_ID bytes (DER)
inline constexpr size_t kDataObjectsMax = 1000;     // data objects in one vault

struct KdfParams {
  uint64_t ops = 2;
  uint64_t mem_bytes = 64ull << 20;
};

}  // namespace certvault
