// The mechanisms certvault offers and the signing operation behind C_Sign*.
#pragma once

#include <openssl/evp.h>

#include <memory>
#include <vector>

#include "agent_key.h"
#include "ck.h"
#include "ossl.h"
#include "types.h"

namespace certvault::pkcs11 {

using KeyRef = std::shared_ptr<EVP_PKEY>;  // a public key: sizes and verification
// What signs: the keystore's handle on a key decrypted in this process, or on one the agent
// holds. The module never holds a private key itself.
using Signer = std::shared_ptr<const KeyHandle>;

std::vector<CK_MECHANISM_TYPE> all_mechanisms();
std::vector<CK_MECHANISM_TYPE> sign_mechanisms(KeyType key_type);
CK_RV mechanism_info(CK_MECHANISM_TYPE type, CK_MECHANISM_INFO* info);

// One signature, or one verification, in progress: single-part (C_Sign, C_Verify) or
// multi-part (C_SignUpdate/Final, C_VerifyUpdate/Final).
class SignOperation {
 public:
  enum class Purpose { kSign, kVerify };
  // PKCS#11 v2.40 5.11/5.12: the init call checks the mechanism and its parameters against
  // the key (a private key to sign, a public key to verify). `key` is the public key;
  // signing needs `signer`, and the digest of a hash-and-sign mechanism is made here.
  static CK_RV start(Purpose purpose, const CK_MECHANISM* mechanism, KeyType key_type, KeyRef key,
                     std::unique_ptr<SignOperation>& out, Signer signer = nullptr);
  ~SignOperation();
  CK_RV update(const uint8_t* data, size_t len);
  // Signing: size query when `out` is null; CKR_BUFFER_TOO_SMALL keeps the operation going.
  CK_RV finish(uint8_t* out, CK_ULONG* out_len);
  // Verifying: CKR_OK, CKR_SIGNATURE_INVALID or CKR_SIGNATURE_LEN_RANGE.
  CK_RV check(const uint8_t* signature, size_t len);
  size_t signature_size() const { return size_; }
  // Whether the mechanism signs and verifies in several parts (C_SignUpdate, C_VerifyUpdate).
  bool multi_part() const;

 private:
  SignOperation() = default;
  Purpose purpose_ = Purpose::kSign;
  CK_MECHANISM_TYPE mech_ = 0;
  KeyType key_type_ = KeyType::kEcP256;
  KeyRef key_;
  Signer signer_;
  EVP_MD_CTX* md_ctx_ = nullptr;  // hash-then-sign mechanisms
  std::vector<uint8_t> data_;     // raw mechanisms and EdDSA: the whole input
  std::vector<uint8_t> result_;   // computed once; handed out when the buffer fits
  // Fetched digests, not names: when the host registered an ENGINE for RSA, OpenSSL 3.0
  // makes a legacy context even for the module's own key, and such a context takes
  // neither the MGF1 digest by name nor a digest it does not own.
  ossl::Md pss_md_;
  ossl::Md mgf1_md_;
  int salt_len_ = 0;
  size_t size_ = 0;
  CK_RV compute();
  // The signature from the signer, DER for ECDSA as OpenSSL's own.
  CK_RV signature(std::vector<uint8_t>& sig);
  // A verification context for the raw mechanisms.
  CK_RV raw_context(ossl::PkeyCtx& out);
};

}  // namespace certvault::pkcs11
