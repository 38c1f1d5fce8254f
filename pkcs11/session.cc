// Session management (PKCS#11 v3.0 5.6: sessions, login and logout, C_SessionCancel) and the
// legacy parallel function management (5.20).
#include "functions.h"
#include "pin_source.h"

namespace certvault::pkcs11 {

CK_RV open_session(Module& m, Token& t, CK_SLOT_ID slot, CK_FLAGS flags, CK_SESSION_HANDLE& out) {
  if (!(flags & CKF_SERIAL_SESSION)) return CKR_SESSION_PARALLEL_NOT_SUPPORTED;
  if (!t.initialized()) return CKR_TOKEN_NOT_RECOGNIZED;  // C_InitToken first
  // v3.0 5.6, C_OpenSession: a vault the module will not open is a token it does not
  // recognise (5.1.6); the reason is in the debug log.
  if (CK_RV rv = t.open(); rv != CKR_OK) return rv;
  // v3.0 5.6, C_OpenSession: no read-only session while the security officer is logged in.
  if (!(flags & CKF_RW_SESSION) && t.so_logged_in()) return CKR_SESSION_READ_WRITE_SO_EXISTS;
  auto s = std::make_shared<Session>();
  s->slot = slot;
  s->flags = flags;
  t.session_opened();  // before anyone can close it
  std::lock_guard lock(m.mu);
  out = m.next_session++;
  m.sessions[out] = std::move(s);
  return CKR_OK;
}

// v3.0 5.6.2, C_CloseSession: the session objects it made are destroyed with it, even while
// other sessions use them.
CK_RV close_session(Module& m, CK_SESSION_HANDLE h) {
  std::shared_ptr<Session> s;
  {
    std::lock_guard lock(m.mu);
    auto it = m.sessions.find(h);
    if (it == m.sessions.end()) return CKR_SESSION_HANDLE_INVALID;
    s = std::move(it->second);
    m.sessions.erase(it);
  }
  {
    std::lock_guard lock(s->mu);  // after a call running in it, before one that found it
    s->closed = true;
    m.tokens[s->slot]->drop_session_objects(h);
  }
  m.tokens[s->slot]->sessions_closed(1);  // the last one logs out (v3.0 5.6.2)
  return CKR_OK;
}

// v3.0 5.6.3, C_CloseAllSessions: as C_CloseSession for each session of the slot.
CK_RV close_all_sessions(Module& m, CK_SLOT_ID slot) {
  std::vector<std::shared_ptr<Session>> closing;
  {
    std::lock_guard lock(m.mu);
    for (auto it = m.sessions.begin(); it != m.sessions.end();) {
      if (it->second->slot != slot) {
        ++it;
        continue;
      }
      closing.push_back(std::move(it->second));
      it = m.sessions.erase(it);
    }
  }
  for (auto& s : closing) {
    std::lock_guard lock(s->mu);
    s->closed = true;
  }
  m.tokens[slot]->drop_session_objects(std::nullopt);
  m.tokens[slot]->sessions_closed(closing.size());
  return CKR_OK;
}

void session_info(const Session& s, Token& t, CK_SESSION_INFO& info) {
  const bool rw = s.flags & CKF_RW_SESSION;
  info.slotID = s.slot;
  info.flags = s.flags;
  info.ulDeviceError = 0;
  info.state = t.so_logged_in() ? CKS_RW_SO_FUNCTIONS
               : t.logged_in()  ? (rw ? CKS_RW_USER_FUNCTIONS : CKS_RO_USER_FUNCTIONS)
                                : (rw ? CKS_RW_PUBLIC_SESSION : CKS_RO_PUBLIC_SESSION);
}

// C_Login, and C_LoginUser without a user name.
CK_RV log_in(Module& m, Session& s, Token& t, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin,
             CK_ULONG pin_len) {
  if (user != CKU_USER && user != CKU_SO)
    return user == CKU_CONTEXT_SPECIFIC ? CKR_OPERATION_NOT_INITIALIZED : CKR_USER_TYPE_INVALID;
  // Through the agent the token has a protected authentication path (v3.0 5.6, C_Login):
  // the PIN may be NULL, as the operator has unlocked the vault there.
  if (!pin && (pin_len != 0 || user != CKU_USER || !t.uses_agent())) return CKR_ARGUMENTS_BAD;
  // libp11 (and so curl) passes a whole PIN file, newline included; no PIN ends in one.
  SecureBytes secret = pin ? SecureBytes(pin, pin_len) : SecureBytes();
  drop_line_break(secret);
  if (user == CKU_USER) return t.login(secret);
  // v3.0 5.6, C_Login: the security officer needs every session of the slot read/write.
  {
    std::lock_guard lock(m.mu);
    for (const auto& [handle, other] : m.sessions)
      if (other->slot == s.slot && !(other->flags & CKF_RW_SESSION))
        return CKR_SESSION_READ_ONLY_EXISTS;
  }
  return t.login_so(secret);
}

// v3.0 5.6, C_LoginUser: C_Login with a user name. A vault has one user and one security
// officer, neither with a name: without a name (NULL or empty) this is C_Login; a name is
// refused before the PIN is looked at, so that no one believes a named user logged in, and
// costs no PIN try.
CK_RV log_in_user(Module& m, Session& s, Token& t, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin,
                  CK_ULONG pin_len, CK_ULONG name_len) {
  if (name_len != 0) return CKR_ARGUMENTS_BAD;  // whatever the name, or a NULL one
  return log_in(m, s, t, user, pin, pin_len);
}

// Called without the session's lock: it takes the lock of every session of the slot.
CK_RV log_out(Module& m, const Session& s, Token& t) {
  if (!t.logged_in() && !t.so_logged_in()) return CKR_USER_NOT_LOGGED_IN;
  t.logout();
  // v3.0 5.6.10, C_Logout: an active operation "may or may not" stay active; the module ends
  // every one that uses a private key, and every search.
  std::vector<std::shared_ptr<Session>> same_slot;
  {
    std::lock_guard lock(m.mu);
    for (auto& [handle, other] : m.sessions)
      if (other->slot == s.slot) same_slot.push_back(other);
  }
  for (auto& other : same_slot) {
    std::lock_guard lock(other->mu);
    other->sign.reset();
    other->finding = false;
  }
  return CKR_OK;
}

// v3.0 5.6, C_SessionCancel: ends the session's operations named in `flags` (CK_MECHANISM_INFO
// flags, and CKF_FIND_OBJECTS for a search). An operation that is not active is ignored, and
// no flag changes nothing. The module can end each of its operations at any time, so
// CKR_OPERATION_CANCEL_FAILED is never returned; the others (encryption, message-based, ...)
// are never active.
CK_RV session_cancel(Session& s, CK_FLAGS flags) {
  if (flags & CKF_SIGN) s.sign.reset();
  if (flags & CKF_VERIFY) s.verify.reset();
  if (flags & CKF_DIGEST) s.digest.reset();
  if (flags & CKF_FIND_OBJECTS) {
    s.finding = false;
    s.found.clear();
  }
  return CKR_OK;
}

// v3.0 5.20: C_GetFunctionStatus and C_CancelFunction are legacy functions that return
// CKR_FUNCTION_NOT_PARALLEL (for a valid session).
CK_RV function_status(Session&) {
  return CKR_FUNCTION_NOT_PARALLEL;
}

}  // namespace certvault::pkcs11
