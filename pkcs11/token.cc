#include "token.h"

#include <openssl/core_names.h>
#include <openssl/objects.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include <cstring>
#include <ctime>

#include "errors.h"
#include "keys.h"
#include "mechanisms.h"
#include "ossl.h"
#include "pin_source.h"
#include "seal.h"

namespace certvault::pkcs11 {
namespace {

using Bytes = std::vector<uint8_t>;
using Attrs = std::map<CK_ATTRIBUTE_TYPE, Bytes>;

template <typename T>
Bytes pod(const T& v) {
  Bytes out(sizeof v);
  std::memcpy(out.data(), &v, sizeof v);
  return out;
}
Bytes flag(bool b) {
  return pod(static_cast<CK_BBOOL>(b ? CK_TRUE : CK_FALSE));
}
Bytes ulong(CK_ULONG v) {
  return pod(v);
}
Bytes text(std::string_view s) {
  return Bytes(s.begin(), s.end());
}

Bytes date(Time t) {
  if (t == 0) return {};  // a key still waiting for its certificate has no dates yet
  time_t tt = static_cast<time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y%m%d", &tm);
  CK_DATE d;
  std::memcpy(d.year, buf, 4);
  std::memcpy(d.month, buf + 4, 2);
  std::memcpy(d.day, buf + 6, 2);
  return pod(d);
}

Bytes octet_string(const Bytes& content) {
  ASN1_OCTET_STRING* os = ASN1_OCTET_STRING_new();
  ASN1_OCTET_STRING_set(os, content.data(), static_cast<int>(content.size()));
  Bytes out = ossl::to_der<ASN1_OCTET_STRING, i2d_ASN1_OCTET_STRING>(os);
  ASN1_OCTET_STRING_free(os);
  return out;
}

Bytes oid(const char* dotted) {
  ASN1_OBJECT* o = OBJ_txt2obj(dotted, 1);
  Bytes out = ossl::to_der<ASN1_OBJECT, i2d_ASN1_OBJECT>(o);
  ASN1_OBJECT_free(o);
  return out;
}

Bytes bn_param(EVP_PKEY* key, const char* name) {
  BIGNUM* bn = nullptr;
  if (!EVP_PKEY_get_bn_param(key, name, &bn)) return {};
  Bytes out(static_cast<size_t>(BN_num_bytes(bn)));
  BN_bn2bin(bn, out.data());
  BN_free(bn);
  return out;
}

CK_KEY_TYPE ck_key_type(KeyType t) {
  switch (t) {
    case KeyType::kEcP256:
    case KeyType::kEcP384:
      return CKK_EC;
    case KeyType::kEd25519:
      return CKK_EC_EDWARDS;
    default:
      return CKK_RSA;
  }
}

CK_OBJECT_CLASS ck_class(Kind k) {
  switch (k) {
    case Kind::kPublicKey:
      return CKO_PUBLIC_KEY;
    case Kind::kPrivateKey:
      return CKO_PRIVATE_KEY;
    case Kind::kProfile:
      return CKO_PROFILE;
    default:
      return CKO_CERTIFICATE;
  }
}

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
                                                    : "profile";
  // Newlines separate the parts: none of them holds one.
  const std::string input = "certvault CKA_UNIQUE_ID 1\n" + std::string(vault_id) + "\n" +
                            std::string(source) + "\n" + std::to_string(generation) + "\n" + word;
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(input.data()), input.size(), md);
  return seal::to_hex({md, 16});
}

// Public-key attributes shared by public and private key objects.
void key_attributes(Attrs& a, const Object& o, const Bytes& spki) {
  const unsigned char* p = spki.data();
  ossl::Pkey pub(d2i_PUBKEY(nullptr, &p, static_cast<long>(spki.size())));
  a[CKA_KEY_TYPE] = ulong(ck_key_type(o.key_type));
  a[CKA_PUBLIC_KEY_INFO] = spki;
  a[CKA_START_DATE] = date(o.not_before);
  a[CKA_END_DATE] = date(o.not_after);
  a[CKA_DERIVE] = flag(false);
  a[CKA_LOCAL] = flag(!o.key_imported);  // v2.40 4.7: generated in the token
  a[CKA_KEY_GEN_MECHANISM] = ulong(o.key_imported                      ? CK_UNAVAILABLE_INFORMATION
                                   : o.key_type == KeyType::kEd25519   ? CKM_EC_EDWARDS_KEY_PAIR_GEN
                                   : ck_key_type(o.key_type) == CKK_EC ? CKM_EC_KEY_PAIR_GEN
                                                                       : CKM_RSA_PKCS_KEY_PAIR_GEN);
  auto mechs = sign_mechanisms(o.key_type);
  Bytes allowed(mechs.size() * sizeof(CK_MECHANISM_TYPE));
  std::memcpy(allowed.data(), mechs.data(), allowed.size());
  a[CKA_ALLOWED_MECHANISMS] = allowed;
  if (!pub) return;
  if (o.key_type == KeyType::kEd25519) {
    a[CKA_EC_PARAMS] = oid("1.3.101.112");  // id-Ed25519, RFC 8410
    Bytes point(32);
    size_t len = point.size();
    EVP_PKEY_get_raw_public_key(pub.get(), point.data(), &len);
    point.resize(len);
    a[CKA_EC_POINT] = octet_string(point);
  } else if (ck_key_type(o.key_type) == CKK_EC) {
    a[CKA_EC_PARAMS] = oid(o.key_type == KeyType::kEcP256 ? "1.2.840.10045.3.1.7" : "1.3.132.0.34");
    Bytes point(256);
    size_t len = 0;
    EVP_PKEY_get_octet_string_param(pub.get(), OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point.data(),
                                    point.size(), &len);
    point.resize(len);
    a[CKA_EC_POINT] = octet_string(point);
  } else {
    a[CKA_MODULUS] = bn_param(pub.get(), OSSL_PKEY_PARAM_RSA_N);
    a[CKA_PUBLIC_EXPONENT] = bn_param(pub.get(), OSSL_PKEY_PARAM_RSA_E);
    a[CKA_MODULUS_BITS] = ulong(static_cast<CK_ULONG>(EVP_PKEY_get_bits(pub.get())));
  }
}

// Attributes of a private key that are secret: never returned (PKCS#11 v2.40, 4.9).
bool sensitive(CK_ATTRIBUTE_TYPE t) {
  switch (t) {
    case CKA_VALUE:
    case CKA_PRIVATE_EXPONENT:
    case CKA_PRIME_1:
    case CKA_PRIME_2:
    case CKA_EXPONENT_1:
    case CKA_EXPONENT_2:
    case CKA_COEFFICIENT:
      return true;
    default:
      return false;
  }
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
  auto socket = agent::find_socket();
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
    // C_Login they make anyway needs no PIN (a protected authentication path, v2.40 6.7.2),
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
  // v2.40 5.6 lets C_InitToken wipe an initialised token; a vault holds identities that
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
  logged_in_ = false;
  so_logged_in_ = false;
  keys_.clear();  // each key is freed (and its private parts cleared) by its last user
  if (vault_) vault_->lock();
}

bool Token::logged_in() const {
  std::lock_guard lock(mu_);
  return logged_in_;
}

// Rebuilds the object table when the vault changed; handles stay stable for objects that
// remain.
CK_RV Token::sync_agent_locked() {
  auto v = agent::vault_info(agent_, agent_name_);
  if (!v) return to_rv(v.error());
  if (!*v) return CKR_DEVICE_REMOVED;
  if (synced_for_ != 0 && (*v)->counter == synced_for_) return CKR_OK;
  auto listed = agent::entries(agent_, agent_name_);
  if (!listed) return to_rv(listed.error());
  if (!*listed) return CKR_DEVICE_REMOVED;
  rebuild_locked((*v)->id, **listed, std::nullopt, (*v)->label);
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
  if (counter == synced_for_) return CKR_OK;
  rebuild_locked(vault_->id(), vault_->entries(), vault_->active_ca(), vault_->label());
  synced_for_ = counter;
  return CKR_OK;
}

void Token::rebuild_locked(const std::string& vault_id, const std::vector<Entry>& entries,
                           const std::optional<CaInfo>& ca, const std::string& label) {
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
    by_id_[o->key_id].push_back(o);
  }
}

CK_RV Token::candidates(const CK_ATTRIBUTE* templ, CK_ULONG count,
                        std::vector<std::shared_ptr<Object>>& out) {
  std::lock_guard lock(mu_);
  if (CK_RV rv = sync_locked(); rv != CKR_OK) return rv;
  const std::vector<std::shared_ptr<Object>>* from = &objects_;
  static const std::vector<std::shared_ptr<Object>> kNone;
  for (CK_ULONG i = 0; i < count; ++i) {
    const CK_ATTRIBUTE& t = templ[i];
    if (t.type != CKA_LABEL && t.type != CKA_ID) continue;
    if (!t.pValue && t.ulValueLen) return CKR_ARGUMENTS_BAD;
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
    if (logged_in_ || !private_locked(*o)) out.push_back(o);
  return CKR_OK;
}

bool Token::private_locked(const Object& o) const {
  return o.is_private() && !agent_;
}

CK_RV Token::object(CK_OBJECT_HANDLE handle, std::shared_ptr<Object>& out) {
  std::lock_guard lock(mu_);
  auto it = by_handle_.find(handle);
  if (it == by_handle_.end() || (private_locked(*it->second) && !logged_in_))
    return CKR_OBJECT_HANDLE_INVALID;
  out = it->second;
  return CKR_OK;
}

CK_RV Token::public_der_locked(const Object& o, Bytes& cert, Bytes& spki) {
  if (agent_) {
    auto r = agent::resolve(agent_, agent_name_, o.nickname, std::nullopt, o.generation);
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

CK_RV Token::load_attributes_locked(Object& o) {
  if (o.attributes) return CKR_OK;
  Attrs a;
  a[CKA_CLASS] = ulong(ck_class(o.kind));
  if (o.kind == Kind::kProfile) {
    // v3.0 4.13: the common object attribute (4.2, CKA_CLASS) and the profile, nothing more;
    // not a storage object, so no CKA_TOKEN, CKA_LABEL or CKA_UNIQUE_ID (4.4).
    a[CKA_PROFILE_ID] = ulong(CKP_AUTHENTICATION_TOKEN);
    o.attributes = std::move(a);
    return CKR_OK;
  }
  a[CKA_TOKEN] = flag(true);
  a[CKA_PRIVATE] = flag(private_locked(o));
  // An entry's objects can be renamed (CKA_LABEL); destroying its private key deletes the
  // entry. The vault CA is managed with `certvault ca` only.
  a[CKA_MODIFIABLE] = flag(o.kind != Kind::kCaCertificate);
  a[CKA_COPYABLE] = flag(false);
  a[CKA_DESTROYABLE] = flag(o.kind == Kind::kPrivateKey);
  a[CKA_LABEL] = text(o.nickname);
  a[CKA_UNIQUE_ID] = text(o.unique_id);  // v3.0 4.4.1
  a[CKA_ID] = seal::from_hex(o.key_id).value_or(Bytes());
  if (o.kind == Kind::kCertificate || o.kind == Kind::kCaCertificate) {
    Result<Bytes> cert_der = Bytes();
    if (o.kind == Kind::kCaCertificate) {
      cert_der = vault_->ca_certificate_der();
    } else {
      Bytes spki;
      if (CK_RV rv = public_der_locked(o, *cert_der, spki); rv != CKR_OK) return rv;
    }
    if (!cert_der) return to_rv(cert_der.error());
    auto cert = ossl::cert_from_der(*cert_der);
    if (!cert) return CKR_DEVICE_ERROR;
    X509* x = cert->get();
    a[CKA_CERTIFICATE_TYPE] = ulong(CKC_X_509);
    a[CKA_TRUSTED] = flag(false);
    a[CKA_CERTIFICATE_CATEGORY] = ulong(o.kind == Kind::kCaCertificate ? 2 : 1);
    unsigned char sha1[SHA_DIGEST_LENGTH];
    SHA1(cert_der->data(), cert_der->size(), sha1);
    a[CKA_CHECK_VALUE] = Bytes(sha1, sha1 + 3);
    a[CKA_START_DATE] = date(o.not_before);
    a[CKA_END_DATE] = date(o.not_after);
    a[CKA_SUBJECT] = ossl::to_der<X509_NAME, i2d_X509_NAME>(X509_get_subject_name(x));
    a[CKA_ISSUER] = ossl::to_der<X509_NAME, i2d_X509_NAME>(X509_get_issuer_name(x));
    a[CKA_SERIAL_NUMBER] = ossl::to_der<ASN1_INTEGER, i2d_ASN1_INTEGER>(X509_get0_serialNumber(x));
    a[CKA_VALUE] = *cert_der;
    a[CKA_URL] = {};
    a[CKA_JAVA_MIDP_SECURITY_DOMAIN] = ulong(0);
    a[CKA_PUBLIC_KEY_INFO] = ossl::spki_der(X509_get0_pubkey(x));
  } else {
    Bytes cert_der, spki;
    if (CK_RV rv = public_der_locked(o, cert_der, spki); rv != CKR_OK) return rv;
    key_attributes(a, o, spki);
    if (!cert_der.empty()) {
      if (auto cert = ossl::cert_from_der(cert_der))
        a[CKA_SUBJECT] = ossl::to_der<X509_NAME, i2d_X509_NAME>(X509_get_subject_name(cert->get()));
    }
    if (o.kind == Kind::kPublicKey) {
      a[CKA_ENCRYPT] = flag(false);
      a[CKA_VERIFY] = flag(true);
      a[CKA_VERIFY_RECOVER] = flag(false);
      a[CKA_WRAP] = flag(false);
      a[CKA_TRUSTED] = flag(false);
    } else {
      a[CKA_SENSITIVE] = flag(true);
      a[CKA_DECRYPT] = flag(false);
      a[CKA_SIGN] = flag(true);
      a[CKA_SIGN_RECOVER] = flag(false);
      a[CKA_UNWRAP] = flag(false);
      a[CKA_EXTRACTABLE] = flag(false);
      // v2.40 4.9: a key that was ever outside the token (imported, or exported as
      // PKCS#12 by `certvault export`) was not always sensitive and has been extracted.
      const bool kept_inside = !o.key_imported && !o.exported;
      a[CKA_ALWAYS_SENSITIVE] = flag(kept_inside);
      a[CKA_NEVER_EXTRACTABLE] = flag(kept_inside);
      a[CKA_WRAP_WITH_TRUSTED] = flag(false);
      a[CKA_ALWAYS_AUTHENTICATE] = flag(false);
      a.erase(CKA_EC_POINT);  // a private key object carries the curve, not the point
    }
  }
  o.attributes = std::move(a);
  return CKR_OK;
}

CK_RV Token::get_attributes(Object& o, CK_ATTRIBUTE* attrs, CK_ULONG count) {
  std::lock_guard lock(mu_);
  if (CK_RV rv = load_attributes_locked(o); rv != CKR_OK) return rv;
  CK_RV rv = CKR_OK;
  for (CK_ULONG i = 0; i < count; ++i) {
    CK_ATTRIBUTE& at = attrs[i];
    if (o.is_private() && sensitive(at.type)) {
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
  size_t n = 0;
  for (const auto& [type, value] : *o.attributes) n += value.size();
  out = static_cast<CK_ULONG>(n);
  return CKR_OK;
}

bool Token::matches(Object& o, const CK_ATTRIBUTE* templ, CK_ULONG count) {
  std::lock_guard lock(mu_);
  // The common searches (class, label, id, unique id) need no file read. A profile object
  // has a class and a profile only (load_attributes_locked).
  auto cheap = [&](CK_ATTRIBUTE_TYPE t) -> std::optional<Bytes> {
    if (t == CKA_CLASS) return ulong(ck_class(o.kind));
    if (!o.is_storage()) return std::nullopt;
    switch (t) {
      case CKA_LABEL:
        return text(o.nickname);
      case CKA_ID:
        return seal::from_hex(o.key_id).value_or(Bytes());
      case CKA_UNIQUE_ID:
        return text(o.unique_id);
      case CKA_TOKEN:
        return flag(true);
      case CKA_PRIVATE:
        return flag(private_locked(o));
      default:
        return std::nullopt;
    }
  };
  for (CK_ULONG i = 0; i < count; ++i) {
    const CK_ATTRIBUTE& t = templ[i];
    std::optional<Bytes> v = cheap(t.type);
    if (!v) {
      if (load_attributes_locked(o) != CKR_OK) return false;
      auto it = o.attributes->find(t.type);
      if (it == o.attributes->end() || (o.is_private() && sensitive(t.type))) return false;
      v = it->second;
    }
    if (v->size() != t.ulValueLen ||
        (t.ulValueLen && std::memcmp(v->data(), t.pValue, t.ulValueLen) != 0))
      return false;
  }
  return true;
}

CK_RV Token::public_key(const Object& o, KeyRef& out) {
  std::lock_guard lock(mu_);
  Result<Bytes> spki = Bytes();
  if (o.kind == Kind::kCaCertificate) {
    spki = vault_->ca_certificate_der();
  } else {
    Bytes cert;
    if (CK_RV rv = public_der_locked(o, cert, *spki); rv != CKR_OK) return rv;
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
  if (!logged_in_ && !agent_) return CKR_USER_NOT_LOGGED_IN;
  auto it = keys_.find(o.key_id);
  if (it == keys_.end()) {
    UnlockedKey unlocked;
    Bytes spki;
    if (agent_) {
      // The agent holds the key; the module keeps its public half, to size and check.
      auto r = agent::resolve(agent_, agent_name_, o.nickname, std::nullopt, o.generation);
      if (!r) return to_rv(r.error());
      if (!*r) return CKR_DEVICE_REMOVED;
      if ((*r)->locked) return CKR_USER_NOT_LOGGED_IN;  // vault 'x' is locked in the agent
      spki = std::move((*r)->spki);
      unlocked.signer = std::make_shared<const agent::RemoteKey>(std::move((*r)->key));
    } else {
      auto k = vault_->signing_key(o.nickname, o.generation);
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
  if (CK_RV rv = sync_locked(); rv != CKR_OK) return rv;
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
  std::shared_ptr<Object> o;
  if (CK_RV rv = writable_object_locked(handle, o); rv != CKR_OK) return rv;
  if (o->kind != Kind::kPrivateKey) return CKR_ACTION_PROHIBITED;  // CKA_DESTROYABLE false
  if (auto ok = vault_->remove(o->nickname); !ok) return to_rv(ok.error());
  keys_.erase(o->key_id);
  return sync_locked();
}

CK_RV Token::set_attributes(CK_OBJECT_HANDLE handle, const CK_ATTRIBUTE* templ, CK_ULONG count) {
  std::lock_guard lock(mu_);
  std::shared_ptr<Object> o;
  if (CK_RV rv = writable_object_locked(handle, o); rv != CKR_OK) return rv;
  // CKA_MODIFIABLE false; a profile object is not a storage object and is never changed.
  if (o->kind == Kind::kCaCertificate || o->kind == Kind::kProfile) return CKR_ACTION_PROHIBITED;
  std::optional<std::string> label;
  for (CK_ULONG i = 0; i < count; ++i) {
    const CK_ATTRIBUTE& a = templ[i];
    if (!a.pValue && a.ulValueLen) return CKR_ARGUMENTS_BAD;
    if (a.type != CKA_LABEL) {
      if (load_attributes_locked(*o) != CKR_OK || !o->attributes->contains(a.type))
        return CKR_ATTRIBUTE_TYPE_INVALID;
      return CKR_ATTRIBUTE_READ_ONLY;  // everything but the nickname comes from the vault
    }
    label.emplace(static_cast<const char*>(a.pValue), a.ulValueLen);
  }
  if (!label) return CKR_OK;
  if (!check_nickname(*label)) return CKR_ATTRIBUTE_VALUE_INVALID;
  auto renamed = vault_->rename(o->nickname, *label);
  if (!renamed)
    return renamed.error().code == Code::kExists ? CKR_ATTRIBUTE_VALUE_INVALID
                                                 : to_rv(renamed.error());
  return sync_locked();
}

}  // namespace certvault::pkcs11
