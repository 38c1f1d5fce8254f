// URI-in-PEM: a PEM block that holds only a certvault URI, no secret, for programs that
// take nothing but a key file path (DESIGN.md, "URIs"). Its label, kUriPemLabel, is the
// keystore's, shared with the CLI that writes such files.
#pragma once

#include "uri_pem_label.h"

namespace certvault::provider {

// What the PEM decoder hands on as the input structure of the key decoders.
inline constexpr const char* kUriStructure = "certvault-uri";

}  // namespace certvault::provider
