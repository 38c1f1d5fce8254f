// The URIs that programs use to reach a vault entry.
#pragma once

#include <string>
#include <string_view>

namespace certvault::cli {

// certvault:NICKNAME, every byte other than letters, digits, '-', '_', '.' percent-encoded.
std::string certvault_uri(std::string_view nickname);
// pkcs11:token=LABEL;object=NICKNAME (RFC 7512), values percent-encoded (space = %20).
std::string pkcs11_uri(std::string_view label, std::string_view nickname);
// The query that names a vault other than the default one: "?vault=DIR".
std::string vault_query(std::string_view dir);

}  // namespace certvault::cli
