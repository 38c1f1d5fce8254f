#include "crl.h"

#include <openssl/pem.h>

#include "certificate.h"

namespace certvault::crl {
namespace {

using Crl = ossl::Ptr<X509_CRL, X509_CRL_free>;
using Revoked = ossl::Ptr<X509_REVOKED, X509_REVOKED_free>;
using Time1 = ossl::Ptr<ASN1_TIME, ASN1_TIME_free>;
using Integer = ossl::Ptr<ASN1_INTEGER, ASN1_INTEGER_free>;
using Enumerated = ossl::Ptr<ASN1_ENUMERATED, ASN1_ENUMERATED_free>;
using KeyId = ossl::Ptr<AUTHORITY_KEYID, AUTHORITY_KEYID_free>;

bool set_time(int (*set)(X509_CRL*, const ASN1_TIME*), X509_CRL* crl, Time t) {
  Time1 at(ASN1_TIME_set(nullptr, t));
  return at && set(crl, at.get()) == 1;
}

// RFC 5280 5.2.1: the authority key identifier names the CA key that signed, by the key
// identifier of the CA certificate.
bool add_authority_key_id(X509_CRL* crl, X509* issuer) {
  const ASN1_OCTET_STRING* ski = X509_get0_subject_key_id(issuer);
  KeyId akid(AUTHORITY_KEYID_new());
  if (!akid || !ski) return false;
  akid->keyid = ASN1_OCTET_STRING_dup(ski);
  return akid->keyid && X509_CRL_add1_ext_i2d(crl, NID_authority_key_identifier, akid.get(), 0,
                                              X509V3_ADD_DEFAULT) == 1;
}

// RFC 5280 5.2.3: cRLNumber, monotonically increasing, non-critical.
bool add_number(X509_CRL* crl, uint64_t number) {
  Integer n(ASN1_INTEGER_new());
  return n && ASN1_INTEGER_set_uint64(n.get(), number) == 1 &&
         X509_CRL_add1_ext_i2d(crl, NID_crl_number, n.get(), 0, X509V3_ADD_DEFAULT) == 1;
}

bool add_entry(X509_CRL* crl, const Listed& l) {
  Revoked r(X509_REVOKED_new());
  Time1 at(ASN1_TIME_set(nullptr, l.at));
  Integer serial(ASN1_INTEGER_dup(X509_get0_serialNumber(l.cert)));
  if (!r || !at || !serial || X509_REVOKED_set_serialNumber(r.get(), serial.get()) != 1 ||
      X509_REVOKED_set_revocationDate(r.get(), at.get()) != 1)
    return false;
  // RFC 5280 5.3.1: the reasonCode extension is absent rather than "unspecified".
  if (l.reason != RevocationReason::kUnspecified) {
    Enumerated reason(ASN1_ENUMERATED_new());
    if (!reason || ASN1_ENUMERATED_set(reason.get(), static_cast<long>(l.reason)) != 1 ||
        X509_REVOKED_add1_ext_i2d(r.get(), NID_crl_reason, reason.get(), 0, X509V3_ADD_DEFAULT) !=
            1)
      return false;
  }
  if (X509_CRL_add0_revoked(crl, r.get()) != 1) return false;
  (void)r.release();  // the CRL owns it now
  return true;
}

}  // namespace

Result<std::string> make(const CrlArgs& a) {
  Crl crl(X509_CRL_new_ex(ossl::libctx(), nullptr));
  if (!crl || X509_CRL_set_version(crl.get(), X509_CRL_VERSION_2) != 1 ||
      X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(a.issuer)) != 1 ||
      !set_time(X509_CRL_set1_lastUpdate, crl.get(), a.this_update) ||
      !set_time(X509_CRL_set1_nextUpdate, crl.get(), a.next_update))
    return ossl::crypto_fail("cannot build the CRL");
  for (const Listed& l : a.revoked)
    if (!add_entry(crl.get(), l)) return ossl::crypto_fail("cannot list a revoked certificate");
  if (!add_authority_key_id(crl.get(), a.issuer) || !add_number(crl.get(), a.number))
    return ossl::crypto_fail("cannot add the CRL extensions");
  X509_CRL_sort(crl.get());
  ossl::MdCtx md(EVP_MD_CTX_new());
  if (!md ||
      EVP_DigestSignInit_ex(md.get(), nullptr, certificate::md_name(a.signer, a.hash),
                            ossl::libctx(), nullptr, a.signer, nullptr) != 1 ||
      X509_CRL_sign_ctx(crl.get(), md.get()) <= 0)
    return ossl::crypto_fail("cannot sign the CRL");
  return ossl::to_text([&](BIO* b) { PEM_write_bio_X509_CRL(b, crl.get()); });
}

}  // namespace certvault::crl
