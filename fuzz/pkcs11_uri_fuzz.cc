// The parts of a PKCS#11 URI (RFC 7512) that certvault reads (keystore/uri.cc,
// parse_pkcs11_uri) under libFuzzer. The input is a URI; what parses and names a token and
// an object must come back the same from the URI certvault prints for them (pkcs11_uri,
// as `certvault show` does), and any label and nickname must survive that URI.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "check.h"
#include "uri.h"

namespace {

using namespace certvault;

void check(bool ok, const char* what) {
  fuzz::check(ok, "pkcs11_uri_fuzz", what);
}

void check_printed(std::string_view label, std::string_view nickname) {
  const auto back = parse_pkcs11_uri(pkcs11_uri(label, nickname));
  check(back && back->token == label && back->object == nickname && !back->id && !back->type &&
            !back->pin_source && !back->pin_value,
        "pkcs11_uri does not parse back to its token and object");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto uri = parse_pkcs11_uri(text)) {
    check(!(uri->pin_source && uri->pin_value), "both pin-source and pin-value were accepted");
    check(!uri->pin_value || !uri->pin_value->empty(), "an empty pin-value was accepted");
    if (uri->token && uri->object) check_printed(*uri->token, *uri->object);
  } else {
    check(!uri.error().message.empty(), "a refusal without a sentence");
  }
  // The input split in two at its first NUL (or in the middle): a label and a nickname.
  size_t cut = text.find('\0');
  if (cut == std::string_view::npos) cut = text.size() / 2;
  check_printed(text.substr(0, cut), text.substr(std::min(text.size(), cut + 1)));
  return 0;
}
