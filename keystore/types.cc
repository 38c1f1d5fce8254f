#include "types.h"

#include <array>
#include <ctime>
#include <utility>

namespace certvault {
namespace {

template <typename E, size_t N>
std::string_view name_of(const std::array<std::pair<E, std::string_view>, N>& table, E v) {
  for (const auto& [value, name] : table)
    if (value == v) return name;
  return "unknown";
}

template <typename E, size_t N>
Result<E> value_of(const std::array<std::pair<E, std::string_view>, N>& table,
                   std::string_view text, std::string_view what) {
  std::string choices;
  for (const auto& [value, name] : table) {
    if (name == text) return value;
    choices += choices.empty() ? "" : ", ";
    choices += name;
  }
  return fail(Code::kInvalidInput, "unknown " + std::string(what) + " '" + std::string(text) +
                                       "'; use one of: " + choices);
}

constexpr std::array<std::pair<KeyType, std::string_view>, 6> kKeyTypes{{
    {KeyType::kEcP256, "ec-p256"},
    {KeyType::kEcP384, "ec-p384"},
    {KeyType::kRsa2048, "rsa-2048"},
    {KeyType::kRsa3072, "rsa-3072"},
    {KeyType::kRsa4096, "rsa-4096"},
    {KeyType::kEd25519, "ed25519"},
}};
constexpr std::array<std::pair<Hash, std::string_view>, 3> kHashes{{
    {Hash::kSha256, "sha256"},
    {Hash::kSha384, "sha384"},
    {Hash::kSha512, "sha512"},
}};
constexpr std::array<std::pair<Status, std::string_view>, 4> kStatuses{{
    {Status::kActive, "active"},
    {Status::kSuperseded, "superseded"},
    {Status::kDisabled, "disabled"},
    {Status::kPending, "pending"},
}};
constexpr std::array<std::pair<IssuerKind, std::string_view>, 3> kIssuers{{
    {IssuerKind::kVaultCa, "vault-ca"},
    {IssuerKind::kSelfSigned, "self-signed"},
    {IssuerKind::kExternal, "external"},
}};
constexpr std::array<std::pair<ExportRule, std::string_view>, 2> kExportRules{{
    {ExportRule::kOnce, "once"},
    {ExportRule::kNever, "never"},
}};
constexpr std::array<std::pair<PeerKind, std::string_view>, 4> kPeerKinds{{
    {PeerKind::kUid, "uid"},
    {PeerKind::kGid, "gid"},
    {PeerKind::kUnit, "unit"},
    {PeerKind::kExe, "exe"},
}};
constexpr std::array<std::pair<P12Encryption, std::string_view>, 2> kEncryptions{{
    {P12Encryption::kAes256, "aes-256"},
    {P12Encryption::kTripleDes, "3des"},
}};

constexpr std::array<std::pair<RevocationReason, std::string_view>, 6> kReasons{{
    {RevocationReason::kUnspecified, "unspecified"},
    {RevocationReason::kKeyCompromise, "keyCompromise"},
    {RevocationReason::kAffiliationChanged, "affiliationChanged"},
    {RevocationReason::kSuperseded, "superseded"},
    {RevocationReason::kCessationOfOperation, "cessationOfOperation"},
    {RevocationReason::kPrivilegeWithdrawn, "privilegeWithdrawn"},
}};

}  // namespace

std::string_view to_string(KeyType v) {
  return name_of(kKeyTypes, v);
}
std::string_view to_string(Hash v) {
  return name_of(kHashes, v);
}
std::string_view to_string(Status v) {
  return name_of(kStatuses, v);
}
std::string_view to_string(IssuerKind v) {
  return name_of(kIssuers, v);
}
std::string_view to_string(ExportRule v) {
  return name_of(kExportRules, v);
}
std::string_view to_string(RevocationReason v) {
  return name_of(kReasons, v);
}
std::string_view to_string(PeerKind v) {
  return name_of(kPeerKinds, v);
}
Result<KeyType> parse_key_type(std::string_view t) {
  return value_of(kKeyTypes, t, "key type");
}
Result<Hash> parse_hash(std::string_view t) {
  return value_of(kHashes, t, "hash");
}
Result<ExportRule> parse_export_rule(std::string_view t) {
  return value_of(kExportRules, t, "export rule");
}
Result<P12Encryption> parse_p12_encryption(std::string_view t) {
  return value_of(kEncryptions, t, "PKCS#12 encryption");
}
Result<Status> parse_status(std::string_view t) {
  return value_of(kStatuses, t, "status");
}
Result<IssuerKind> parse_issuer_kind(std::string_view t) {
  return value_of(kIssuers, t, "issuer kind");
}

Result<RevocationReason> parse_revocation_reason(std::string_view t) {
  return value_of(kReasons, t, "revocation reason");
}
std::string revocation_reason_names() {
  std::string out;
  for (const auto& [value, name] : kReasons) {
    out += out.empty() ? "" : ", ";
    out += name;
  }
  return out;
}

Result<PeerKind> parse_peer_kind(std::string_view t) {
  return value_of(kPeerKinds, t, "peer kind");
}

Time now() {
  return static_cast<Time>(std::time(nullptr));
}

const Generation* Entry::current() const {
  for (auto it = generations.rbegin(); it != generations.rend(); ++it)
    if (it->status == Status::kActive) return &*it;
  return nullptr;
}

const Generation* Entry::newest() const {
  return generations.empty() ? nullptr : &generations.back();
}

const Generation* Entry::generation(uint32_t number) const {
  for (const auto& g : generations)
    if (g.number == number) return &g;
  return nullptr;
}

bool revoked_at_issuer(std::string_view entry_issuer, const Generation& g) {
  return g.issuer == IssuerKind::kExternal && !entry_issuer.empty();
}

const Revocation* Entry::revocation(uint32_t number) const {
  for (const auto& r : revoked)
    if (r.generation == number) return &r;
  return nullptr;
}

}  // namespace certvault
