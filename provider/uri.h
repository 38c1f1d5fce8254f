// The provider's URI: certvault:NICKNAME[?vault=DIR&serial=HEX&pin-source=file:PATH]
// (DESIGN.md, "URIs"); the nickname and every value percent-decoded.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "error.h"

namespace certvault::provider {

inline constexpr std::string_view kScheme = "certvault";

struct VaultUri {
  std::string nickname;  // empty: every entry (a search by alias names one)
  std::optional<std::string> vault;
  std::optional<std::string> serial;      // upper-case hex, no leading zeros
  std::optional<std::string> pin_source;  // "file:PATH"
  std::optional<std::string> pin_value;
  // "certvault:NICKNAME" as it may appear in messages: no query, so never a PIN.
  std::string display() const;
};

Result<VaultUri> parse_uri(std::string_view text);
// Upper case, without a "0x" prefix, ':' separators or leading zeros; empty when not hex.
std::string normalise_serial(std::string_view hex);

}  // namespace certvault::provider
