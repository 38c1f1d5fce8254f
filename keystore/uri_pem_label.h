// The PEM label of a URI-in-PEM file (DESIGN.md, "URIs"): `certvault uri --pem` writes
// such files and the provider's decoder reads them, so both take the label from here.
#pragma once

#include <string_view>

namespace certvault {

inline constexpr std::string_view kUriPemLabel = "CERTVAULT URI";

}  // namespace certvault
