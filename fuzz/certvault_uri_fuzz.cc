// The certvault: URI grammar (keystore/uri.cc) under libFuzzer: the input is a URI as the
// provider's STORE and the URI-in-PEM decoder get it. What parses must print and parse
// back the same (display), percent-encoding must round-trip any bytes, and a vault
// directory put into a query by vault_query must come back out as it was.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "check.h"
#include "uri.h"

namespace {

using namespace certvault;

void check(bool ok, const char* what) {
  fuzz::check(ok, "certvault_uri_fuzz", what);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  if (auto uri = parse_uri(text)) {
    check(!uri->pin_value || !uri->pin_value->empty(), "an empty pin-value was accepted");
    const auto again = parse_uri(uri->display());
    check(again && again->nickname == uri->nickname && !again->vault && !again->pin_value,
          "display() does not parse back to the same nickname");
    if (uri->serial) check(normalise_serial(*uri->serial) == *uri->serial, "serial not normal");
  } else {
    check(!uri.error().message.empty(), "a refusal without a sentence");
  }

  // Any bytes survive percent-encoding, in a secret as well.
  const auto decoded = percent_decode(percent_encode(text), "fuzz input");
  check(decoded && *decoded == text, "percent_decode(percent_encode(x)) != x");
  const auto secret = percent_decode_secret(percent_encode(text), "fuzz input");
  check(secret && secret->view() == text, "percent_decode_secret(percent_encode(x)) != x");

  // A vault directory as the CLI puts it into a URI.
  if (!text.empty()) {
    const auto with_vault = parse_uri(certvault_uri("a") + vault_query(text));
    check(with_vault && with_vault->vault == text, "vault_query does not round-trip");
  }

  const std::string serial = normalise_serial(text);
  check(normalise_serial(serial) == serial, "normalise_serial is not idempotent");
  return 0;
}
