// The interface list (PKCS#11 v3.0 5.4: C_GetInterfaceList, C_GetInterface). The interfaces
// themselves, the v3.0 and v2.40 function lists, are abi.cc's.
#include <cstring>

#include "functions.h"

namespace certvault::pkcs11 {

CK_RV interface_list(std::span<const CK_INTERFACE> all, CK_INTERFACE_PTR list, CK_ULONG_PTR count) {
  if (!count) return CKR_ARGUMENTS_BAD;
  const auto n = static_cast<CK_ULONG>(all.size());
  // v3.0 5.4.5: a null buffer asks for the count, a short one gets CKR_BUFFER_TOO_SMALL.
  if (!list) {
    *count = n;
    return CKR_OK;
  }
  if (*count < n) {
    *count = n;
    return CKR_BUFFER_TOO_SMALL;
  }
  std::memcpy(list, all.data(), all.size_bytes());
  *count = n;
  return CKR_OK;
}

// v3.0 5.4, C_GetInterface: the first interface with that name (any, when NULL), that version
// (any, when NULL) and at least those flags. None (CKF_INTERFACE_FORK_SAFE is never offered:
// docs/pkcs11.md) is CKR_ARGUMENTS_BAD.
CK_RV find_interface(std::span<CK_INTERFACE> all, CK_UTF8CHAR_PTR name, CK_VERSION_PTR version,
                     CK_FLAGS flags, CK_INTERFACE_PTR_PTR out) {
  if (!out) return CKR_ARGUMENTS_BAD;
  for (auto& i : all) {
    if (name && std::strcmp(reinterpret_cast<const char*>(name), i.pInterfaceName) != 0) continue;
    const CK_VERSION v = *static_cast<CK_VERSION*>(i.pFunctionList);
    if (version && (version->major != v.major || version->minor != v.minor)) continue;
    if ((flags & i.flags) != flags) continue;
    *out = &i;
    return CKR_OK;
  }
  return CKR_ARGUMENTS_BAD;
}

}  // namespace certvault::pkcs11
