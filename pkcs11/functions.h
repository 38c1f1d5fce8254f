// What each PKCS#11 function does, one file per chapter of the function list (PKCS#11
// v3.0 base specification, section 5). The exported C functions (abi.cc) find the module,
// the slot or the session, check the pointers a function cannot do without, and call
// these; every other check, in the order the specification gives, is here.
#pragma once

#include <span>
#include <string_view>

#include "ck.h"
#include "module.h"
#include "secure.h"

namespace certvault::pkcs11 {

// --- general.cc: general-purpose functions (5.4), slot and token management (5.5) -------
CK_RV initialize(CK_VOID_PTR init_args);
CK_RV finalize(CK_VOID_PTR reserved);
void library_info(CK_INFO& info, CK_VERSION version);
CK_RV slot_list(Module& m, CK_SLOT_ID_PTR list, CK_ULONG_PTR count);
void slot_info(Token& t, CK_SLOT_INFO& info);
CK_RV init_token(Module& m, Token& t, CK_SLOT_ID slot, const SecureBytes& so_pin,
                 std::string_view label);
CK_RV init_pin(Session& s, Token& t, const SecureBytes& pin);
CK_RV set_pin(Session& s, Token& t, SecureBytes old_pin, const SecureBytes& new_pin);

// --- session.cc: session management (5.6), parallel function management (5.20) ----------
CK_RV open_session(Module& m, Token& t, CK_SLOT_ID slot, CK_FLAGS flags, CK_SESSION_HANDLE& out);
CK_RV close_session(Module& m, CK_SESSION_HANDLE h);
CK_RV close_all_sessions(Module& m, CK_SLOT_ID slot);
void session_info(const Session& s, Token& t, CK_SESSION_INFO& info);
CK_RV log_in(Module& m, Session& s, Token& t, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin,
             CK_ULONG pin_len);
CK_RV log_in_user(Module& m, Session& s, Token& t, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin,
                  CK_ULONG pin_len, CK_ULONG name_len);
CK_RV log_out(Module& m, const Session& s, Token& t);
CK_RV session_cancel(Session& s, CK_FLAGS flags);
CK_RV function_status(Session& s);

// --- objects.cc: object management (5.7), and C_GenerateKeyPair (5.18) -----------------
// `h` is `s`'s handle: a session object it makes lives until that session ends.
CK_RV create_object(Session& s, Token& t, const CK_ATTRIBUTE* templ, CK_ULONG count,
                    CK_OBJECT_HANDLE& out, CK_SESSION_HANDLE h);
CK_RV destroy_object(Session& s, Token& t, CK_OBJECT_HANDLE obj);
CK_RV get_attribute_value(Token& t, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE* templ, CK_ULONG count);
CK_RV set_attribute_value(Session& s, Token& t, CK_OBJECT_HANDLE obj, const CK_ATTRIBUTE* templ,
                          CK_ULONG count);
CK_RV object_size(Token& t, CK_OBJECT_HANDLE obj, CK_ULONG& out);
CK_RV find_objects_init(Session& s, Token& t, const CK_ATTRIBUTE* templ, CK_ULONG count);
CK_RV find_objects(Session& s, CK_OBJECT_HANDLE_PTR out, CK_ULONG max, CK_ULONG& count);
CK_RV find_objects_final(Session& s);
CK_RV generate_key_pair(Session& s, Token& t, const CK_MECHANISM& mech,
                        const CK_ATTRIBUTE* pub_templ, CK_ULONG pub_count,
                        const CK_ATTRIBUTE* priv_templ, CK_ULONG priv_count, CK_OBJECT_HANDLE& pub,
                        CK_OBJECT_HANDLE& priv, CK_SESSION_HANDLE h);

// --- signing.cc: signing (5.13) and verifying signatures (5.15) --------------------------
CK_RV sign_init(Session& s, Token& t, const CK_MECHANISM& mech, CK_OBJECT_HANDLE key);
CK_RV sign(Session& s, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len);
CK_RV sign_update(Session& s, CK_BYTE_PTR data, CK_ULONG len);
CK_RV sign_final(Session& s, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len);
CK_RV verify_init(Session& s, Token& t, const CK_MECHANISM& mech, CK_OBJECT_HANDLE key);
CK_RV verify(Session& s, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig, CK_ULONG sig_len);
CK_RV verify_update(Session& s, CK_BYTE_PTR data, CK_ULONG len);
CK_RV verify_final(Session& s, CK_BYTE_PTR sig, CK_ULONG sig_len);

// --- digest.cc: message digesting (5.12), random number generation (5.19) ----------------
CK_RV digest_init(Session& s, const CK_MECHANISM& mech);
CK_RV digest(Session& s, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR out, CK_ULONG_PTR out_len);
CK_RV digest_update(Session& s, CK_BYTE_PTR data, CK_ULONG len);
CK_RV digest_final(Session& s, CK_BYTE_PTR out, CK_ULONG_PTR out_len);
CK_RV generate_random(CK_BYTE_PTR out, CK_ULONG len);
CK_RV seed_random(CK_BYTE_PTR seed);

// --- interface.cc: the interface list (5.4: C_GetInterfaceList, C_GetInterface) ---------
CK_RV interface_list(std::span<const CK_INTERFACE> all, CK_INTERFACE_PTR list, CK_ULONG_PTR count);
CK_RV find_interface(std::span<CK_INTERFACE> all, CK_UTF8CHAR_PTR name, CK_VERSION_PTR version,
                     CK_FLAGS flags, CK_INTERFACE_PTR_PTR out);

}  // namespace certvault::pkcs11
