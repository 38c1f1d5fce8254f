// The URIs that name a vault entry, in one place: the provider's certvault: URI (parsed
// by the STORE and the URI-in-PEM decoder, printed by the CLI) and the parts of a PKCS#11
// URI (RFC 7512) that certvault reads. Values are percent-encoded (RFC 3986 section 2.1);
// a PIN in a URI is decoded straight into guarded memory.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "error.h"
#include "secure.h"

namespace certvault {

inline constexpr std::string_view kUriScheme = "certvault";

// --- percent-encoding ----------------------------------------------------------------

// Every byte other than ASCII letters, digits and the characters in `keep` as %XX.
std::string percent_encode(std::string_view bytes, std::string_view keep = "-_.");
// `what` names the value in the message: "nickname of a certvault URI".
Result<std::string> percent_decode(std::string_view text, std::string_view what);
// The same for a secret: no copy of it outside guarded memory, none in the message.
Result<SecureBytes> percent_decode_secret(std::string_view text, std::string_view what);

// --- certvault: ------------------------------------------------------------------------

//   certvault:NICKNAME[?vault=DIR&serial=HEX&pin-source=file:PATH&pin-value=PIN]
// pin-value holds the PIN itself (prefer pin-source: a URI ends up in logs and process
// lists).
struct VaultUri {
  std::string nickname;  // empty: every entry (a search by alias names one)
  std::optional<std::string> vault;
  std::optional<std::string> serial;      // upper-case hex, no leading zeros
  std::optional<std::string> pin_source;  // "file:PATH"
  std::optional<SecureBytes> pin_value;   // never empty
  // "certvault:NICKNAME" as it may appear in messages: no query, so never a PIN.
  std::string display() const;
};

Result<VaultUri> parse_uri(std::string_view text);
// "certvault:NICKNAME", the nickname percent-encoded.
std::string certvault_uri(std::string_view nickname);
// The query that names a vault other than the default one: "?vault=DIR".
std::string vault_query(std::string_view dir);
// Upper case, without a "0x" prefix, ':' separators or leading zeros; empty when not hex.
std::string normalise_serial(std::string_view hex);

// --- pkcs11: (RFC 7512) -----------------------------------------------------------------

// "pkcs11:token=LABEL;object=NICKNAME", values percent-encoded (a space is %20).
std::string pkcs11_uri(std::string_view label, std::string_view nickname);

// The attributes certvault reads; the other standard ones (library-*, slot-*,
// manufacturer, model, serial, module-*) are accepted and left to whoever picks the module.
struct Pkcs11Uri {
  std::optional<std::string> token;        // CK_TOKEN_INFO label
  std::optional<std::string> object;       // CKA_LABEL
  std::optional<std::vector<uint8_t>> id;  // CKA_ID, decoded
  std::optional<std::string> type;         // cert, data, private, public or secret-key
  std::optional<std::string> pin_source;   // as given: "file:PATH" or an absolute path
  std::optional<SecureBytes> pin_value;    // never empty
};

Result<Pkcs11Uri> parse_pkcs11_uri(std::string_view text);

}  // namespace certvault
