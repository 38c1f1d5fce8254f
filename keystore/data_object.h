// The format layer for data object files: one immutable JSON file per PKCS#11 data object,
// named by the BLAKE2b-256 of its bytes, holding its value: in the clear for a non-private
// object (like a certificate), sealed with XChaCha20-Poly1305 for a private one, with
// associated data that binds it to its vault and object. docs/vault-format.md.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "error.h"

namespace certvault::data_object {

using Bytes = std::vector<uint8_t>;

struct DataFile {
  std::string vault_id;
  std::string id;       // the data object's id (the manifest's `d` line)
  bool sealed = false;  // `value` is seal(seal key, CKA_VALUE, seal_ad(...))
  Bytes value;
};

Bytes encode(const DataFile& file);
Result<DataFile> decode(std::span<const uint8_t> bytes);
// The associated data that binds a sealed value to its vault and object.
Bytes seal_ad(std::string_view vault_id, std::string_view id);

}  // namespace certvault::data_object
