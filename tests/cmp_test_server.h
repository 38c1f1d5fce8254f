// A small CMP server for tests, on OpenSSL's public server API (OSSL_CMP_SRV_CTX): it issues
// a certificate for the public key of each request (ir, cr, kur) from a test CA, and grants
// implicit confirmation; it accepts (or, if told, refuses) a revocation request (rr) for a
// certificate of its CA, and notes which serial and reason it was asked to revoke, for the
// test to see. It keeps nothing between messages (a fresh server context for each one), as
// a stateless, replicated CA service must. A request authenticated with the shared secret
// is answered under it; any other is answered signed by the CA.
//
// OpenSSL 3.0 has no public HTTP server, so a minimal POST reader serves it on a loopback
// socket: one thread, one request per connection, bounded in connections, size and time.
#pragma once

#include <openssl/cmp.h>
#include <openssl/crmf.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace cvtest {

class CmpTestServer {
 public:
  struct Options {
    EVP_PKEY* ca_key = nullptr;  // signs certificates and answers (borrowed)
    X509* ca_cert = nullptr;
    std::string reference;  // the shared secret (PBM) for initial requests, and its reference
    std::string secret;
    bool client_auth = true;         // extendedKeyUsage clientAuth, else serverAuth
    long lifetime = 30L * 86400;     // seconds
    int max_requests = 16;           // then the server stops answering
    int port = 0;                    // 0: any free port on 127.0.0.1
    bool refuse_revocation = false;  // answer every rr with rejection
  };
  // A revocation request as the server understood it.
  struct Revocation {
    std::string serial;  // upper-case hex, as the vault writes it
    int reason = -1;     // its CRLReason code; -1: none given
    bool accepted = false;
  };
  explicit CmpTestServer(const Options& options);
  ~CmpTestServer();  // stops and joins
  CmpTestServer(const CmpTestServer&) = delete;
  CmpTestServer& operator=(const CmpTestServer&) = delete;

  bool listening() const { return fd_ >= 0; }
  int port() const { return port_; }
  std::string url() const;  // http://127.0.0.1:PORT/pkix/
  // Requests answered, and of them key update requests (kur).
  int served() const { return served_; }
  int key_updates() const { return key_updates_; }
  std::vector<Revocation> revocations() const;
  const Options& options() const { return options_; }
  // Closes the socket: the port is free for another server.
  void stop();

 private:
  void serve();
  std::string answer(const std::string& body);
  static OSSL_CMP_PKISI* on_revocation(OSSL_CMP_SRV_CTX* srv, const OSSL_CMP_MSG* req,
                                       const X509_NAME* issuer, const ASN1_INTEGER* serial);

  Options options_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> served_{0}, key_updates_{0};
  mutable std::mutex mutex_;  // guards revocations_
  std::vector<Revocation> revocations_;
  std::thread thread_;
};

// The public key of a CRMF certificate template (OpenSSL 3.0 has no getter for it).
EVP_PKEY* template_public_key(const OSSL_CRMF_CERTTEMPLATE* tmpl);
// Its extensions (OpenSSL 3.0 has no getter for them either); null when none.
X509_EXTENSIONS* template_extensions(const OSSL_CRMF_CERTTEMPLATE* tmpl);

// A CA certificate for `key` that may also sign CMP answers (keyUsage keyCertSign,
// cRLSign, digitalSignature).
X509* make_test_ca(EVP_PKEY* key, const std::string& cn);
// A certificate for `subject_key` issued by the CA: client or server authentication.
X509* issue_test_cert(EVP_PKEY* ca_key, X509* ca_cert, EVP_PKEY* subject_key,
                      const X509_NAME* subject, bool client_auth, long lifetime);

}  // namespace cvtest
