// The provider loaded in-process, as an application on libcrypto/libssl uses it: a URI
// opened with OSSL_STORE, its key given to SSL_CTX_use_PrivateKey() and used for mutual
// TLS against an in-process server; the URI-in-PEM file read by PEM_read_bio_PrivateKey()
// and SSL_CTX_use_PrivateKey_file(); one PIN prompt per process; signing from threads.
// And certvault activated before default in a library context of the test's own, where
// ordinary keys pass through certvault's KEYMGMT: copies, checks and key agreement.
#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/rsa.h>
#include <openssl/ssl.h>
#include <openssl/store.h>
#include <openssl/ui.h>
#include <openssl/x509.h>

#include <atomic>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "provider_loaded.h"
#include "support.h"
#include "test_vault.h"

namespace cvtest {
namespace {

using certvault::KeyType;

struct SslCtxFree {
  void operator()(SSL_CTX* p) const { SSL_CTX_free(p); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;
struct SslFree {
  void operator()(SSL* p) const { SSL_free(p); }
};
using SslPtr = std::unique_ptr<SSL, SslFree>;

std::atomic<int> g_prompts{0};

// A passphrase callback as applications write one: it answers with the test PIN.
int pin_callback(char* buf, int size, int, void*) {
  ++g_prompts;
  const int n = static_cast<int>(std::min<size_t>(kPin.size(), static_cast<size_t>(size)));
  std::memcpy(buf, kPin.data(), static_cast<size_t>(n));
  return n;
}

class ProviderInProcess : public ProviderLoadedTest {
 protected:
  void SetUp() override {
    ProviderLoadedTest::SetUp();
    g_prompts = 0;
  }

  // certvault:NICKNAME?vault=DIR[&pin-source=file:PIN]
  std::string uri(const std::string& nickname, bool with_pin = true) const {
    std::string out = "certvault:" + nickname + "?vault=" + dir_.string();
    if (with_pin) out += "&pin-source=file:" + pin_file_.string();
    return out;
  }

  // The first certificate and the private key a STORE load of `u` yields.
  void load(const std::string& u, X509Ptr& cert, PkeyPtr& key, UI_METHOD* ui = nullptr) {
    OSSL_STORE_CTX* store =
        OSSL_STORE_open_ex(u.c_str(), nullptr, nullptr, ui, nullptr, nullptr, nullptr, nullptr);
    ASSERT_NE(store, nullptr) << errors();
    for (int i = 0; i < 10 && !OSSL_STORE_eof(store); ++i) {
      OSSL_STORE_INFO* info = OSSL_STORE_load(store);
      if (!info) continue;
      if (OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_CERT && !cert)
        cert.reset(OSSL_STORE_INFO_get1_CERT(info));
      if (OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY)
        key.reset(OSSL_STORE_INFO_get1_PKEY(info));
      OSSL_STORE_INFO_free(info);
    }
    EXPECT_FALSE(OSSL_STORE_error(store)) << errors();
    OSSL_STORE_close(store);
  }

  // A TLS server context with a throwaway certificate that requires a client certificate
  // from the vault CA.
  SslCtxPtr server_ctx(int version) {
    SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
    server_key_ = generate_ec_key();
    auto cert = make_self_signed(server_key_.get(), "localhost", 0, 86400);
    SSL_CTX_use_certificate(ctx.get(), cert.get());
    SSL_CTX_use_PrivateKey(ctx.get(), server_key_.get());
    SSL_CTX_set_min_proto_version(ctx.get(), version);
    SSL_CTX_set_max_proto_version(ctx.get(), version);
    auto ca = vault().ca_certificate_der();
    EXPECT_TRUE(ca);
    auto ca_cert = x509_from_der(*ca);
    X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx.get()), ca_cert.get());
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    return ctx;
  }

  // One handshake over a memory BIO pair; the server's view of the client certificate's
  // subject, or "" when the handshake failed.
  std::string handshake(SSL_CTX* client_ctx, int version, std::string* peer_serial = nullptr) {
    auto sctx = server_ctx(version);
    SslPtr server(SSL_new(sctx.get())), client(SSL_new(client_ctx));
    BIO *cbio = nullptr, *sbio = nullptr;
    BIO_new_bio_pair(&cbio, 0, &sbio, 0);
    SSL_set_bio(client.get(), cbio, cbio);
    SSL_set_bio(server.get(), sbio, sbio);
    SSL_set_connect_state(client.get());
    SSL_set_accept_state(server.get());
    bool client_done = false, server_done = false;
    for (int i = 0; i < 100 && !(client_done && server_done); ++i) {
      if (!client_done) {
        int r = SSL_do_handshake(client.get());
        if (r == 1)
          client_done = true;
        else if (int e = SSL_get_error(client.get(), r);
                 e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
          return "";
      }
      if (!server_done) {
        int r = SSL_do_handshake(server.get());
        if (r == 1)
          server_done = true;
        else if (int e = SSL_get_error(server.get(), r);
                 e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
          return "";
      }
    }
    if (!client_done || !server_done) return "";
    // TLS 1.3 sends the client's Finished after its certificate; read to let the server
    // process it fully.
    X509* peer = SSL_get0_peer_certificate(server.get());
    if (!peer || SSL_get_verify_result(server.get()) != X509_V_OK) return "";
    char name[256];
    X509_NAME_oneline(X509_get_subject_name(peer), name, sizeof name);
    if (peer_serial) {
      BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(peer), nullptr);
      char* hex = BN_bn2hex(bn);
      *peer_serial = hex;
      OPENSSL_free(hex);
      BN_free(bn);
    }
    return name;
  }

  // A client context presenting what a STORE load of `u` yields now.
  SslCtxPtr client_ctx_of(const std::string& u) {
    X509Ptr cert;
    PkeyPtr key;
    load(u, cert, key);
    SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
    EXPECT_TRUE(cert && key) << errors();
    if (!cert || !key) return ctx;
    EXPECT_EQ(SSL_CTX_use_certificate(ctx.get(), cert.get()), 1) << errors();
    EXPECT_EQ(SSL_CTX_use_PrivateKey(ctx.get(), key.get()), 1) << errors();
    return ctx;
  }

  PkeyPtr server_key_;
};

TEST_F(ProviderInProcess, StoreKeyServesSslCtxUsePrivateKeyForMutualTls) {
  for (auto [nick, type] : {std::pair{"ec", KeyType::kEcP256}, std::pair{"rsa", KeyType::kRsa2048},
                            std::pair{"ed", KeyType::kEd25519}}) {
    SCOPED_TRACE(nick);
    issue(nick, 100, type);
    X509Ptr cert;
    PkeyPtr key;
    load(uri(nick), cert, key);
    ASSERT_TRUE(cert && key) << errors();
    SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
    ASSERT_EQ(SSL_CTX_use_certificate(ctx.get(), cert.get()), 1) << errors();
    ASSERT_EQ(SSL_CTX_use_PrivateKey(ctx.get(), key.get()), 1) << errors();
    ASSERT_EQ(SSL_CTX_check_private_key(ctx.get()), 1) << errors();
    // A successful call leaves nothing on the error queue.
    EXPECT_EQ(ERR_peek_error(), 0u) << errors();
    for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
      SCOPED_TRACE(version);
      EXPECT_EQ(handshake(ctx.get(), version), std::string("/CN=") + nick) << errors();
    }
  }
}

// docs/lifecycle.md: a renewal made by another process (`certvault renew`) is what a
// running program gets at its next load of the URI, with no restart; the connection it set
// up before keeps working with the superseded generation until that one's end.
TEST_F(ProviderInProcess, ARunningProgramPresentsTheRenewedCertificateAtItsNextLoad) {
  issue("api", 40, KeyType::kEcP256);
  auto before = client_ctx_of(uri("api"));
  std::string serial;
  ASSERT_EQ(handshake(before.get(), TLS1_3_VERSION, &serial), "/CN=api") << errors();
  const std::string first = vault().find("api")->current()->serial;
  EXPECT_EQ(serial, first);
  auto renewed =
      run({cli(), "--vault", dir_.string(), "--pin-file", pin_file_.string(), "renew", "api"});
  ASSERT_EQ(renewed.exit_code, 0) << renewed.err;
  ASSERT_TRUE(vault().refresh());
  const std::string second = vault().find("api")->current()->serial;
  ASSERT_NE(second, first);
  auto after = client_ctx_of(uri("api"));
  ASSERT_EQ(handshake(after.get(), TLS1_3_VERSION, &serial), "/CN=api") << errors();
  EXPECT_EQ(serial, second) << "the next load presents the renewed certificate";
  ASSERT_EQ(handshake(before.get(), TLS1_3_VERSION, &serial), "/CN=api") << errors();
  EXPECT_EQ(serial, first) << "the superseded generation still works where it was loaded";
}

TEST_F(ProviderInProcess, PassphraseCallbackIsAskedOncePerProcess) {
  issue("api-prod", 100, KeyType::kEcP256);
  issue("second", 100, KeyType::kEcP256);
  UI_METHOD* ui = UI_UTIL_wrap_read_pem_callback(pin_callback, 0);
  for (const char* nick : {"api-prod", "api-prod", "second"}) {
    X509Ptr cert;
    PkeyPtr key;
    load(uri(nick, /*with_pin=*/false), cert, key, ui);
    EXPECT_TRUE(key) << nick << ": " << errors();
  }
  UI_destroy_method(ui);
  EXPECT_EQ(g_prompts.load(), 1);
}

TEST_F(ProviderInProcess, UriPemFileIsReadAsThePrivateKey) {
  issue("api-prod", 100, KeyType::kEcP256);
  const auto key_file = tmp_ / "api-prod.key";
  auto made =
      run({cli(), "--vault", dir_.string(), "uri", "api-prod", "--pem", "-o", key_file.string()});
  ASSERT_EQ(made.exit_code, 0) << made.err;

  BIO* bio = BIO_new_file(key_file.c_str(), "r");
  ASSERT_NE(bio, nullptr);
  PkeyPtr key(PEM_read_bio_PrivateKey(bio, nullptr, pin_callback, nullptr));
  BIO_free(bio);
  ASSERT_TRUE(key) << errors();
  auto cert_der = vault().certificate_der("api-prod");
  ASSERT_TRUE(cert_der);
  auto cert = x509_from_der(*cert_der);
  EXPECT_EQ(X509_check_private_key(cert.get(), key.get()), 1) << errors();

  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_set_default_passwd_cb(ctx.get(), pin_callback);
  ASSERT_EQ(SSL_CTX_use_certificate(ctx.get(), cert.get()), 1) << errors();
  ASSERT_EQ(SSL_CTX_use_PrivateKey_file(ctx.get(), key_file.c_str(), SSL_FILETYPE_PEM), 1)
      << errors();
  EXPECT_EQ(handshake(ctx.get(), TLS1_3_VERSION), "/CN=api-prod") << errors();
}

TEST_F(ProviderInProcess, SignsFromManyThreadsWithOneKey) {
  issue("api-prod", 100, KeyType::kEcP256);
  X509Ptr cert;
  PkeyPtr key;
  load(uri("api-prod"), cert, key);
  ASSERT_TRUE(cert && key) << errors();
  EVP_PKEY* pub = X509_get0_pubkey(cert.get());
  std::atomic<int> good{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        const std::string msg = "message " + std::to_string(t) + "/" + std::to_string(i);
        const auto* data = reinterpret_cast<const unsigned char*>(msg.data());
        unsigned char sig[128];
        size_t len = sizeof sig;
        EVP_MD_CTX* s = EVP_MD_CTX_new();
        bool ok = EVP_DigestSignInit(s, nullptr, EVP_sha256(), nullptr, key.get()) == 1 &&
                  EVP_DigestSign(s, sig, &len, data, msg.size()) == 1;
        EVP_MD_CTX_free(s);
        EVP_MD_CTX* v = EVP_MD_CTX_new();
        ok = ok && EVP_DigestVerifyInit(v, nullptr, EVP_sha256(), nullptr, pub) == 1 &&
             EVP_DigestVerify(v, sig, len, data, msg.size()) == 1;
        EVP_MD_CTX_free(v);
        if (ok) ++good;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(good.load(), 100) << errors();
}

// Every way OpenSSL signs, with the parameters callers set: raw EVP_PKEY_sign (a digest,
// or for ECDSA any short input), streaming and one-shot digest-sign; each signature
// verifies with the certificate's key, and the algorithm identifier read back (X509_sign,
// CMS and libssl write it) is the one the default provider gives for the same parameters.
TEST_F(ProviderInProcess, EachMechanismAndParameterSignsAndReadsBackItsAlgorithm) {
  issue("ec", 100, KeyType::kEcP256);
  issue("rsa", 100, KeyType::kRsa2048);
  issue("ed", 100, KeyType::kEd25519);
  struct Case {
    const char* nick;
    const char* md;    // nullptr: none set
    int padding;       // RSA only; 0: the default
    const char* mgf1;  // RSA-PSS
    int salt;          // RSA-PSS
    enum { kRaw, kStream, kOneShot } how;
    size_t raw_size = 0;  // kRaw: the input's size
  };
  const std::vector<Case> cases = {
      {"ec", "SHA256", 0, nullptr, 0, Case::kRaw, 32},
      {"ec", nullptr, 0, nullptr, 0, Case::kRaw, 20},
      {"ec", "SHA384", 0, nullptr, 0, Case::kStream},
      {"rsa", "SHA256", RSA_PKCS1_PADDING, nullptr, 0, Case::kRaw, 32},
      {"rsa", nullptr, RSA_PKCS1_PADDING, nullptr, 0, Case::kRaw, 36},  // TLS 1.1's MD5+SHA-1
      {"rsa", "SHA384", RSA_PKCS1_PSS_PADDING, "SHA1", RSA_PSS_SALTLEN_MAX, Case::kRaw, 48},
      {"rsa", "SHA256", RSA_PKCS1_PADDING, nullptr, 0, Case::kStream},
      {"rsa", "SHA256", RSA_PKCS1_PSS_PADDING, "SHA512", 20, Case::kStream},
      {"rsa", "SHA512", RSA_PKCS1_PSS_PADDING, nullptr, RSA_PSS_SALTLEN_DIGEST, Case::kOneShot},
      {"ed", nullptr, 0, nullptr, 0, Case::kOneShot},
  };
  std::map<std::string, std::pair<X509Ptr, PkeyPtr>> loaded;
  for (const char* nick : {"ec", "rsa", "ed"}) {
    auto& [cert, key] = loaded[nick];
    load(uri(nick), cert, key);
    ASSERT_TRUE(cert && key) << errors();
  }
  // Sets the case's parameters on a signing or verifying context.
  auto shape = [](EVP_PKEY_CTX* p, const Case& c, bool digest_set) {
    bool ok = true;
    if (c.md && !digest_set) ok = EVP_PKEY_CTX_set_signature_md(p, EVP_get_digestbyname(c.md)) > 0;
    if (c.padding) ok = ok && EVP_PKEY_CTX_set_rsa_padding(p, c.padding) > 0;
    if (c.padding == RSA_PKCS1_PSS_PADDING) {
      if (c.mgf1) ok = ok && EVP_PKEY_CTX_set_rsa_mgf1_md(p, EVP_get_digestbyname(c.mgf1)) > 0;
      ok = ok && EVP_PKEY_CTX_set_rsa_pss_saltlen(p, c.salt) > 0;
    }
    return ok;
  };
  auto algorithm = [](EVP_PKEY_CTX* p) {
    unsigned char aid[128];
    OSSL_PARAM ask[] = {
        OSSL_PARAM_construct_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, aid, sizeof aid),
        OSSL_PARAM_construct_end()};
    if (EVP_PKEY_CTX_get_params(p, ask) <= 0 || !OSSL_PARAM_modified(ask)) return std::string();
    return std::string(reinterpret_cast<char*>(aid), ask[0].return_size);
  };
  const std::string message(1000, 'm');
  const auto* msg = reinterpret_cast<const unsigned char*>(message.data());
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.nick) + " " + (c.md ? c.md : "-") + " pad " +
                 std::to_string(c.padding) + " how " + std::to_string(c.how));
    EVP_PKEY* key = loaded[c.nick].second.get();
    EVP_PKEY* pub = X509_get0_pubkey(loaded[c.nick].first.get());
    std::vector<unsigned char> sig(512);
    size_t len = sig.size();
    if (c.how == Case::kRaw) {
      const std::vector<unsigned char> tbs(c.raw_size, 0x5a);
      EVP_PKEY_CTX* s = EVP_PKEY_CTX_new(key, nullptr);
      ASSERT_TRUE(s && EVP_PKEY_sign_init(s) == 1 && shape(s, c, false)) << errors();
      ASSERT_EQ(EVP_PKEY_sign(s, sig.data(), &len, tbs.data(), tbs.size()), 1) << errors();
      const std::string ours = algorithm(s);
      EVP_PKEY_CTX_free(s);
      EVP_PKEY_CTX* v = EVP_PKEY_CTX_new(pub, nullptr);
      ASSERT_TRUE(v && EVP_PKEY_verify_init(v) == 1 && shape(v, c, false)) << errors();
      EXPECT_EQ(EVP_PKEY_verify(v, sig.data(), len, tbs.data(), tbs.size()), 1) << errors();
      if (c.md) {
        EXPECT_EQ(ours, algorithm(v));
      }
      EVP_PKEY_CTX_free(v);
      continue;
    }
    EVP_MD_CTX* s = EVP_MD_CTX_new();
    EVP_PKEY_CTX* sp = nullptr;
    ASSERT_EQ(EVP_DigestSignInit_ex(s, &sp, c.md, nullptr, nullptr, key, nullptr), 1) << errors();
    ASSERT_TRUE(shape(sp, c, true)) << errors();
    if (c.how == Case::kStream) {
      ASSERT_EQ(EVP_DigestSignUpdate(s, msg, 400), 1) << errors();
      ASSERT_EQ(EVP_DigestSignUpdate(s, msg + 400, message.size() - 400), 1) << errors();
      ASSERT_EQ(EVP_DigestSignFinal(s, sig.data(), &len), 1) << errors();
    } else {
      ASSERT_EQ(EVP_DigestSign(s, sig.data(), &len, msg, message.size()), 1) << errors();
    }
    const std::string ours = algorithm(sp);
    EVP_MD_CTX_free(s);
    EVP_MD_CTX* v = EVP_MD_CTX_new();
    EVP_PKEY_CTX* vp = nullptr;
    ASSERT_EQ(EVP_DigestVerifyInit_ex(v, &vp, c.md, nullptr, nullptr, pub, nullptr), 1) << errors();
    ASSERT_TRUE(shape(vp, c, true)) << errors();
    EXPECT_EQ(EVP_DigestVerify(v, sig.data(), len, msg, message.size()), 1) << errors();
    EXPECT_FALSE(ours.empty());
    EXPECT_EQ(ours, algorithm(vp));
    EVP_MD_CTX_free(v);
  }
}

// The keystore signs with the digests the agent takes, in this process too: another one is
// refused with the reason on the error queue, not signed some other way.
TEST_F(ProviderInProcess, DigestTheKeystoreDoesNotSignWithIsRefusedWithTheReason) {
  issue("ec", 100, KeyType::kEcP256);
  X509Ptr cert;
  PkeyPtr key;
  load(uri("ec"), cert, key);
  ASSERT_TRUE(cert && key) << errors();
  EVP_MD_CTX* s = EVP_MD_CTX_new();
  unsigned char sig[128];
  size_t len = sizeof sig;
  const unsigned char data[] = "data";
  ASSERT_EQ(EVP_DigestSignInit_ex(s, nullptr, "SHA512-256", nullptr, nullptr, key.get(), nullptr),
            1)
      << errors();
  EXPECT_NE(EVP_DigestSign(s, sig, &len, data, sizeof data), 1);
  EVP_MD_CTX_free(s);
  const std::string queued = errors();
  EXPECT_TRUE(contains(queued, "does not sign with digest SHA2-512/256")) << queued;
}

TEST_F(ProviderInProcess, PublicKeyNeedsNoPinAndMatchesTheCertificate) {
  issue("api-prod", 100, KeyType::kEcP256);
  UI_METHOD* ui = UI_UTIL_wrap_read_pem_callback(pin_callback, 0);
  const std::string u = uri("api-prod", /*with_pin=*/false);
  OSSL_STORE_CTX* store =
      OSSL_STORE_open_ex(u.c_str(), nullptr, nullptr, ui, nullptr, nullptr, nullptr, nullptr);
  ASSERT_NE(store, nullptr) << errors();
  ASSERT_EQ(OSSL_STORE_expect(store, OSSL_STORE_INFO_PUBKEY), 1);
  PkeyPtr pub;
  for (int i = 0; i < 5 && !OSSL_STORE_eof(store) && !pub; ++i) {
    OSSL_STORE_INFO* info = OSSL_STORE_load(store);
    if (info && OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PUBKEY)
      pub.reset(OSSL_STORE_INFO_get1_PUBKEY(info));
    OSSL_STORE_INFO_free(info);
  }
  OSSL_STORE_close(store);
  UI_destroy_method(ui);
  ASSERT_TRUE(pub) << errors();
  EXPECT_EQ(g_prompts.load(), 0);
  auto der = vault().certificate_der("api-prod");
  ASSERT_TRUE(der);
  auto cert = x509_from_der(*der);
  EXPECT_EQ(EVP_PKEY_eq(pub.get(), X509_get0_pubkey(cert.get())), 1);
  EXPECT_EQ(ERR_peek_error(), 0u) << errors();
}

TEST_F(ProviderInProcess, SearchByAliasFindsTheEntry) {
  issue("api-prod", 100, KeyType::kEcP256);
  issue("other", 100, KeyType::kRsa2048);
  const std::string u = "certvault:?vault=" + dir_.string();
  OSSL_STORE_CTX* store =
      OSSL_STORE_open_ex(u.c_str(), nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr);
  ASSERT_NE(store, nullptr) << errors();
  OSSL_STORE_SEARCH* search = OSSL_STORE_SEARCH_by_alias("other");
  ASSERT_EQ(OSSL_STORE_supports_search(store, OSSL_STORE_SEARCH_BY_ALIAS), 1);
  ASSERT_EQ(OSSL_STORE_find(store, search), 1) << errors();
  ASSERT_EQ(OSSL_STORE_expect(store, OSSL_STORE_INFO_CERT), 1);
  std::vector<std::string> subjects;
  for (int i = 0; i < 10 && !OSSL_STORE_eof(store); ++i) {
    OSSL_STORE_INFO* info = OSSL_STORE_load(store);
    if (info && OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_CERT) {
      char name[256];
      X509_NAME_oneline(X509_get_subject_name(OSSL_STORE_INFO_get0_CERT(info)), name, sizeof name);
      subjects.emplace_back(name);
    }
    OSSL_STORE_INFO_free(info);
  }
  OSSL_STORE_SEARCH_free(search);
  OSSL_STORE_close(store);
  // The entry's certificate, then its CA; nothing of "api-prod".
  ASSERT_EQ(subjects.size(), 2u) << errors();
  EXPECT_EQ(subjects[0], "/CN=other");
  EXPECT_EQ(subjects[1], "/CN=ops CA");
}

TEST_F(ProviderInProcess, WrongPinFailsWithReasonOnTheErrorQueue) {
  issue("api-prod", 100, KeyType::kEcP256);
  auto wrong = write_secret_file(tmp_ / "wrong", "nope");
  const std::string u =
      "certvault:api-prod?vault=" + dir_.string() + "&pin-source=file:" + wrong.string();
  OSSL_STORE_CTX* store =
      OSSL_STORE_open_ex(u.c_str(), nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr);
  ASSERT_NE(store, nullptr) << errors();
  ASSERT_EQ(OSSL_STORE_expect(store, OSSL_STORE_INFO_PKEY), 1);
  OSSL_STORE_INFO* info = OSSL_STORE_load(store);
  EXPECT_EQ(info, nullptr);
  OSSL_STORE_INFO_free(info);
  EXPECT_TRUE(OSSL_STORE_error(store));
  OSSL_STORE_close(store);
  const std::string queued = errors();
  EXPECT_NE(queued.find("certvault"), std::string::npos) << queued;
  EXPECT_NE(queued.find("wrong PIN"), std::string::npos) << queued;
}

// --- certvault before default --------------------------------------------------------

// `openssl ... -provider certvault -provider default` in-process: a library context where
// certvault is activated first, so that it is the KEYMGMT of every EC key made there.
class ProviderCertvaultFirst : public ProviderLoadedTest {
 protected:
  void SetUp() override {
    VaultTest::SetUp();
    if (HasFatalFailure()) return;
    ctx_ = OSSL_LIB_CTX_new();
    ASSERT_NE(ctx_, nullptr);
    load_providers(ctx_);
  }

  void TearDown() override {
    ProviderLoadedTest::TearDown();
    OSSL_LIB_CTX_free(ctx_);
  }

  // An ordinary EC key on `curve`, made through certvault's KEYMGMT.
  PkeyPtr ec_key(const char* curve) {
    PkeyPtr key(EVP_PKEY_Q_keygen(ctx_, nullptr, "EC", curve));
    EXPECT_TRUE(key) << errors();
    EXPECT_TRUE(!key || from_certvault(key.get()));
    return key;
  }

  static bool from_certvault(const EVP_PKEY* key) {
    const OSSL_PROVIDER* p = EVP_PKEY_get0_provider(key);
    return p && std::strcmp(OSSL_PROVIDER_get0_name(p), "certvault") == 0;
  }

  static std::vector<unsigned char> point(EVP_PKEY* key) {
    unsigned char* buf = nullptr;
    const size_t n = EVP_PKEY_get1_encoded_public_key(key, &buf);
    std::vector<unsigned char> out(buf, buf + n);
    OPENSSL_free(buf);
    ERR_clear_error();
    return out;
  }

  // The result of an EVP_PKEY_*check function on `key` (1: valid).
  int check(EVP_PKEY* key, int (*fn)(EVP_PKEY_CTX*)) {
    EVP_PKEY_CTX* c = EVP_PKEY_CTX_new_from_pkey(ctx_, key, nullptr);
    const int r = c ? fn(c) : -100;
    EVP_PKEY_CTX_free(c);
    ERR_clear_error();
    return r;
  }

  // The ECDH secret of `priv`'s private key and `peer`'s public key; empty on failure.
  std::vector<unsigned char> derive(EVP_PKEY* priv, EVP_PKEY* peer) {
    EVP_PKEY_CTX* c = EVP_PKEY_CTX_new_from_pkey(ctx_, priv, nullptr);
    std::vector<unsigned char> out;
    size_t n = 0;
    if (c && EVP_PKEY_derive_init(c) == 1 && EVP_PKEY_derive_set_peer(c, peer) == 1 &&
        EVP_PKEY_derive(c, nullptr, &n) == 1) {
      out.resize(n);
      if (EVP_PKEY_derive(c, out.data(), &n) == 1)
        out.resize(n);
      else
        out.clear();
    }
    EVP_PKEY_CTX_free(c);
    return out;
  }

  // Whether `key` makes a signature (SHA-256) in this library context.
  bool signs(EVP_PKEY* key) {
    EVP_MD_CTX* md = EVP_MD_CTX_new();
    unsigned char sig[256];
    size_t len = sizeof sig;
    const unsigned char data[] = "data";
    const bool ok =
        md && EVP_DigestSignInit_ex(md, nullptr, "SHA256", ctx_, nullptr, key, nullptr) == 1 &&
        EVP_DigestSign(md, sig, &len, data, sizeof data) == 1;
    EVP_MD_CTX_free(md);
    ERR_clear_error();
    return ok;
  }

  OSSL_LIB_CTX* ctx_ = nullptr;
};

// What libssl does for a TLS 1.2 ECDHE server: copy the parameters of its ephemeral key,
// set the client's point on the copy, derive. The copy is a key of its own.
TEST_F(ProviderCertvaultFirst, CopyParametersThenSetPublicKeyLeavesTheOriginal) {
  auto key = ec_key("P-256");
  auto peer = ec_key("P-256");
  ASSERT_TRUE(key && peer);
  const auto before = point(key.get());
  ASSERT_FALSE(before.empty());
  PkeyPtr copy(EVP_PKEY_new());
  ASSERT_EQ(EVP_PKEY_copy_parameters(copy.get(), key.get()), 1) << errors();
  const auto peer_point = point(peer.get());
  ASSERT_EQ(EVP_PKEY_set1_encoded_public_key(copy.get(), peer_point.data(), peer_point.size()), 1)
      << errors();
  EXPECT_EQ(point(copy.get()), peer_point);
  EXPECT_EQ(point(key.get()), before);
  // Both sides of the exchange agree: the original still holds its own public key.
  const auto ours = derive(key.get(), copy.get());
  EXPECT_FALSE(ours.empty()) << errors();
  EXPECT_EQ(ours, derive(peer.get(), key.get())) << errors();
}

TEST_F(ProviderCertvaultFirst, ChecksTellAConsistentKeyFromAMismatchedOne) {
  auto key = ec_key("P-256");
  auto other = ec_key("P-256");
  ASSERT_TRUE(key && other);
  EXPECT_EQ(check(key.get(), EVP_PKEY_check), 1);
  EXPECT_EQ(check(key.get(), EVP_PKEY_pairwise_check), 1);
  EXPECT_EQ(check(key.get(), EVP_PKEY_public_check), 1);
  EXPECT_EQ(check(key.get(), EVP_PKEY_param_check), 1);

  // The private key of `key` with the public key of `other`.
  OSSL_PARAM* parts = nullptr;
  ASSERT_EQ(EVP_PKEY_todata(key.get(), EVP_PKEY_KEYPAIR, &parts), 1) << errors();
  OSSL_PARAM* pub = OSSL_PARAM_locate(parts, OSSL_PKEY_PARAM_PUB_KEY);
  const auto other_point = point(other.get());
  ASSERT_TRUE(pub && pub->data_size == other_point.size());
  std::memcpy(pub->data, other_point.data(), other_point.size());
  EVP_PKEY_CTX* from = EVP_PKEY_CTX_new_from_name(ctx_, "EC", nullptr);
  EVP_PKEY* raw = nullptr;
  const bool made = from && EVP_PKEY_fromdata_init(from) == 1 &&
                    EVP_PKEY_fromdata(from, &raw, EVP_PKEY_KEYPAIR, parts) == 1;
  EVP_PKEY_CTX_free(from);
  OSSL_PARAM_free(parts);
  PkeyPtr mismatched(raw);
  ASSERT_TRUE(made && mismatched) << errors();
  EXPECT_TRUE(from_certvault(mismatched.get()));
  EXPECT_NE(check(mismatched.get(), EVP_PKEY_check), 1);
  EXPECT_NE(check(mismatched.get(), EVP_PKEY_pairwise_check), 1);
  EXPECT_EQ(check(mismatched.get(), EVP_PKEY_public_check), 1);  // a point on the curve
}

TEST_F(ProviderCertvaultFirst, ParametersOnlyCopyHoldsNoKey) {
  auto key = ec_key("P-384");
  ASSERT_TRUE(key);
  PkeyPtr copy(EVP_PKEY_new());
  ASSERT_EQ(EVP_PKEY_copy_parameters(copy.get(), key.get()), 1) << errors();
  EXPECT_EQ(EVP_PKEY_missing_parameters(copy.get()), 0);
  EXPECT_EQ(EVP_PKEY_parameters_eq(copy.get(), key.get()), 1);
  EXPECT_EQ(check(copy.get(), EVP_PKEY_param_check), 1);
  EXPECT_NE(check(copy.get(), EVP_PKEY_public_check), 1);
  EXPECT_NE(check(copy.get(), EVP_PKEY_pairwise_check), 1);
  EXPECT_FALSE(signs(copy.get()));
  EXPECT_TRUE(point(copy.get()).empty());
  EXPECT_EQ(check(key.get(), EVP_PKEY_pairwise_check), 1);
}

// libssl takes an EC group only from the provider whose KEYMGMT it fetches for "EC":
// certvault here, which passes on the default provider's groups, aliases included.
TEST_F(ProviderCertvaultFirst, TlsGroupNamesOfTheDefaultProviderAreAccepted) {
  SslCtxPtr ssl(SSL_CTX_new_ex(ctx_, nullptr, TLS_method()));
  ASSERT_TRUE(ssl) << errors();
  for (const char* groups :
       {"P-256", "P-384", "P-521", "secp256r1", "secp384r1", "prime256v1", "brainpoolP256r1",
        "brainpoolP384r1", "X25519", "ffdhe2048", "P-256:X25519:P-384"}) {
    SCOPED_TRACE(groups);
    EXPECT_EQ(SSL_CTX_set1_groups_list(ssl.get(), groups), 1) << errors();
  }
  EXPECT_NE(SSL_CTX_set1_groups_list(ssl.get(), "P-255"), 1);
  ERR_clear_error();
}

// A vault key: its public half is checked, its pair is sound by construction, and a copy
// of its parameters carries nothing of the private key.
TEST_F(ProviderCertvaultFirst, VaultKeyChecksAndItsParametersCopyCannotSign) {
  issue("api-prod", 100, KeyType::kEcP256);
  const std::string u =
      "certvault:api-prod?vault=" + dir_.string() + "&pin-source=file:" + pin_file_.string();
  OSSL_STORE_CTX* store =
      OSSL_STORE_open_ex(u.c_str(), ctx_, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr);
  ASSERT_NE(store, nullptr) << errors();
  ASSERT_EQ(OSSL_STORE_expect(store, OSSL_STORE_INFO_PKEY), 1);
  PkeyPtr key;
  for (int i = 0; i < 5 && !OSSL_STORE_eof(store) && !key; ++i) {
    OSSL_STORE_INFO* info = OSSL_STORE_load(store);
    if (info && OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY)
      key.reset(OSSL_STORE_INFO_get1_PKEY(info));
    OSSL_STORE_INFO_free(info);
  }
  OSSL_STORE_close(store);
  ASSERT_TRUE(key) << errors();
  EXPECT_TRUE(from_certvault(key.get()));
  EXPECT_TRUE(signs(key.get()));
  EXPECT_EQ(check(key.get(), EVP_PKEY_public_check), 1);
  EXPECT_EQ(check(key.get(), EVP_PKEY_check), 1);

  PkeyPtr params(EVP_PKEY_new());
  ASSERT_EQ(EVP_PKEY_copy_parameters(params.get(), key.get()), 1) << errors();
  EXPECT_FALSE(signs(params.get()));
  EXPECT_NE(check(params.get(), EVP_PKEY_pairwise_check), 1);
  // A whole copy still signs.
  PkeyPtr dup(EVP_PKEY_dup(key.get()));
  ASSERT_TRUE(dup) << errors();
  EXPECT_TRUE(signs(dup.get()));
}

}  // namespace
}  // namespace cvtest
