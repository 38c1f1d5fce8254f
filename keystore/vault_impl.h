// Shared by the files that implement Vault: the loaded state, its index, and the
// transaction that commits a change. Not part of the public API.
#pragma once

#include <functional>
#include <future>
#include <unordered_map>

#include "certificate.h"
#include "key_object.h"
#include "manifest.h"
#include "ossl.h"
#include "raw_io.h"
#include "suggest.h"
#include "vault.h"

namespace certvault {

namespace fs = std::filesystem;

struct Vault::Impl {
  fs::path dir;
  uid_t owner = 0;  // of the directory, at open: the user decide_access always admits
  mutable manifest::Manifest m;
  mutable raw::Stamp stamp;
  // nickname -> entry; key id and certificate fingerprint -> entry (any generation). Keys
  // point into `m` and are rebuilt whenever `m` changes.
  mutable std::unordered_map<std::string_view, size_t> by_nickname, by_key_id, by_fingerprint;
  mutable bool ids_indexed = false;  // by_key_id and by_fingerprint, built on first use
  mutable manifest::Source source;   // bytes of `m`, for the MAC check at unlock
  mutable SecureBytes vault_key, seal_key, mac_key;  // empty while locked
  bool by_recovery = false;  // unlocked with the recovery secret, not the PIN
  // Set when data read while unlocked failed authentication; every refresh reports it
  // until lock(), so a damaged vault never passes for a locked or unchanged one.
  mutable std::optional<Error> damage;

  fs::path manifest_path() const { return dir / "manifest"; }
  fs::path objects_dir() const { return dir / "objects"; }
  fs::path pin_state_path() const { return dir / "pin-state"; }
  bool unlocked() const { return !vault_key.empty(); }
  std::string where() const { return "vault " + dir.string(); }
  // Every entry's nickname, for "did you mean" hints.
  std::vector<std::string> nicknames() const;

  Result<void> load() const;
  Result<void> load_from(std::string bytes, raw::Stamp stamp) const;
  Result<void> refresh() const;
  void wipe_keys() const;
  Result<void> adopt_key(SecureBytes key);
  // The manifest's hash (format 6) being computed on a thread of its own.
  struct Hashing {
    std::shared_ptr<const std::string> of;  // the bytes hashed
    std::future<manifest::Bytes> digest;    // invalid when nothing was started
  };
  // Starts it when `threads` allows a thread and the hash is not known yet.
  Hashing hash_beside(Vault::Threads threads) const;
  // Keeps the hash for the MAC check, if the manifest in hand is still the one hashed.
  void keep_digest(Hashing& hashing) const;
  void reindex() const;
  void index_ids() const;
  void set_vault_key(SecureBytes key);

  // The bytes of objects/<hash>, checked against their name: since the manifest names each
  // file by its hash and carries the MAC, this authenticates them once unlocked.
  Result<raw::Bytes> object_bytes(const std::string& hash) const;
  std::unexpected<Error> object_damaged(const std::string& hash) const;
  // Reads an object and checks it is the one the manifest names: its hash, vault, owner
  // and generation.
  Result<key_object::KeyObject> object(const std::string& hash, std::string_view owner,
                                       uint32_t generation) const;
  Result<key_object::KeyObject> object(const manifest::EntryRecord& e,
                                       const manifest::GenRecord& g) const;
  Result<key_object::KeyObject> object(const manifest::CaRecord& ca) const;
  Result<ossl::Pkey> open_key(const key_object::KeyObject& o) const;
  Result<void> require_unlocked(std::string_view action) const;

  const manifest::EntryRecord* entry(std::string_view nickname) const;
  // The generation `number`, or the current (newest active) one.
  Result<std::pair<const manifest::EntryRecord*, const manifest::GenRecord*>> resolve(
      std::string_view nickname, std::optional<uint32_t> number) const;
  const manifest::CaRecord* active_ca() const;

  // One commit: under the writer lock, on the newest manifest; objects written by a failed
  // change are removed, so bad input leaves the vault as it was.
  class Txn {
   public:
    explicit Txn(const Impl& impl) : impl_(impl) {}
    ~Txn();
    Result<std::string> put(const key_object::KeyObject& o);
    // Any object file (a key object, a data object file), named by its hash.
    Result<std::string> put_bytes(const raw::Bytes& bytes);
    void drop(const std::string& hash) { dropped_.push_back(hash); }
    Result<std::string> seal(key_object::KeyObject& o, EVP_PKEY* key);
    const Impl& impl() const { return impl_; }

   private:
    friend struct Impl;
    const Impl& impl_;
    std::vector<std::string> written_, dropped_;
    bool committed_ = false;
  };
  Result<void> transact(const std::function<Result<void>(manifest::Manifest&, Txn&)>& change);
  void collect_garbage() const;
};

// --- issuing helpers (issue.cc) ---
struct Signer {
  ossl::Cert cert;
  ossl::Pkey key;
};
// The CA's certificate and its key, opened.
Result<Signer> ca_signer(const Vault::Impl& v, const manifest::CaRecord& ca);
// The hash follows the key that signs: the CA's, or the subject's own when self-signed
// or for a CSR.
Result<Hash> pick_hash(KeyType signer, std::optional<Hash> asked, const Policy& policy);
// Seals `key` with its certificate (nullptr while pending) into a new object and returns
// the record of generation `number` of entry `entry_id`.
Result<manifest::GenRecord> new_generation(Vault::Impl::Txn& txn, const std::string& entry_id,
                                           uint32_t number, EVP_PKEY* key, X509* cert,
                                           const std::vector<ossl::Bytes>& chain, Hash hash,
                                           IssuerKind issuer);
// Copies what a certificate says (fingerprint, serial, names, dates) into `g`.
void take_facts(Generation& g, const certificate::Facts& facts);
// The end-date rules of DESIGN.md: future, within the CA, within the policy.
Result<void> check_end_date(Time not_after, const manifest::CaRecord* ca, const Policy& policy);
// A certificate from outside (attach, import) must allow client authentication and end
// within the policy.
Result<void> check_client_cert(X509* cert, const Policy& policy);
// Marks every active generation of `e` superseded.
void supersede(manifest::EntryRecord& e);
manifest::EntryRecord* find_entry(manifest::Manifest& m, std::string_view nickname);

// --- revocation (revocation.cc) ---
// The revocation of generation `number` of `e`; nullptr when it was not revoked.
const Revocation* revocation_of(const manifest::EntryRecord& e, uint32_t number);

// A fresh random hex identifier of `bytes` bytes.
std::string new_id(size_t bytes = 16);
Entry to_entry(const manifest::EntryRecord& r);

}  // namespace certvault
