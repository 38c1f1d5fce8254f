// X.509: subject parsing, the client and CA certificate profiles, CSRs, and reading the
// facts back out of a certificate.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "ossl.h"
#include "types.h"

namespace certvault::certificate {

// A new certificate's notBefore is this long before the moment it is made, for peers
// whose clocks are a little behind; so its lifetime is its notAfter - now + this.
constexpr Time kBackdate = 300;

// "/CN=a/O=b" (openssl -subj style) or "CN=a, O=b" (RFC 4514 style).
Result<ossl::Name> parse_subject(std::string_view text);
ossl::Name common_name(std::string_view cn);
// RFC 2253 text of a name.
std::string name_text(const X509_NAME* name);
// A subjectAltName extension from "DNS:a,URI:b,email:c,IP:d" (the types a client
// certificate names), none (empty) from ""; a refusal that says how to write it otherwise.
Result<ossl::Ext> parse_alt_names(std::string_view text);
// A copy of a certificate's subjectAltName extension; empty when it has none.
ossl::Ext alt_names_of(const X509* cert);

// The digest name a signature by `signer` uses: `hash`'s, or none for Ed25519.
const char* md_name(EVP_PKEY* signer, Hash hash);

enum class Profile { kClient, kCa };

struct IssueArgs {
  EVP_PKEY* subject_key = nullptr;  // its public half goes into the certificate
  X509_NAME* subject = nullptr;
  X509* issuer = nullptr;  // nullptr: self-signed by signer
  EVP_PKEY* signer = nullptr;
  Time not_after = 0;
  Hash hash = Hash::kSha256;  // ignored for Ed25519 signers
  Profile profile = Profile::kClient;
  const X509_EXTENSION* alt_names = nullptr;  // subjectAltName, or none
};
Result<ossl::Cert> issue(const IssueArgs& args);
// A PKCS#10 request asking for the client profile, and for `alt_names` when given.
Result<std::string> make_csr(EVP_PKEY* key, X509_NAME* subject, Hash hash,
                             const X509_EXTENSION* alt_names = nullptr);

struct Facts {
  std::string serial;   // upper-case hex
  std::string subject;  // RFC 2253
  std::string issuer;
  std::string fingerprint;  // hex SHA-256 of the DER
  std::string key_id;       // of the certified public key
  Time not_before = 0;
  Time not_after = 0;
  bool is_ca = false;
  bool self_issued = false;
};
Facts facts(X509* cert);
// Signature hash of a certificate, when it is one certvault names.
std::optional<Hash> signature_hash(X509* cert);

// Every certificate in a PEM text, in order.
Result<ossl::CertStack> certs_from_pem(std::string_view pem);
// Every certificate in what a CA hands out: PEM certificates, a PEM or DER PKCS#7
// (.p7b/.p7c, in its own order), or one DER certificate. Empty when there is none.
Result<ossl::CertStack> certs_from_any(std::string_view data);
// `leaf` first, then the certificates of `others` that issued it, each followed by its own
// issuer (as a chain is sent); those that issued none of them at the end, in their order.
std::vector<X509*> chain_order(X509* leaf, STACK_OF(X509) * others);
Result<ossl::Pkey> private_key_from_pem(std::string_view pem);

}  // namespace certvault::certificate
