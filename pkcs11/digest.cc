// Message digesting (PKCS#11 v3.0 5.12) and random number generation (5.19).
#include <sodium.h>

#include "functions.h"

namespace certvault::pkcs11 {
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

CK_RV digest_init(Session& s, const CK_MECHANISM& mech) {
  if (s.digest) return CKR_OPERATION_ACTIVE;
  const char* name = mech.mechanism == CKM_SHA256   ? "SHA256"
                     : mech.mechanism == CKM_SHA384 ? "SHA384"
                     : mech.mechanism == CKM_SHA512 ? "SHA512"
                                                    : nullptr;
  if (!name) return CKR_MECHANISM_INVALID;
  ossl::MdCtx ctx(EVP_MD_CTX_new());
  ossl::Md md(EVP_MD_fetch(ossl::libctx(), name, nullptr));
  if (!ctx || !md || EVP_DigestInit_ex2(ctx.get(), md.get(), nullptr) != 1)
    return CKR_FUNCTION_FAILED;
  s.digest = std::move(ctx);
  s.digest_multi = false;
  return CKR_OK;
}

CK_RV digest(Session& s, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR out, CK_ULONG_PTR out_len) {
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
}

CK_RV digest_update(Session& s, CK_BYTE_PTR data, CK_ULONG len) {
  if (!s.digest) return CKR_OPERATION_NOT_INITIALIZED;
  if ((!data && len) || EVP_DigestUpdate(s.digest.get(), data, len) != 1) {
    s.digest.reset();
    return data || !len ? CKR_FUNCTION_FAILED : CKR_ARGUMENTS_BAD;
  }
  s.digest_multi = true;
  return CKR_OK;
}

CK_RV digest_final(Session& s, CK_BYTE_PTR out, CK_ULONG_PTR out_len) {
  if (!s.digest) return CKR_OPERATION_NOT_INITIALIZED;
  // v3.0 5.12.5: only a length query and CKR_BUFFER_TOO_SMALL keep the operation.
  if (!out_len) {
    s.digest.reset();
    return CKR_ARGUMENTS_BAD;
  }
  return digest_out(s, out, out_len);
}

CK_RV generate_random(CK_BYTE_PTR out, CK_ULONG len) {
  randombytes_buf(out, len);
  return CKR_OK;
}

// v3.0 5.19, C_SeedRandom: pSeed is the seed; libsodium takes none.
CK_RV seed_random(CK_BYTE_PTR seed) {
  return seed ? CKR_RANDOM_SEED_NOT_SUPPORTED : CKR_ARGUMENTS_BAD;
}

}  // namespace certvault::pkcs11
