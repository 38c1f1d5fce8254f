#include "uri.h"

#include <algorithm>
#include <array>
#include <cctype>

#include "vault.h"

namespace certvault {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool is_alnum(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

// Decodes `text` into `out`, which has room for text.size() bytes; false on a bad escape.
bool percent_decode_into(std::string_view text, char* out, size_t& len) {
  len = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out[len++] = text[i];
      continue;
    }
    if (i + 2 >= text.size() || hex_value(text[i + 1]) < 0 || hex_value(text[i + 2]) < 0)
      return false;
    out[len++] = static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2]));
    i += 2;
  }
  return true;
}

std::unexpected<Error> bad_encoding(std::string_view what) {
  return fail(Code::kInvalidInput,
              "bad percent-encoding in the " + std::string(what) + "; write '%' as %25");
}

bool iequals(std::string_view a, std::string_view b) {
  return std::ranges::equal(a, b, [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) ==
           std::tolower(static_cast<unsigned char>(y));
  });
}

// "SCHEME:REST" with the scheme compared case-insensitively (RFC 3986 section 3.1).
std::optional<std::string_view> after_scheme(std::string_view text, std::string_view scheme) {
  auto colon = text.find(':');
  if (colon == std::string_view::npos || !iequals(text.substr(0, colon), scheme))
    return std::nullopt;
  return text.substr(colon + 1);
}

// Splits "PATH?QUERY" at the first '?'.
std::pair<std::string_view, std::string_view> split_query(std::string_view rest) {
  auto q = rest.find('?');
  if (q == std::string_view::npos) return {rest, {}};
  return {rest.substr(0, q), rest.substr(q + 1)};
}

// Calls `each(key, value)` for every "key=value" between `separator`s; an item without
// '=' is refused, empty items are skipped.
template <typename Each>
Result<void> for_each_attribute(std::string_view list, char separator, std::string_view what,
                                Each each) {
  while (!list.empty()) {
    std::string_view item = list.substr(0, list.find(separator));
    list.remove_prefix(std::min(list.size(), item.size() + 1));
    if (item.empty()) continue;
    auto eq = item.find('=');
    std::string_view key = item.substr(0, eq);
    if (eq == std::string_view::npos)
      return fail(Code::kInvalidInput, "attribute '" + std::string(key) + "' of " +
                                           std::string(what) + " has no value; write " +
                                           std::string(key) + "=VALUE");
    CV_CHECK(each(key, item.substr(eq + 1)));
  }
  return {};
}

}  // namespace

// --- percent-encoding ----------------------------------------------------------------

std::string percent_encode(std::string_view bytes, std::string_view keep) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(bytes.size());
  for (unsigned char c : bytes) {
    if (is_alnum(c) || keep.find(static_cast<char>(c)) != std::string_view::npos) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    }
  }
  return out;
}

Result<std::string> percent_decode(std::string_view text, std::string_view what) {
  std::string out(text.size(), '\0');
  size_t len = 0;
  if (!percent_decode_into(text, out.data(), len)) return bad_encoding(what);
  out.resize(len);
  return out;
}

Result<SecureBytes> percent_decode_secret(std::string_view text, std::string_view what) {
  SecureBytes out(text.size());
  size_t len = 0;
  if (!percent_decode_into(text, reinterpret_cast<char*>(out.data()), len))
    return bad_encoding(what);
  out.truncate(len);
  return out;
}

// --- certvault: ------------------------------------------------------------------------

std::string certvault_uri(std::string_view nickname) {
  return std::string(kUriScheme) + ":" + percent_encode(nickname);
}

// A path in a query value: '/' is allowed there (RFC 3986 section 3.4) and easier to read.
std::string vault_query(std::string_view dir) {
  return "?vault=" + percent_encode(dir, "-_.~/");
}

std::string VaultUri::display() const {
  return certvault_uri(nickname);
}

std::string normalise_serial(std::string_view hex) {
  if (hex.starts_with("0x") || hex.starts_with("0X")) hex.remove_prefix(2);
  std::string out;
  for (char c : hex) {
    if (c == ':') continue;
    if (hex_value(c) < 0) return {};
    if (out.empty() && c == '0') continue;
    out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return out.empty() && !hex.empty() ? "0" : out;
}

Result<VaultUri> parse_uri(std::string_view text) {
  auto rest = after_scheme(text, kUriScheme);
  if (!rest) return fail(Code::kInvalidInput, "not a certvault URI; write certvault:NICKNAME");
  auto [path, query] = split_query(*rest);
  VaultUri uri;
  CV_TRY(nickname, percent_decode(path, "nickname of a certvault URI"));
  uri.nickname = std::move(nickname);
  if (!uri.nickname.empty()) CV_CHECK(check_nickname(uri.nickname));
  CV_CHECK(for_each_attribute(
      query, '&', "a certvault URI",
      [&](std::string_view key, std::string_view raw) -> Result<void> {
        const std::string what = std::string(key) + " of a certvault URI";
        if (key == "pin-value") {
          CV_TRY(pin, percent_decode_secret(raw, what));
          if (pin.empty()) return fail(Code::kInvalidInput, "empty pin-value= in a certvault URI");
          uri.pin_value = std::move(pin);
          return {};
        }
        CV_TRY(value, percent_decode(raw, what));
        if (key == "vault") {
          if (value.empty()) return fail(Code::kInvalidInput, "empty vault= in a certvault URI");
          uri.vault = std::move(value);
        } else if (key == "serial") {
          std::string serial = normalise_serial(value);
          if (serial.empty())
            return fail(Code::kInvalidInput,
                        "serial= in a certvault URI must be hexadecimal, as 'certvault show' "
                        "prints it");
          uri.serial = std::move(serial);
        } else if (key == "pin-source") {
          if (!value.starts_with("file:") || value.size() == 5)
            return fail(Code::kInvalidInput, "pin-source= in a certvault URI must be file:PATH");
          uri.pin_source = std::move(value);
        } else {
          return fail(Code::kInvalidInput, "unknown query attribute '" + std::string(key) +
                                               "' in a certvault URI; use vault, serial, "
                                               "pin-source or pin-value");
        }
        return {};
      }));
  return uri;
}

// --- pkcs11: (RFC 7512) -----------------------------------------------------------------

// RFC 7512 section 2.3: unreserved characters may stay; encoding the rest is always valid
// and leaves no doubt about ';', '/', '?' or spaces.
std::string pkcs11_uri(std::string_view label, std::string_view nickname) {
  return "pkcs11:token=" + percent_encode(label, "-_.~") +
         ";object=" + percent_encode(nickname, "-_.~");
}

Result<Pkcs11Uri> parse_pkcs11_uri(std::string_view text) {
  auto rest = after_scheme(text, "pkcs11");
  if (!rest)
    return fail(Code::kInvalidInput,
                "not a PKCS#11 URI; write pkcs11:token=LABEL;object=NICKNAME (RFC 7512)");
  auto [path, query] = split_query(*rest);
  // Standard attributes that select a library or slot, not an object: whoever loads the
  // module checks them.
  static constexpr std::array<std::string_view, 9> kElsewhere = {"library-manufacturer",
                                                                 "library-description",
                                                                 "library-version",
                                                                 "manufacturer",
                                                                 "model",
                                                                 "serial",
                                                                 "slot-description",
                                                                 "slot-id",
                                                                 "slot-manufacturer"};
  Pkcs11Uri uri;
  std::vector<std::string> seen;
  CV_CHECK(for_each_attribute(
      path, ';', "a PKCS#11 URI", [&](std::string_view key, std::string_view raw) -> Result<void> {
        // RFC 7512 section 2.3: an attribute appears at most once in the path.
        if (std::ranges::find(seen, key) != seen.end())
          return fail(Code::kInvalidInput,
                      "attribute '" + std::string(key) + "' appears twice in a PKCS#11 URI");
        seen.emplace_back(key);
        const std::string what = std::string(key) + " of a PKCS#11 URI";
        CV_TRY(value, percent_decode(raw, what));
        if (key == "token") {
          uri.token = std::move(value);
        } else if (key == "object") {
          uri.object = std::move(value);
        } else if (key == "id") {
          uri.id = std::vector<uint8_t>(value.begin(), value.end());
        } else if (key == "type") {
          static constexpr std::array<std::string_view, 5> kTypes = {"cert", "data", "private",
                                                                     "public", "secret-key"};
          if (std::ranges::find(kTypes, value) == kTypes.end())
            return fail(Code::kInvalidInput,
                        "type= in a PKCS#11 URI must be cert, private, public, data or "
                        "secret-key");
          uri.type = std::move(value);
        } else if (std::ranges::find(kElsewhere, key) == kElsewhere.end()) {
          // An attribute certvault does not know could narrow the match: refused, not ignored.
          return fail(Code::kInvalidInput, "unknown attribute '" + std::string(key) +
                                               "' in a PKCS#11 URI; certvault reads token, "
                                               "object, id and type");
        }
        return {};
      }));
  CV_CHECK(for_each_attribute(
      query, '&', "a PKCS#11 URI", [&](std::string_view key, std::string_view raw) -> Result<void> {
        const std::string what = std::string(key) + " of a PKCS#11 URI";
        if (key == "pin-value") {
          CV_TRY(pin, percent_decode_secret(raw, what));
          if (pin.empty()) return fail(Code::kInvalidInput, "empty pin-value= in a PKCS#11 URI");
          uri.pin_value = std::move(pin);
          return {};
        }
        CV_TRY(value, percent_decode(raw, what));
        if (key == "pin-source") {
          if (!(value.starts_with("file:") && value.size() > 5) && !value.starts_with("/"))
            return fail(Code::kInvalidInput,
                        "pin-source= in a PKCS#11 URI must be file:PATH or an absolute path");
          uri.pin_source = std::move(value);
        } else if (key != "module-name" && key != "module-path" && !key.starts_with("x-")) {
          return fail(Code::kInvalidInput, "unknown query attribute '" + std::string(key) +
                                               "' in a PKCS#11 URI; use pin-source, pin-value, "
                                               "module-name or module-path");
        }
        return {};
      }));
  if (uri.pin_source && uri.pin_value)
    return fail(Code::kInvalidInput,
                "a PKCS#11 URI gives both pin-source and pin-value; keep one of them");
  return uri;
}

}  // namespace certvault
