// Importing identities and certificates under libFuzzer: PKCS#12 (keystore/pkcs12.cc), PEM
// certificates with their key, and what a CA hands out (PEM or DER certificates, PKCS#7;
// keystore/certificate.cc). The first input byte picks the reader, the rest is the file:
//   mode % 3 == 0: PKCS#12 through Vault::import_pkcs12 (password "fuzz-p12", or the
//                  empty password when bit 2 is set) into a throwaway vault, as
//                  `certvault import` does. The same file is tried again with its MAC
//                  made anew for that password, so that the fuzzer reaches the bags that
//                  a MAC it cannot forge would otherwise keep it from.
//   mode % 3 == 1: PEM through Vault::import_pem, as `certvault import --pem` does.
//   mode % 3 == 2: certs_from_any, then every certificate's facts, as a CA's answer is read.
// What imports is removed again, so that the vault stays small.
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pkcs12.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "certificate.h"
#include "check.h"
#include "fuzz_vault.h"
#include "ossl.h"
#include "pkcs12.h"

namespace {

using namespace certvault;

void check(bool ok, const char* what) {
  fuzz::check(ok, "import_fuzz", what);
}

constexpr std::string_view kNickname = "fuzz-import";

// An import that succeeded is listed with its certificate, and removed again.
void check_imported(Vault& vault, const Result<Entry>& imported) {
  if (!imported) {
    check(!imported.error().message.empty(), "a refusal without a sentence");
    return;
  }
  check(imported->nickname == kNickname, "imported under another nickname");
  check(vault.certificate_der(kNickname).has_value(), "an imported entry has no certificate");
  check(vault.remove(kNickname).has_value(), "an imported entry cannot be removed");
}

// `der` with a MAC (SHA-256, one iteration) made anew under `password`; empty when `der`
// is no PKCS#12 structure.
ossl::Bytes with_new_mac(std::span<const uint8_t> der, const SecureBytes& password) {
  const unsigned char* p = der.data();
  ossl::P12 p12(d2i_PKCS12(nullptr, &p, static_cast<long>(der.size())));
  ossl::Bytes out;
  const std::string pw(password.view());
  if (p12 && PKCS12_set_mac(p12.get(), pw.c_str(), static_cast<int>(pw.size()), nullptr, 0, 1,
                            EVP_sha256())) {
    const int n = i2d_PKCS12(p12.get(), nullptr);
    if (n > 0) {
      out.resize(static_cast<size_t>(n));
      unsigned char* w = out.data();
      i2d_PKCS12(p12.get(), &w);
    }
  }
  ERR_clear_error();
  return out;
}

void read_ca_answer(std::string_view data) {
  auto certs = certificate::certs_from_any(data);
  if (!certs) return;
  STACK_OF(X509)* stack = certs->get();
  for (int i = 0; i < sk_X509_num(stack); ++i) {
    X509* cert = sk_X509_value(stack, i);
    const auto facts = certificate::facts(cert);
    (void)certificate::signature_hash(cert);
    (void)certificate::alt_names_of(cert);
    check(!facts.fingerprint.empty(), "a certificate without a fingerprint");
  }
  if (sk_X509_num(stack) > 0) {
    const auto order = certificate::chain_order(sk_X509_value(stack, 0), stack);
    check(order.size() == static_cast<size_t>(sk_X509_num(stack)),
          "chain_order loses certificates");
  }
  ERR_clear_error();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)fuzz::fixture_vault();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  const std::span<const uint8_t> file(data + 1, size - 1);
  const std::string_view text(reinterpret_cast<const char*>(file.data()), file.size());
  Vault& vault = fuzz::fixture_vault().vault;
  switch (mode % 3) {
    case 0: {
      const SecureBytes password = SecureBytes::from((mode & 4) ? "" : "fuzz-p12");
      check_imported(vault, vault.import_pkcs12(kNickname, file, password));
      if (const auto remade = with_new_mac(file, password); !remade.empty())
        check_imported(vault, vault.import_pkcs12(kNickname, remade, password));
      break;
    }
    case 1:
      check_imported(vault, vault.import_pem(kNickname, text));
      break;
    case 2:
      read_ca_answer(text);
      break;
  }
  check(ERR_peek_error() == 0, "an error left on OpenSSL's queue");
  return 0;
}
