// The C ABI: the exported PKCS#11 functions and the function lists. Each function is a thin
// shim: it never lets a C++ exception out (guard), finds the module and its slot or session
// (with_slot, with_session; v3.0 5.1.7: their errors come first), checks the pointers it
// cannot do without, and calls what the function does, in the file of its chapter of the
// specification's function list (functions.h).
#include <string_view>

#include "ck.h"
#include "functions.h"
#include "mechanisms.h"

#define CV_EXPORT extern "C" __attribute__((visibility("default")))

using namespace certvault;
using namespace certvault::pkcs11;

namespace {

CK_RV not_supported() {
  return guard([] { return module() ? CKR_FUNCTION_NOT_SUPPORTED : CKR_CRYPTOKI_NOT_INITIALIZED; });
}

// v3.0 5.4, C_GetInfo: the version of the function list it was reached through.
CK_RV get_info(CK_INFO_PTR info, CK_VERSION version) {
  return guard([&]() -> CK_RV {
    if (!module()) return CKR_CRYPTOKI_NOT_INITIALIZED;
    if (!info) return CKR_ARGUMENTS_BAD;
    library_info(*info, version);
    return CKR_OK;
  });
}

// C_GetInfo of the v3.0 function list (C_GetInterface); the exported one is the v2.40 list's.
CK_RV C_GetInfo_v3(CK_INFO_PTR info) {
  return get_info(info, {3, 0});
}

}  // namespace

// --- general-purpose functions (5.4) ---------------------------------------------------

CV_EXPORT CK_RV C_Initialize(CK_VOID_PTR init_args) {
  return guard([&] { return initialize(init_args); });
}

CV_EXPORT CK_RV C_Finalize(CK_VOID_PTR reserved) {
  return guard([&] { return finalize(reserved); });
}

CV_EXPORT CK_RV C_GetInfo(CK_INFO_PTR info) {
  return get_info(info, {2, 40});
}

// --- slot and token management (5.5) ---------------------------------------------------

CV_EXPORT CK_RV C_GetSlotList(CK_BBOOL, CK_SLOT_ID_PTR list, CK_ULONG_PTR count) {
  return guard([&]() -> CK_RV {
    Module* m = module();
    if (!m) return CKR_CRYPTOKI_NOT_INITIALIZED;
    if (!count) return CKR_ARGUMENTS_BAD;
    return slot_list(*m, list, count);
  });
}

CV_EXPORT CK_RV C_GetSlotInfo(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info) {
  return with_slot(slot, info != nullptr, [&](Module&, Token& t) -> CK_RV {
    slot_info(t, *info);
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

CV_EXPORT CK_RV C_InitToken(CK_SLOT_ID slot, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len,
                            CK_UTF8CHAR_PTR label) {
  return with_slot(slot, true, [&](Module& m, Token& t) -> CK_RV {
    if (!pin || !label) return CKR_ARGUMENTS_BAD;  // no protected authentication path
    // 32 bytes, padded with blanks (v3.0 5.5.7, C_InitToken).
    std::string_view name(reinterpret_cast<const char*>(label), 32);
    name = name.substr(0, name.find_last_not_of(' ') + 1);
    return init_token(m, t, slot, SecureBytes(pin, pin_len), name);
  });
}

CV_EXPORT CK_RV C_InitPIN(CK_SESSION_HANDLE h, CK_UTF8CHAR_PTR pin, CK_ULONG len) {
  return with_session(h, [&](Module&, Session& s, Token& t) -> CK_RV {
    if (!pin) return CKR_ARGUMENTS_BAD;
    return init_pin(s, t, SecureBytes(pin, len));
  });
}

CV_EXPORT CK_RV C_SetPIN(CK_SESSION_HANDLE h, CK_UTF8CHAR_PTR old_pin, CK_ULONG old_len,
                         CK_UTF8CHAR_PTR new_pin, CK_ULONG new_len) {
  return with_session(h, [&](Module&, Session& s, Token& t) -> CK_RV {
    if (!old_pin || !new_pin) return CKR_ARGUMENTS_BAD;
    return set_pin(s, t, SecureBytes(old_pin, old_len), SecureBytes(new_pin, new_len));
  });
}

// --- session management (5.6) ----------------------------------------------------------

CV_EXPORT CK_RV C_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR, CK_NOTIFY,
                              CK_SESSION_HANDLE_PTR out) {
  return with_slot(slot, out != nullptr, [&](Module& m, Token& t) -> CK_RV {
    return open_session(m, t, slot, flags, *out);
  });
}

CV_EXPORT CK_RV C_CloseSession(CK_SESSION_HANDLE h) {
  return guard([&]() -> CK_RV {
    Module* m = module();
    if (!m) return CKR_CRYPTOKI_NOT_INITIALIZED;
    return close_session(*m, h);
  });
}

CV_EXPORT CK_RV C_CloseAllSessions(CK_SLOT_ID slot) {
  return with_slot(slot, true,
                   [&](Module& m, Token&) -> CK_RV { return close_all_sessions(m, slot); });
}

CV_EXPORT CK_RV C_GetSessionInfo(CK_SESSION_HANDLE h, CK_SESSION_INFO_PTR info) {
  return with_session(h, [&](Module&, Session& s, Token& t) -> CK_RV {
    if (!info) return CKR_ARGUMENTS_BAD;
    session_info(s, t, *info);
    return CKR_OK;
  });
}

CV_EXPORT CK_RV C_Login(CK_SESSION_HANDLE h, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin,
                        CK_ULONG pin_len) {
  return with_session(h, [&](Module& m, Session& s, Token& t) -> CK_RV {
    return log_in(m, s, t, user, pin, pin_len);
  });
}

CV_EXPORT CK_RV C_LoginUser(CK_SESSION_HANDLE h, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin,
                            CK_ULONG pin_len, [[maybe_unused]] CK_UTF8CHAR_PTR name,
                            CK_ULONG name_len) {
  return with_session(h, [&](Module& m, Session& s, Token& t) -> CK_RV {
    return log_in_user(m, s, t, user, pin, pin_len, name_len);
  });
}

CV_EXPORT CK_RV C_Logout(CK_SESSION_HANDLE h) {
  // Not with_session: log_out takes the lock of every session of the slot, this one too.
  return guard([&]() -> CK_RV {
    Module* m = module();
    if (!m) return CKR_CRYPTOKI_NOT_INITIALIZED;
    std::shared_ptr<Session> s;
    if (CK_RV rv = session_of(m, h, s); rv != CKR_OK) return rv;
    return log_out(*m, *s, *m->tokens[s->slot]);
  });
}

CV_EXPORT CK_RV C_SessionCancel(CK_SESSION_HANDLE h, CK_FLAGS flags) {
  return with_session(
      h, [&](Module&, Session& s, Token&) -> CK_RV { return session_cancel(s, flags); });
}

// --- object management (5.7) -----------------------------------------------------------

CV_EXPORT CK_RV C_CreateObject(CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR templ, CK_ULONG count,
                               CK_OBJECT_HANDLE_PTR out) {
  return with_session(h, [&](Module&, Session& s, Token& t) -> CK_RV {
    if ((!templ && count) || !out) return CKR_ARGUMENTS_BAD;
    return create_object(s, t, templ, count, *out, h);
  });
}

CV_EXPORT CK_RV C_DestroyObject(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj) {
  return with_session(
      h, [&](Module&, Session& s, Token& t) -> CK_RV { return destroy_object(s, t, obj); });
}

CV_EXPORT CK_RV C_GetObjectSize(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj, CK_ULONG_PTR size) {
  return with_session(h, [&](Module&, Session&, Token& t) -> CK_RV {
    if (!size) return CKR_ARGUMENTS_BAD;  // v3.0 5.7, C_GetObjectSize
    return object_size(t, obj, *size);
  });
}

CV_EXPORT CK_RV C_GetAttributeValue(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj,
                                    CK_ATTRIBUTE_PTR templ, CK_ULONG count) {
  return with_session(h, [&](Module&, Session&, Token& t) -> CK_RV {
    if (!templ && count) return CKR_ARGUMENTS_BAD;
    return get_attribute_value(t, obj, templ, count);
  });
}

CV_EXPORT CK_RV C_SetAttributeValue(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj,
                                    CK_ATTRIBUTE_PTR templ, CK_ULONG count) {
  return with_session(h, [&](Module&, Session& s, Token& t) -> CK_RV {
    if (!templ && count) return CKR_ARGUMENTS_BAD;
    return set_attribute_value(s, t, obj, templ, count);
  });
}

CV_EXPORT CK_RV C_FindObjectsInit(CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR templ, CK_ULONG count) {
  return with_session(h, [&](Module&, Session& s, Token& t) -> CK_RV {
    if (!templ && count) return CKR_ARGUMENTS_BAD;
    return find_objects_init(s, t, templ, count);
  });
}

CV_EXPORT CK_RV C_FindObjects(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE_PTR out, CK_ULONG max,
                              CK_ULONG_PTR count) {
  return with_session(h, [&](Module&, Session& s, Token&) -> CK_RV {
    if (!out || !count) return CKR_ARGUMENTS_BAD;
    return find_objects(s, out, max, *count);
  });
}

CV_EXPORT CK_RV C_FindObjectsFinal(CK_SESSION_HANDLE h) {
  return with_session(h,
                      [&](Module&, Session& s, Token&) -> CK_RV { return find_objects_final(s); });
}

// --- key management (5.18) -------------------------------------------------------------

CV_EXPORT CK_RV C_GenerateKeyPair(CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech,
                                  CK_ATTRIBUTE_PTR pub_templ, CK_ULONG pub_count,
                                  CK_ATTRIBUTE_PTR priv_templ, CK_ULONG priv_count,
                                  CK_OBJECT_HANDLE_PTR pub, CK_OBJECT_HANDLE_PTR priv) {
  return with_session(h, [&](Module&, Session& s, Token& t) -> CK_RV {
    // v3.0 5.18.2, C_GenerateKeyPair (5.1.7: after the session)
    if (!mech || !pub || !priv) return CKR_ARGUMENTS_BAD;
    if ((!pub_templ && pub_count) || (!priv_templ && priv_count)) return CKR_ARGUMENTS_BAD;
    return generate_key_pair(s, t, *mech, pub_templ, pub_count, priv_templ, priv_count, *pub, *priv,
                             h);
  });
}

// --- signing (5.13) and verifying (5.15) -----------------------------------------------

CV_EXPORT CK_RV C_SignInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key) {
  return with_session(h, [&](Module&, Session& s, Token& t) -> CK_RV {
    // v3.0 5.13.1 (5.1.7: after the session); NULL does not cancel (docs/pkcs11.md)
    if (!mech) return CKR_ARGUMENTS_BAD;
    return sign_init(s, t, *mech, key);
  });
}

CV_EXPORT CK_RV C_Sign(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig,
                       CK_ULONG_PTR sig_len) {
  return with_session(
      h, [&](Module&, Session& s, Token&) -> CK_RV { return sign(s, data, len, sig, sig_len); });
}

CV_EXPORT CK_RV C_SignUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len) {
  return with_session(
      h, [&](Module&, Session& s, Token&) -> CK_RV { return sign_update(s, data, len); });
}

CV_EXPORT CK_RV C_SignFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len) {
  return with_session(
      h, [&](Module&, Session& s, Token&) -> CK_RV { return sign_final(s, sig, sig_len); });
}

CV_EXPORT CK_RV C_VerifyInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key) {
  return with_session(h, [&](Module&, Session& s, Token& t) -> CK_RV {
    // v3.0 5.15.1 (5.1.7: after the session); NULL does not cancel (docs/pkcs11.md)
    if (!mech) return CKR_ARGUMENTS_BAD;
    return verify_init(s, t, *mech, key);
  });
}

CV_EXPORT CK_RV C_Verify(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig,
                         CK_ULONG sig_len) {
  return with_session(
      h, [&](Module&, Session& s, Token&) -> CK_RV { return verify(s, data, len, sig, sig_len); });
}

CV_EXPORT CK_RV C_VerifyUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len) {
  return with_session(
      h, [&](Module&, Session& s, Token&) -> CK_RV { return verify_update(s, data, len); });
}

CV_EXPORT CK_RV C_VerifyFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR sig, CK_ULONG sig_len) {
  return with_session(
      h, [&](Module&, Session& s, Token&) -> CK_RV { return verify_final(s, sig, sig_len); });
}

// --- message digesting (5.12) and random numbers (5.19) --------------------------------

CV_EXPORT CK_RV C_DigestInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech) {
  return with_session(h, [&](Module&, Session& s, Token&) -> CK_RV {
    // v3.0 5.12.1 (5.1.7: after the session); NULL does not cancel (docs/pkcs11.md)
    if (!mech) return CKR_ARGUMENTS_BAD;
    return digest_init(s, *mech);
  });
}

CV_EXPORT CK_RV C_Digest(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR out,
                         CK_ULONG_PTR out_len) {
  return with_session(
      h, [&](Module&, Session& s, Token&) -> CK_RV { return digest(s, data, len, out, out_len); });
}

CV_EXPORT CK_RV C_DigestUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len) {
  return with_session(
      h, [&](Module&, Session& s, Token&) -> CK_RV { return digest_update(s, data, len); });
}

CV_EXPORT CK_RV C_DigestFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG_PTR out_len) {
  return with_session(
      h, [&](Module&, Session& s, Token&) -> CK_RV { return digest_final(s, out, out_len); });
}

CV_EXPORT CK_RV C_GenerateRandom(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG len) {
  return with_session(h, [&](Module&, Session&, Token&) -> CK_RV {
    if (!out && len) return CKR_ARGUMENTS_BAD;
    return generate_random(out, len);
  });
}

CV_EXPORT CK_RV C_SeedRandom(CK_SESSION_HANDLE h, CK_BYTE_PTR seed, CK_ULONG) {
  // v3.0 5.1.7: the session is checked first, then the arguments.
  return with_session(h, [&](Module&, Session&, Token&) { return seed_random(seed); });
}

// --- parallel function management (5.20) -----------------------------------------------

CV_EXPORT CK_RV C_GetFunctionStatus(CK_SESSION_HANDLE h) {
  return with_session(h, [](Module&, Session& s, Token&) { return function_status(s); });
}

CV_EXPORT CK_RV C_CancelFunction(CK_SESSION_HANDLE h) {
  return with_session(h, [](Module&, Session& s, Token&) { return function_status(s); });
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
  return interface_list(g_interfaces, list, count);
}

CV_EXPORT CK_RV C_GetInterface(CK_UTF8CHAR_PTR name, CK_VERSION_PTR version,
                               CK_INTERFACE_PTR_PTR out, CK_FLAGS flags) {
  return find_interface(g_interfaces, name, version, flags, out);
}
