// The C ABI: every exported function is a thin shim that checks its arguments, finds its
// session or slot, and never lets a C++ exception out (PKCS#11 v2.40 section 5).
#include <pthread.h>
#include <sodium.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <unordered_map>

#include "ck.h"
#include "config.h"
#include "errors.h"
#include "mechanisms.h"
#include "ossl.h"
#include "pin_source.h"
#include "templates.h"
#include "token.h"

#define CV_EXPORT extern "C" __attribute__((visibility("default")))

namespace certvault::pkcs11 {
namespace {

struct Session {
  CK_SLOT_ID slot = 0;
  CK_FLAGS flags = 0;
  std::mutex mu;  // one operation at a time per session
  bool finding = false;
  std::vector<CK_OBJECT_HANDLE> found;
  size_t found_next = 0;
  // How an operation has been fed: C_Sign, C_Verify and C_Digest take the data of a
  // single-part operation, the *Update calls that of a multi-part one; the two never mix.
  enum class Part { kNone, kSingle, kMulti };
  std::unique_ptr<SignOperation> sign;
  Part sign_part = Part::kNone;  // kSingle: C_Sign passed its data in (a short buffer)
  std::unique_ptr<SignOperation> verify;
  bool verify_multi = false;  // C_VerifyUpdate was called
  ossl::MdCtx digest;
  bool digest_multi = false;  // C_DigestUpdate was called
};

struct Module {
  pid_t pid = 0;
  std::vector<std::unique_ptr<Token>> tokens;
  std::mutex mu;  // the session table
  std::unordered_map<CK_SESSION_HANDLE, std::shared_ptr<Session>> sessions;
  CK_SESSION_HANDLE next_session = 1;
};

// C_Initialize and C_Finalize are serialised by g_init; fork handlers keep it consistent
// in a child. A child sees the parent's module as uninitialised (pid differs) and its own
// C_Initialize starts a new one; the inherited one is left untouched, since its locks
// may be held by threads that do not exist in the child.
std::mutex g_init;
std::atomic<Module*> g_module{nullptr};
// This process's id, kept by the fork handler so that the calls on the signing path make
// no system call to learn it.
std::atomic<pid_t> g_pid{0};

void fork_prepare() {
  g_init.lock();
}
void fork_parent() {
  g_init.unlock();
}
void fork_child() {
  g_pid.store(::getpid(), std::memory_order_relaxed);
  g_init.unlock();
}

Module* module() {
  Module* m = g_module.load(std::memory_order_acquire);
  return m && m->pid == g_pid.load(std::memory_order_relaxed) ? m : nullptr;
}

template <typename F>
CK_RV guard(F&& f) noexcept {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return CKR_HOST_MEMORY;
  } catch (...) {
    return CKR_GENERAL_ERROR;
  }
}

void pad(CK_UTF8CHAR* dst, size_t n, std::string_view s) {
  std::memset(dst, ' ', n);
  std::memcpy(dst, s.data(), std::min(n, s.size()));
}

// Runs `f(module, token)` for a valid slot; `args_ok` false (a required pointer is null)
// is CKR_ARGUMENTS_BAD, checked before the slot.
template <typename F>
CK_RV with_slot(CK_SLOT_ID slot, bool args_ok, F&& f) {
  return guard([&]() -> CK_RV {
    Module* m = module();
    if (!m) return CKR_CRYPTOKI_NOT_INITIALIZED;
    if (!args_ok) return CKR_ARGUMENTS_BAD;
    if (slot >= m->tokens.size()) return CKR_SLOT_ID_INVALID;
    return f(*m, *m->tokens[slot]);
  });
}

CK_RV session_of(Module* m, CK_SESSION_HANDLE h, std::shared_ptr<Session>& out) {
  std::lock_guard lock(m->mu);
  auto it = m->sessions.find(h);
  if (it == m->sessions.end()) return CKR_SESSION_HANDLE_INVALID;
  out = it->second;
  return CKR_OK;
}

// Runs `f(module, session, token)` for a valid session.
template <typename F>
CK_RV with_session(CK_SESSION_HANDLE h, F&& f) {
  return guard([&]() -> CK_RV {
    Module* m = module();
    if (!m) return CKR_CRYPTOKI_NOT_INITIALIZED;
    std::shared_ptr<Session> s;
    if (CK_RV rv = session_of(m, h, s); rv != CKR_OK) return rv;
    std::lock_guard lock(s->mu);
    return f(*m, *s, *m->tokens[s->slot]);
  });
}

// The PKCS#11 list convention (v2.40 5.2): a null buffer asks for the count, a short one
// gets CKR_BUFFER_TOO_SMALL with the count.
template <typename T>
CK_RV fill_list(const std::vector<T>& items, T* out, CK_ULONG_PTR count) {
  if (!out) {
    *count = items.size();
    return CKR_OK;
  }
  if (*count < items.size()) {
    *count = items.size();
    return CKR_BUFFER_TOO_SMALL;
  }
  std::copy(items.begin(), items.end(), out);
  *count = items.size();
  return CKR_OK;
}

// C_SignInit and C_VerifyInit: a private key signs, a public key verifies (v2.40 5.11/5.12).
CK_RV start_key_operation(Token& t, CK_OBJECT_HANDLE handle, SignOperation::Purpose purpose,
                          const CK_MECHANISM* mech, std::unique_ptr<SignOperation>& out) {
  const bool sign = purpose == SignOperation::Purpose::kSign;
  std::shared_ptr<Object> o;
  if (t.object(handle, o) != CKR_OK) return CKR_KEY_HANDLE_INVALID;
  if (o->kind != (sign ? Kind::kPrivateKey : Kind::kPublicKey))
    return CKR_KEY_FUNCTION_NOT_PERMITTED;
  KeyRef k;
  Signer signer;
  if (CK_RV rv = sign ? t.key(*o, k, signer) : t.public_key(*o, k); rv != CKR_OK) return rv;
  return SignOperation::start(purpose, mech, o->key_type, std::move(k), out, std::move(signer));
}

CK_RV not_supported() {
  return guard([] { return module() ? CKR_FUNCTION_NOT_SUPPORTED : CKR_CRYPTOKI_NOT_INITIALIZED; });
}

}  // namespace
}  // namespace certvault::pkcs11

using namespace certvault;
using namespace certvault::pkcs11;

// --- general ---------------------------------------------------------------------------

CV_EXPORT CK_RV C_Initialize(CK_VOID_PTR init_args) {
  return guard([&]() -> CK_RV {
    static std::once_flag atfork;
    std::call_once(atfork, [] { pthread_atfork(fork_prepare, fork_parent, fork_child); });
    if (init_args) {
      auto* a = static_cast<CK_C_INITIALIZE_ARGS*>(init_args);
      // v2.40 5.4: a non-NULL pReserved is an error; mutex callbacks come all or none.
      if (a->pReserved) return CKR_ARGUMENTS_BAD;
      int given = !!a->CreateMutex + !!a->DestroyMutex + !!a->LockMutex + !!a->UnlockMutex;
      if (given != 0 && given != 4) return CKR_ARGUMENTS_BAD;
      // certvault always locks with the operating system's primitives.
    }
    std::lock_guard lock(g_init);
    if (module()) return CKR_CRYPTOKI_ALREADY_INITIALIZED;
    if (sodium_init() < 0 || !ossl::libctx()) return CKR_FUNCTION_FAILED;
    auto m = std::make_unique<Module>();
    g_pid.store(::getpid(), std::memory_order_relaxed);
    m->pid = g_pid.load(std::memory_order_relaxed);
    for (const auto& v : configured_vaults()) {
      CV_DEBUG("slot %zu: vault %s", m->tokens.size(), v.dir.c_str());
      m->tokens.push_back(std::make_unique<Token>(v.dir, v.agent_name));
    }
    g_module.store(m.release(), std::memory_order_release);
    return CKR_OK;
  });
}

CV_EXPORT CK_RV C_Finalize(CK_VOID_PTR reserved) {
  return guard([&]() -> CK_RV {
    if (reserved) return CKR_ARGUMENTS_BAD;
    std::lock_guard lock(g_init);
    Module* m = module();
    if (!m) return CKR_CRYPTOKI_NOT_INITIALIZED;
    g_module.store(nullptr, std::memory_order_release);
    delete m;                // sessions end, tokens log out and wipe their keys
    ossl::release_libctx();  // the host may unload the module next
    return CKR_OK;
  });
}

namespace {
// v3.0 5.4, C_GetInfo, and 3.1, CK_INFO: cryptokiVersion is the version of the interface the
// caller reached the module through, the function list's own version.
CK_RV get_info(CK_INFO_PTR info, CK_VERSION version) {
  return guard([&]() -> CK_RV {
    if (!module()) return CKR_CRYPTOKI_NOT_INITIALIZED;
    if (!info) return CKR_ARGUMENTS_BAD;
    std::memset(info, 0, sizeof *info);
    info->cryptokiVersion = version;
    pad(info->manufacturerID, sizeof info->manufacturerID, "certvault");
    pad(info->libraryDescription, sizeof info->libraryDescription, "certvault PKCS#11 module");
    info->libraryVersion = {0, 1};
    return CKR_OK;
  });
}

// C_GetInfo of the v3.0 function list (C_GetInterface); the exported one is the v2.40 list's.
CK_RV C_GetInfo_v3(CK_INFO_PTR info) {
  return get_info(info, {3, 0});
}
}  // namespace

CV_EXPORT CK_RV C_GetInfo(CK_INFO_PTR info) {
  return get_info(info, {2, 40});
}

// --- slots and tokens ------------------------------------------------------------------

CV_EXPORT CK_RV C_GetSlotList(CK_BBOOL token_present_only, CK_SLOT_ID_PTR list,
                              CK_ULONG_PTR count) {
  return guard([&]() -> CK_RV {
    Module* m = module();
    if (!m) return CKR_CRYPTOKI_NOT_INITIALIZED;
    if (!count) return CKR_ARGUMENTS_BAD;
    std::vector<CK_SLOT_ID> ids;
    // Every slot holds a token: a vault, or a directory where C_InitToken can make one.
    (void)token_present_only;
    for (CK_SLOT_ID i = 0; i < m->tokens.size(); ++i) ids.push_back(i);
    return fill_list(ids, list, count);
  });
}

CV_EXPORT CK_RV C_GetSlotInfo(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info) {
  return with_slot(slot, info != nullptr, [&](Module&, Token& t) -> CK_RV {
    std::memset(info, 0, sizeof *info);
    pad(info->slotDescription, sizeof info->slotDescription, "certvault " + t.dir().string());
    pad(info->manufacturerID, sizeof info->manufacturerID, "certvault");
    info->flags = CKF_TOKEN_PRESENT;
    info->hardwareVersion = {0, 1};
    info->firmwareVersion = {0, 1};
    return CKR_OK;
  });
}

CV_EXPORT CK_RV C_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info) {
  return with_slot(slot, info != nullptr,
                   [&](Module&, Token& t) -> CK_RV { return t.token_info(info); });
}

CV_EXPORT CK_RV C_GetMechanismList(CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list,
                                   CK_ULONG_PTR count) {
  return with_slot(slot, count != nullptr, [&](Module&, Token&) -> CK_RV {
    return fill_list(all_mechanisms(), list, count);
  });
}

CV_EXPORT CK_RV C_GetMechanismInfo(CK_SLOT_ID slot, CK_MECHANISM_TYPE type,
                                   CK_MECHANISM_INFO_PTR info) {
  return with_slot(slot, info != nullptr,
                   [&](Module&, Token&) -> CK_RV { return mechanism_info(type, info); });
}

// --- sessions ----------------------------------------------------------------------------

CV_EXPORT CK_RV C_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR, CK_NOTIFY,
                              CK_SESSION_HANDLE_PTR out) {
  return with_slot(slot, out != nullptr, [&](Module& m, Token& t) -> CK_RV {
    if (!(flags & CKF_SERIAL_SESSION)) return CKR_SESSION_PARALLEL_NOT_SUPPORTED;
    if (!t.initialized()) return CKR_TOKEN_NOT_RECOGNIZED;  // C_InitToken first
    // v3.0 5.6.1: a vault the module will not open is refused here, with the reason in the log.
    if (CK_RV rv = t.open(); rv != CKR_OK) return rv;
    // v3.0 5.6, C_OpenSession: no read-only session while the security officer is logged in.
    if (!(flags & CKF_RW_SESSION) && t.so_logged_in()) return CKR_SESSION_READ_WRITE_SO_EXISTS;
    auto s = std::make_shared<Session>();
    s->slot = slot;
    s->flags = flags;
    std::lock_guard lock(m.mu);
    *out = m.next_session++;
    m.sessions[*out] = std::move(s);
    return CKR_OK;
  });
}

CV_EXPORT CK_RV C_CloseSession(CK_SESSION_HANDLE h) {
  return guard([&]() -> CK_RV {
    Module* m = module();
    if (!m) return CKR_CRYPTOKI_NOT_INITIALIZED;
    std::lock_guard lock(m->mu);
    return m->sessions.erase(h) ? CKR_OK : CKR_SESSION_HANDLE_INVALID;
  });
}

CV_EXPORT CK_RV C_CloseAllSessions(CK_SLOT_ID slot) {
  return with_slot(slot, true, [&](Module& m, Token&) -> CK_RV {
    std::lock_guard lock(m.mu);
    std::erase_if(m.sessions, [&](const auto& kv) { return kv.second->slot == slot; });
    return CKR_OK;
  });
}

CV_EXPORT CK_RV C_GetSessionInfo(CK_SESSION_HANDLE h, CK_SESSION_INFO_PTR info) {
  return with_session(h, [&](Module&, Session& s, Token& t) -> CK_RV {
    if (!info) return CKR_ARGUMENTS_BAD;
    const bool rw = s.flags & CKF_RW_SESSION;
    info->slotID = s.slot;
    info->flags = s.flags;
    info->ulDeviceError = 0;
    info->state = t.so_logged_in() ? CKS_RW_SO_FUNCTIONS
                  : t.logged_in()  ? (rw ? CKS_RW_USER_FUNCTIONS : CKS_RO_USER_FUNCTIONS)
                                   : (rw ? CKS_RW_PUBLIC_SESSION : CKS_RO_PUBLIC_SESSION);
    return CKR_OK;
  });
}

namespace {
// C_Login, and C_LoginUser without a user name.
CK_RV log_in(Module& m, Session& s, Token& t, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin,
             CK_ULONG pin_len) {
  if (user != CKU_USER && user != CKU_SO)
    return user == CKU_CONTEXT_SPECIFIC ? CKR_OPERATION_NOT_INITIALIZED : CKR_USER_TYPE_INVALID;
  // Through the agent the token has a protected authentication path (v2.40 5.6): the PIN
  // may be NULL, as the operator has unlocked the vault there.
  if (!pin && (pin_len != 0 || user != CKU_USER || !t.uses_agent())) return CKR_ARGUMENTS_BAD;
  // libp11 (and so curl) passes a whole PIN file, newline included; no PIN ends in one.
  SecureBytes secret = pin ? SecureBytes(pin, pin_len) : SecureBytes();
  drop_line_break(secret);
  if (user == CKU_USER) return t.login(secret);
  // v2.40 5.6, C_Login: the security officer needs every session of the slot read/write.
  {
    std::lock_guard lock(m.mu);
    for (const auto& [handle, other] : m.sessions)
      if (other->slot == s.slot && !(other->flags & CKF_RW_SESSION))
        return CKR_SESSION_READ_ONLY_EXISTS;
  }
  return t.login_so(secret);
}
}  // namespace

CV_EXPORT CK_RV C_Login(CK_SESSION_HANDLE h, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin,
                        CK_ULONG pin_len) {
  return with_session(h, [&](Module& m, Session& s, Token& t) -> CK_RV {
    return log_in(m, s, t, user, pin, pin_len);
  });
}

// v3.0 5.6, C_LoginUser: C_Login with a user name. A vault has one user and one security
// officer, neither with a name: without a name (NULL or empty) this is C_Login; a name is
// refused before the PIN is looked at, so that no one believes a named user logged in, and
// costs no PIN try.
CV_EXPORT CK_RV C_LoginUser(CK_SESSION_HANDLE h, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin,
                            CK_ULONG pin_len, [[maybe_unused]] CK_UTF8CHAR_PTR name,
                            CK_ULONG name_len) {
  return with_session(h, [&](Module& m, Session& s, Token& t) -> CK_RV {
    if (name_len != 0) return CKR_ARGUMENTS_BAD;  // whatever the name, or a NULL one
    return log_in(m, s, t, user, pin, pin_len);
  });
}

CV_EXPORT CK_RV C_Logout(CK_SESSION_HANDLE h) {
  return guard([&]() -> CK_RV {
    Module* m = module();
    if (!m) return CKR_CRYPTOKI_NOT_INITIALIZED;
    std::shared_ptr<Session> s;
    if (CK_RV rv = session_of(m, h, s); rv != CKR_OK) return rv;
    Token& t = *m->tokens[s->slot];
    if (!t.logged_in() && !t.so_logged_in()) return CKR_USER_NOT_LOGGED_IN;
    t.logout();
    // Logout ends every operation that uses a private key (v2.40 5.6, C_Logout).
    std::vector<std::shared_ptr<Session>> same_slot;
    {
      std::lock_guard lock(m->mu);
      for (auto& [handle, other] : m->sessions)
        if (other->slot == s->slot) same_slot.push_back(other);
    }
    for (auto& other : same_slot) {
      std::lock_guard lock(other->mu);
      other->sign.reset();
      other->finding = false;
    }
    return CKR_OK;
  });
}

CV_EXPORT CK_RV C_InitPIN(CK_SESSION_HANDLE h, CK_UTF8CHAR_PTR pin, CK_ULONG len) {
  return with_session(h, [&](Module&, Session& s, Token& t) -> CK_RV {
    if (!pin) return CKR_ARGUMENTS_BAD;
    if (!(s.flags & CKF_RW_SESSION)) return CKR_SESSION_READ_ONLY;
    return t.init_pin(SecureBytes(pin, len));
  });
}

CV_EXPORT CK_RV C_SetPIN(CK_SESSION_HANDLE h, CK_UTF8CHAR_PTR old_pin, CK_ULONG old_len,
                         CK_UTF8CHAR_PTR new_pin, CK_ULONG new_len) {
  return with_session(h, [&](Module&, Session& s, Token& t) -> CK_RV {
    if (!old_pin || !new_pin) return CKR_ARGUMENTS_BAD;
    if (!(s.flags & CKF_RW_SESSION)) return CKR_SESSION_READ_ONLY;
    // The old PIN is given as to C_Login; the new one is checked as it is (never trimmed).
    SecureBytes old_secret(old_pin, old_len);
    drop_line_break(old_secret);
    return t.set_pin(old_secret, SecureBytes(new_pin, new_len));
  });
}

CV_EXPORT CK_RV C_InitToken(CK_SLOT_ID slot, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len,
                            CK_UTF8CHAR_PTR label) {
  return with_slot(slot, true, [&](Module& m, Token& t) -> CK_RV {
    if (!pin || !label) return CKR_ARGUMENTS_BAD;  // no protected authentication path
    {
      std::lock_guard lock(m.mu);
      for (const auto& [handle, s] : m.sessions)
        if (s->slot == slot) return CKR_SESSION_EXISTS;
    }
    // 32 bytes, padded with blanks (v2.40 5.6).
    std::string_view name(reinterpret_cast<const char*>(label), 32);
    name = name.substr(0, name.find_last_not_of(' ') + 1);
    return t.init_token(SecureBytes(pin, pin_len), name);
  });
}

// --- objects -----------------------------------------------------------------------------

CV_EXPORT CK_RV C_CreateObject(CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR templ, CK_ULONG count,
                               CK_OBJECT_HANDLE_PTR out) {
  return with_session(h, [&](Module&, Session& s, Token& t) -> CK_RV {
    if ((!templ && count) || !out) return CKR_ARGUMENTS_BAD;
    const CK_ATTRIBUTE* class_attr = nullptr;
    for (CK_ULONG i = 0; i < count; ++i)
      if (templ[i].type == CKA_CLASS) class_attr = &templ[i];
    // v3.0 5.7, C_CreateObject, and 4.2: an object's class has no default.
    if (!class_attr) return CKR_TEMPLATE_INCOMPLETE;
    // v3.0 5.7, C_CreateObject: a read-only session may create session objects only, and
    // CKA_TOKEN is false unless the template says otherwise (4.4). The vault holds none: such a
    // template goes on to be refused as inconsistent (templates.cc), as in any session.
    CK_BBOOL token = CK_FALSE;
    for (CK_ULONG i = 0; i < count; ++i)
      if (templ[i].type == CKA_TOKEN && templ[i].pValue && templ[i].ulValueLen == sizeof token)
        std::memcpy(&token, templ[i].pValue, sizeof token);
    if (token && !(s.flags & CKF_RW_SESSION)) return CKR_SESSION_READ_ONLY;
    CK_OBJECT_CLASS cls = 0;
    if (class_attr->pValue && class_attr->ulValueLen == sizeof cls)
      std::memcpy(&cls, class_attr->pValue, sizeof cls);
    // Keys are made inside the vault (C_GenerateKeyPair), never imported through PKCS#11.
    if (cls != CKO_CERTIFICATE) return CKR_ATTRIBUTE_VALUE_INVALID;
    CertificateRequest request;
    if (CK_RV rv = parse_certificate(templ, count, request); rv != CKR_OK) return rv;
    return t.add_certificate(request, *out);
  });
}

CV_EXPORT CK_RV C_DestroyObject(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj) {
  return with_session(h, [&](Module&, Session& s, Token& t) -> CK_RV {
    if (!(s.flags & CKF_RW_SESSION)) return CKR_SESSION_READ_ONLY;
    return t.destroy(obj);
  });
}

CV_EXPORT CK_RV C_SetAttributeValue(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj,
                                    CK_ATTRIBUTE_PTR templ, CK_ULONG count) {
  return with_session(h, [&](Module&, Session& s, Token& t) -> CK_RV {
    if (!templ && count) return CKR_ARGUMENTS_BAD;
    if (!(s.flags & CKF_RW_SESSION)) return CKR_SESSION_READ_ONLY;
    return t.set_attributes(obj, templ, count);
  });
}

CV_EXPORT CK_RV C_GenerateKeyPair(CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech,
                                  CK_ATTRIBUTE_PTR pub_templ, CK_ULONG pub_count,
                                  CK_ATTRIBUTE_PTR priv_templ, CK_ULONG priv_count,
                                  CK_OBJECT_HANDLE_PTR pub, CK_OBJECT_HANDLE_PTR priv) {
  return with_session(h, [&](Module&, Session& s, Token& t) -> CK_RV {
    // v3.0 5.18.2, C_GenerateKeyPair (5.1.7: after the session)
    if (!mech || !pub || !priv) return CKR_ARGUMENTS_BAD;
    if ((!pub_templ && pub_count) || (!priv_templ && priv_count)) return CKR_ARGUMENTS_BAD;
    if (!(s.flags & CKF_RW_SESSION)) return CKR_SESSION_READ_ONLY;
    KeyPairRequest request;
    if (CK_RV rv = parse_key_pair(*mech, pub_templ, pub_count, priv_templ, priv_count, request);
        rv != CKR_OK)
      return rv;
    return t.generate_key_pair(request, *pub, *priv);
  });
}

CV_EXPORT CK_RV C_FindObjectsInit(CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR templ, CK_ULONG count) {
  return with_session(h, [&](Module&, Session& s, Token& t) -> CK_RV {
    if (!templ && count) return CKR_ARGUMENTS_BAD;
    if (s.finding) return CKR_OPERATION_ACTIVE;
    std::vector<std::shared_ptr<Object>> all;
    if (CK_RV rv = t.candidates(templ, count, all); rv != CKR_OK) return rv;
    s.found.clear();
    for (auto& o : all)
      if (t.matches(*o, templ, count)) s.found.push_back(o->handle);
    s.found_next = 0;
    s.finding = true;
    return CKR_OK;
  });
}

CV_EXPORT CK_RV C_FindObjects(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE_PTR out, CK_ULONG max,
                              CK_ULONG_PTR count) {
  return with_session(h, [&](Module&, Session& s, Token&) -> CK_RV {
    if (!out || !count) return CKR_ARGUMENTS_BAD;
    if (!s.finding) return CKR_OPERATION_NOT_INITIALIZED;
    CK_ULONG n = 0;
    while (n < max && s.found_next < s.found.size()) out[n++] = s.found[s.found_next++];
    *count = n;
    return CKR_OK;
  });
}

CV_EXPORT CK_RV C_FindObjectsFinal(CK_SESSION_HANDLE h) {
  return with_session(h, [&](Module&, Session& s, Token&) -> CK_RV {
    if (!s.finding) return CKR_OPERATION_NOT_INITIALIZED;
    s.finding = false;
    s.found.clear();
    return CKR_OK;
  });
}

CV_EXPORT CK_RV C_GetAttributeValue(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj,
                                    CK_ATTRIBUTE_PTR templ, CK_ULONG count) {
  return with_session(h, [&](Module&, Session&, Token& t) -> CK_RV {
    if (!templ && count) return CKR_ARGUMENTS_BAD;
    std::shared_ptr<Object> o;
    if (CK_RV rv = t.object(obj, o); rv != CKR_OK) return rv;
    return t.get_attributes(*o, templ, count);
  });
}

CV_EXPORT CK_RV C_GetObjectSize(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj, CK_ULONG_PTR size) {
  return with_session(h, [&](Module&, Session&, Token& t) -> CK_RV {
    if (!size) return CKR_ARGUMENTS_BAD;  // v3.0 5.7, C_GetObjectSize
    std::shared_ptr<Object> o;
    if (CK_RV rv = t.object(obj, o); rv != CKR_OK) return rv;
    return t.object_size(*o, *size);
  });
}

// --- signing -----------------------------------------------------------------------------

CV_EXPORT CK_RV C_SignInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key) {
  return with_session(h, [&](Module&, Session& s, Token& t) -> CK_RV {
    // v3.0 5.13.1 (5.1.7: after the session); NULL does not cancel (docs/pkcs11.md)
    if (!mech) return CKR_ARGUMENTS_BAD;
    if (s.sign) return CKR_OPERATION_ACTIVE;
    // Through the agent no login is needed: the agent decides who signs.
    if (!t.logged_in() && !t.uses_agent()) return CKR_USER_NOT_LOGGED_IN;
    s.sign_part = Session::Part::kNone;
    return start_key_operation(t, key, SignOperation::Purpose::kSign, mech, s.sign);
  });
}

CV_EXPORT CK_RV C_Sign(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig,
                       CK_ULONG_PTR sig_len) {
  return with_session(h, [&](Module&, Session& s, Token&) -> CK_RV {
    if (!s.sign) return CKR_OPERATION_NOT_INITIALIZED;
    // v3.0 5.13, C_Sign: it cannot terminate a multi-part operation; no code is named.
    if (s.sign_part == Session::Part::kMulti) {
      s.sign.reset();
      return CKR_FUNCTION_FAILED;
    }
    if ((!data && len) || !sig_len) {
      s.sign.reset();
      return CKR_ARGUMENTS_BAD;
    }
    if (!sig) {
      *sig_len = s.sign->signature_size();
      return CKR_OK;
    }
    if (s.sign_part == Session::Part::kNone) {
      if (CK_RV rv = s.sign->update(data, len); rv != CKR_OK) {
        s.sign.reset();
        return rv;
      }
      s.sign_part = Session::Part::kSingle;
    }
    CK_RV rv = s.sign->finish(sig, sig_len);
    // Any outcome but a short buffer ends the operation (v2.40 5.2).
    if (rv != CKR_BUFFER_TOO_SMALL) s.sign.reset();
    return rv;
  });
}

CV_EXPORT CK_RV C_SignUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len) {
  return with_session(h, [&](Module&, Session& s, Token&) -> CK_RV {
    if (!s.sign) return CKR_OPERATION_NOT_INITIALIZED;
    // v3.0 5.13: a C_Sign that kept the operation (a short buffer) has begun a single-part one.
    if (s.sign_part == Session::Part::kSingle) {
      s.sign.reset();
      return CKR_FUNCTION_FAILED;
    }
    // A single-part mechanism (SignOperation::multi_part); the code is SoftHSM2's.
    if (!s.sign->multi_part()) {
      s.sign.reset();
      return CKR_OPERATION_NOT_INITIALIZED;
    }
    if (!data && len) {
      s.sign.reset();
      return CKR_ARGUMENTS_BAD;
    }
    CK_RV rv = s.sign->update(data, len);
    if (rv != CKR_OK) s.sign.reset();
    s.sign_part = Session::Part::kMulti;
    return rv;
  });
}

CV_EXPORT CK_RV C_SignFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len) {
  return with_session(h, [&](Module&, Session& s, Token&) -> CK_RV {
    if (!s.sign) return CKR_OPERATION_NOT_INITIALIZED;
    // v3.0 5.13, C_SignFinal: it finishes a multi-part operation, not one C_Sign has begun.
    if (s.sign_part == Session::Part::kSingle || !sig_len) {
      s.sign.reset();
      return sig_len ? CKR_FUNCTION_FAILED : CKR_ARGUMENTS_BAD;
    }
    if (!s.sign->multi_part()) {  // a single-part mechanism, as in C_SignUpdate
      s.sign.reset();
      return CKR_OPERATION_NOT_INITIALIZED;
    }
    CK_RV rv = s.sign->finish(sig, sig_len);
    if (sig && rv != CKR_BUFFER_TOO_SMALL) s.sign.reset();
    return rv;
  });
}

CV_EXPORT CK_RV C_VerifyInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key) {
  return with_session(h, [&](Module&, Session& s, Token& t) -> CK_RV {
    // v3.0 5.15.1 (5.1.7: after the session); NULL does not cancel (docs/pkcs11.md)
    if (!mech) return CKR_ARGUMENTS_BAD;
    if (s.verify) return CKR_OPERATION_ACTIVE;
    s.verify_multi = false;
    return start_key_operation(t, key, SignOperation::Purpose::kVerify, mech, s.verify);
  });
}

CV_EXPORT CK_RV C_Verify(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig,
                         CK_ULONG sig_len) {
  return with_session(h, [&](Module&, Session& s, Token&) -> CK_RV {
    if (!s.verify) return CKR_OPERATION_NOT_INITIALIZED;
    auto op = std::move(s.verify);  // C_Verify always ends the operation
    // v3.0 5.15, C_Verify: it cannot terminate a multi-part operation; no code is named.
    if (s.verify_multi) return CKR_FUNCTION_FAILED;
    if ((!data && len) || !sig) return CKR_ARGUMENTS_BAD;
    if (CK_RV rv = op->update(data, len); rv != CKR_OK) return rv;
    return op->check(sig, sig_len);
  });
}

CV_EXPORT CK_RV C_VerifyUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len) {
  return with_session(h, [&](Module&, Session& s, Token&) -> CK_RV {
    if (!s.verify) return CKR_OPERATION_NOT_INITIALIZED;
    // A single-part mechanism (SignOperation::multi_part); the code is SoftHSM2's.
    if (!s.verify->multi_part()) {
      s.verify.reset();
      return CKR_OPERATION_NOT_INITIALIZED;
    }
    CK_RV rv = (!data && len) ? CKR_ARGUMENTS_BAD : s.verify->update(data, len);
    if (rv != CKR_OK) s.verify.reset();
    s.verify_multi = true;
    return rv;
  });
}

CV_EXPORT CK_RV C_VerifyFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR sig, CK_ULONG sig_len) {
  return with_session(h, [&](Module&, Session& s, Token&) -> CK_RV {
    if (!s.verify) return CKR_OPERATION_NOT_INITIALIZED;
    auto op = std::move(s.verify);
    if (!op->multi_part()) return CKR_OPERATION_NOT_INITIALIZED;  // as in C_VerifyUpdate
    if (!sig) return CKR_ARGUMENTS_BAD;
    return op->check(sig, sig_len);
  });
}

// --- digests and random --------------------------------------------------------------------

CV_EXPORT CK_RV C_DigestInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech) {
  return with_session(h, [&](Module&, Session& s, Token&) -> CK_RV {
    // v3.0 5.12.1 (5.1.7: after the session); NULL does not cancel (docs/pkcs11.md)
    if (!mech) return CKR_ARGUMENTS_BAD;
    if (s.digest) return CKR_OPERATION_ACTIVE;
    const char* name = mech->mechanism == CKM_SHA256   ? "SHA256"
                       : mech->mechanism == CKM_SHA384 ? "SHA384"
                       : mech->mechanism == CKM_SHA512 ? "SHA512"
                                                       : nullptr;
    if (!name) return CKR_MECHANISM_INVALID;
    ossl::MdCtx ctx(EVP_MD_CTX_new());
    ossl::Md md(EVP_MD_fetch(ossl::libctx(), name, nullptr));
    if (!ctx || !md || EVP_DigestInit_ex2(ctx.get(), md.get(), nullptr) != 1)
      return CKR_FUNCTION_FAILED;
    s.digest = std::move(ctx);
    s.digest_multi = false;
    return CKR_OK;
  });
}

namespace {
CK_RV digest_out(Session& s, CK_BYTE_PTR out, CK_ULONG_PTR out_len) {
  const auto size = static_cast<CK_ULONG>(EVP_MD_CTX_get_size(s.digest.get()));
  if (!out) {
    *out_len = size;
    return CKR_OK;
  }
  if (*out_len < size) {
    *out_len = size;
    return CKR_BUFFER_TOO_SMALL;
  }
  unsigned int n = 0;
  CK_RV rv = EVP_DigestFinal_ex(s.digest.get(), out, &n) == 1 ? CKR_OK : CKR_FUNCTION_FAILED;
  *out_len = n;
  s.digest.reset();
  return rv;
}
}  // namespace

CV_EXPORT CK_RV C_Digest(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR out,
                         CK_ULONG_PTR out_len) {
  return with_session(h, [&](Module&, Session& s, Token&) -> CK_RV {
    if (!s.digest) return CKR_OPERATION_NOT_INITIALIZED;
    // v3.0 5.12, C_Digest: it cannot terminate a multi-part operation; no code is named.
    if (s.digest_multi) {
      s.digest.reset();
      return CKR_FUNCTION_FAILED;
    }
    if ((!data && len) || !out_len) {
      s.digest.reset();
      return CKR_ARGUMENTS_BAD;
    }
    if (!out) return digest_out(s, out, out_len);  // size query: the data waits
    auto size = static_cast<CK_ULONG>(EVP_MD_CTX_get_size(s.digest.get()));
    if (*out_len < size) return digest_out(s, out, out_len);
    if (EVP_DigestUpdate(s.digest.get(), data, len) != 1) {
      s.digest.reset();
      return CKR_FUNCTION_FAILED;
    }
    return digest_out(s, out, out_len);
  });
}

CV_EXPORT CK_RV C_DigestUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len) {
  return with_session(h, [&](Module&, Session& s, Token&) -> CK_RV {
    if (!s.digest) return CKR_OPERATION_NOT_INITIALIZED;
    if ((!data && len) || EVP_DigestUpdate(s.digest.get(), data, len) != 1) {
      s.digest.reset();
      return data || !len ? CKR_FUNCTION_FAILED : CKR_ARGUMENTS_BAD;
    }
    s.digest_multi = true;
    return CKR_OK;
  });
}

CV_EXPORT CK_RV C_DigestFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG_PTR out_len) {
  return with_session(h, [&](Module&, Session& s, Token&) -> CK_RV {
    if (!s.digest) return CKR_OPERATION_NOT_INITIALIZED;
    // v3.0 5.2: only a length query and CKR_BUFFER_TOO_SMALL keep the operation.
    if (!out_len) {
      s.digest.reset();
      return CKR_ARGUMENTS_BAD;
    }
    return digest_out(s, out, out_len);
  });
}

CV_EXPORT CK_RV C_GenerateRandom(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG len) {
  return with_session(h, [&](Module&, Session&, Token&) -> CK_RV {
    if (!out && len) return CKR_ARGUMENTS_BAD;
    randombytes_buf(out, len);
    return CKR_OK;
  });
}

CV_EXPORT CK_RV C_SeedRandom(CK_SESSION_HANDLE h, CK_BYTE_PTR seed, CK_ULONG) {
  // v3.0 5.1: the session is checked first, then the arguments (5.19: pSeed is the seed).
  return with_session(h, [&](Module&, Session&, Token&) {
    return seed ? CKR_RANDOM_SEED_NOT_SUPPORTED : CKR_ARGUMENTS_BAD;  // libsodium takes no seed
  });
}

// --- parallel function management ------------------------------------------------------

// v3.0 5.20: legacy functions that return CKR_FUNCTION_NOT_PARALLEL (for a valid session).
CV_EXPORT CK_RV C_GetFunctionStatus(CK_SESSION_HANDLE h) {
  return with_session(h, [](Module&, Session&, Token&) { return CKR_FUNCTION_NOT_PARALLEL; });
}

CV_EXPORT CK_RV C_CancelFunction(CK_SESSION_HANDLE h) {
  return with_session(h, [](Module&, Session&, Token&) { return CKR_FUNCTION_NOT_PARALLEL; });
}

// v3.0 5.6, C_SessionCancel: ends the session's operations named in `flags` (CK_MECHANISM_INFO
// flags, and CKF_FIND_OBJECTS for a search). An operation that is not active is ignored, and
// no flag changes nothing. The module can end each of its operations at any time, so
// CKR_OPERATION_CANCEL_FAILED is never returned; the others (encryption, message-based, ...)
// are never active.
CV_EXPORT CK_RV C_SessionCancel(CK_SESSION_HANDLE h, CK_FLAGS flags) {
  return with_session(h, [&](Module&, Session& s, Token&) -> CK_RV {
    if (flags & CKF_SIGN) s.sign.reset();
    if (flags & CKF_VERIFY) s.verify.reset();
    if (flags & CKF_DIGEST) s.digest.reset();
    if (flags & CKF_FIND_OBJECTS) {
      s.finding = false;
      s.found.clear();
    }
    return CKR_OK;
  });
}

// --- not supported: each returns CKR_FUNCTION_NOT_SUPPORTED ---------------------

#define CV_UNSUPPORTED(name, params) \
  CV_EXPORT CK_RV name params {      \
    return not_supported();          \
  }

CV_UNSUPPORTED(C_GetOperationState, (CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG_PTR))
CV_UNSUPPORTED(C_SetOperationState,
               (CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_OBJECT_HANDLE, CK_OBJECT_HANDLE))
CV_UNSUPPORTED(C_CopyObject, (CK_SESSION_HANDLE, CK_OBJECT_HANDLE, CK_ATTRIBUTE_PTR, CK_ULONG,
                              CK_OBJECT_HANDLE_PTR))
CV_UNSUPPORTED(C_EncryptInit, (CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE))
CV_UNSUPPORTED(C_Encrypt, (CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR))
CV_UNSUPPORTED(C_EncryptUpdate,
               (CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR))
CV_UNSUPPORTED(C_EncryptFinal, (CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG_PTR))
CV_UNSUPPORTED(C_DecryptInit, (CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE))
CV_UNSUPPORTED(C_Decrypt, (CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR))
CV_UNSUPPORTED(C_DecryptUpdate,
               (CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR))
CV_UNSUPPORTED(C_DecryptFinal, (CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG_PTR))
CV_UNSUPPORTED(C_DigestKey, (CK_SESSION_HANDLE, CK_OBJECT_HANDLE))
CV_UNSUPPORTED(C_SignRecoverInit, (CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE))
CV_UNSUPPORTED(C_SignRecover, (CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR))
CV_UNSUPPORTED(C_VerifyRecoverInit, (CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE))
CV_UNSUPPORTED(C_VerifyRecover,
               (CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR))
CV_UNSUPPORTED(C_DigestEncryptUpdate,
               (CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR))
CV_UNSUPPORTED(C_DecryptDigestUpdate,
               (CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR))
CV_UNSUPPORTED(C_SignEncryptUpdate,
               (CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR))
CV_UNSUPPORTED(C_DecryptVerifyUpdate,
               (CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR))
CV_UNSUPPORTED(C_GenerateKey, (CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_ATTRIBUTE_PTR, CK_ULONG,
                               CK_OBJECT_HANDLE_PTR))
CV_UNSUPPORTED(C_WrapKey, (CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE, CK_OBJECT_HANDLE,
                           CK_BYTE_PTR, CK_ULONG_PTR))
CV_UNSUPPORTED(C_UnwrapKey, (CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE, CK_BYTE_PTR,
                             CK_ULONG, CK_ATTRIBUTE_PTR, CK_ULONG, CK_OBJECT_HANDLE_PTR))
CV_UNSUPPORTED(C_DeriveKey, (CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE,
                             CK_ATTRIBUTE_PTR, CK_ULONG, CK_OBJECT_HANDLE_PTR))
CV_UNSUPPORTED(C_WaitForSlotEvent, (CK_FLAGS, CK_SLOT_ID_PTR, CK_VOID_PTR))
CV_UNSUPPORTED(C_MessageInit3, (CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE))
CV_UNSUPPORTED(C_Message3, (CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG,
                            CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR))
CV_UNSUPPORTED(C_MessageBegin3, (CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG))
CV_UNSUPPORTED(C_MessageNext3, (CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG,
                                CK_BYTE_PTR, CK_ULONG_PTR, CK_FLAGS))
CV_UNSUPPORTED(C_MessageFinal3, (CK_SESSION_HANDLE))
CV_UNSUPPORTED(C_SignMessage3, (CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG,
                                CK_BYTE_PTR, CK_ULONG_PTR))
CV_UNSUPPORTED(C_SignMessageBegin3, (CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG))
CV_UNSUPPORTED(C_VerifyMessage3, (CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG,
                                  CK_BYTE_PTR, CK_ULONG))
CV_UNSUPPORTED(C_VerifyMessageNext3, (CK_SESSION_HANDLE, CK_VOID_PTR, CK_ULONG, CK_BYTE_PTR,
                                      CK_ULONG, CK_BYTE_PTR, CK_ULONG))

// --- function lists and interfaces -----------------------------------------------------

CV_EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out);
CV_EXPORT CK_RV C_GetInterfaceList(CK_INTERFACE_PTR list, CK_ULONG_PTR count);
CV_EXPORT CK_RV C_GetInterface(CK_UTF8CHAR_PTR name, CK_VERSION_PTR version,
                               CK_INTERFACE_PTR_PTR out, CK_FLAGS flags);

namespace {

// The v2.40 functions in order; each list has the C_GetInfo that states its own version.
#define CV_V240_FUNCTIONS(get_info)                                                                \
  C_Initialize, C_Finalize, get_info, C_GetFunctionList, C_GetSlotList, C_GetSlotInfo,             \
      C_GetTokenInfo, C_GetMechanismList, C_GetMechanismInfo, C_InitToken, C_InitPIN, C_SetPIN,    \
      C_OpenSession, C_CloseSession, C_CloseAllSessions, C_GetSessionInfo, C_GetOperationState,    \
      C_SetOperationState, C_Login, C_Logout, C_CreateObject, C_CopyObject, C_DestroyObject,       \
      C_GetObjectSize, C_GetAttributeValue, C_SetAttributeValue, C_FindObjectsInit, C_FindObjects, \
      C_FindObjectsFinal, C_EncryptInit, C_Encrypt, C_EncryptUpdate, C_EncryptFinal,               \
      C_DecryptInit, C_Decrypt, C_DecryptUpdate, C_DecryptFinal, C_DigestInit, C_Digest,           \
      C_DigestUpdate, C_DigestKey, C_DigestFinal, C_SignInit, C_Sign, C_SignUpdate, C_SignFinal,   \
      C_SignRecoverInit, C_SignRecover, C_VerifyInit, C_Verify, C_VerifyUpdate, C_VerifyFinal,     \
      C_VerifyRecoverInit, C_VerifyRecover, C_DigestEncryptUpdate, C_DecryptDigestUpdate,          \
      C_SignEncryptUpdate, C_DecryptVerifyUpdate, C_GenerateKey, C_GenerateKeyPair, C_WrapKey,     \
      C_UnwrapKey, C_DeriveKey, C_SeedRandom, C_GenerateRandom, C_GetFunctionStatus,               \
      C_CancelFunction, C_WaitForSlotEvent

CK_FUNCTION_LIST g_v240 = {{2, 40}, CV_V240_FUNCTIONS(C_GetInfo)};

CK_FUNCTION_LIST_3_0 g_v300 = {
    {3, 0},
    CV_V240_FUNCTIONS(C_GetInfo_v3),
    C_GetInterfaceList,
    C_GetInterface,
    C_LoginUser,
    C_SessionCancel,
    C_MessageInit3,
    C_Message3,
    C_MessageBegin3,
    C_MessageNext3,
    C_MessageFinal3,
    C_MessageInit3,
    C_Message3,
    C_MessageBegin3,
    C_MessageNext3,
    C_MessageFinal3,
    C_MessageInit3,
    C_SignMessage3,
    C_SignMessageBegin3,
    C_SignMessage3,
    C_MessageFinal3,
    C_MessageInit3,
    C_VerifyMessage3,
    C_SignMessageBegin3,
    C_VerifyMessageNext3,
    C_MessageFinal3,
};

char g_name[] = "PKCS 11";
CK_INTERFACE g_interfaces[] = {
    {g_name, &g_v300, 0},
    {g_name, &g_v240, 0},
};

}  // namespace

CV_EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out) {
  if (!out) return CKR_ARGUMENTS_BAD;
  *out = &g_v240;
  return CKR_OK;
}

CV_EXPORT CK_RV C_GetInterfaceList(CK_INTERFACE_PTR list, CK_ULONG_PTR count) {
  if (!count) return CKR_ARGUMENTS_BAD;
  constexpr CK_ULONG n = sizeof g_interfaces / sizeof g_interfaces[0];
  if (!list) {
    *count = n;
    return CKR_OK;
  }
  if (*count < n) {
    *count = n;
    return CKR_BUFFER_TOO_SMALL;
  }
  std::memcpy(list, g_interfaces, sizeof g_interfaces);
  *count = n;
  return CKR_OK;
}

CV_EXPORT CK_RV C_GetInterface(CK_UTF8CHAR_PTR name, CK_VERSION_PTR version,
                               CK_INTERFACE_PTR_PTR out, CK_FLAGS flags) {
  if (!out) return CKR_ARGUMENTS_BAD;
  for (auto& i : g_interfaces) {
    if (name && std::strcmp(reinterpret_cast<const char*>(name), "PKCS 11") != 0) continue;
    const CK_VERSION v = *static_cast<CK_VERSION*>(i.pFunctionList);
    if (version && (version->major != v.major || version->minor != v.minor)) continue;
    if ((flags & i.flags) != flags) continue;
    *out = &i;
    return CKR_OK;
  }
  return CKR_ARGUMENTS_BAD;
}
