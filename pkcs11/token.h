// A token: one vault in one slot. Owns the vault handle, the login state, the object
// table and the keys decrypted at login.
#pragma once

#include <openssl/evp.h>

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "agent_key.h"
#include "ck.h"
#include "mechanisms.h"
#include "templates.h"
#include "vault.h"

namespace certvault::pkcs11 {

// What an object is. An entry's current certificate and key pair, and the vault CA's
// certificate, are storage objects (v3.0 4.4) made from the vault; the profile object
// (v3.0 4.13) says which PKCS#11 profile the token implements and belongs to no entry.
enum class Kind { kCertificate, kPublicKey, kPrivateKey, kCaCertificate, kProfile };

// One PKCS#11 object. Cheap fields come from the manifest; the rest (DER values) are
// read on first use and kept.
struct Object {
  CK_OBJECT_HANDLE handle = 0;
  Kind kind = Kind::kCertificate;
  std::string entry_id;
  std::string unique_id;  // CKA_UNIQUE_ID of a storage object (unique_id() in token.cc)
  std::string nickname;   // CKA_LABEL
  std::string key_id;     // hex; CKA_ID
  KeyType key_type = KeyType::kEcP256;
  uint32_t generation = 0;
  Time not_before = 0, not_after = 0;
  bool key_imported = false;  // made outside the vault: not CKA_LOCAL
  bool exported = false;      // has left the vault in a PKCS#12 file
  bool is_private() const { return kind == Kind::kPrivateKey; }
  bool is_storage() const { return kind != Kind::kProfile; }
  // Filled on demand.
  std::optional<std::map<CK_ATTRIBUTE_TYPE, std::vector<uint8_t>>> attributes;
};

struct Source;  // what an attribute is read from (attributes.h)

class Token {
 public:
  Token(std::filesystem::path dir, std::string agent_name)
      : dir_(std::move(dir)), agent_name_(std::move(agent_name)) {}

  const std::filesystem::path& dir() const { return dir_; }
  // Everything below takes the token's lock itself.
  bool initialized();  // the directory holds a vault, or the agent serves it
  // C_OpenSession: the vault opens (or the agent serves it); CKR_TOKEN_NOT_RECOGNIZED for a
  // vault the module will not open, CKR_DEVICE_ERROR when it cannot be read.
  CK_RV open();
  CK_RV token_info(CK_TOKEN_INFO* info);
  // C_InitToken: an empty vault in the directory, the security officer's PIN as its
  // recovery secret. A vault that exists is never wiped this way.
  CK_RV init_token(const SecureBytes& so_pin, std::string_view label);
  CK_RV login(const SecureBytes& pin);
  // The security officer's PIN is the vault's recovery secret.
  CK_RV login_so(const SecureBytes& recovery);
  void logout();
  bool logged_in() const;
  bool so_logged_in() const;
  // C_InitPIN (as the security officer) and C_SetPIN (the user's PIN).
  CK_RV init_pin(const SecureBytes& pin);
  CK_RV set_pin(const SecureBytes& old_pin, const SecureBytes& new_pin);
  // Objects visible now (private ones only after login), refreshed from the vault; those
  // that may match `templ` when it names a label or an id (an index lookup, not a scan).
  CK_RV candidates(const CK_ATTRIBUTE* templ, CK_ULONG count,
                   std::vector<std::shared_ptr<Object>>& out);
  CK_RV object(CK_OBJECT_HANDLE handle, std::shared_ptr<Object>& out);
  // Fills `attrs` from `object` following PKCS#11 v2.40 section 5.7 (C_GetAttributeValue).
  CK_RV get_attributes(Object& object, CK_ATTRIBUTE* attrs, CK_ULONG count);
  bool matches(Object& object, const CK_ATTRIBUTE* templ, CK_ULONG count);
  // C_GetObjectSize: the bytes of the object's attribute values.
  CK_RV object_size(Object& object, CK_ULONG& out);
  // What signs with a private-key object's key: the keystore's handle on the key decrypted
  // once per login, or on the key the agent holds; and its public key in `out`.
  CK_RV key(const Object& object, KeyRef& out, Signer& signer);
  // The agent serves this token's vault: no PIN needed, write-protected for programs.
  bool uses_agent();
  // The public key of any key or certificate object.
  CK_RV public_key(const Object& object, KeyRef& out);

  // Changes, as the user: C_GenerateKeyPair makes an entry whose key waits for its
  // certificate; C_CreateObject gives that key its certificate; C_DestroyObject on a
  // private key deletes its entry; C_SetAttributeValue renames an entry (CKA_LABEL).
  CK_RV generate_key_pair(const KeyPairRequest& request, CK_OBJECT_HANDLE& pub,
                          CK_OBJECT_HANDLE& priv);
  CK_RV add_certificate(const CertificateRequest& request, CK_OBJECT_HANDLE& out);
  CK_RV destroy(CK_OBJECT_HANDLE handle);
  CK_RV set_attributes(CK_OBJECT_HANDLE handle, const CK_ATTRIBUTE* templ, CK_ULONG count);

 private:
  CK_RV open_locked();
  // CKA_PRIVATE (v3.0 4.4), from the object's table: a private key in-process; through the
  // agent nothing is, as the key is not in the program. What C_GetAttributeValue says,
  // searches match and login hides.
  bool private_locked(const Object& o) const;
  // What the table's cheap rows read: the object's record, no file.
  Source record_source_locked(const Object& o) const;
  bool has_vault_files() const;
  CK_RV sync_locked();
  CK_RV load_attributes_locked(Object& object);
  CK_RV handle_locked(const std::string& entry_id, uint32_t generation, Kind kind,
                      CK_OBJECT_HANDLE& out);
  CK_RV writable_object_locked(CK_OBJECT_HANDLE handle, std::shared_ptr<Object>& out);
  // The agent's view of the vault (label, id, locked, PIN failures, commit counter), asked
  // afresh; on first use it also decides whether an agent serves this vault at all.
  struct AgentView {
    std::string label, id;
    bool locked = false;
    int pin_failures = 0, max_pin_failures = 10;
    uint64_t counter = 0;
  };
  CK_RV agent_view_locked(AgentView& out);
  bool agent_locked();  // decides once, then answers
  CK_RV sync_agent_locked();
  // The object table for these entries (and the vault CA) of the vault `vault_id`, and the
  // profile object; handles kept for what remains.
  void rebuild_locked(const std::string& vault_id, const std::vector<Entry>& entries,
                      const std::optional<CaInfo>& ca, const std::string& label);
  // Public DER of an object: certificate (empty for a key waiting for one) and SPKI.
  CK_RV public_der_locked(const Object& o, std::vector<uint8_t>& cert, std::vector<uint8_t>& spki);

  std::filesystem::path dir_;
  std::string agent_name_;
  bool agent_decided_ = false;
  std::shared_ptr<agent::Client> agent_;  // set when the agent serves this vault
  mutable std::mutex mu_;
  std::optional<Vault> vault_;
  bool logged_in_ = false;
  bool so_logged_in_ = false;
  uint64_t synced_for_ = 0;  // counter of the object table's source; 0 = never
  std::vector<std::shared_ptr<Object>> objects_;
  std::unordered_map<std::string, CK_OBJECT_HANDLE>
      handle_of_;  // "entry/gen/kind", "ca:ID", "profile"
  std::unordered_map<CK_OBJECT_HANDLE, std::shared_ptr<Object>> by_handle_;
  std::unordered_map<std::string, std::vector<std::shared_ptr<Object>>> by_label_, by_id_;
  CK_OBJECT_HANDLE next_handle_ = 1;
  struct UnlockedKey {
    KeyRef pub;
    Signer signer;
  };
  std::unordered_map<std::string, UnlockedKey> keys_;  // key id -> key, while logged in
};

}  // namespace certvault::pkcs11
