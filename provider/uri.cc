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

Result<std::string> percent_decode(std::string_view text, std::string_view what) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    if (i + 2 >= text.size() || hex_value(text[i + 1]) < 0 || hex_value(text[i + 2]) < 0)
      return fail(Code::kInvalidInput, "bad percent-encoding in the " + std::string(what) +
                                           " of a certvault URI; write '%' as %25");
    const int hi = hex_value(text[i + 1]), lo = hex_value(text[i + 2]);
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
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

std::string VaultUri::display() const {
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
    } else if (key == "pin-value") {
      uri.pin_value = std::move(value);
    } else {
      return fail(Code::kInvalidInput, "unknown query attribute '" + std::string(key) +
                                           "' in a certvault URI; use vault, serial or "
                                           "pin-source");
    }
  }
  return uri;
}

}  // namespace certvault::provider
