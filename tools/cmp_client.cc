#include "cmp_client.h"

#include <openssl/cmp.h>
#include <openssl/err.h>
#include <openssl/http.h>
#include <openssl/ssl.h>

#include <cstdlib>
#include <memory>
#include <optional>
#include <vector>

#include "ossl.h"

namespace certvault::cli {
namespace {

using CmpCtx = ossl::Ptr<OSSL_CMP_CTX, OSSL_CMP_CTX_free>;
using Store = ossl::Ptr<X509_STORE, X509_STORE_free>;
using SslCtx = ossl::Ptr<SSL_CTX, SSL_CTX_free>;
using Bytes = std::vector<uint8_t>;

// Per exchange: one message may take this long, the whole transaction this long.
constexpr int kMessageTimeout = 30;
constexpr int kTotalTimeout = 120;

// OpenSSL's CMP log goes to stdout by default; the reason of a failure is reported once,
// as the command's one line, instead.
int quiet(const char*, const char*, int, OSSL_CMP_severity, const char*) {
  return 1;
}

struct Free {
  void operator()(char* p) const { OPENSSL_free(p); }
};
using OsslString = std::unique_ptr<char, Free>;

struct Server {
  std::string host;
  int port = 0;
  std::string path;
  bool tls = false;
};

Result<Server> parse_server(const std::string& url) {
  char *host = nullptr, *port = nullptr, *path = nullptr;
  int tls = 0, port_num = 0;
  if (!OSSL_HTTP_parse_url(url.c_str(), &tls, nullptr, &host, &port, &port_num, &path, nullptr,
                           nullptr))
    return fail(Code::kInvalidInput, "the CMP server URL '" + url + "' cannot be read");
  OsslString h(host), p(port), pa(path);
  return Server{host, port_num, path, tls != 0};
}

Result<Store> store_of(const std::vector<Bytes>& certs) {
  Store store(X509_STORE_new());
  if (!store) return ossl::crypto_fail("out of memory");
  for (const Bytes& der : certs) {
    CV_TRY(cert, ossl::cert_from_der(der));
    if (!X509_STORE_add_cert(store.get(), cert.get()))
      return ossl::crypto_fail("cannot load a trust anchor");
  }
  return store;
}

// https: TLS over the connection OpenSSL's HTTP client opened, verified against the
// issuer's server anchors and the server's name.
struct Tls {
  SslCtx ctx;
  std::string host;
};

BIO* tls_over(BIO* bio, void* arg, int connect, int detail) {
  auto* tls = static_cast<Tls*>(arg);
  if (connect && detail) {
    BIO* sbio = BIO_new_ssl(tls->ctx.get(), 1);
    SSL* ssl = nullptr;
    if (!sbio || BIO_get_ssl(sbio, &ssl) <= 0 ||
        !SSL_set_tlsext_host_name(ssl, tls->host.c_str()) ||
        !SSL_set1_host(ssl, tls->host.c_str())) {
      BIO_free(sbio);
      return nullptr;
    }
    return BIO_push(sbio, bio);
  }
  if (!connect && BIO_method_type(bio) == BIO_TYPE_SSL) {  // done: take TLS off again
    BIO* rest = BIO_pop(bio);
    BIO_free(bio);
    return rest;
  }
  return bio;
}

Result<std::unique_ptr<Tls>> tls_for(const OutsideIssuer& issuer, const std::string& host) {
  if (issuer.server_ca.empty())
    return fail(Code::kRefused, "issuer '" + issuer.name +
                                    "' has an https URL but no server CA; add it again with "
                                    "--server-ca FILE");
  auto tls = std::make_unique<Tls>();
  tls->host = host;
  tls->ctx.reset(SSL_CTX_new_ex(ossl::libctx(), nullptr, TLS_client_method()));
  if (!tls->ctx) return ossl::crypto_fail("cannot set up TLS");
  CV_TRY(store, store_of(issuer.server_ca));
  SSL_CTX_set_cert_store(tls->ctx.get(), store.release());
  SSL_CTX_set_verify(tls->ctx.get(), SSL_VERIFY_PEER, nullptr);
  SSL_CTX_set_min_proto_version(tls->ctx.get(), TLS1_2_VERSION);
  return tls;
}

// Why an exchange failed, in one line: the CA's status when it answered, else OpenSSL's.
std::string why(OSSL_CMP_CTX* ctx) {
  std::string out;
  if (OSSL_CMP_CTX_get_status(ctx) >= 0) {
    char buf[512];
    if (OSSL_CMP_CTX_snprint_PKIStatus(ctx, buf, sizeof buf)) out = buf;
  }
  std::string reason = ossl::last_error();
  // A server whose TLS certificate did not verify: OpenSSL's queue ends in "transfer error",
  // the cause is further up.
  const char* data = nullptr;
  int flags = 0;
  for (unsigned long e; (e = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) != 0;)
    if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED)
      reason = std::string(
                   "the server's TLS certificate does not verify against the issuer's "
                   "server CA (") +
               ((flags & ERR_TXT_STRING) && data ? data : "certificate verify failed") +
               "); add the issuer again with the right --server-ca";
  if (out.empty()) out = reason;
  for (char& c : out)  // one line, and nothing a terminal would obey: it is the CA's text
    if (c == '\n' || c == '\r' || c == '\t')
      c = ' ';
    else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      c = '?';
  ERR_clear_error();
  return out;
}

// The certConf decision (RFC 4210 5.3.18) is the vault's: the answer is checked as it would
// be stored and a refusal is reported in the keystore's words. It reaches the CA only when
// the CA asks for confirmation; one that grants the implicit confirmation requested does
// not hear of it (the vault stores nothing either way).
struct Verdict {
  const Vault* vault = nullptr;
  const Enrollment* enrollment = nullptr;
  std::optional<Error> refused;
};

int vault_decides(OSSL_CMP_CTX* ctx, X509* cert, int, const char** text) {
  auto* verdict = static_cast<Verdict*>(OSSL_CMP_CTX_get_certConf_cb_arg(ctx));
  std::vector<Bytes> certs{ossl::cert_der(cert)};
  ossl::CertStack extra(OSSL_CMP_CTX_get1_extraCertsIn(ctx));
  for (int i = 0; extra && i < sk_X509_num(extra.get()); ++i)
    certs.push_back(ossl::cert_der(sk_X509_value(extra.get(), i)));
  auto ok = verdict->vault->check_enrollment(*verdict->enrollment, certs);
  if (ok) return 0;
  verdict->refused = ok.error();
  *text = "the certificate is not acceptable to the client";
  return 1 << OSSL_CMP_PKIFAILUREINFO_incorrectData;
}

// How a request is protected: the issuer's shared secret (PBM), or a certificate and key.
struct Protection {
  SecureBytes secret;
  std::string reference;
  ossl::Cert cert;
  PrivateKey key;
  std::vector<Bytes> chain;
};

// A client context for one transaction with `issuer`: its server, TLS, trust anchors and
// the request's protection. `tls` lives as long as the context.
Result<CmpCtx> context_for(const OutsideIssuer& issuer, const Protection& p,
                           std::unique_ptr<Tls>& tls) {
  CV_TRY(server, parse_server(issuer.url));
  CmpCtx ctx(OSSL_CMP_CTX_new(ossl::libctx(), nullptr));
  if (!ctx) return ossl::crypto_fail("cannot set up CMP");
  OSSL_CMP_CTX* c = ctx.get();
  OSSL_CMP_CTX_set_log_cb(c, quiet);
  bool ok = OSSL_CMP_CTX_set1_server(c, server.host.c_str()) &&
            OSSL_CMP_CTX_set_serverPort(c, server.port) &&
            OSSL_CMP_CTX_set1_serverPath(c, server.path.c_str()) &&
            OSSL_CMP_CTX_set_option(c, OSSL_CMP_OPT_MSG_TIMEOUT, kMessageTimeout) &&
            OSSL_CMP_CTX_set_option(c, OSSL_CMP_OPT_TOTAL_TIMEOUT, kTotalTimeout);
  if (ok && server.tls) {
    CV_TRY(made, tls_for(issuer, server.host));
    tls = std::move(made);
    ok = OSSL_CMP_CTX_set_http_cb(c, tls_over) && OSSL_CMP_CTX_set_http_cb_arg(c, tls.get());
  }
  // Signed answers must come from a certificate under the issuer's anchor.
  CV_TRY(trusted, store_of(issuer.trust));
  ok = ok && OSSL_CMP_CTX_set0_trustedStore(c, trusted.get());
  if (ok) (void)trusted.release();
  if (ok && !p.secret.empty()) {
    ok = OSSL_CMP_CTX_set1_referenceValue(
             c, reinterpret_cast<const unsigned char*>(p.reference.data()), p.reference.size()) &&
         OSSL_CMP_CTX_set1_secretValue(c, p.secret.data(), static_cast<int>(p.secret.size()));
  } else if (ok) {
    ossl::CertStack chain(sk_X509_new_null());
    for (const Bytes& der : p.chain) {
      auto cert = ossl::cert_from_der(der);
      if (cert && chain && sk_X509_push(chain.get(), cert->get())) (void)cert->release();
    }
    ok = chain && OSSL_CMP_CTX_set1_cert(c, p.cert.get()) &&
         OSSL_CMP_CTX_set1_pkey(c, p.key.get()) && OSSL_CMP_CTX_set1_untrusted(c, chain.get());
  }
  if (!ok) return ossl::crypto_fail("cannot set up the CMP request");
  return ctx;
}

// One transaction: ir (old_cert null) or kur; the certificate first, then any others.
Result<std::vector<Bytes>> exchange(const Vault& vault, const OutsideIssuer& issuer,
                                    const Protection& p, const Enrollment& en, X509* old_cert) {
  std::unique_ptr<Tls> tls;
  CV_TRY(ctx, context_for(issuer, p, tls));
  OSSL_CMP_CTX* c = ctx.get();
  // RFC 9483 4.1.1: ask the CA to spare the certConf round trip.
  bool ok = OSSL_CMP_CTX_set_option(c, OSSL_CMP_OPT_IMPLICIT_CONFIRM, 1);
  // The new key, and what to ask for.
  const unsigned char* der = en.subject.data();
  ossl::Name subject(d2i_X509_NAME(nullptr, &der, static_cast<long>(en.subject.size())));
  ok = ok && subject && EVP_PKEY_up_ref(en.key.get()) &&
       (OSSL_CMP_CTX_set0_newPkey(c, 1, en.key.get()) || (EVP_PKEY_free(en.key.get()), false)) &&
       OSSL_CMP_CTX_set1_subjectName(c, subject.get());
  if (ok && !en.alt_names.empty()) {
    der = en.alt_names.data();
    ossl::Ext ext(d2i_X509_EXTENSION(nullptr, &der, static_cast<long>(en.alt_names.size())));
    X509_EXTENSIONS* exts = sk_X509_EXTENSION_new_null();
    ok = ext && exts && sk_X509_EXTENSION_push(exts, ext.get());
    if (ok) (void)ext.release();
    ok = ok && OSSL_CMP_CTX_set0_reqExtensions(c, exts);
    if (!ok) sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  }
  if (ok && en.not_after) {
    // CMP 3.0 asks for validity in days from now: the days up to the end date.
    const Time left = *en.not_after - now();
    ok = OSSL_CMP_CTX_set_option(c, OSSL_CMP_OPT_VALIDITY_DAYS,
                                 static_cast<int>(std::max<Time>(1, left / 86400)));
  }
  if (ok && old_cert) ok = OSSL_CMP_CTX_set1_oldCert(c, old_cert);
  Verdict verdict{&vault, &en, std::nullopt};
  ok = ok && OSSL_CMP_CTX_set_certConf_cb(c, vault_decides) &&
       OSSL_CMP_CTX_set_certConf_cb_arg(c, &verdict);
  if (!ok) return ossl::crypto_fail("cannot set up the CMP request");
  X509* issued = old_cert ? OSSL_CMP_exec_KUR_ses(c) : OSSL_CMP_exec_IR_ses(c);
  if (!issued && verdict.refused) {
    ERR_clear_error();
    return std::unexpected(*verdict.refused);
  }
  if (!issued)
    return fail(Code::kRefused, "issuer '" + issuer.name + "' (" + issuer.url + ") did not " +
                                    (old_cert ? "renew" : "issue") + " a certificate for '" +
                                    en.nickname + "': " + why(c));
  std::vector<Bytes> out{ossl::cert_der(issued)};
  for (STACK_OF(X509) * s : {OSSL_CMP_CTX_get1_extraCertsIn(c), OSSL_CMP_CTX_get1_caPubs(c)}) {
    ossl::CertStack owned(s);
    for (int i = 0; s && i < sk_X509_num(s); ++i)
      out.push_back(ossl::cert_der(sk_X509_value(s, i)));
  }
  return out;
}

// The current certificate, chain and key of an entry: what signs a kur, or an ir when the
// issuer authenticates the vault by a certificate.
// The entry's current generation, or the one given.
Result<Protection> signed_by(const Vault& vault, std::string_view nickname,
                             std::optional<uint32_t> generation = std::nullopt) {
  Protection p;
  CV_TRY(cert_der, vault.certificate_der(nickname, generation));
  CV_TRY(cert, ossl::cert_from_der(cert_der));
  CV_TRY(chain, vault.chain_der(nickname, generation));
  CV_TRY(key, vault.private_key(nickname, generation));
  p.cert = std::move(cert);
  p.chain = std::move(chain);
  p.key = std::move(key);
  return p;
}

}  // namespace

// RFC 9483 4.2: an end entity's revocation request is signed with the certificate to be
// revoked (and its key), which proves the right to revoke it; it names that certificate's
// issuer and serial and, in crlEntryDetails, the reason. OpenSSL 3.0 sends it so when that
// certificate is both the signer (set1_cert, set1_pkey) and the one to revoke (oldCert).
// Neither the issuer's shared secret nor the entry's newer certificate is used: a CA
// profiled by RFC 9483 need not accept either for a revocation. OpenSSL takes "accepted"
// (and a warning that it was revoked already) as done.
Result<void> cmp_revoke(const Vault& vault, const IssuerRevocation& r) {
  auto issuer = vault.find_issuer(r.issuer);
  if (!issuer || issuer->protocol != IssuerProtocol::kCmp)
    return fail(Code::kNotFound,
                "issuer '" + r.issuer + "' is no CMP issuer of the vault any more");
  Protection p;
  CV_TRY(cert, ossl::cert_from_der(r.certificate));
  CV_TRY(chain, vault.chain_der(r.nickname, r.generation));
  CV_TRY(key, vault.private_key(r.nickname, r.generation));
  p.cert = std::move(cert);
  p.chain = std::move(chain);
  p.key = std::move(key);
  std::unique_ptr<Tls> tls;
  CV_TRY(ctx, context_for(*issuer, p, tls));
  OSSL_CMP_CTX* c = ctx.get();
  if (!OSSL_CMP_CTX_set1_oldCert(c, p.cert.get()) ||
      !OSSL_CMP_CTX_set_option(c, OSSL_CMP_OPT_REVOCATION_REASON, static_cast<int>(r.reason)))
    return ossl::crypto_fail("cannot set up the CMP revocation request");
  if (OSSL_CMP_exec_RR_ses(c) != 1)
    return fail(Code::kRefused, "issuer '" + issuer->name + "' (" + issuer->url +
                                    ") did not revoke generation " + std::to_string(r.generation) +
                                    " of '" + r.nickname + "': " + why(c));
  return {};
}

Result<Entry> cmp_enroll(Vault& vault, const EnrollmentRequest& request) {
  CV_TRY(en, vault.begin_enrollment(request));
  auto issuer = vault.find_issuer(en.issuer);
  if (!issuer) return fail(Code::kNotFound, "issuer '" + en.issuer + "' was removed meanwhile");
  Protection p;
  if (issuer->has_secret) {
    CV_TRY(secret, vault.issuer_secret(issuer->name));
    p.secret = std::move(secret);
    p.reference = issuer->reference;
  } else {
    CV_TRY(by_cert, signed_by(vault, issuer->client_cert));
    p = std::move(by_cert);
  }
  CV_TRY(certs, exchange(vault, *issuer, p, en, nullptr));
  return vault.finish_enrollment(en, certs);
}

Result<Entry> cmp_renew(Vault& vault, std::string_view nickname,
                        std::optional<uint32_t> if_current) {
  CV_TRY(en, vault.begin_renewal(nickname, if_current));
  auto issuer = vault.find_issuer(en.issuer);
  if (!issuer) return fail(Code::kNotFound, "issuer '" + en.issuer + "' was removed meanwhile");
  // Signed with the generation being renewed, even if another process renewed it since
  // begin_renewal (the answer is then refused at finish_enrollment).
  CV_TRY(p, signed_by(vault, nickname, en.renews));
  CV_TRY(certs, exchange(vault, *issuer, p, en, p.cert.get()));
  return vault.finish_enrollment(en, certs);
}

}  // namespace certvault::cli
