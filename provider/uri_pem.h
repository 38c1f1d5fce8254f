// URI-in-PEM: a PEM block that holds only a certvault URI, no secret, for programs that
// take nothing but a key file path (DESIGN.md, "URIs").
#pragma once

#include <string_view>

namespace certvault::provider {

inline constexpr std::string_view kUriPemLabel = "CERTVAULT URI";
// What the PEM decoder hands on as the input structure of the key decoders.
inline constexpr const char* kUriStructure = "certvault-uri";

}  // namespace certvault::provider
