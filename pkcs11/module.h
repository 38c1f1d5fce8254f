// The module's state, shared by the files of each chapter of the function list: the tokens
// (one per slot), the sessions, and how a call finds its slot or session. C_Initialize makes
// it (general.cc), C_Finalize ends it.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <new>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ck.h"
#include "mechanisms.h"
#include "ossl.h"
#include "token.h"

namespace certvault::pkcs11 {

struct Session {
  CK_SLOT_ID slot = 0;
  CK_FLAGS flags = 0;
  std::mutex mu;  // one operation at a time per session
  // Set under `mu` by C_CloseSession: a call that found the session before it closed does
  // not run, so that no session object outlives its session.
  bool closed = false;
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
extern std::mutex g_init;
extern std::atomic<Module*> g_module;
// This process's id, kept by the fork handler so that the calls on the signing path make
// no system call to learn it.
extern std::atomic<pid_t> g_pid;
void install_fork_handlers();

// The module of this process, or null before C_Initialize (and in a forked child).
Module* module();

// No C++ exception crosses the C ABI: each entry point runs inside this.
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

CK_RV session_of(Module* m, CK_SESSION_HANDLE h, std::shared_ptr<Session>& out);

// Runs `f(module, session, token)` for a valid session, holding the session's lock.
template <typename F>
CK_RV with_session(CK_SESSION_HANDLE h, F&& f) {
  return guard([&]() -> CK_RV {
    Module* m = module();
    if (!m) return CKR_CRYPTOKI_NOT_INITIALIZED;
    std::shared_ptr<Session> s;
    if (CK_RV rv = session_of(m, h, s); rv != CKR_OK) return rv;
    std::lock_guard lock(s->mu);
    if (s->closed) return CKR_SESSION_HANDLE_INVALID;
    return f(*m, *s, *m->tokens[s->slot]);
  });
}

// The PKCS#11 list convention of C_GetSlotList and C_GetMechanismList (v3.0 5.5.1, 5.5.5): a
// null buffer asks for the count, a short one gets CKR_BUFFER_TOO_SMALL with the count.
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

// A blank-padded CK_UTF8CHAR field.
void pad(CK_UTF8CHAR* dst, size_t n, std::string_view s);

}  // namespace certvault::pkcs11
