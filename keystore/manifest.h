// The format layer for the manifest: the one file whose atomic replacement commits a
// change. It names every object file by content hash and is authenticated with a MAC
// under a key derived from the vault key. See docs/vault-format.md.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "error.h"
#include "secure.h"
#include "types.h"

namespace certvault::manifest {

using Bytes = std::vector<uint8_t>;
// Written: 6. Read: 1 to 6 (format 1 is format 2 without attribute lines; format 3 adds
// the renewal and lifetime policy and keeps unknown header members; format 4 the ACME
// dns-01 hook and a CA's Retry-After; format 5 data objects; format 6 takes the MAC over
// a hash of the manifest, which needs no key). docs/vault-format.md, "Versions".
constexpr int kFormat = 6;

struct GenRecord {
  Generation info;
  std::string object;  // content hash of its key object file
};

// An entry's attribute line (format 2); the defaults mean "no line".
struct Attributes {
  std::vector<AccessRule> access;
  bool listed_publicly = false;
  std::optional<RenewRule> renew_rule;
  std::string renew_hook;
  RenewalState renewal;
  std::optional<PublishTargets> publish;
  std::vector<Revocation> revoked;
  std::string issuer;  // the name of an outside issuer (header `issuers`)
  // Members a newer certvault wrote that this one does not know: name -> the value as
  // compact JSON. Written back on every rewrite, so that they survive this version.
  std::map<std::string, std::string> unknown;
  bool empty() const {
    return access.empty() && !listed_publicly && !renew_rule && renew_hook.empty() &&
           renewal == RenewalState{} && !publish && revoked.empty() && issuer.empty() &&
           unknown.empty();
  }
};

struct EntryRecord {
  std::string id;
  std::string nickname;
  std::vector<GenRecord> gens;
  // Shared like the entry itself and null for the many entries without an attribute line,
  // so that those stay as small and as cheap to copy as in format 1.
  std::shared_ptr<const Attributes> attrs;
  const Attributes& attributes() const;
  // This entry's lines as last read or written (a view into `text_owner`); empty when they
  // must be encoded afresh.
  mutable std::string_view text;
  mutable std::shared_ptr<const std::string> text_owner;
};
// Entries are shared between manifest versions and never changed in place, so that a
// commit copies pointers, not 10,000 records, and re-encodes only what changed.
using EntryPtr = std::shared_ptr<const EntryRecord>;

struct CaRecord {
  CaInfo info;
  std::string object;
};

// An outside issuer (header `issuers`) and its shared secret, sealed with the seal key
// (issuer_secret_ad); empty when it has none.
struct IssuerRecord {
  OutsideIssuer info;
  Bytes sealed_secret;
  Bytes sealed_eab_key;  // ACME: the external account binding MAC key (issuer_eab_key_ad)
};

struct Header {
  std::string vault_id;
  std::string label;
  uint64_t counter = 0;  // +1 per commit
  Time created_at = 0;
  KdfParams kdf;
  Bytes pin_salt;
  Bytes pin_wrap;  // vault key sealed under Argon2id(PIN); empty until a PIN is set
  Bytes recovery_salt;
  Bytes recovery_wrap;  // vault key sealed under the recovery key
  // The recovery secret was chosen by a person (the PKCS#11 security officer's PIN), so
  // its key comes from Argon2id with `kdf`, not from keyed BLAKE2b.
  bool recovery_chosen = false;
  Policy policy;
  std::optional<CrlState> crl;  // absent until the first `ca crl`
  std::vector<IssuerRecord> issuers;
  // Members of the header and of its policy that a newer certvault wrote and this one
  // does not know (format 3): name -> compact JSON, written back as they were.
  std::map<std::string, std::string> unknown;
  std::map<std::string, std::string> policy_unknown;
};

// A data object's line (format 5): its public attributes and the file holding its value.
struct DataRecord {
  DataObject info;
  std::string object;  // content hash of its data object file
};

struct Manifest {
  Header header;
  std::vector<CaRecord> cas;
  std::vector<EntryPtr> entries;
  std::vector<DataRecord> data;  // in the order they were made; empty in most vaults
};

// Copy-on-write access: the entry at `index`, now owned by `m` alone, to change.
EntryRecord& edit(Manifest& m, size_t index);
// Copy-on-write access to an entry's attributes (its own copy to change).
Attributes& edit_attributes(EntryRecord& e);
EntryRecord& add(Manifest& m, std::string id, std::string nickname,
                 std::vector<GenRecord> gens = {});

// The manifest bytes, ending with the MAC line computed with `mac_key`.
std::string serialize(const Manifest& m, const SecureBytes& mac_key);

// The bytes a manifest was parsed from and the MAC they carry.
struct Source {
  std::shared_ptr<const std::string> bytes;
  size_t authenticated_size = 0;  // bytes covered by the MAC
  Bytes mac;
  unsigned format = 0;
  // Format 6: the hash of the covered bytes that the MAC is taken over, once computed
  // (empty until then). It needs no key, so unlock computes it while Argon2id runs.
  Bytes digest;
};
struct Parsed {
  Manifest manifest;
  Source source;
};
// Structural parse only; `verify` checks the MAC once the vault key is known. Entries keep
// views into `bytes`.
Result<Parsed> parse(std::shared_ptr<const std::string> bytes, const std::filesystem::path& path);
// The hash a format-6 MAC is taken over (BLAKE2b-256 of the covered bytes); empty for an
// older format, whose MAC is taken over the bytes themselves.
Bytes digest(const Source& source);
// Uses source.digest when it is there, else computes it.
Result<void> verify(const Source& source, const SecureBytes& mac_key,
                    const std::filesystem::path& path);
// The Source of bytes that `serialize` just made.
Source source_of(std::shared_ptr<const std::string> serialized);
// The commit counter alone, read from the header line without parsing the entries.
std::optional<uint64_t> peek_counter(std::string_view bytes);

// Associated data for an outside issuer's sealed shared secret.
Bytes issuer_secret_ad(std::string_view vault_id, std::string_view issuer);
// Associated data for an ACME issuer's sealed account key.
Bytes issuer_account_key_ad(std::string_view vault_id, std::string_view issuer);
// Associated data for an ACME issuer's sealed external account binding MAC key.
Bytes issuer_eab_key_ad(std::string_view vault_id, std::string_view issuer);
// Associated data for the vault key wrapped under the PIN or the recovery key.
Bytes wrap_ad(std::string_view vault_id, std::string_view which);

}  // namespace certvault::manifest
