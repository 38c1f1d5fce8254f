#include "token.h"

#include <openssl/core_names.h>
#include <openssl/objects.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <unordered_set>

#include "attributes.h"
#include "errors.h"
#include "keys.h"
#include "mechanisms.h"
#include "ossl.h"
#include "pin_source.h"
#include "seal.h"

namespace certvault::pkcs11 {
namespace {

using Attrs = std::map<CK_ATTRIBUTE_TYPE, Bytes>;

// CKA_UNIQUE_ID (v3.0 4.4.1: set by the token, unique among its objects, never changed): the
// first 16 bytes of SHA-256 over the vault id, the entry's id (or the CA's), the generation
// and the object's kind, in hex. Derived, not stored: every process, in-process or through
// the agent, gives an object the same id, and so does the next start. A rotation makes a new
// generation and so new objects with new ids under the same CKA_LABEL; a rename keeps them.
// The kind enters as a fixed word, so that reordering Kind changes no id.
std::string unique_id(std::string_view vault_id, std::string_view source, uint32_t generation,
                      Kind kind) {
  const char* word = kind == Kind::kCertificate     ? "certificate"
                     : kind == Kind::kPublicKey     ? "public-key"
                     : kind == Kind::kPrivateKey    ? "private-key"
                     : kind == Kind::kCaCertificate ? "ca-certificate"
                     : kind == Kind::kData          ? "data"
                                                    : "profile";
  // Newlines separate the parts: none of them holds one.
  const std::string input = "certvault CKA_UNIQUE_ID 1\n" + std::string(vault_id) + "\n" +
                            std::string(source) + "\n" + std::to_string(generation) + "\n" + word;
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(input.data()), input.size(), md);
  return seal::to_hex({md, 16});
}

std::string space_padded(std::string_view s, size_t n) {
  std::string out(s.substr(0, n));
  out.resize(n, ' ');
  return out;
}

}  // namespace

CK_RV Token::open_locked() {
  if (vault_) return CKR_OK;
  auto v = Vault::open(dir_);
  if (!v) return to_rv(v.error(), Stage::kOpen);
  vault_.emplace(std::move(*v));
  return CKR_OK;
}

bool Token::agent_locked() {
  if (agent_decided_) return agent_ != nullptr;
  agent_decided_ = true;
  if (vault_) return false;  // opened in-process already (C_InitToken)
  const char* vault = agent_name_.empty() ? "(the agent's default vault)" : agent_name_.c_str();
  auto socket = agent::find_socket(agent_socket_);
  if (!socket) {
    CV_DEBUG("no certvault agent answers; vault %s is used in-process", dir_.c_str());
    return false;
  }
  auto client = std::make_shared<agent::Client>(*socket);
  // Not served there, or not reachable, or run by a user the program does not trust:
  // in-process, as without an agent.
  auto served = agent::vault_info(client, agent_name_);
  if (!served) {
    CV_DEBUG("the certvault agent at %s is not used: %s; vault %s is used in-process",
             socket->c_str(), served.error().message.c_str(), dir_.c_str());
    return false;
  }
  if (!*served) {
    CV_DEBUG("the certvault agent at %s does not serve vault %s; it is used in-process",
             socket->c_str(), vault);
    return false;
  }
  CV_DEBUG("vault %s is used through the certvault agent at %s", vault, socket->c_str());
  agent_ = std::move(client);
  return true;
}

bool Token::uses_agent() {
  std::lock_guard lock(mu_);
  return agent_locked();
}

bool Token::initialized() {
  std::lock_guard lock(mu_);
  return agent_locked() || has_vault_files();
}

CK_RV Token::open() {
  std::lock_guard lock(mu_);
  if (agent_locked()) return CKR_OK;
  return open_locked();
}

bool Token::has_vault_files() const {
  std::error_code ec;
  return std::filesystem::exists(dir_ / "manifest", ec);
}

CK_RV Token::token_info(CK_TOKEN_INFO* info) {
  std::lock_guard lock(mu_);
  std::memset(info, 0, sizeof *info);
  std::memcpy(info->manufacturerID, space_padded("certvault", 32).data(), 32);
  std::memcpy(info->model, space_padded("vault", 16).data(), 16);
  info->flags = CKF_RNG | CKF_LOGIN_REQUIRED;
  info->ulMaxSessionCount = CK_EFFECTIVELY_INFINITE;
  info->ulSessionCount = CK_UNAVAILABLE_INFORMATION;
  info->ulMaxRwSessionCount = CK_EFFECTIVELY_INFINITE;
  info->ulRwSessionCount = CK_UNAVAILABLE_INFORMATION;
  info->ulMaxPinLen = 256;
  info->ulMinPinLen = 1;
  info->ulTotalPublicMemory = CK_UNAVAILABLE_INFORMATION;
  info->ulFreePublicMemory = CK_UNAVAILABLE_INFORMATION;
  info->ulTotalPrivateMemory = CK_UNAVAILABLE_INFORMATION;
  info->ulFreePrivateMemory = CK_UNAVAILABLE_INFORMATION;
  info->hardwareVersion = {0, 1};
  info->firmwareVersion = {0, 1};
  std::memset(info->utcTime, ' ', sizeof info->utcTime);
  if (agent_locked()) {
    auto v = agent::vault_info(agent_, agent_name_);
    if (!v) return to_rv(v.error());
    if (!*v) return CKR_DEVICE_REMOVED;
    std::memcpy(info->label, space_padded((*v)->label, sizeof info->label).data(),
                sizeof info->label);
    std::memcpy(info->serialNumber, space_padded((*v)->id, 16).data(), 16);
    // The operator unlocked the vault in the agent, which decides who signs: programs need
    // no login (private keys are not private objects here, as the key is not here), a
    // C_Login they make anyway needs no PIN (a protected authentication path: v3.0 5.6.8, and
    // CKF_PROTECTED_AUTHENTICATION_PATH in 3.2),
    // and they change nothing.
    info->flags &= ~static_cast<CK_FLAGS>(CKF_LOGIN_REQUIRED);
    info->flags |= CKF_TOKEN_INITIALIZED | CKF_USER_PIN_INITIALIZED | CKF_WRITE_PROTECTED |
                   CKF_PROTECTED_AUTHENTICATION_PATH;
    const int failures = (*v)->pin_failures;
    if (failures >= (*v)->max_pin_failures) {
      info->flags |= CKF_USER_PIN_LOCKED;
    } else if (failures > 0) {
      info->flags |= CKF_USER_PIN_COUNT_LOW;
      if ((*v)->max_pin_failures - failures == 1) info->flags |= CKF_USER_PIN_FINAL_TRY;
    }
    return CKR_OK;
  }
  // A directory without a vault is a token waiting for C_InitToken.
  if (!vault_ && !has_vault_files()) {
    std::memset(info->label, ' ', sizeof info->label);
    std::memset(info->serialNumber, ' ', sizeof info->serialNumber);
    return CKR_OK;
  }
  if (CK_RV rv = open_locked(); rv != CKR_OK) return rv;
  // The label and flags come from the manifest: a damaged one is reported, not shown stale.
  if (auto ok = vault_->refresh(); !ok) return to_rv(ok.error(), Stage::kRead);
  std::string label = space_padded(vault_->label(), sizeof info->label);
  std::memcpy(info->label, label.data(), sizeof info->label);
  std::memcpy(info->serialNumber, space_padded(vault_->id(), 16).data(), 16);
  info->flags |= CKF_TOKEN_INITIALIZED;
  if (vault_->pin_initialized()) info->flags |= CKF_USER_PIN_INITIALIZED;
  const int failures = vault_->pin_failures();
  if (failures >= Vault::kMaxPinFailures) {
    info->flags |= CKF_USER_PIN_LOCKED;
  } else if (failures > 0) {
    info->flags |= CKF_USER_PIN_COUNT_LOW;
    if (Vault::kMaxPinFailures - failures == 1) info->flags |= CKF_USER_PIN_FINAL_TRY;
  }
  return CKR_OK;
}

CK_RV Token::init_token(const SecureBytes& so_pin, std::string_view label) {
  std::lock_guard lock(mu_);
  // v3.0 5.5.7 lets C_InitToken wipe an initialised token; a vault holds identities that
  // services depend on, so certvault leaves that to `certvault` and a deliberate rm.
  if (agent_locked() || vault_ || has_vault_files()) return CKR_TOKEN_WRITE_PROTECTED;
  if (so_pin.empty()) return CKR_PIN_LEN_RANGE;
  if (!check_new_pin(so_pin, "the security officer's PIN")) return CKR_PIN_INVALID;
  InitOptions options;
  if (!label.empty()) options.label = std::string(label);
  auto made = Vault::init_for_security_officer(dir_, so_pin, options);
  if (!made)  // a vault made there meanwhile is left alone, as above
    return made.error().code == Code::kExists ? CKR_TOKEN_WRITE_PROTECTED : to_rv(made.error());
  made->lock();  // the security officer logs in as usual
  vault_.emplace(std::move(*made));
  synced_for_ = 0;
  return CKR_OK;
}

CK_RV Token::login(const SecureBytes& pin) {
  std::lock_guard lock(mu_);
  if (agent_locked()) {
    if (logged_in_) return CKR_USER_ALREADY_LOGGED_IN;
    // A PIN given anyway is checked by the agent and counts as a try like any other.
    if (!pin.empty())
      if (auto ok = agent::check_pin(agent_, agent_name_, pin); !ok) return to_rv(ok.error());
    logged_in_ = true;
    return CKR_OK;
  }
  if (CK_RV rv = open_locked(); rv != CKR_OK) return rv;
  if (logged_in_) return CKR_USER_ALREADY_LOGGED_IN;
  if (so_logged_in_) return CKR_USER_ANOTHER_ALREADY_LOGGED_IN;
  if (!vault_->pin_initialized()) return CKR_USER_PIN_NOT_INITIALIZED;
  // No PIN is no attempt: refused as SoftHSM2 refuses a PIN out of range, nothing counted,
  // so CKF_USER_PIN_COUNT_LOW and friends stay as they were.
  if (pin.empty()) return CKR_PIN_INCORRECT;
  if (auto ok = vault_->unlock(pin); !ok) return to_rv(ok.error());
  logged_in_ = true;
  return CKR_OK;
}

CK_RV Token::login_so(const SecureBytes& recovery) {
  std::lock_guard lock(mu_);
  if (agent_locked()) return CKR_TOKEN_WRITE_PROTECTED;  // the owner uses the CLI
  if (CK_RV rv = open_locked(); rv != CKR_OK) return rv;
  if (so_logged_in_) return CKR_USER_ALREADY_LOGGED_IN;
  if (logged_in_) return CKR_USER_ANOTHER_ALREADY_LOGGED_IN;
  if (recovery.empty()) return CKR_PIN_INCORRECT;
  if (auto ok = vault_->unlock_with_recovery(recovery); !ok)
    return ok.error().code == Code::kInvalidInput ? CKR_PIN_INCORRECT : to_rv(ok.error());
  so_logged_in_ = true;
  return CKR_OK;
}

bool Token::so_logged_in() const {
  std::lock_guard lock(mu_);
  return so_logged_in_;
}

CK_RV Token::init_pin(const SecureBytes& pin) {
  std::lock_guard lock(mu_);
  if (!so_logged_in_) return CKR_USER_NOT_LOGGED_IN;
  if (pin.empty()) return CKR_PIN_LEN_RANGE;
  if (!check_new_pin(pin, "the new PIN")) return CKR_PIN_INVALID;  // a trailing line break
  auto ok = vault_->set_pin_after_recovery(pin);
  return ok ? CKR_OK : to_rv(ok.error());
}

CK_RV Token::set_pin(const SecureBytes& old_pin, const SecureBytes& new_pin) {
  std::lock_guard lock(mu_);
  if (agent_locked()) return CKR_TOKEN_WRITE_PROTECTED;
  if (CK_RV rv = open_locked(); rv != CKR_OK) return rv;
  // The security officer's "PIN" is the recovery secret, which never changes.
  if (so_logged_in_) return CKR_FUNCTION_NOT_SUPPORTED;
  if (new_pin.empty()) return CKR_PIN_LEN_RANGE;
  // Checked before the old PIN is tried, so a refused new PIN changes nothing.
  if (!check_new_pin(new_pin, "the new PIN")) return CKR_PIN_INVALID;
  if (!vault_->pin_initialized()) return CKR_USER_PIN_NOT_INITIALIZED;
  if (old_pin.empty()) return CKR_PIN_INCORRECT;  // no attempt, nothing counted
  // The old PIN is checked as a login is, wrong attempts counted.
  if (auto ok = vault_->unlock(old_pin); !ok) return to_rv(ok.error());
  auto changed = vault_->change_pin(new_pin);
  if (!logged_in_) vault_->lock();
  return changed ? CKR_OK : to_rv(changed.error());
}

void Token::logout() {
  std::lock_guard lock(mu_);
  logout_locked();
}

void Token::session_opened() {
  std::lock_guard lock(mu_);
  ++sessions_;
}

// v3.0 5.6.2, C_CloseSession: "If this function is successful and it closes the last
// session between the application and the token, the login state of the token for the
// application returns to public sessions." Logged out as by C_Logout. Counted here, under
// the token's own lock, so that the module's lock is never held while waiting for it.
void Token::sessions_closed(size_t n) {
  std::lock_guard lock(mu_);
  sessions_ -= std::min(sessions_, n);
  if (sessions_ == 0 && (logged_in_ || so_logged_in_)) logout_locked();
}

void Token::logout_locked() {
  logged_in_ = false;
  so_logged_in_ = false;
  // v3.0 5.6.10: the private session objects of every session of the application are
  // destroyed.
  std::erase_if(session_objects_, [](const auto& kv) { return kv.second->private_object; });
  forget_private_handles_locked();
  keys_.clear();  // each key is freed (and its private parts cleared) by its last user
  if (vault_) vault_->lock();
}

// v3.0 5.6.10, C_Logout: "When C_Logout successfully executes, any of the application's
// handles to private objects become invalid (even if a user is later logged back into the
// token, those handles remain invalid)." The private token objects leave the table and the
// next sync lists them again under new handles (next_handle_ only grows); public objects
// keep theirs. Through the agent no token object is private, so nothing changes there.
void Token::forget_private_handles_locked() {
  std::unordered_set<CK_OBJECT_HANDLE> gone;
  for (const auto& o : objects_)
    if (private_locked(*o)) gone.insert(o->handle);
  if (gone.empty()) return;
  std::erase_if(handle_of_, [&](const auto& kv) { return gone.contains(kv.second); });
  std::erase_if(objects_, [&](const auto& o) { return gone.contains(o->handle); });
  for (CK_OBJECT_HANDLE h : gone) by_handle_.erase(h);
  for (auto* index : {&by_label_, &by_id_})
    for (auto& [key, listed] : *index)
      std::erase_if(listed, [&](const auto& o) { return gone.contains(o->handle); });
  synced_for_ = 0;  // rebuilt at the next use, with them
}

bool Token::logged_in() const {
  std::lock_guard lock(mu_);
  return logged_in_;
}

// Rebuilds the object table when the vault changed; handles stay stable for objects that
// remain (a private one's until a logout).
CK_RV Token::sync_agent_locked() {
  auto v = agent::vault_info(agent_, agent_name_);
  if (!v) return to_rv(v.error());
  if (!*v) return CKR_DEVICE_REMOVED;
  if (synced_for_ != 0 && (*v)->counter == synced_for_) return CKR_OK;
  auto listed = agent::entries(agent_, agent_name_);
  if (!listed) return to_rv(listed.error());
  if (!*listed) return CKR_DEVICE_REMOVED;
  // The agent does not serve data objects (docs/agent-protocol.md): none are listed.
  rebuild_locked((*v)->id, **listed, std::nullopt, (*v)->label, {});
  synced_for_ = std::max<uint64_t>((*v)->counter, 1);
  return CKR_OK;
}

CK_RV Token::sync_locked() {
  if (agent_locked()) return sync_agent_locked();
  if (CK_RV rv = open_locked(); rv != CKR_OK) return rv;
  if (auto ok = vault_->refresh(); !ok) {
    // Damage found after login: the keys decrypted from that vault are not used again.
    if (ok.error().code == Code::kTampered) keys_.clear();
    return to_rv(ok.error(), Stage::kRead);
  }
  const uint64_t counter = vault_->commit_counter();
  // The vault lists private data objects only while unlocked: a login changes the table.
  if (counter == synced_for_ && logged_in_ == synced_logged_in_) return CKR_OK;
  rebuild_locked(vault_->id(), vault_->entries(), vault_->active_ca(), vault_->label(),
                 vault_->data_objects());
  synced_for_ = counter;
  synced_logged_in_ = logged_in_;
  return CKR_OK;
}

void Token::synced_after_commit_locked() {
  const uint64_t committed = vault_->commit_counter();  // this token's commit; nothing read yet
  if (synced_for_ == committed && synced_logged_in_ == logged_in_) return;  // built already
  rebuild_locked(vault_->id(), vault_->entries(), vault_->active_ca(), vault_->label(),
                 vault_->data_objects());
  // Each of those reads looks for a newer manifest, and keeps the handle's state when the
  // read fails. One that found another process's later commit may have mixed two states:
  // the table is then marked stale, and the next sync builds it again from one.
  synced_for_ = vault_->commit_counter() == committed ? committed : 0;
  synced_logged_in_ = logged_in_;
}

void Token::rebuild_locked(const std::string& vault_id, const std::vector<Entry>& entries,
                           const std::optional<CaInfo>& ca, const std::string& label,
                           const std::vector<DataObject>& data) {
  std::vector<std::shared_ptr<Object>> next;
  std::unordered_map<CK_OBJECT_HANDLE, std::shared_ptr<Object>> by_handle;
  auto add = [&](const std::string& key, Object o) {
    auto [it, fresh] = handle_of_.try_emplace(key, next_handle_);
    if (fresh) ++next_handle_;
    o.handle = it->second;
    // Keep what was loaded for an object that did not change; a rename, or a waiting key
    // that got its certificate, makes a new one under the same handle.
    if (auto old = by_handle_.find(o.handle);
        old != by_handle_.end() && old->second->nickname == o.nickname &&
        old->second->not_before == o.not_before && old->second->not_after == o.not_after &&
        old->second->exported == o.exported) {
      next.push_back(old->second);
    } else {
      next.push_back(std::make_shared<Object>(std::move(o)));
    }
    by_handle[next.back()->handle] = next.back();
  };
  for (const Entry& e : entries) {
    const Generation* g = e.current();
    // Disabled and superseded generations are not visible. A new entry whose key waits
    // for its certificate (C_GenerateKeyPair) shows its key pair; a waiting key of an
    // entry that has a certificate stays hidden, so that a label keeps naming one key.
    const Generation* newest = e.newest();
    const bool waiting = !g && newest && newest->status == Status::kPending;
    if (waiting) g = newest;
    if (!g) continue;
    Object o;
    o.entry_id = e.id;
    o.nickname = e.nickname;
    o.key_id = g->key_id;
    o.key_type = g->key_type;
    o.generation = g->number;
    o.not_before = g->not_before;
    o.not_after = g->not_after;
    o.key_imported = g->key_imported;
    o.exported = g->exported_at != 0;
    const std::string base = e.id + "/" + std::to_string(g->number) + "/";
    for (Kind k : {Kind::kCertificate, Kind::kPublicKey, Kind::kPrivateKey}) {
      if (waiting && k == Kind::kCertificate) continue;
      o.kind = k;
      o.unique_id = unique_id(vault_id, e.id, g->number, k);
      add(base + std::to_string(static_cast<int>(k)), o);
    }
  }
  if (ca) {
    Object o;
    o.kind = Kind::kCaCertificate;
    o.unique_id = unique_id(vault_id, "ca:" + ca->id, 0, o.kind);
    o.nickname = label + " CA";
    o.key_id = ca->key_id;
    o.key_type = ca->key_type;
    o.not_before = ca->not_before;
    o.not_after = ca->not_after;
    add("ca:" + ca->id, o);
  }
  // v3.0 4.5: the vault's data objects; each one is unchangeable, so its handle's object is
  // kept as it was.
  for (const DataObject& d : data) {
    Object o;
    o.kind = Kind::kData;
    o.data_id = d.id;
    o.unique_id = unique_id(vault_id, "data:" + d.id, 0, o.kind);
    o.nickname = d.label;
    o.application = d.application;
    o.object_id = d.object_id;
    o.private_object = d.is_private;
    o.modifiable = false;
    o.value_size = d.value_size;
    add("data:" + d.id, o);
  }
  // v3.0 4.13: the profile the token implements, an object C_FindObjects finds like any other.
  Object profile;
  profile.kind = Kind::kProfile;
  add("profile", profile);
  objects_ = std::move(next);
  by_handle_ = std::move(by_handle);
  by_label_.clear();
  by_id_.clear();
  for (const auto& o : objects_) {
    if (!o->is_storage()) continue;  // no CKA_LABEL, no CKA_ID
    by_label_[o->nickname].push_back(o);
    if (!is_data(o->kind)) by_id_[o->key_id].push_back(o);  // a data object has no CKA_ID
  }
}

CK_RV Token::candidates(const CK_ATTRIBUTE* templ, CK_ULONG count,
                        std::vector<std::shared_ptr<Object>>& out) {
  std::lock_guard lock(mu_);
  if (CK_RV rv = sync_locked(); rv != CKR_OK) return rv;
  const std::vector<std::shared_ptr<Object>>* from = &objects_;
  static const std::vector<std::shared_ptr<Object>> kNone;
  // A value that claims a length but is not there is refused, whatever the attribute:
  // matches() compares every one.
  for (CK_ULONG i = 0; i < count; ++i)
    if (!templ[i].pValue && templ[i].ulValueLen) return CKR_ARGUMENTS_BAD;
  for (CK_ULONG i = 0; i < count; ++i) {
    const CK_ATTRIBUTE& t = templ[i];
    if (t.type != CKA_LABEL && t.type != CKA_ID) continue;
    const auto* bytes = t.pValue ? static_cast<const uint8_t*>(t.pValue) : nullptr;
    std::string key = !bytes ? std::string()
                      : t.type == CKA_LABEL
                          ? std::string(reinterpret_cast<const char*>(bytes), t.ulValueLen)
                          : seal::to_hex({bytes, t.ulValueLen});
    auto& index = t.type == CKA_LABEL ? by_label_ : by_id_;
    auto it = index.find(key);
    from = it == index.end() ? &kNone : &it->second;
    break;
  }
  out.clear();
  for (const auto& o : *from)
    if (visible_locked(*o)) out.push_back(o);
  // Session objects are few: all are candidates, in the order they were made.
  std::vector<std::shared_ptr<Object>> made;
  for (const auto& [handle, o] : session_objects_)
    if (visible_locked(*o)) made.push_back(o);
  std::sort(made.begin(), made.end(),
            [](const auto& a, const auto& b) { return a->handle < b->handle; });
  out.insert(out.end(), made.begin(), made.end());
  return CKR_OK;
}

// v3.0 4.4: a private object only while the user is logged in.
bool Token::visible_locked(const Object& o) const {
  return logged_in_ || !private_locked(o);
}

std::shared_ptr<Object> Token::session_object_locked(CK_OBJECT_HANDLE handle) const {
  auto it = session_objects_.find(handle);
  return it == session_objects_.end() || !visible_locked(*it->second) ? nullptr : it->second;
}

Source Token::record_source_locked(const Object& o) const {
  static const Bytes kNone;
  return Source{o, agent_ != nullptr, kNone, nullptr, nullptr, kNone};
}

bool Token::private_locked(const Object& o) const {
  const Attribute* row = attribute_of(o.kind, CKA_PRIVATE);
  const std::optional<Bytes> v = row ? value_of(*row, record_source_locked(o)) : std::nullopt;
  return v && v->size() == 1 && (*v)[0] == CK_TRUE;
}

CK_RV Token::object(CK_OBJECT_HANDLE handle, std::shared_ptr<Object>& out) {
  std::lock_guard lock(mu_);
  if (auto o = session_object_locked(handle)) {
    out = std::move(o);
    return CKR_OK;
  }
  auto it = by_handle_.find(handle);
  if (it == by_handle_.end() || (private_locked(*it->second) && !logged_in_))
    return CKR_OBJECT_HANDLE_INVALID;
  out = it->second;
  return CKR_OK;
}

CK_RV Token::public_der_locked(const Object& o, Bytes& cert, Bytes& spki) {
  if (agent_) {
    auto r = agent::resolve(agent_, agent_name_, o.nickname, std::nullopt, o.generation);
    // Refused or gone since the program found it (a rule, a disable, a delete): the handle
    // names no object this program may see any more. CKR_OBJECT_HANDLE_INVALID is the code
    // C_GetAttributeValue and C_GetObjectSize have for that (v3.0 5.7.5, 5.7.4).
    if (!r && (r.error().code == Code::kRefused || r.error().code == Code::kNotFound)) {
      CV_DEBUG("%s (CKR_OBJECT_HANDLE_INVALID)", r.error().message.c_str());
      return CKR_OBJECT_HANDLE_INVALID;
    }
    if (!r) return to_rv(r.error());
    if (!*r) return CKR_DEVICE_REMOVED;
    cert = std::move((*r)->cert);
    spki = std::move((*r)->spki);
    return CKR_OK;
  }
  auto s = vault_->public_key_der(o.nickname, o.generation);
  if (!s) return to_rv(s.error());
  spki = std::move(*s);
  auto c = vault_->certificate_der(o.nickname, o.generation);
  cert = c ? std::move(*c) : Bytes();  // a key waiting for its certificate has none
  return CKR_OK;
}

// The object's attributes, from its class's table (attributes.cc), read once.
CK_RV Token::load_attributes_locked(Object& o) {
  if (o.attributes) return CKR_OK;
  Bytes cert_der, spki;
  if (is_session(o.kind)) {
    cert_der = o.cert_der;
    spki = o.spki;
  } else if (is_data(o.kind)) {
    // Nothing but the record; the value is read when asked for (data_value_locked).
  } else if (o.kind == Kind::kCaCertificate) {
    auto der = vault_->ca_certificate_der();
    if (!der) return to_rv(der.error());
    cert_der = std::move(*der);
  } else if (o.is_storage()) {
    if (CK_RV rv = public_der_locked(o, cert_der, spki); rv != CKR_OK) return rv;
  }
  const bool certificate = class_of(o.kind) == CKO_CERTIFICATE;
  std::optional<ossl::Cert> cert;
  if (!cert_der.empty()) {
    auto parsed = ossl::cert_from_der(cert_der);
    if (parsed) {
      cert.emplace(std::move(*parsed));
    } else if (certificate) {
      return CKR_DEVICE_ERROR;
    }
  }
  ossl::Pkey own_pub;  // a key object's public key, from its SubjectPublicKeyInfo
  EVP_PKEY* pub = nullptr;
  if (certificate && cert) {
    pub = X509_get0_pubkey(cert->get());
    spki = ossl::spki_der(pub);
  } else if (!spki.empty()) {
    if (auto parsed = ossl::public_from_spki(spki)) {
      own_pub = std::move(*parsed);
      pub = own_pub.get();
    }
  }
  const Source source{o, agent_ != nullptr, cert_der, cert ? cert->get() : nullptr, pub, spki};
  Attrs a;
  for (const Attribute& row : attributes_of(o.kind))
    if (auto v = value_of(row, source)) a[row.type] = std::move(*v);
  o.attributes = std::move(a);
  return CKR_OK;
}

CK_RV Token::data_value_locked(const Object& o, SecureBytes& out) {
  if (o.value) {
    out = SecureBytes(o.value->data(), o.value->size());
    return CKR_OK;
  }
  auto v = vault_->data_object_value(o.data_id);
  if (!v) return to_rv(v.error());
  out = std::move(*v);
  return CKR_OK;
}

CK_RV Token::get_attributes(Object& o, CK_ATTRIBUTE* attrs, CK_ULONG count) {
  std::lock_guard lock(mu_);
  if (CK_RV rv = load_attributes_locked(o); rv != CKR_OK) return rv;
  CK_RV rv = CKR_OK;
  for (CK_ULONG i = 0; i < count; ++i) {
    CK_ATTRIBUTE& at = attrs[i];
    // A data object's value stays in guarded memory (or the vault) until it is copied out.
    if (is_data(o.kind) && at.type == CKA_VALUE) {
      if (!at.pValue) {
        at.ulValueLen = o.value ? o.value->size() : o.value_size;
        continue;
      }
      SecureBytes v;
      if (CK_RV read = data_value_locked(o, v); read != CKR_OK) return read;
      if (at.ulValueLen < v.size()) {
        at.ulValueLen = CK_UNAVAILABLE_INFORMATION;
        rv = CKR_BUFFER_TOO_SMALL;
        continue;
      }
      if (!v.empty()) std::memcpy(at.pValue, v.data(), v.size());
      at.ulValueLen = v.size();
      continue;
    }
    if (const Attribute* row = attribute_of(o.kind, at.type); row && row->sensitive) {
      at.ulValueLen = CK_UNAVAILABLE_INFORMATION;
      rv = CKR_ATTRIBUTE_SENSITIVE;
      continue;
    }
    auto it = o.attributes->find(at.type);
    if (it == o.attributes->end()) {
      at.ulValueLen = CK_UNAVAILABLE_INFORMATION;
      rv = CKR_ATTRIBUTE_TYPE_INVALID;
      continue;
    }
    const Bytes& v = it->second;
    if (!at.pValue) {
      at.ulValueLen = v.size();
    } else if (at.ulValueLen >= v.size()) {
      if (!v.empty()) std::memcpy(at.pValue, v.data(), v.size());
      at.ulValueLen = v.size();
    } else {
      at.ulValueLen = CK_UNAVAILABLE_INFORMATION;
      rv = CKR_BUFFER_TOO_SMALL;
    }
  }
  return rv;
}

CK_RV Token::object_size(Object& o, CK_ULONG& out) {
  std::lock_guard lock(mu_);
  // v3.0 5.7, C_GetObjectSize leaves the meaning of the size to the token: here the values the
  // module holds for the object (a private key's secret parts stay in the vault).
  if (CK_RV rv = load_attributes_locked(o); rv != CKR_OK) return rv;
  size_t n = is_data(o.kind) ? (o.value ? o.value->size() : o.value_size) : 0;
  for (const auto& [type, value] : *o.attributes) n += value.size();
  out = static_cast<CK_ULONG>(n);
  return CKR_OK;
}

bool Token::matches(Object& o, const CK_ATTRIBUTE* templ, CK_ULONG count) {
  std::lock_guard lock(mu_);
  // The common searches (class, label, id, unique id, token, private) need no file read:
  // the table's cheap rows.
  const Source cheap_source = record_source_locked(o);
  for (CK_ULONG i = 0; i < count; ++i) {
    const CK_ATTRIBUTE& t = templ[i];
    const Attribute* row = attribute_of(o.kind, t.type);
    if (!row || row->sensitive) return false;
    std::optional<Bytes> v;
    if (is_data(o.kind) && t.type == CKA_VALUE) {
      SecureBytes value;
      if (data_value_locked(o, value) != CKR_OK) return false;
      if (value.size() != t.ulValueLen ||
          (t.ulValueLen && std::memcmp(value.data(), t.pValue, t.ulValueLen) != 0))
        return false;
      continue;
    }
    if (row->cheap) {
      v = value_of(*row, cheap_source);
    } else {
      if (load_attributes_locked(o) != CKR_OK) return false;
      auto it = o.attributes->find(t.type);
      if (it != o.attributes->end()) v = it->second;
    }
    if (!v) return false;
    if (v->size() != t.ulValueLen ||
        (t.ulValueLen && std::memcmp(v->data(), t.pValue, t.ulValueLen) != 0))
      return false;
  }
  return true;
}

CK_RV Token::public_key(const Object& o, KeyRef& out) {
  std::lock_guard lock(mu_);
  Result<Bytes> spki = Bytes();
  if (is_session(o.kind)) {
    spki = o.spki;
  } else if (o.kind == Kind::kCaCertificate) {
    spki = vault_->ca_certificate_der();
  } else {
    Bytes cert;
    // C_VerifyInit's code for a key no longer there (v3.0 5.15.1).
    CK_RV rv = public_der_locked(o, cert, *spki);
    if (rv == CKR_OBJECT_HANDLE_INVALID) return CKR_KEY_HANDLE_INVALID;
    if (rv != CKR_OK) return rv;
  }
  if (!spki) return to_rv(spki.error());
  if (o.kind == Kind::kCaCertificate) {
    auto cert = ossl::cert_from_der(*spki);
    if (!cert) return CKR_DEVICE_ERROR;
    EVP_PKEY* pub = X509_get_pubkey(cert->get());
    if (!pub) return CKR_DEVICE_ERROR;
    out = KeyRef(pub, EVP_PKEY_free);
    return CKR_OK;
  }
  auto pub = ossl::public_from_spki(*spki);
  if (!pub) return CKR_DEVICE_ERROR;
  out = KeyRef(pub->release(), EVP_PKEY_free);
  return CKR_OK;
}

CK_RV Token::key(const Object& o, KeyRef& out, Signer& signer) {
  std::lock_guard lock(mu_);
  if (o.kind == Kind::kSessionPrivateKey) {
    // In this process, whether the token works through the agent or not; a private one is
    // found only while logged in.
    auto pub = ossl::public_from_spki(o.spki);
    if (!pub || !o.signer) return CKR_GENERAL_ERROR;
    out = KeyRef(pub->release(), EVP_PKEY_free);
    signer = o.signer;
    return CKR_OK;
  }
  if (!logged_in_ && !agent_) return CKR_USER_NOT_LOGGED_IN;
  // The object was found while it could sign; a rule, a disable, a deletion or its
  // generation's end since took it away, and the next search will not find it. Of the
  // codes of C_SignInit (v3.0 5.13.1), the handle's: in-process as through the agent.
  auto gone = [](const Error& e) {
    if (e.code != Code::kRefused && e.code != Code::kNotFound) return false;
    CV_DEBUG("%s (CKR_KEY_HANDLE_INVALID)", e.message.c_str());
    return true;
  };
  auto it = keys_.find(o.key_id);
  if (it == keys_.end()) {
    UnlockedKey unlocked;
    Bytes spki;
    if (agent_) {
      // The agent holds the key; the module keeps its public half, to size and check.
      auto r = agent::resolve(agent_, agent_name_, o.nickname, std::nullopt, o.generation);
      if (!r && gone(r.error())) return CKR_KEY_HANDLE_INVALID;
      if (!r) return to_rv(r.error());
      if (!*r) return CKR_DEVICE_REMOVED;
      if ((*r)->locked) return CKR_USER_NOT_LOGGED_IN;  // vault 'x' is locked in the agent
      spki = std::move((*r)->spki);
      unlocked.signer = std::make_shared<const agent::RemoteKey>(std::move((*r)->key));
    } else {
      auto k = vault_->signing_key(o.nickname, o.generation);
      if (!k && gone(k.error())) return CKR_KEY_HANDLE_INVALID;
      if (!k) return to_rv(k.error());
      auto s = vault_->public_key_der(o.nickname, o.generation);
      if (!s) return to_rv(s.error());
      spki = std::move(*s);
      unlocked.signer = std::move(*k);
    }
    auto pub = ossl::public_from_spki(spki);
    if (!pub) return CKR_DEVICE_ERROR;
    unlocked.pub = KeyRef(pub->release(), EVP_PKEY_free);
    it = keys_.emplace(o.key_id, std::move(unlocked)).first;
  }
  out = it->second.pub;
  signer = it->second.signer;
  return CKR_OK;
}

CK_RV Token::handle_locked(const std::string& entry_id, uint32_t generation, Kind kind,
                           CK_OBJECT_HANDLE& out) {
  synced_after_commit_locked();
  auto it = handle_of_.find(entry_id + "/" + std::to_string(generation) + "/" +
                            std::to_string(static_cast<int>(kind)));
  if (it == handle_of_.end() || !by_handle_.contains(it->second)) return CKR_FUNCTION_FAILED;
  out = it->second;
  return CKR_OK;
}

// A change to a token object needs the user's login: the vault key signs every commit.
CK_RV Token::writable_object_locked(CK_OBJECT_HANDLE handle, std::shared_ptr<Object>& out) {
  if (agent_) return CKR_TOKEN_WRITE_PROTECTED;  // the owner changes the vault with the CLI
  if (!logged_in_) return CKR_USER_NOT_LOGGED_IN;
  auto it = by_handle_.find(handle);
  if (it == by_handle_.end()) return CKR_OBJECT_HANDLE_INVALID;
  out = it->second;
  return CKR_OK;
}

CK_RV Token::generate_key_pair(const KeyPairRequest& request, CK_OBJECT_HANDLE& pub,
                               CK_OBJECT_HANDLE& priv) {
  std::lock_guard lock(mu_);
  if (agent_locked()) return CKR_TOKEN_WRITE_PROTECTED;
  if (!logged_in_) return CKR_USER_NOT_LOGGED_IN;
  if (!check_nickname(request.label)) return CKR_ATTRIBUTE_VALUE_INVALID;
  auto made = vault_->generate_key(request.label, request.key_type);
  if (!made) {
    // The label names an entry that has a certificate already.
    return made.error().code == Code::kExists ? CKR_TEMPLATE_INCONSISTENT : to_rv(made.error());
  }
  const Generation* g = made->newest();
  if (CK_RV rv = handle_locked(made->id, g->number, Kind::kPublicKey, pub); rv != CKR_OK) return rv;
  return handle_locked(made->id, g->number, Kind::kPrivateKey, priv);
}

CK_RV Token::add_certificate(const CertificateRequest& request, CK_OBJECT_HANDLE& out) {
  std::lock_guard lock(mu_);
  if (agent_locked()) return CKR_TOKEN_WRITE_PROTECTED;
  if (!logged_in_) return CKR_USER_NOT_LOGGED_IN;
  auto cert = ossl::cert_from_der(request.der);
  if (!cert) return CKR_ATTRIBUTE_VALUE_INVALID;
  // The certificate goes to the entry whose key waits for it.
  const std::string key_id = keys::key_id(X509_get0_pubkey(cert->get()));
  auto entry = vault_->find_by_key_id(key_id);
  const Generation* waiting = nullptr;
  if (entry)
    for (const auto& g : entry->generations)
      if (g.key_id == key_id && g.status == Status::kPending) waiting = &g;
  // No key of this token waits for it: certvault holds certificates only with their keys.
  if (!waiting) return CKR_TEMPLATE_INCONSISTENT;
  if (request.label && *request.label != entry->nickname) return CKR_TEMPLATE_INCONSISTENT;
  if (request.id && seal::to_hex(*request.id) != key_id) return CKR_TEMPLATE_INCONSISTENT;
  auto attached = vault_->attach(entry->nickname, ossl::cert_pem(cert->get()));
  if (!attached) {
    // Expired, not for client authentication, or refused by the vault's policy.
    const Code c = attached.error().code;
    return c == Code::kInvalidInput || c == Code::kRefused ? CKR_ATTRIBUTE_VALUE_INVALID
                                                           : to_rv(attached.error());
  }
  return handle_locked(entry->id, waiting->number, Kind::kCertificate, out);
}

CK_RV Token::destroy(CK_OBJECT_HANDLE handle) {
  std::lock_guard lock(mu_);
  if (auto session_object = session_object_locked(handle)) {
    // v3.0 5.7.3: CKR_ACTION_PROHIBITED for an object whose CKA_DESTROYABLE is false.
    if (!session_object->destroyable) return CKR_ACTION_PROHIBITED;
    session_objects_.erase(handle);
    return CKR_OK;
  }
  std::shared_ptr<Object> o;
  if (CK_RV rv = writable_object_locked(handle, o); rv != CKR_OK) return rv;
  if (o->kind == Kind::kData) {
    if (auto ok = vault_->destroy_data_object(o->data_id); !ok) return to_rv(ok.error());
    synced_after_commit_locked();
    return CKR_OK;
  }
  if (o->kind != Kind::kPrivateKey) return CKR_ACTION_PROHIBITED;  // CKA_DESTROYABLE false
  if (auto ok = vault_->remove(o->nickname); !ok) return to_rv(ok.error());
  keys_.erase(o->key_id);
  synced_after_commit_locked();
  return CKR_OK;
}

CK_RV Token::set_attributes(CK_OBJECT_HANDLE handle, const CK_ATTRIBUTE* templ, CK_ULONG count) {
  std::lock_guard lock(mu_);
  if (auto session_object = session_object_locked(handle))
    return set_session_attributes_locked(*session_object, templ, count);
  std::shared_ptr<Object> o;
  if (CK_RV rv = writable_object_locked(handle, o); rv != CKR_OK) return rv;
  // CKA_MODIFIABLE false (v3.0 5.7.6): the vault CA, the profile, a data object.
  if (o->kind == Kind::kCaCertificate || o->kind == Kind::kProfile || o->kind == Kind::kData)
    return CKR_ACTION_PROHIBITED;
  std::optional<std::string> label;
  for (CK_ULONG i = 0; i < count; ++i) {
    const CK_ATTRIBUTE& a = templ[i];
    if (!a.pValue && a.ulValueLen) return CKR_ARGUMENTS_BAD;
    // Only the label is set (a rename, attributes.cc); the rest comes from the vault.
    if (const Attribute* row = attribute_of(o->kind, a.type); !row || row->given != Given::kLabel) {
      if (load_attributes_locked(*o) != CKR_OK || !o->attributes->contains(a.type))
        return CKR_ATTRIBUTE_TYPE_INVALID;
      return CKR_ATTRIBUTE_READ_ONLY;
    }
    label.emplace(static_cast<const char*>(a.pValue), a.ulValueLen);
  }
  if (!label) return CKR_OK;
  if (!check_nickname(*label)) return CKR_ATTRIBUTE_VALUE_INVALID;
  auto renamed = vault_->rename(o->nickname, *label);
  if (!renamed)
    return renamed.error().code == Code::kExists ? CKR_ATTRIBUTE_VALUE_INVALID
                                                 : to_rv(renamed.error());
  synced_after_commit_locked();
  return CKR_OK;
}

// v3.0 5.7.6: the attributes a modifiable session object's table lets change (CKA_LABEL and
// the kChangeable rows), all or none.
CK_RV Token::set_session_attributes_locked(Object& o, const CK_ATTRIBUTE* templ, CK_ULONG count) {
  if (!o.modifiable) return CKR_ACTION_PROHIBITED;
  for (CK_ULONG i = 0; i < count; ++i) {
    const CK_ATTRIBUTE& a = templ[i];
    if (!a.pValue && a.ulValueLen) return CKR_ARGUMENTS_BAD;
    const Attribute* row = attribute_of(o.kind, a.type);
    if (!row) return CKR_ATTRIBUTE_TYPE_INVALID;
    if (row->given != Given::kLabel && row->given != Given::kChangeable)
      return CKR_ATTRIBUTE_READ_ONLY;
  }
  Object changed = o;
  std::optional<SecureBytes> value;
  for (CK_ULONG i = 0; i < count; ++i) {
    const CK_ATTRIBUTE& a = templ[i];
    if (a.type == CKA_VALUE) {  // a data object's, possibly private: never in a plain buffer
      value.emplace(a.pValue, a.ulValueLen);
      continue;
    }
    const auto* p = static_cast<const uint8_t*>(a.pValue);
    Bytes v = p ? Bytes(p, p + a.ulValueLen) : Bytes();
    switch (a.type) {
      case CKA_LABEL:
        changed.nickname.assign(v.begin(), v.end());
        break;
      case CKA_ID:
        changed.key_id = seal::to_hex(v);
        break;
      case CKA_SUBJECT:
        changed.subject = std::move(v);
        break;
      case CKA_APPLICATION:
        changed.application.assign(v.begin(), v.end());
        break;
      case CKA_OBJECT_ID:
        changed.object_id = std::move(v);
        break;
      default:
        return CKR_ATTRIBUTE_READ_ONLY;
    }
  }
  if (is_data(o.kind)) {
    // The vault's limits and text rules, as at creation.
    DataObjectRequest check;
    check.label = changed.nickname;
    check.application = changed.application;
    check.object_id = changed.object_id;
    if (value) check.value = SecureBytes(value->data(), value->size());
    if (auto ok = check_data_object(check); !ok) return value_rv(ok.error());
    if (value) {
      changed.value = std::make_shared<SecureBytes>(std::move(*value));
      changed.value_size = changed.value->size();
    }
  }
  changed.attributes.reset();  // read again from the changed record
  // A new object under the same handle: a caller that holds the old one reads it unchanged.
  session_objects_[o.handle] = std::make_shared<Object>(std::move(changed));
  return CKR_OK;
}

CK_RV Token::add_session_object(std::shared_ptr<Object> made, CK_OBJECT_HANDLE& out) {
  std::lock_guard lock(mu_);
  // v3.0 5.7.1: only public objects can be made unless the user is logged in.
  if (made->private_object && !logged_in_) return CKR_USER_NOT_LOGGED_IN;
  // v3.0 4.4.1: unique among the token's objects, never reused: random.
  made->unique_id = seal::to_hex(SecureBytes::random(16).span());
  made->handle = next_handle_++;
  out = made->handle;
  session_objects_.emplace(out, std::move(made));
  return CKR_OK;
}

CK_RV Token::add_session_key_pair(std::shared_ptr<Object> pub, std::shared_ptr<Object> priv,
                                  CK_OBJECT_HANDLE& pub_out, CK_OBJECT_HANDLE& priv_out) {
  {
    std::lock_guard lock(mu_);
    if ((pub->private_object || priv->private_object) && !logged_in_) return CKR_USER_NOT_LOGGED_IN;
  }
  if (CK_RV rv = add_session_object(std::move(pub), pub_out); rv != CKR_OK) return rv;
  return add_session_object(std::move(priv), priv_out);
}

bool Token::is_session_object(CK_OBJECT_HANDLE handle) {
  std::lock_guard lock(mu_);
  return session_object_locked(handle) != nullptr;
}

bool Token::is_public_session_key(CK_OBJECT_HANDLE handle) {
  std::lock_guard lock(mu_);
  auto o = session_object_locked(handle);
  return o && o->kind == Kind::kSessionPrivateKey && !o->private_object;
}

void Token::drop_session_objects(std::optional<CK_SESSION_HANDLE> session) {
  std::lock_guard lock(mu_);
  std::erase_if(session_objects_,
                [&](const auto& kv) { return !session || kv.second->session == *session; });
}

CK_RV Token::create_data_object(const ObjectRequest& r, CK_OBJECT_HANDLE& out) {
  std::lock_guard lock(mu_);
  // The agent does not serve data objects, and programs change nothing through it.
  if (agent_locked()) return CKR_TOKEN_WRITE_PROTECTED;
  if (!logged_in_) return CKR_USER_NOT_LOGGED_IN;  // the vault key signs every commit
  const TemplateValues& t = r.given;
  DataObjectRequest d;
  d.label = t.label.value_or("");
  if (const Bytes* a = t.value(CKA_APPLICATION)) d.application.assign(a->begin(), a->end());
  if (const Bytes* oid = t.value(CKA_OBJECT_ID)) d.object_id = *oid;
  // v3.0 4.4: CKA_PRIVATE's default is the token's; a data object may hold a secret.
  d.is_private = t.flag(CKA_PRIVATE, true);
  if (auto it = t.secrets.find(CKA_VALUE); it != t.secrets.end())
    d.value = SecureBytes(it->second.data(), it->second.size());
  if (auto ok = check_data_object(d); !ok) return value_rv(ok.error());
  auto made = vault_->create_data_object(d);
  if (!made) return value_rv(made.error());
  synced_after_commit_locked();
  auto it = handle_of_.find("data:" + made->id);
  if (it == handle_of_.end()) return CKR_FUNCTION_FAILED;
  out = it->second;
  return CKR_OK;
}

}  // namespace certvault::pkcs11
