// What the PKCS#11 benchmarks (bench_pkcs11, bench_pkcs11_agent) share: a session, a
// private key found by its label, and a signer that times C_SignInit + C_Sign.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ck.h"

namespace certvault::bench {

// A serial session on `slot`, or 0 when the module refuses one.
inline CK_SESSION_HANDLE open_session(CK_FUNCTION_LIST_PTR f, CK_SLOT_ID slot) {
  CK_SESSION_HANDLE s = 0;
  return f->C_OpenSession(slot, CKF_SERIAL_SESSION, nullptr, nullptr, &s) == CKR_OK ? s : 0;
}

// The one private key labelled `label` that `session` sees; nullopt when there is none or
// more than one.
inline std::optional<CK_OBJECT_HANDLE> private_key_labelled(CK_FUNCTION_LIST_PTR f,
                                                            CK_SESSION_HANDLE session,
                                                            const std::string& label) {
  CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
  CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls},
                      {CKA_LABEL, const_cast<char*>(label.data()), label.size()}};
  CK_OBJECT_HANDLE h[2];
  CK_ULONG n = 0;
  if (f->C_FindObjectsInit(session, t, 2) != CKR_OK ||
      f->C_FindObjects(session, h, 2, &n) != CKR_OK || f->C_FindObjectsFinal(session) != CKR_OK ||
      n != 1)
    return std::nullopt;
  return h[0];
}

// C_SignInit + C_Sign with `mechanism` (no parameters) over `input`, in a session of its
// own that it closes.
class Pkcs11Signer {
 public:
  Pkcs11Signer(CK_FUNCTION_LIST_PTR f, CK_SLOT_ID slot, CK_OBJECT_HANDLE key,
               CK_MECHANISM_TYPE mechanism, std::vector<uint8_t> input)
      : f_(f), session_(open_session(f, slot)), key_(key), input_(std::move(input)) {
    mech_ = {mechanism, nullptr, 0};
  }
  Pkcs11Signer(const Pkcs11Signer&) = delete;
  Pkcs11Signer& operator=(const Pkcs11Signer&) = delete;
  ~Pkcs11Signer() {
    if (session_) f_->C_CloseSession(session_);
  }
  bool ready() const { return session_ != 0; }
  CK_RV last() const { return last_; }
  bool operator()() {
    CK_ULONG len = sig_.size();
    last_ = f_->C_SignInit(session_, &mech_, key_);
    if (last_ == CKR_OK)
      last_ = f_->C_Sign(session_, input_.data(), input_.size(), sig_.data(), &len);
    return last_ == CKR_OK;
  }

 private:
  CK_FUNCTION_LIST_PTR f_;
  CK_SESSION_HANDLE session_;
  CK_OBJECT_HANDLE key_;
  CK_MECHANISM mech_;
  std::vector<uint8_t> input_;
  std::vector<uint8_t> sig_ = std::vector<uint8_t>(1024);
  CK_RV last_ = CKR_OK;
};

}  // namespace certvault::bench
