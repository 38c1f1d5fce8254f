// Signing (PKCS#11 v3.0 5.13) and verifying signatures (5.15): the session's operation and
// how it is fed. How a mechanism signs is mechanisms.cc's (SignOperation).
#include "functions.h"

namespace certvault::pkcs11 {
namespace {

// C_SignInit and C_VerifyInit: a private key signs, a public key verifies (v3.0 5.13, 5.15).
CK_RV start_key_operation(Token& t, CK_OBJECT_HANDLE handle, SignOperation::Purpose purpose,
                          const CK_MECHANISM& mech, std::unique_ptr<SignOperation>& out) {
  const bool signing = purpose == SignOperation::Purpose::kSign;
  std::shared_ptr<Object> o;
  if (t.object(handle, o) != CKR_OK) return CKR_KEY_HANDLE_INVALID;
  if (!(signing ? is_private_key(o->kind) : is_public_key(o->kind)))
    return CKR_KEY_FUNCTION_NOT_PERMITTED;
  KeyRef k;
  Signer signer;
  if (CK_RV rv = signing ? t.key(*o, k, signer) : t.public_key(*o, k); rv != CKR_OK) return rv;
  return SignOperation::start(purpose, &mech, o->key_type, std::move(k), out, std::move(signer));
}

}  // namespace

CK_RV sign_init(Session& s, Token& t, const CK_MECHANISM& mech, CK_OBJECT_HANDLE key) {
  if (s.sign) return CKR_OPERATION_ACTIVE;
  // Through the agent no login is needed: the agent decides who signs. A session key that is
  // not a private object needs none either (v3.0 4.4: login guards private objects).
  if (!t.logged_in() && !t.uses_agent() && !t.is_public_session_key(key))
    return CKR_USER_NOT_LOGGED_IN;
  s.sign_part = Session::Part::kNone;
  return start_key_operation(t, key, SignOperation::Purpose::kSign, mech, s.sign);
}

CK_RV sign(Session& s, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len) {
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
  // v3.0 5.13.2: C_Sign ends the operation unless CKR_BUFFER_TOO_SMALL (or a successful
  // length query, above).
  if (rv != CKR_BUFFER_TOO_SMALL) s.sign.reset();
  return rv;
}

CK_RV sign_update(Session& s, CK_BYTE_PTR data, CK_ULONG len) {
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
}

CK_RV sign_final(Session& s, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len) {
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
}

CK_RV verify_init(Session& s, Token& t, const CK_MECHANISM& mech, CK_OBJECT_HANDLE key) {
  if (s.verify) return CKR_OPERATION_ACTIVE;
  s.verify_multi = false;
  return start_key_operation(t, key, SignOperation::Purpose::kVerify, mech, s.verify);
}

CK_RV verify(Session& s, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig, CK_ULONG sig_len) {
  if (!s.verify) return CKR_OPERATION_NOT_INITIALIZED;
  auto op = std::move(s.verify);  // C_Verify always ends the operation
  // v3.0 5.15, C_Verify: it cannot terminate a multi-part operation; no code is named.
  if (s.verify_multi) return CKR_FUNCTION_FAILED;
  if ((!data && len) || !sig) return CKR_ARGUMENTS_BAD;
  if (CK_RV rv = op->update(data, len); rv != CKR_OK) return rv;
  return op->check(sig, sig_len);
}

CK_RV verify_update(Session& s, CK_BYTE_PTR data, CK_ULONG len) {
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
}

CK_RV verify_final(Session& s, CK_BYTE_PTR sig, CK_ULONG sig_len) {
  if (!s.verify) return CKR_OPERATION_NOT_INITIALIZED;
  auto op = std::move(s.verify);
  if (!op->multi_part()) return CKR_OPERATION_NOT_INITIALIZED;  // as in C_VerifyUpdate
  if (!sig) return CKR_ARGUMENTS_BAD;
  return op->check(sig, sig_len);
}

}  // namespace certvault::pkcs11
