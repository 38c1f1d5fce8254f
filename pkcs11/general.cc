// General-purpose functions (PKCS#11 v3.0 5.4: C_Initialize, C_Finalize, C_GetInfo) and slot
// and token management (5.5: slots, tokens, mechanisms, C_InitToken, C_InitPIN, C_SetPIN).
#include <pthread.h>
#include <sodium.h>
#include <unistd.h>

#include <cstring>

#include "certvault_build.h"
#include "config.h"
#include "errors.h"
#include "functions.h"
#include "pin_source.h"

namespace certvault::pkcs11 {

CK_RV initialize(CK_VOID_PTR init_args) {
  install_fork_handlers();
  if (init_args) {
    auto* a = static_cast<CK_C_INITIALIZE_ARGS*>(init_args);
    // v3.0 5.4, C_Initialize: a non-NULL pReserved is an error; mutex callbacks come all or none.
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
    m->tokens.push_back(std::make_unique<Token>(v.dir, v.agent_name, v.agent_socket));
  }
  g_module.store(m.release(), std::memory_order_release);
  return CKR_OK;
}

CK_RV finalize(CK_VOID_PTR reserved) {
  if (reserved) return CKR_ARGUMENTS_BAD;  // v3.0 5.4, C_Finalize
  std::lock_guard lock(g_init);
  Module* m = module();
  if (!m) return CKR_CRYPTOKI_NOT_INITIALIZED;
  g_module.store(nullptr, std::memory_order_release);
  delete m;                // sessions end, tokens log out and wipe their keys
  ossl::release_libctx();  // the host may unload the module next
  return CKR_OK;
}

// v3.0 5.4.3, C_GetInfo, and 3.1, CK_INFO: cryptokiVersion is the version of the interface the
// caller reached the module through, the function list's own version (3.6: that of
// CK_FUNCTION_LIST_3_0 "must be 3.0 at minimum").
void library_info(CK_INFO& info, CK_VERSION version) {
  std::memset(&info, 0, sizeof info);
  info.cryptokiVersion = version;
  pad(info.manufacturerID, sizeof info.manufacturerID, "certvault");
  pad(info.libraryDescription, sizeof info.libraryDescription, "certvault PKCS#11 module");
  info.libraryVersion = {CERTVAULT_VERSION_MAJOR, CERTVAULT_VERSION_MINOR};
}

CK_RV slot_list(Module& m, CK_SLOT_ID_PTR list, CK_ULONG_PTR count) {
  // Every slot holds a token: a vault, or a directory where C_InitToken can make one; so
  // tokenPresent changes nothing (v3.0 5.5.1, C_GetSlotList).
  std::vector<CK_SLOT_ID> ids;
  for (CK_SLOT_ID i = 0; i < m.tokens.size(); ++i) ids.push_back(i);
  return fill_list(ids, list, count);
}

void slot_info(Token& t, CK_SLOT_INFO& info) {
  std::memset(&info, 0, sizeof info);
  pad(info.slotDescription, sizeof info.slotDescription, "certvault " + t.dir().string());
  pad(info.manufacturerID, sizeof info.manufacturerID, "certvault");
  info.flags = CKF_TOKEN_PRESENT;
  info.hardwareVersion = {0, 1};
  info.firmwareVersion = {0, 1};
}

CK_RV init_token(Module& m, Token& t, CK_SLOT_ID slot, const SecureBytes& so_pin,
                 std::string_view label) {
  {
    // v3.0 5.5.7, C_InitToken: no session may be open with the token.
    std::lock_guard lock(m.mu);
    for (const auto& [handle, s] : m.sessions)
      if (s->slot == slot) return CKR_SESSION_EXISTS;
  }
  return t.init_token(so_pin, label);
}

CK_RV init_pin(Session& s, Token& t, const SecureBytes& pin) {
  if (!(s.flags & CKF_RW_SESSION)) return CKR_SESSION_READ_ONLY;  // v3.0 5.5.8, C_InitPIN
  return t.init_pin(pin);
}

CK_RV set_pin(Session& s, Token& t, SecureBytes old_pin, const SecureBytes& new_pin) {
  if (!(s.flags & CKF_RW_SESSION)) return CKR_SESSION_READ_ONLY;  // v3.0 5.5.9, C_SetPIN
  // The old PIN is given as to C_Login; the new one is checked as it is (never trimmed).
  drop_line_break(old_pin);
  return t.set_pin(old_pin, new_pin);
}

}  // namespace certvault::pkcs11
