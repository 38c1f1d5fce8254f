#include "errors.h"

namespace certvault::pkcs11 {
namespace {

CK_RV rv_of(const Error& e, Stage stage) {
  // v3.0 5.1.3: CKR_DEVICE_ERROR for a problem with the token, such as an I/O failure.
  if (e.code == Code::kIo) return CKR_DEVICE_ERROR;
  switch (stage) {
    case Stage::kOpen:
      // v3.0 5.1.6: CKR_TOKEN_NOT_RECOGNIZED, the token in the slot is not one the library
      // knows: loose permissions, a newer format, damage. Never CKR_TOKEN_NOT_PRESENT, as
      // C_GetSlotInfo says that every slot holds its token.
      return e.code == Code::kCrypto ? CKR_FUNCTION_FAILED : CKR_TOKEN_NOT_RECOGNIZED;
    case Stage::kRead:
      return e.code == Code::kCrypto ? CKR_FUNCTION_FAILED : CKR_DEVICE_ERROR;
    case Stage::kUse:
      break;
  }
  switch (e.code) {
    case Code::kWrongPin:
      return CKR_PIN_INCORRECT;
    case Code::kPinLocked:
      return CKR_PIN_LOCKED;
    case Code::kLocked:
      return CKR_USER_NOT_LOGGED_IN;
    case Code::kInvalidInput:
      return CKR_ARGUMENTS_BAD;
    case Code::kNotFound:
      return CKR_OBJECT_HANDLE_INVALID;
    case Code::kRefused:
    case Code::kExists:
      return CKR_ACTION_PROHIBITED;
    case Code::kCrypto:
      return CKR_FUNCTION_FAILED;
    case Code::kTampered:
    case Code::kBadPermissions:
    case Code::kIo:
      break;
  }
  return CKR_DEVICE_ERROR;  // damaged or unreadable vault
}

const char* name_of(CK_RV rv) {
  switch (rv) {
    case CKR_PIN_INCORRECT:
      return "CKR_PIN_INCORRECT";
    case CKR_PIN_LOCKED:
      return "CKR_PIN_LOCKED";
    case CKR_USER_NOT_LOGGED_IN:
      return "CKR_USER_NOT_LOGGED_IN";
    case CKR_ARGUMENTS_BAD:
      return "CKR_ARGUMENTS_BAD";
    case CKR_OBJECT_HANDLE_INVALID:
      return "CKR_OBJECT_HANDLE_INVALID";
    case CKR_ACTION_PROHIBITED:
      return "CKR_ACTION_PROHIBITED";
    case CKR_FUNCTION_FAILED:
      return "CKR_FUNCTION_FAILED";
    case CKR_TOKEN_NOT_RECOGNIZED:
      return "CKR_TOKEN_NOT_RECOGNIZED";
    case CKR_ATTRIBUTE_VALUE_INVALID:
      return "CKR_ATTRIBUTE_VALUE_INVALID";
    default:
      return "CKR_DEVICE_ERROR";
  }
}

}  // namespace

CK_RV to_rv(const Error& e, Stage stage) {
  const CK_RV rv = rv_of(e, stage);
  CV_DEBUG("%s (%s)", e.message.c_str(), name_of(rv));
  return rv;
}

CK_RV value_rv(const Error& e) {
  if (e.code != Code::kInvalidInput) return to_rv(e);
  CV_DEBUG("%s (%s)", e.message.c_str(), name_of(CKR_ATTRIBUTE_VALUE_INVALID));
  return CKR_ATTRIBUTE_VALUE_INVALID;
}

}  // namespace certvault::pkcs11
