// Object management (PKCS#11 v3.0 5.7: making, changing and destroying objects, their
// attributes and sizes, and searching), and C_GenerateKeyPair (5.18), which makes a vault
// entry's key objects or a session key pair. What the objects are is token.cc's; what a
// template may say, templates.cc's; how a session object is made, session_objects.cc's.
#include <cstring>

#include "functions.h"
#include "session_objects.h"
#include "templates.h"

namespace certvault::pkcs11 {

CK_RV create_object(Session& s, Token& t, const CK_ATTRIBUTE* templ, CK_ULONG count,
                    CK_OBJECT_HANDLE& out, CK_SESSION_HANDLE h) {
  const CK_ATTRIBUTE* class_attr = nullptr;
  for (CK_ULONG i = 0; i < count; ++i)
    if (templ[i].type == CKA_CLASS) class_attr = &templ[i];
  // v3.0 5.7.1, C_CreateObject, 4.1.1 item 4, and 4.2: an object's class has no default.
  if (!class_attr) return CKR_TEMPLATE_INCOMPLETE;
  // v3.0 5.7.1: a read-only session may create session objects only; CKA_TOKEN is false
  // unless the template says otherwise (4.4).
  const bool token = wants_token_object(templ, count);
  if (token && !(s.flags & CKF_RW_SESSION)) return CKR_SESSION_READ_ONLY;
  CK_OBJECT_CLASS cls = 0;
  if (class_attr->pValue && class_attr->ulValueLen == sizeof cls)
    std::memcpy(&cls, class_attr->pValue, sizeof cls);
  Kind kind;
  switch (cls) {
    case CKO_CERTIFICATE:
      if (token) {  // a vault entry's certificate, for its waiting key
        CertificateRequest request;
        if (CK_RV rv = parse_certificate(templ, count, request); rv != CKR_OK) return rv;
        return t.add_certificate(request, out);
      }
      kind = Kind::kSessionCertificate;
      break;
    case CKO_PUBLIC_KEY:
    case CKO_PRIVATE_KEY:
      // A vault's keys are made inside it (C_GenerateKeyPair), never imported through
      // PKCS#11 (`certvault import` does that); a session key may be given by value.
      if (token) return CKR_ATTRIBUTE_VALUE_INVALID;
      kind = cls == CKO_PUBLIC_KEY ? Kind::kSessionPublicKey : Kind::kSessionPrivateKey;
      break;
    case CKO_DATA:
      kind = token ? Kind::kData : Kind::kSessionData;
      break;
    default:
      return CKR_ATTRIBUTE_VALUE_INVALID;
  }
  ObjectRequest request;
  if (CK_RV rv = parse_object(kind, templ, count, request); rv != CKR_OK) return rv;
  if (kind == Kind::kData) return t.create_data_object(request, out);
  auto made = std::make_shared<Object>();
  if (CK_RV rv = make_session_object(request, *made); rv != CKR_OK) return rv;
  made->session = h;
  return t.add_session_object(std::move(made), out);
}

// v3.0 5.7.3 and 5.7.6: a read-only session may destroy and change session objects only.
CK_RV destroy_object(Session& s, Token& t, CK_OBJECT_HANDLE obj) {
  if (!(s.flags & CKF_RW_SESSION) && !t.is_session_object(obj)) return CKR_SESSION_READ_ONLY;
  return t.destroy(obj);
}

CK_RV get_attribute_value(Token& t, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE* templ, CK_ULONG count) {
  std::shared_ptr<Object> o;
  if (CK_RV rv = t.object(obj, o); rv != CKR_OK) return rv;
  return t.get_attributes(*o, templ, count);
}

CK_RV set_attribute_value(Session& s, Token& t, CK_OBJECT_HANDLE obj, const CK_ATTRIBUTE* templ,
                          CK_ULONG count) {
  if (!(s.flags & CKF_RW_SESSION) && !t.is_session_object(obj)) return CKR_SESSION_READ_ONLY;
  return t.set_attributes(obj, templ, count);
}

CK_RV object_size(Token& t, CK_OBJECT_HANDLE obj, CK_ULONG& out) {
  std::shared_ptr<Object> o;
  if (CK_RV rv = t.object(obj, o); rv != CKR_OK) return rv;
  return t.object_size(*o, out);
}

CK_RV find_objects_init(Session& s, Token& t, const CK_ATTRIBUTE* templ, CK_ULONG count) {
  if (s.finding) return CKR_OPERATION_ACTIVE;
  std::vector<std::shared_ptr<Object>> all;
  if (CK_RV rv = t.candidates(templ, count, all); rv != CKR_OK) return rv;
  s.found.clear();
  for (auto& o : all)
    if (t.matches(*o, templ, count)) s.found.push_back(o->handle);
  s.found_next = 0;
  s.finding = true;
  return CKR_OK;
}

CK_RV find_objects(Session& s, CK_OBJECT_HANDLE_PTR out, CK_ULONG max, CK_ULONG& count) {
  if (!s.finding) return CKR_OPERATION_NOT_INITIALIZED;
  CK_ULONG n = 0;
  while (n < max && s.found_next < s.found.size()) out[n++] = s.found[s.found_next++];
  count = n;
  return CKR_OK;
}

CK_RV find_objects_final(Session& s) {
  if (!s.finding) return CKR_OPERATION_NOT_INITIALIZED;
  s.finding = false;
  s.found.clear();
  return CKR_OK;
}

CK_RV generate_key_pair(Session& s, Token& t, const CK_MECHANISM& mech,
                        const CK_ATTRIBUTE* pub_templ, CK_ULONG pub_count,
                        const CK_ATTRIBUTE* priv_templ, CK_ULONG priv_count, CK_OBJECT_HANDLE& pub,
                        CK_OBJECT_HANDLE& priv, CK_SESSION_HANDLE h) {
  // v3.0 5.18.2 with 5.7.1: a read-only session makes session keys only.
  const bool token =
      wants_token_object(pub_templ, pub_count) || wants_token_object(priv_templ, priv_count);
  if (token && !(s.flags & CKF_RW_SESSION)) return CKR_SESSION_READ_ONLY;
  KeyPairRequest request;
  if (CK_RV rv = parse_key_pair(mech, pub_templ, pub_count, priv_templ, priv_count, request);
      rv != CKR_OK)
    return rv;
  if (request.token) return t.generate_key_pair(request, pub, priv);
  auto pub_object = std::make_shared<Object>(), priv_object = std::make_shared<Object>();
  if (CK_RV rv = make_session_key_pair(request, *pub_object, *priv_object); rv != CKR_OK) return rv;
  pub_object->session = priv_object->session = h;
  return t.add_session_key_pair(std::move(pub_object), std::move(priv_object), pub, priv);
}

}  // namespace certvault::pkcs11
