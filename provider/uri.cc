#include "uri.h"

#include <cctype>

#include "vault.h"

namespace certvault::provider {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
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
  return fail(Code::kInvalidInput, "bad percent-encoding in the " + std::string(what) +
                                       " of a certvault URI; write '%' as %25");
}

Result<std::string> percent_decode(std::string_view text, std::string_view what) {
  std::string out(text.size(), '\0');
  size_t len = 0;
  if (!percent_decode_into(text, out.data(), len)) return bad_encoding(what);
  out.resize(len);
  return out;
}

// The same for a secret: decoded straight into guarded memory, no copy elsewhere.
Result<SecureBytes> percent_decode_secret(std::string_view text, std::string_view what) {
  SecureBytes out(text.size());
  size_t len = 0;
  if (!percent_decode_into(text, reinterpret_cast<char*>(out.data()), len))
    return bad_encoding(what);
  out.truncate(len);
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

}  // namespace

std::string display_uri(std::string_view nickname) {
  std::string out = std::string(kScheme) + ":";
  for (unsigned char c : nickname) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.') {
      out += static_cast<char>(c);
    } else {
      static constexpr char kHex[] = "0123456789ABCDEF";
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string VaultUri::display() const {
  return display_uri(nickname);
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
  auto colon = text.find(':');
  if (colon == std::string_view::npos || !iequals(text.substr(0, colon), kScheme))
    return fail(Code::kInvalidInput, "not a certvault URI; write certvault:NICKNAME");
  std::string_view rest = text.substr(colon + 1);
  std::string_view path = rest.substr(0, rest.find('?'));
  std::string_view query =
      path.size() < rest.size() ? rest.substr(path.size() + 1) : std::string_view();
  VaultUri uri;
  CV_TRY(nickname, percent_decode(path, "nickname"));
  uri.nickname = std::move(nickname);
  if (!uri.nickname.empty()) CV_CHECK(check_nickname(uri.nickname));
  while (!query.empty()) {
    std::string_view item = query.substr(0, query.find('&'));
    query.remove_prefix(std::min(query.size(), item.size() + 1));
    if (item.empty()) continue;
    auto eq = item.find('=');
    std::string_view key = item.substr(0, eq);
    if (eq == std::string_view::npos)
      return fail(Code::kInvalidInput, "query attribute '" + std::string(key) +
                                           "' of a certvault URI has no value; write " +
                                           std::string(key) + "=VALUE");
    if (key == "pin-value") {
      CV_TRY(pin, percent_decode_secret(item.substr(eq + 1), key));
      if (pin.empty()) return fail(Code::kInvalidInput, "empty pin-value= in a certvault URI");
      uri.pin_value = std::move(pin);
      continue;
    }
    CV_TRY(value, percent_decode(item.substr(eq + 1), key));
    if (key == "vault") {
      if (value.empty()) return fail(Code::kInvalidInput, "empty vault= in a certvault URI");
      uri.vault = std::move(value);
    } else if (key == "serial") {
      std::string serial = normalise_serial(value);
      if (serial.empty())
        return fail(
            Code::kInvalidInput,
            "serial= in a certvault URI must be hexadecimal, as 'certvault show' prints it");
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
  }
  return uri;
}

}  // namespace certvault::provider
