#include "uri.h"

namespace certvault::cli {
namespace {

bool is_alnum(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

template <typename Keep>
std::string percent_encode(std::string_view text, Keep keep) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (keep(c)) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    }
  }
  return out;
}

bool certvault_keeps(unsigned char c) {
  return is_alnum(c) || c == '-' || c == '_' || c == '.';
}

// RFC 7512 section 2.3: unreserved characters may stay; encoding the rest is always valid
// and leaves no doubt about ';', '/', '?' or spaces.
bool pkcs11_keeps(unsigned char c) {
  return certvault_keeps(c) || c == '~';
}

// A path in a query value: '/' is allowed there (RFC 3986 section 3.4) and easier to read.
bool query_keeps(unsigned char c) {
  return certvault_keeps(c) || c == '/' || c == '~';
}

}  // namespace

std::string certvault_uri(std::string_view nickname) {
  return "certvault:" + percent_encode(nickname, certvault_keeps);
}

std::string pkcs11_uri(std::string_view label, std::string_view nickname) {
  return "pkcs11:token=" + percent_encode(label, pkcs11_keeps) +
         ";object=" + percent_encode(nickname, pkcs11_keeps);
}

std::string vault_query(std::string_view dir) {
  return "?vault=" + percent_encode(dir, query_keeps);
}

}  // namespace certvault::cli
