// Keystore errors as PKCS#11 return values: the one place where an Error becomes a CK_RV,
// used by every entry point (STYLE.md: errors are converted once, at the boundary).
#pragma once

#include "ck.h"
#include "debug.h"
#include "error.h"

// The shared debug log (keystore/debug.h), as "certvault-pkcs11".
#define CV_DEBUG(...) CV_DEBUG_AS("certvault-pkcs11", __VA_ARGS__)

namespace certvault::pkcs11 {

// Where the error arose. A vault the module will not open is a token it does not recognise;
// the same error from a vault that opened (damage found later, say) is a device error.
enum class Stage {
  kOpen,  // opening the slot's vault
  kRead,  // reading an open vault again (a newer manifest, the object table)
  kUse,   // an operation on the vault or its keys
};

// Also writes the keystore's sentence (what failed, which input, what to do) to the debug
// log, so that a user learns why a call returned what it did.
CK_RV to_rv(const Error& e, Stage stage = Stage::kUse);
// The same for an error about a value a template gave: bad input is
// CKR_ATTRIBUTE_VALUE_INVALID (v3.0 4.1.1, item 5).
CK_RV value_rv(const Error& e);

}  // namespace certvault::pkcs11
