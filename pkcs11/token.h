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
#include "kind.h"
#include "mechanisms.h"
#include "templates.h"
#include "vault.h"

namespace certvault::pkcs11 {

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
  bool is_storage() const { return kind != Kind::kProfile; }
  // CKA_PRIVATE, CKA_MODIFIABLE and CKA_DESTROYABLE of a session or data object, as made.
  bool private_object = false;
  bool modifiable = true;
  bool destroyable = true;
  // A session object: the session that made it, whose end destroys it (v3.0 5.6.2).
  CK_SESSION_HANDLE session = 0;
  // A session certificate's DER and a session key's SubjectPublicKeyInfo (a vault object's
  // are read from the vault), a session key's CKA_SUBJECT, a session certificate's category.
  std::vector<uint8_t> cert_der, spki, subject;
  CK_ULONG category = 0;
  // A session private key: the keystore's key, in this process only.
  std::shared_ptr<const KeyHandle> signer;
  // Data objects (v3.0 4.5): the vault's id for a token one, CKA_APPLICATION, CKA_OBJECT_ID,
  // and CKA_VALUE, kept in guarded memory for a session one (a token one's stays in the vault).
  std::string data_id;
  std::string application;
  std::vector<uint8_t> object_id;
  size_t value_size = 0;
  std::shared_ptr<SecureBytes> value;
  // Filled on demand.
  std::optional<std::map<CK_ATTRIBUTE_TYPE, std::vector<uint8_t>>> attributes;
};

struct Source;  // what an attribute is read from (attributes.h)

class Token {
 public:
  Token(std::filesystem::path dir, std::string agent_name, std::string agent_socket = {})
      : dir_(std::move(dir)),
        agent_name_(std::move(agent_name)),
        agent_socket_(std::move(agent_socket)) {}

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
  // The application's sessions with this token, counted so that closing the last one
  // logs out (v3.0 5.6.2). Opened is called before the session can be used.
  void session_opened();
  void sessions_closed(size_t n);
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
  // C_CreateObject of a data object kept in the vault.
  CK_RV create_data_object(const ObjectRequest& request, CK_OBJECT_HANDLE& out);

  // Session objects (v3.0 4.4, CKA_TOKEN false): never written to the vault or sent to the
  // agent. `made` (its session set) gets a handle; a private one needs the user's login
  // (v3.0 5.7.1).
  CK_RV add_session_object(std::shared_ptr<Object> made, CK_OBJECT_HANDLE& out);
  CK_RV add_session_key_pair(std::shared_ptr<Object> pub, std::shared_ptr<Object> priv,
                             CK_OBJECT_HANDLE& pub_out, CK_OBJECT_HANDLE& priv_out);
  // A visible session object's handle: it may be changed or destroyed in a read-only session.
  bool is_session_object(CK_OBJECT_HANDLE handle);
  // A session private key that is not a private object signs without login.
  bool is_public_session_key(CK_OBJECT_HANDLE handle);
  // C_CloseSession (v3.0 5.6.2) and C_CloseAllSessions (5.6.3): the session objects that
  // `session` made, or all of them, are destroyed.
  void drop_session_objects(std::optional<CK_SESSION_HANDLE> session);

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
  void logout_locked();
  // After this token's own commit: the table from the handle's state, which the commit left
  // current, where a read that fails is no error (it would tell the application its change
  // was not made when it was). Once per commit.
  void synced_after_commit_locked();
  // C_Logout: the handles of private token objects are given up, never to be valid again.
  void forget_private_handles_locked();
  CK_RV load_attributes_locked(Object& object);
  // The handle of an object this token's commit just made.
  CK_RV handle_locked(const std::string& entry_id, uint32_t generation, Kind kind,
                      CK_OBJECT_HANDLE& out);
  CK_RV writable_object_locked(CK_OBJECT_HANDLE handle, std::shared_ptr<Object>& out);
  std::shared_ptr<Object> session_object_locked(CK_OBJECT_HANDLE handle) const;
  bool visible_locked(const Object& o) const;
  CK_RV set_session_attributes_locked(Object& o, const CK_ATTRIBUTE* templ, CK_ULONG count);
  // CKA_VALUE of a data object: the session object's, or read from the vault.
  CK_RV data_value_locked(const Object& o, SecureBytes& out);
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
                      const std::optional<CaInfo>& ca, const std::string& label,
                      const std::vector<DataObject>& data);
  // Public DER of an object: certificate (empty for a key waiting for one) and SPKI.
  CK_RV public_der_locked(const Object& o, std::vector<uint8_t>& cert, std::vector<uint8_t>& spki);

  std::filesystem::path dir_;
  std::string agent_name_;
  std::string agent_socket_;  // pkcs11.conf's `agent-socket`; empty: the usual places
  bool agent_decided_ = false;
  std::shared_ptr<agent::Client> agent_;  // set when the agent serves this vault
  mutable std::mutex mu_;
  std::optional<Vault> vault_;
  bool logged_in_ = false;
  bool so_logged_in_ = false;
  size_t sessions_ = 0;
  uint64_t synced_for_ = 0;        // counter of the object table's source; 0 = never
  bool synced_logged_in_ = false;  // private data objects are listed only after login
  std::vector<std::shared_ptr<Object>> objects_;
  std::unordered_map<std::string, CK_OBJECT_HANDLE>
      handle_of_;  // "entry/gen/kind", "ca:ID", "profile"
  std::unordered_map<CK_OBJECT_HANDLE, std::shared_ptr<Object>> by_handle_;
  std::unordered_map<std::string, std::vector<std::shared_ptr<Object>>> by_label_, by_id_;
  CK_OBJECT_HANDLE next_handle_ = 1;
  // This process's session objects, by handle (from the same counter as the vault's).
  std::unordered_map<CK_OBJECT_HANDLE, std::shared_ptr<Object>> session_objects_;
  struct UnlockedKey {
    KeyRef pub;
    Signer signer;
  };
  std::unordered_map<std::string, UnlockedKey> keys_;  // key id -> key, while logged in
};

}  // namespace certvault::pkcs11
