#include "cmp_test_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/cmp.h>
#include <openssl/crmf.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <vector>

#include "tls_server.h"

namespace cvtest {
namespace {

// PKIBody choice kur (RFC 4210 5.1.2); OpenSSL 3.0 keeps its name internal.
constexpr int kBodyKur = 7;
constexpr size_t kMaxRequest = 64 * 1024;
constexpr int kIdleMs = 100;  // how often the loop looks at stop_
constexpr auto kRequestDeadline = std::chrono::seconds(10);

int quiet(const char*, const char*, int, OSSL_CMP_severity, const char*) {
  return 1;
}

bool add_ext(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  bool ok = ext && X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return ok;
}

X509* new_cert(EVP_PKEY* key, const X509_NAME* subject, X509* issuer, long lifetime) {
  X509* cert = X509_new();
  unsigned char serial[16];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  bool ok = cert && bn && X509_set_version(cert, 2) &&
            BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) &&
            X509_gmtime_adj(X509_getm_notBefore(cert), -60) &&
            X509_gmtime_adj(X509_getm_notAfter(cert), lifetime) &&
            X509_set_subject_name(cert, subject) &&
            X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : subject) &&
            X509_set_pubkey(cert, key);
  BN_free(bn);
  if (!ok) {
    X509_free(cert);
    return nullptr;
  }
  return cert;
}

// ir, cr, kur: a certificate for the template's key and subject (and its extensions, if
// any), from the test CA.
OSSL_CMP_PKISI* issue(OSSL_CMP_SRV_CTX* srv, const OSSL_CMP_MSG*, int, const OSSL_CRMF_MSG* crm,
                      const X509_REQ*, X509** cert_out, STACK_OF(X509) * *chain_out,
                      STACK_OF(X509) * *ca_pubs) {
  const auto& o =
      static_cast<const CmpTestServer*>(OSSL_CMP_SRV_CTX_get0_custom_ctx(srv))->options();
  *chain_out = nullptr;
  *ca_pubs = nullptr;
  const OSSL_CRMF_CERTTEMPLATE* tmpl = crm ? OSSL_CRMF_MSG_get0_tmpl(crm) : nullptr;
  EVP_PKEY* key = tmpl ? template_public_key(tmpl) : nullptr;
  const X509_NAME* subject = tmpl ? OSSL_CRMF_CERTTEMPLATE_get0_subject(tmpl) : nullptr;
  if (!key || !subject) {
    EVP_PKEY_free(key);
    return OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_rejection,
                                   1 << OSSL_CMP_PKIFAILUREINFO_badCertTemplate,
                                   "a certificate template needs a subject and a public key");
  }
  *cert_out = issue_test_cert(o.ca_key, o.ca_cert, key, subject, o.client_auth, o.lifetime);
  EVP_PKEY_free(key);
  // Of the requested extensions, the subject's alternative names.
  X509_EXTENSIONS* exts = template_extensions(tmpl);
  for (int i = 0; *cert_out && i < sk_X509_EXTENSION_num(exts); ++i) {
    X509_EXTENSION* ext = sk_X509_EXTENSION_value(exts, i);
    if (OBJ_obj2nid(X509_EXTENSION_get_object(ext)) == NID_subject_alt_name &&
        (!X509_add_ext(*cert_out, ext, -1) || !X509_sign(*cert_out, o.ca_key, EVP_sha256()))) {
      X509_free(*cert_out);
      *cert_out = nullptr;
    }
  }
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  if (!*cert_out)
    return OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_rejection,
                                   1 << OSSL_CMP_PKIFAILUREINFO_systemFailure, "cannot issue");
  return OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_accepted, 0, nullptr);
}

// The reasonCode in the first RevDetails' crlEntryDetails of an rr (RFC 4210 5.3.9), -1
// when none: OpenSSL 3.0 passes the rr callback only the issuer and serial. PKIMessage is
// SEQUENCE { header, body [11] EXPLICIT SEQUENCE OF RevDetails, ... }, RevDetails SEQUENCE
// { certDetails CertTemplate, crlEntryDetails Extensions OPTIONAL }.
int revocation_reason(const OSSL_CMP_MSG* req) {
  unsigned char* der = nullptr;
  const int total = i2d_OSSL_CMP_MSG(const_cast<OSSL_CMP_MSG*>(req), &der);
  if (total <= 0) return -1;
  int reason = -1;
  const unsigned char* p = der;
  const unsigned char* end = der + total;
  long len = 0;
  int tag = 0, xclass = 0;
  // Reads the header of the next element, leaving p at its content: is it the one expected?
  auto enter = [&](int want_tag, int want_class) {
    if (p >= end || (ASN1_get_object(&p, &len, &tag, &xclass, end - p) & 0x80)) return false;
    return tag == want_tag && xclass == want_class;
  };
  bool found = enter(V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL) &&  // PKIMessage
               enter(V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);    // its header
  if (found) {
    p += len;
    found = enter(11, V_ASN1_CONTEXT_SPECIFIC) &&        // body: rr
            enter(V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL) &&  // RevReqContent
            enter(V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL) &&  // RevDetails
            enter(V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);    // certDetails
  }
  if (found) {
    p += len;
    const unsigned char* q = p;
    X509_EXTENSIONS* exts = p < end ? d2i_X509_EXTENSIONS(nullptr, &q, end - p) : nullptr;
    auto* code = static_cast<ASN1_ENUMERATED*>(
        exts ? X509V3_get_d2i(exts, NID_crl_reason, nullptr, nullptr) : nullptr);
    if (code) reason = static_cast<int>(ASN1_ENUMERATED_get(code));
    ASN1_ENUMERATED_free(code);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  }
  OPENSSL_free(der);
  return reason;
}

bool send_all(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

// One HTTP POST: its body, or "" when it is not one within the limits.
std::string read_post(int fd) {
  const auto deadline = std::chrono::steady_clock::now() + kRequestDeadline;
  std::string in;
  size_t body_at = std::string::npos, length = 0;
  char buf[4096];
  while (in.size() <= kMaxRequest && std::chrono::steady_clock::now() < deadline) {
    if (body_at != std::string::npos && in.size() >= body_at + length)
      return in.substr(body_at, length);
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, kIdleMs) <= 0) continue;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return "";
    in.append(buf, static_cast<size_t>(n));
    if (body_at == std::string::npos) {
      size_t end = in.find("\r\n\r\n");
      if (end == std::string::npos) continue;
      if (!in.starts_with("POST ")) return "";
      body_at = end + 4;
      std::string head = in.substr(0, end);
      for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      size_t cl = head.find("\r\ncontent-length:");
      if (cl == std::string::npos) return "";
      length = std::strtoul(head.c_str() + cl + 17, nullptr, 10);
      if (length == 0 || length > kMaxRequest) return "";
    }
  }
  return "";
}

}  // namespace

EVP_PKEY* template_public_key(const OSSL_CRMF_CERTTEMPLATE* tmpl) {
#if OPENSSL_VERSION_NUMBER >= 0x30500000L
  return X509_PUBKEY_get(OSSL_CRMF_CERTTEMPLATE_get0_publicKey(tmpl));
#else
  // CertTemplate (RFC 4211 5) is a SEQUENCE whose publicKey is [6] IMPLICIT
  // SubjectPublicKeyInfo: the same bytes as a SubjectPublicKeyInfo under another tag.
  unsigned char* der = nullptr;
  int total = i2d_OSSL_CRMF_CERTTEMPLATE(tmpl, &der);
  if (total <= 0) return nullptr;
  EVP_PKEY* key = nullptr;
  const unsigned char* p = der;
  long len = 0;
  int tag = 0, xclass = 0;
  if (!(ASN1_get_object(&p, &len, &tag, &xclass, total) & 0x80) && tag == V_ASN1_SEQUENCE) {
    const unsigned char* end = p + len;
    while (p < end && !key) {
      const unsigned char* start = p;
      if (ASN1_get_object(&p, &len, &tag, &xclass, end - p) & 0x80) break;
      if (xclass == V_ASN1_CONTEXT_SPECIFIC && tag == 6 && start[0] == 0xa6) {
        std::vector<unsigned char> spki(start, p + len);
        spki[0] = 0x30;  // SEQUENCE, constructed
        const unsigned char* q = spki.data();
        key = d2i_PUBKEY(nullptr, &q, static_cast<long>(spki.size()));
      }
      p += len;
    }
  }
  OPENSSL_free(der);
  return key;
#endif
}

X509_EXTENSIONS* template_extensions(const OSSL_CRMF_CERTTEMPLATE* tmpl) {
#if OPENSSL_VERSION_NUMBER >= 0x30200000L
  const X509_EXTENSIONS* exts = OSSL_CRMF_CERTTEMPLATE_get0_extensions(tmpl);
  return exts ? sk_X509_EXTENSION_deep_copy(exts, X509_EXTENSION_dup, X509_EXTENSION_free)
              : nullptr;
#else
  // extensions [9] IMPLICIT Extensions, as publicKey above.
  unsigned char* der = nullptr;
  int total = i2d_OSSL_CRMF_CERTTEMPLATE(tmpl, &der);
  if (total <= 0) return nullptr;
  X509_EXTENSIONS* exts = nullptr;
  const unsigned char* p = der;
  long len = 0;
  int tag = 0, xclass = 0;
  if (!(ASN1_get_object(&p, &len, &tag, &xclass, total) & 0x80) && tag == V_ASN1_SEQUENCE) {
    const unsigned char* end = p + len;
    while (p < end && !exts) {
      const unsigned char* start = p;
      if (ASN1_get_object(&p, &len, &tag, &xclass, end - p) & 0x80) break;
      if (xclass == V_ASN1_CONTEXT_SPECIFIC && tag == 9 && start[0] == 0xa9) {
        std::vector<unsigned char> seq(start, p + len);
        seq[0] = 0x30;
        const unsigned char* q = seq.data();
        exts = d2i_X509_EXTENSIONS(nullptr, &q, static_cast<long>(seq.size()));
      }
      p += len;
    }
  }
  OPENSSL_free(der);
  return exts;
#endif
}

X509* make_test_ca(EVP_PKEY* key, const std::string& cn) {
  X509_NAME* name = X509_NAME_new();
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509* cert = new_cert(key, name, nullptr, 10L * 86400);
  X509_NAME_free(name);
  if (!cert || !add_ext(cert, cert, NID_basic_constraints, "critical,CA:TRUE") ||
      !add_ext(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature") ||
      !add_ext(cert, cert, NID_subject_key_identifier, "hash") ||
      !X509_sign(cert, key, EVP_sha256())) {
    X509_free(cert);
    return nullptr;
  }
  return cert;
}

X509* issue_test_cert(EVP_PKEY* ca_key, X509* ca_cert, EVP_PKEY* subject_key,
                      const X509_NAME* subject, bool client_auth, long lifetime) {
  X509* cert = new_cert(subject_key, subject, ca_cert, lifetime);
  if (!cert || !add_ext(cert, ca_cert, NID_basic_constraints, "critical,CA:FALSE") ||
      !add_ext(cert, ca_cert, NID_key_usage, "critical,digitalSignature") ||
      !add_ext(cert, ca_cert, NID_ext_key_usage, client_auth ? "clientAuth" : "serverAuth") ||
      !add_ext(cert, ca_cert, NID_authority_key_identifier, "keyid") ||
      !X509_sign(cert, ca_key, EVP_sha256())) {
    X509_free(cert);
    return nullptr;
  }
  return cert;
}

CmpTestServer::CmpTestServer(const Options& options) : options_(options) {
  fd_ = listen_loopback(options.port, port_);
  if (fd_ < 0) return;
  thread_ = std::thread([this] { serve(); });
}

CmpTestServer::~CmpTestServer() {
  stop();
}

void CmpTestServer::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

std::vector<CmpTestServer::Revocation> CmpTestServer::revocations() const {
  std::lock_guard lock(mutex_);
  return revocations_;
}

// rr: accepted for a certificate of the test CA unless told to refuse; noted either way.
OSSL_CMP_PKISI* CmpTestServer::on_revocation(OSSL_CMP_SRV_CTX* srv, const OSSL_CMP_MSG* req,
                                             const X509_NAME* issuer, const ASN1_INTEGER* serial) {
  auto* self = static_cast<CmpTestServer*>(OSSL_CMP_SRV_CTX_get0_custom_ctx(srv));
  Revocation seen;
  BIGNUM* bn = ASN1_INTEGER_to_BN(serial, nullptr);
  char* hex = bn ? BN_bn2hex(bn) : nullptr;
  seen.serial = hex ? hex : "";
  OPENSSL_free(hex);
  BN_free(bn);
  seen.reason = revocation_reason(req);
  const bool ours = X509_NAME_cmp(issuer, X509_get_subject_name(self->options_.ca_cert)) == 0;
  seen.accepted = ours && !self->options_.refuse_revocation;
  {
    std::lock_guard lock(self->mutex_);
    self->revocations_.push_back(seen);
  }
  if (!seen.accepted)
    return OSSL_CMP_STATUSINFO_new(
        OSSL_CMP_PKISTATUS_rejection, 1 << OSSL_CMP_PKIFAILUREINFO_badRequest,
        ours ? "revocation refused by the test CA" : "not a certificate of this CA");
  return OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_accepted, 0, nullptr);
}

std::string CmpTestServer::url() const {
  return "http://127.0.0.1:" + std::to_string(port_) + "/pkix/";
}

void CmpTestServer::serve() {
  for (int handled = 0; handled < options_.max_requests && !stop_;) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, kIdleMs) <= 0) continue;
    int conn = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) continue;
    ++handled;
    const std::string body = read_post(conn);
    const std::string rsp = body.empty() ? "" : answer(body);
    if (rsp.empty()) {
      send_all(conn, "HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    } else {
      send_all(conn, "HTTP/1.0 200 OK\r\nContent-Type: application/pkixcmp\r\nContent-Length: " +
                         std::to_string(rsp.size()) + "\r\nConnection: close\r\n\r\n" + rsp);
      ++served_;
    }
    ::close(conn);
  }
}

std::string CmpTestServer::answer(const std::string& body) {
  const auto* p = reinterpret_cast<const unsigned char*>(body.data());
  OSSL_CMP_MSG* req = d2i_OSSL_CMP_MSG(nullptr, &p, static_cast<long>(body.size()));
  if (!req) return "";
  const auto* secret = reinterpret_cast<const unsigned char*>(options_.secret.data());
  const int secret_len = static_cast<int>(options_.secret.size());
  bool by_secret = false;
  if (!options_.secret.empty()) {
    OSSL_CMP_CTX* probe = OSSL_CMP_CTX_new(nullptr, nullptr);
    by_secret = probe && OSSL_CMP_CTX_set_log_cb(probe, quiet) &&
                OSSL_CMP_CTX_set1_secretValue(probe, secret, secret_len) &&
                OSSL_CMP_validate_msg(probe, req) == 1;
    OSSL_CMP_CTX_free(probe);
  }
  // One server context per message: nothing of a transaction outlives its answer.
  OSSL_CMP_SRV_CTX* srv = OSSL_CMP_SRV_CTX_new(nullptr, nullptr);
  OSSL_CMP_CTX* ctx = srv ? OSSL_CMP_SRV_CTX_get0_cmp_ctx(srv) : nullptr;
  bool ok =
      ctx &&
      OSSL_CMP_SRV_CTX_init(srv, this, issue, on_revocation, nullptr, nullptr, nullptr, nullptr) &&
      OSSL_CMP_SRV_CTX_set_grant_implicit_confirm(srv, 1) && OSSL_CMP_CTX_set_log_cb(ctx, quiet);
  if (ok && by_secret) {
    ok = OSSL_CMP_CTX_set1_referenceValue(
             ctx, reinterpret_cast<const unsigned char*>(options_.reference.data()),
             static_cast<int>(options_.reference.size())) &&
         OSSL_CMP_CTX_set1_secretValue(ctx, secret, secret_len);
  } else if (ok) {
    X509_STORE* trusted = X509_STORE_new();
    ok = trusted && X509_STORE_add_cert(trusted, options_.ca_cert) &&
         OSSL_CMP_CTX_set0_trustedStore(ctx, trusted);
    if (!ok) X509_STORE_free(trusted);
    ok = ok && OSSL_CMP_CTX_set1_cert(ctx, options_.ca_cert) &&
         OSSL_CMP_CTX_set1_pkey(ctx, options_.ca_key);
  }
  std::string out;
  OSSL_CMP_MSG* rsp = ok ? OSSL_CMP_SRV_process_request(srv, req) : nullptr;
  if (rsp) {
    if (OSSL_CMP_MSG_get_bodytype(req) == kBodyKur) ++key_updates_;
    unsigned char* der = nullptr;
    int n = i2d_OSSL_CMP_MSG(rsp, &der);
    if (n > 0) out.assign(reinterpret_cast<char*>(der), static_cast<size_t>(n));
    OPENSSL_free(der);
  }
  OSSL_CMP_MSG_free(rsp);
  OSSL_CMP_MSG_free(req);
  OSSL_CMP_SRV_CTX_free(srv);
  ERR_clear_error();
  return out;
}

}  // namespace cvtest
