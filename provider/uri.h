// The provider's URI (DESIGN.md, "URIs"):
//   certvault:NICKNAME[?vault=DIR&serial=HEX&pin-source=file:PATH&pin-value=PIN]
// the nickname and every value percent-decoded. pin-value holds the PIN itself (prefer
// pin-source: a URI ends up in logs and process lists); it is kept in guarded memory.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "error.h"
#include "secure.h"

namespace certvault::provider {

inline constexpr std::string_view kScheme = "certvault";

struct VaultUri {
  std::string nickname;  // empty: every entry (a search by alias names one)
  std::optional<std::string> vault;
  std::optional<std::string> serial;      // upper-case hex, no leading zeros
  std::optional<std::string> pin_source;  // "file:PATH"
  std::optional<SecureBytes> pin_value;   // never empty
  // "certvault:NICKNAME" as it may appear in messages: no query, so never a PIN.
  std::string display() const;
};

// "certvault:NICKNAME" for an entry, the nickname percent-encoded.
std::string display_uri(std::string_view nickname);

Result<VaultUri> parse_uri(std::string_view text);
// Upper case, without a "0x" prefix, ':' separators or leading zeros; empty when not hex.
std::string normalise_serial(std::string_view hex);

}  // namespace certvault::provider
