// The manifest parser (keystore/manifest.cc) under libFuzzer. The input is a manifest file
// as a vault directory holds it; parse() reads it before the MAC can be checked (the
// vault key is not known yet), so every byte is untrusted. What parses must be written
// again by serialize() into a manifest that parses, carries a MAC that verifies and the
// same commit counter for peek_counter, and is written the same way a second time: a
// vault that certvault read must stay readable after its next commit. That holds both
// for entries kept as the lines they were read from and for entries encoded afresh.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "check.h"
#include "manifest.h"

namespace {

using namespace certvault;

void check(bool ok, const char* what) {
  fuzz::check(ok, "manifest_fuzz", what);
}

const std::filesystem::path kPath = "/fuzz/vault/manifest";

// Every entry encoded from its records, not copied from the lines it was read from.
std::string serialize_fresh(manifest::Manifest m, const SecureBytes& mac_key) {
  for (size_t i = 0; i < m.entries.size(); ++i) manifest::edit(m, i);
  return manifest::serialize(m, mac_key);
}

// `bytes`, written by serialize(), reads back.
manifest::Parsed reread(const std::string& bytes, const SecureBytes& mac_key) {
  auto parsed = manifest::parse(std::make_shared<const std::string>(bytes), kPath);
  check(parsed.has_value(), "a manifest serialize() wrote does not parse");
  check(manifest::verify(parsed->source, mac_key, kPath).has_value(),
        "the MAC serialize() wrote does not verify");
  check(manifest::peek_counter(bytes) == parsed->manifest.header.counter,
        "peek_counter disagrees with the header");
  return std::move(*parsed);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto input = std::make_shared<const std::string>(reinterpret_cast<const char*>(data), size);
  (void)manifest::peek_counter(*input);
  auto parsed = manifest::parse(input, kPath);
  if (!parsed) {
    check(!parsed.error().message.empty(), "a refusal without a sentence");
    return 0;
  }
  const SecureBytes mac_key(32);
  const std::string kept = manifest::serialize(parsed->manifest, mac_key);
  auto kept_again = reread(kept, mac_key);
  check(manifest::serialize(kept_again.manifest, mac_key) == kept,
        "a manifest changes when written again");

  const std::string fresh = serialize_fresh(parsed->manifest, mac_key);
  auto fresh_again = reread(fresh, mac_key);
  check(serialize_fresh(fresh_again.manifest, mac_key) == fresh,
        "an entry encoded afresh changes when read and encoded again");
  check(serialize_fresh(kept_again.manifest, mac_key) == fresh,
        "the entries kept as read and encoded afresh hold different records");
  return 0;
}
