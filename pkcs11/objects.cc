// Object management (PKCS#11 v3.0 5.7: making, changing and destroying objects, their
// attributes and sizes, and searching), and C_GenerateKeyPair (5.18), which makes a vault
// entry's key objects. What the objects are is token.cc's; what a template may say,
// templates.cc's.
#include <cstring>

#include "functions.h"
#include "templates.h"

namespace certvault::pkcs11 {

CK_RV create_object(Session& s, Token& t, const CK_ATTRIBUTE* templ, CK_ULONG count,
                    CK_OBJECT_HANDLE& out) {
  const CK_ATTRIBUTE* class_attr = nullptr;
  for (CK_ULONG i = 0; i < count; ++i)
    if (templ[i].type == CKA_CLASS) class_attr = &templ[i];
  // v3.0 5.7.1, C_CreateObject, 4.1.1 item 4, and 4.2: an object's class has no default.
  if (!class_attr) return CKR_TEMPLATE_INCOMPLETE;
  // v3.0 5.7, C_CreateObject: a read-only session may create session objects only, and
  // CKA_TOKEN is false unless the template says otherwise (4.4). The vault holds none: such a
  // template goes on to be refused as inconsistent (templates.cc), as in any session.
  CK_BBOOL token = CK_FALSE;
  for (CK_ULONG i = 0; i < count; ++i)
    if (templ[i].type == CKA_TOKEN && templ[i].pValue && templ[i].ulValueLen == sizeof token)
      std::memcpy(&token, templ[i].pValue, sizeof token);
  if (token && !(s.flags & CKF_RW_SESSION)) return CKR_SESSION_READ_ONLY;
  CK_OBJECT_CLASS cls = 0;
  if (class_attr->pValue && class_attr->ulValueLen == sizeof cls)
    std::memcpy(&cls, class_attr->pValue, sizeof cls);
  // Keys are made inside the vault (C_GenerateKeyPair), never imported through PKCS#11.
  if (cls != CKO_CERTIFICATE) return CKR_ATTRIBUTE_VALUE_INVALID;
  CertificateRequest request;
  if (CK_RV rv = parse_certificate(templ, count, request); rv != CKR_OK) return rv;
  return t.add_certificate(request, out);
}

CK_RV destroy_object(Session& s, Token& t, CK_OBJECT_HANDLE obj) {
  if (!(s.flags & CKF_RW_SESSION)) return CKR_SESSION_READ_ONLY;
  return t.destroy(obj);
}

CK_RV get_attribute_value(Token& t, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE* templ, CK_ULONG count) {
  std::shared_ptr<Object> o;
  if (CK_RV rv = t.object(obj, o); rv != CKR_OK) return rv;
  return t.get_attributes(*o, templ, count);
}

CK_RV set_attribute_value(Session& s, Token& t, CK_OBJECT_HANDLE obj, const CK_ATTRIBUTE* templ,
                          CK_ULONG count) {
  if (!(s.flags & CKF_RW_SESSION)) return CKR_SESSION_READ_ONLY;
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
                        CK_OBJECT_HANDLE& priv) {
  if (!(s.flags & CKF_RW_SESSION)) return CKR_SESSION_READ_ONLY;
  KeyPairRequest request;
  if (CK_RV rv = parse_key_pair(mech, pub_templ, pub_count, priv_templ, priv_count, request);
      rv != CKR_OK)
    return rv;
  return t.generate_key_pair(request, pub, priv);
}

}  // namespace certvault::pkcs11
