#include "session_objects.h"

#include <openssl/objects.h>
#include <openssl/x509.h>

#include <cstring>
#include <ctime>

#include "errors.h"
#include "keys.h"
#include "ossl.h"
#include "seal.h"
#include "session_key.h"
#include "vault.h"

namespace certvault::pkcs11 {
namespace {

using Bytes = std::vector<uint8_t>;

// v3.0 4.4: CKA_PRIVATE's default is the token's choice: a private key and a data object
// (which may hold a secret) are private, a certificate and a public key are not, as the
// vault's own objects.
bool private_by_default(Kind k) {
  return k == Kind::kSessionPrivateKey || k == Kind::kSessionData;
}

// What every session object takes from its template (v3.0 4.4, 4.5 to 4.9).
void common(Kind kind, const TemplateValues& t, Object& o) {
  o.kind = kind;
  o.private_object = t.flag(CKA_PRIVATE, private_by_default(kind));
  o.modifiable = t.flag(CKA_MODIFIABLE, true);
  o.destroyable = t.flag(CKA_DESTROYABLE, true);
  o.nickname = t.label.value_or("");
  if (const Bytes* id = t.value(CKA_ID)) o.key_id = seal::to_hex(*id);
  if (const Bytes* subject = t.value(CKA_SUBJECT)) o.subject = *subject;
}

std::optional<CK_ULONG> ulong_of(const Bytes* v) {
  if (!v || v->size() != sizeof(CK_ULONG)) return std::nullopt;
  CK_ULONG out;
  std::memcpy(&out, v->data(), sizeof out);
  return out;
}

Time time_of(const ASN1_TIME* t) {
  std::tm tm{};
  if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<Time>(timegm(&tm));
}

// CKA_EC_POINT: the DER OCTET STRING holding the point (v3.0 current mechanisms 2.3.3); a
// bare point is taken too, as some applications give it.
Bytes point_of(const Bytes& v) {
  const unsigned char* p = v.data();
  ASN1_OCTET_STRING* os = d2i_ASN1_OCTET_STRING(nullptr, &p, static_cast<long>(v.size()));
  if (!os || p != v.data() + v.size()) {
    ASN1_OCTET_STRING_free(os);
    return v;
  }
  Bytes out(ASN1_STRING_get0_data(os), ASN1_STRING_get0_data(os) + ASN1_STRING_length(os));
  ASN1_OCTET_STRING_free(os);
  return out;
}

CK_RV certificate(const ObjectRequest& r, Object& o) {
  const TemplateValues& t = r.given;
  o.cert_der = *t.value(CKA_VALUE);
  auto cert = ossl::cert_from_der(o.cert_der);
  if (!cert) return CKR_ATTRIBUTE_VALUE_INVALID;
  X509* x = cert->get();
  if (CK_RV rv = check_x509_matches(t, x); rv != CKR_OK) return rv;
  // v3.0 4.6.2: 0 unspecified, 1 token user, 2 authority, 3 other entity.
  if (const Bytes* c = t.value(CKA_CERTIFICATE_CATEGORY)) {
    auto category = ulong_of(c);
    if (!category || *category > 3) return CKR_ATTRIBUTE_VALUE_INVALID;
    o.category = *category;
  }
  o.not_before = time_of(X509_get0_notBefore(x));
  o.not_after = time_of(X509_get0_notAfter(x));
  o.subject.clear();  // read from the certificate
  return CKR_OK;
}

// The key type a key template names, with its parameters: CKA_KEY_TYPE and CKA_EC_PARAMS.
CK_RV key_type_of(const TemplateValues& t, KeyType& out, bool& rsa) {
  const auto ck = ulong_of(t.value(CKA_KEY_TYPE));
  if (!ck) return CKR_ATTRIBUTE_VALUE_INVALID;
  rsa = *ck == CKK_RSA;
  if (rsa) return CKR_OK;  // the size comes with the modulus
  if (*ck != CKK_EC && *ck != CKK_EC_EDWARDS) return CKR_ATTRIBUTE_VALUE_INVALID;
  const Bytes* params = t.value(CKA_EC_PARAMS);
  if (!params) return CKR_TEMPLATE_INCOMPLETE;  // current mechanisms 2.3.3, 2.3.4
  auto type = key_type_of_params(*ck, *params);
  if (!type) return CKR_CURVE_NOT_SUPPORTED;
  out = *type;
  return CKR_OK;
}

CK_RV public_key(const ObjectRequest& r, Object& o) {
  const TemplateValues& t = r.given;
  bool rsa = false;
  if (CK_RV rv = key_type_of(t, o.key_type, rsa); rv != CKR_OK) return rv;
  Result<ossl::Pkey> key = std::unexpected(Error{});
  if (rsa) {
    const Bytes *n = t.value(CKA_MODULUS), *e = t.value(CKA_PUBLIC_EXPONENT);
    if (!n || !e) return CKR_TEMPLATE_INCOMPLETE;  // current mechanisms 2.1.2
    key = session_key::public_from_rsa(*n, *e);
  } else {
    const Bytes* point = t.value(CKA_EC_POINT);
    if (!point) return CKR_TEMPLATE_INCOMPLETE;
    key = o.key_type == KeyType::kEd25519
              ? session_key::public_from_ed25519(point_of(*point))
              : session_key::public_from_ec(o.key_type, point_of(*point));
  }
  if (!key) return value_rv(key.error());
  auto type = keys::type_of(key->get());
  if (!type) return value_rv(type.error());
  o.key_type = *type;
  if (auto bits = ulong_of(t.value(CKA_MODULUS_BITS));
      t.value(CKA_MODULUS_BITS) &&
      (!bits || *bits != static_cast<CK_ULONG>(EVP_PKEY_get_bits(key->get()))))
    return CKR_TEMPLATE_INCONSISTENT;
  o.spki = ossl::spki_der(key->get());
  o.key_imported = true;
  return CKR_OK;
}

CK_RV private_key(const ObjectRequest& r, Object& o) {
  const TemplateValues& t = r.given;
  bool rsa = false;
  if (CK_RV rv = key_type_of(t, o.key_type, rsa); rv != CKR_OK) return rv;
  auto secret = [&](CK_ATTRIBUTE_TYPE type) -> const SecureBytes* {
    auto it = t.secrets.find(type);
    return it == t.secrets.end() ? nullptr : &it->second;
  };
  Result<session_key::SessionKey> key = std::unexpected(Error{});
  if (rsa) {
    // current mechanisms 2.1.3: the modulus, both exponents and the CRT parts.
    const Bytes *n = t.value(CKA_MODULUS), *e = t.value(CKA_PUBLIC_EXPONENT);
    const SecureBytes *d = secret(CKA_PRIVATE_EXPONENT), *p = secret(CKA_PRIME_1),
                      *q = secret(CKA_PRIME_2), *dp = secret(CKA_EXPONENT_1),
                      *dq = secret(CKA_EXPONENT_2), *qinv = secret(CKA_COEFFICIENT);
    if (!n || !e || !d || !p || !q || !dp || !dq || !qinv) return CKR_TEMPLATE_INCOMPLETE;
    session_key::RsaParts parts;
    parts.n = *n;
    parts.e = *e;
    parts.d = SecureBytes(d->data(), d->size());
    parts.p = SecureBytes(p->data(), p->size());
    parts.q = SecureBytes(q->data(), q->size());
    parts.dp = SecureBytes(dp->data(), dp->size());
    parts.dq = SecureBytes(dq->data(), dq->size());
    parts.qinv = SecureBytes(qinv->data(), qinv->size());
    key = session_key::from_rsa(parts);
  } else {
    const SecureBytes* value = secret(CKA_VALUE);
    if (!value) return CKR_TEMPLATE_INCOMPLETE;  // current mechanisms 2.3.4
    key = o.key_type == KeyType::kEd25519 ? session_key::from_ed25519(*value)
                                          : session_key::from_ec(o.key_type, *value);
  }
  if (!key) return value_rv(key.error());
  o.key_type = key->type;
  o.spki = std::move(key->spki);
  o.signer = std::move(key->signer);
  o.key_imported = true;
  return CKR_OK;
}

CK_RV data(const ObjectRequest& r, Object& o) {
  const TemplateValues& t = r.given;
  // The vault's limits and text rules apply to a session data object too.
  DataObjectRequest d;
  d.label = o.nickname;
  if (const Bytes* a = t.value(CKA_APPLICATION)) d.application.assign(a->begin(), a->end());
  if (const Bytes* oid = t.value(CKA_OBJECT_ID)) d.object_id = *oid;
  if (auto it = t.secrets.find(CKA_VALUE); it != t.secrets.end())
    d.value = SecureBytes(it->second.data(), it->second.size());
  if (auto ok = check_data_object(d); !ok) return value_rv(ok.error());
  o.application = std::move(d.application);
  o.object_id = std::move(d.object_id);
  o.value_size = d.value.size();
  o.value = std::make_shared<SecureBytes>(std::move(d.value));
  return CKR_OK;
}

}  // namespace

std::optional<KeyType> key_type_of_params(CK_KEY_TYPE key_type, const Bytes& params) {
  auto nid = curve_nid(params);
  if (!nid) return std::nullopt;
  if (key_type == CKK_EC_EDWARDS && *nid == NID_ED25519) return KeyType::kEd25519;
  if (key_type == CKK_EC && *nid == NID_X9_62_prime256v1) return KeyType::kEcP256;
  if (key_type == CKK_EC && *nid == NID_secp384r1) return KeyType::kEcP384;
  return std::nullopt;
}

CK_RV make_session_object(const ObjectRequest& r, Object& o) {
  common(r.kind, r.given, o);
  switch (r.kind) {
    case Kind::kSessionCertificate:
      return certificate(r, o);
    case Kind::kSessionPublicKey:
      return public_key(r, o);
    case Kind::kSessionPrivateKey:
      return private_key(r, o);
    case Kind::kSessionData:
      return data(r, o);
    default:
      return CKR_GENERAL_ERROR;
  }
}

CK_RV make_session_key_pair(const KeyPairRequest& r, Object& pub, Object& priv) {
  auto key = session_key::generate(r.key_type);
  if (!key) return to_rv(key.error());
  common(Kind::kSessionPublicKey, r.pub, pub);
  common(Kind::kSessionPrivateKey, r.priv, priv);
  for (Object* o : {&pub, &priv}) {
    o->key_type = key->type;
    o->spki = key->spki;
  }
  priv.signer = std::move(key->signer);
  return CKR_OK;
}

}  // namespace certvault::pkcs11
