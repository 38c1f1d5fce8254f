// Provider budgets (issue 4, docs/PERFORMANCE.md), all in one run:
// - signatures per second with a vault key through certvault.so vs the same key in the
//   default provider (ECDSA P-256, RSA-2048 PKCS#1 v1.5, SHA-256 over 32 bytes);
// - full TLS 1.3 handshakes per second in-process (memory BIO pair, no resumption,
//   client certificate required), client key from the provider vs from a PEM file.
// Budget: the provider at least 0.9x the default provider in both. Each comparison runs
// twice: as two benchmarks, and side by side in alternating batches in one benchmark
// (bench_support.h), so that the host's drifting speed weighs on both sides alike.
//
// The agent (issue: unlock once; scripts/bench-agent.sh sets it up): with
// CERTVAULT_AGENT_SOCK naming a running, unlocked agent, CERTVAULT_BENCH_AGENT_URI a
// certvault: URI of an EC P-256 key it holds and CERTVAULT_BENCH_AGENT_CA the PEM of that
// vault's CA, the *Agent* benchmarks sign and shake hands with that key through the
// provider, which asks the agent; budget: TLS 1.3 handshakes at least 0.9x a PEM key.
// Without those variables they report an error and the rest runs as before (the vault
// made here is not served by the agent, so its keys stay in-process either way).
#include <benchmark/benchmark.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/ssl.h>
#include <openssl/store.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>

#include "bench_support.h"
#include "ossl.h"
#include "vault.h"

#ifndef CERTVAULT_PROVIDER_DIR
#error "CERTVAULT_PROVIDER_DIR must name the directory of certvault.so"
#endif

namespace {

namespace cv = certvault;
namespace fs = std::filesystem;

[[noreturn]] void die(const std::string& what) {
  ERR_print_errors_fp(stderr);
  throw std::runtime_error(what);
}

// One vault with an EC P-256 and an RSA-2048 entry, the providers loaded (default first,
// as the sample openssl.cnf does), and for each entry the key twice: by URI through the
// provider, and the same key as an ordinary default-provider key from a PEM file.
struct Fixture {
  fs::path dir;
  std::string pin = "bench-pin";
  std::map<std::string, EVP_PKEY*> by_uri, by_pem;
  std::map<std::string, X509*> cert;
  std::map<std::string, fs::path> pem_file;
  X509* ca = nullptr;
  X509* agent_ca = nullptr;  // the agent's vault's CA, when the agent benchmarks run
  std::string agent_uri;

  Fixture() {
    char templ[] = "/tmp/certvault-bench-provider-XXXXXX";
    if (!mkdtemp(templ)) die("mkdtemp");
    dir = templ;
    if (!OSSL_PROVIDER_load(nullptr, "default")) die("load default");
    if (!OSSL_PROVIDER_set_default_search_path(nullptr, CERTVAULT_PROVIDER_DIR) ||
        !OSSL_PROVIDER_load(nullptr, "certvault"))
      die("load certvault");
    cv::InitOptions opts;
    opts.kdf = cv::KdfParams{1, 8 * 1024};
    auto made = cv::Vault::init(dir / "vault", cv::SecureBytes::from(pin), opts);
    if (!made) die(made.error().message);
    cv::Vault& v = made->first;
    cv::CaRequest ca_req;
    ca_req.not_after = cv::now() + 3650 * 86400;
    if (!v.create_ca(ca_req)) die("create CA");
    std::ofstream(dir / "pin") << pin << "\n";
    fs::permissions(dir / "pin", fs::perms::owner_read | fs::perms::owner_write);
    for (auto [nick, type] :
         {std::pair{"ec", cv::KeyType::kEcP256}, std::pair{"rsa", cv::KeyType::kRsa2048}}) {
      cv::IssueRequest req;
      req.nickname = nick;
      req.not_after = cv::now() + 100 * 86400;
      req.key_type = type;
      if (!v.create(req)) die("create entry");
      load_by_uri(nick);
      copy_to_pem(v, nick);
    }
    auto ca_der = v.ca_certificate_der();
    const unsigned char* p = ca_der->data();
    ca = d2i_X509(nullptr, &p, static_cast<long>(ca_der->size()));
    const char* uri = std::getenv("CERTVAULT_BENCH_AGENT_URI");
    const char* ca_file = std::getenv("CERTVAULT_BENCH_AGENT_CA");
    if (uri && *uri && ca_file && *ca_file && std::getenv("CERTVAULT_AGENT_SOCK")) {
      agent_uri = uri;
      load("agent", agent_uri);
      FILE* f = std::fopen(ca_file, "r");
      if (!f) die(std::string("read ") + ca_file);
      agent_ca = PEM_read_X509(f, nullptr, nullptr, nullptr);
      std::fclose(f);
      if (!agent_ca) die(std::string("read ") + ca_file);
    }
  }

  ~Fixture() {
    for (auto& [_, k] : by_uri) EVP_PKEY_free(k);
    for (auto& [_, k] : by_pem) EVP_PKEY_free(k);
    for (auto& [_, c] : cert) X509_free(c);
    X509_free(ca);
    X509_free(agent_ca);
    std::error_code ec;
    fs::remove_all(dir, ec);
  }

  void load_by_uri(const std::string& nick) {
    load(nick, "certvault:" + nick + "?vault=" + (dir / "vault").string() +
                   "&pin-source=file:" + (dir / "pin").string());
  }

  // The key and certificate at `uri`, kept as by_uri[nick] and cert[nick].
  void load(const std::string& nick, const std::string& uri) {
    OSSL_STORE_CTX* s = OSSL_STORE_open_ex(uri.c_str(), nullptr, nullptr, nullptr, nullptr, nullptr,
                                           nullptr, nullptr);
    if (!s) die("open " + uri);
    for (int i = 0; i < 10 && !OSSL_STORE_eof(s); ++i) {
      OSSL_STORE_INFO* info = OSSL_STORE_load(s);
      if (!info) continue;
      if (OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_CERT && !cert.count(nick))
        cert[nick] = OSSL_STORE_INFO_get1_CERT(info);
      if (OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY)
        by_uri[nick] = OSSL_STORE_INFO_get1_PKEY(info);
      OSSL_STORE_INFO_free(info);
    }
    OSSL_STORE_close(s);
    if (!by_uri[nick] || !cert[nick]) die("load " + uri);
  }

  // The same key, written as an ordinary PEM file and read back by the default provider.
  void copy_to_pem(cv::Vault& v, const std::string& nick) {
    auto key = v.private_key(nick);
    if (!key) die(key.error().message);
    pem_file[nick] = dir / (nick + ".key");
    FILE* f = std::fopen(pem_file[nick].c_str(), "w");
    PEM_write_PrivateKey(f, key->get(), nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
    f = std::fopen(pem_file[nick].c_str(), "r");
    by_pem[nick] = PEM_read_PrivateKey(f, nullptr, nullptr, nullptr);
    std::fclose(f);
    if (!by_pem[nick]) die("read " + pem_file[nick].string());
  }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

// One SHA-256 signature over 32 bytes, made as libssl makes its CertificateVerify: a new
// digest-sign context each time.
bool sign_once(EVP_PKEY* key) {
  static const unsigned char data[32] = {1, 2, 3};
  unsigned char sig[512];
  size_t len = sizeof sig;
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  const bool ok =
      md && EVP_DigestSignInit_ex(md, nullptr, "SHA256", nullptr, nullptr, key, nullptr) == 1 &&
      EVP_DigestSign(md, sig, &len, data, sizeof data) == 1;
  EVP_MD_CTX_free(md);
  benchmark::DoNotOptimize(sig);
  return ok;
}

void sign(benchmark::State& state, EVP_PKEY* key) {
  for (auto _ : state) {
    if (!sign_once(key)) {
      state.SkipWithError("signature failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_SignProvider(benchmark::State& state, const char* nick) {
  sign(state, fixture().by_uri.at(nick));
}
void BM_SignDefault(benchmark::State& state, const char* nick) {
  sign(state, fixture().by_pem.at(nick));
}
// The provider's key beside the default provider's, in alternating batches of about 8 ms.
void BM_SignBeside(benchmark::State& state, const char* nick) {
  Fixture& f = fixture();
  auto ours = [key = f.by_uri.at(nick)] { return sign_once(key); };
  auto reference = [key = f.by_pem.at(nick)] { return sign_once(key); };
  cv::bench::run_side_by_side(state, std::string(nick) == "rsa" ? 8 : 256, ours, reference);
}
BENCHMARK_CAPTURE(BM_SignProvider, EcdsaP256, "ec")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_SignDefault, EcdsaP256, "ec")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_SignProvider, Rsa2048, "rsa")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_SignDefault, Rsa2048, "rsa")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_SignBeside, EcdsaP256, "ec")->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_SignBeside, Rsa2048, "rsa")->UseRealTime()->Unit(benchmark::kMillisecond);

// The agent's key, or nullptr after reporting why the agent benchmarks cannot run.
EVP_PKEY* agent_key(benchmark::State& state) {
  Fixture& f = fixture();
  if (f.agent_uri.empty())
    state.SkipWithError(
        "no agent: set CERTVAULT_AGENT_SOCK, CERTVAULT_BENCH_AGENT_URI and "
        "CERTVAULT_BENCH_AGENT_CA (scripts/bench-agent.sh does)");
  return f.agent_uri.empty() ? nullptr : f.by_uri.at("agent");
}

// ECDSA P-256 signatures through the provider with the key in the agent (informational).
void BM_SignAgent(benchmark::State& state) {
  if (EVP_PKEY* key = agent_key(state)) sign(state, key);
}
BENCHMARK(BM_SignAgent)->UseRealTime()->Unit(benchmark::kMicrosecond);
// The agent's key beside the in-process vault key (certvault.so unlocks the vault itself)
// and beside the PEM key, in alternating batches.
void BM_SignAgentBeside(benchmark::State& state, bool beside_pem) {
  EVP_PKEY* key = agent_key(state);
  if (!key) return;
  Fixture& f = fixture();
  auto ours = [key] { return sign_once(key); };
  auto reference = [key = beside_pem ? f.by_pem.at("ec") : f.by_uri.at("ec")] {
    return sign_once(key);
  };
  cv::bench::run_side_by_side(state, 64, ours, reference);
}
BENCHMARK_CAPTURE(BM_SignAgentBeside, InProcess, false)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_SignAgentBeside, Pem, true)->UseRealTime()->Unit(benchmark::kMillisecond);

// --- TLS 1.3 full handshakes ----------------------------------------------------------

struct Tls {
  SSL_CTX* server = nullptr;
  SSL_CTX* client = nullptr;
  EVP_PKEY* server_key = nullptr;
  X509* server_cert = nullptr;
  ~Tls() {
    SSL_CTX_free(server);
    SSL_CTX_free(client);
    EVP_PKEY_free(server_key);
    X509_free(server_cert);
  }
};

// Where the client's EC P-256 key comes from.
enum class ClientKey { kProvider, kPem, kAgent };

void make_contexts(Tls& t, ClientKey client_key) {
  Fixture& f = fixture();
  t.server_key = EVP_EC_gen("P-256");
  t.server_cert = X509_new();
  X509_set_version(t.server_cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(t.server_cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(t.server_cert), 0);
  X509_gmtime_adj(X509_getm_notAfter(t.server_cert), 86400);
  X509_set_pubkey(t.server_cert, t.server_key);
  X509_NAME* name = X509_get_subject_name(t.server_cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(t.server_cert, name);
  X509_sign(t.server_cert, t.server_key, EVP_sha256());

  t.server = SSL_CTX_new(TLS_server_method());
  SSL_CTX_use_certificate(t.server, t.server_cert);
  SSL_CTX_use_PrivateKey(t.server, t.server_key);
  X509_STORE_add_cert(SSL_CTX_get_cert_store(t.server), f.ca);
  if (f.agent_ca) X509_STORE_add_cert(SSL_CTX_get_cert_store(t.server), f.agent_ca);
  SSL_CTX_set_verify(t.server, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  t.client = SSL_CTX_new(TLS_client_method());
  X509_STORE_add_cert(SSL_CTX_get_cert_store(t.client), t.server_cert);
  SSL_CTX_set_verify(t.client, SSL_VERIFY_PEER, nullptr);
  for (SSL_CTX* c : {t.server, t.client}) {
    SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
  }
  const char* nick = client_key == ClientKey::kAgent ? "agent" : "ec";
  SSL_CTX_use_certificate(t.client, f.cert.at(nick));
  int ok =
      client_key == ClientKey::kPem
          ? SSL_CTX_use_PrivateKey_file(t.client, f.pem_file.at("ec").c_str(), SSL_FILETYPE_PEM)
          : SSL_CTX_use_PrivateKey(t.client, f.by_uri.at(nick));
  if (ok != 1) die("client key");
}

bool handshake(Tls& t) {
  SSL* s = SSL_new(t.server);
  SSL* c = SSL_new(t.client);
  BIO *cb = nullptr, *sb = nullptr;
  BIO_new_bio_pair(&cb, 0, &sb, 0);
  SSL_set_bio(c, cb, cb);
  SSL_set_bio(s, sb, sb);
  SSL_set_connect_state(c);
  SSL_set_accept_state(s);
  bool cdone = false, sdone = false, failed = false;
  for (int i = 0; i < 50 && !(cdone && sdone) && !failed; ++i) {
    for (auto [ssl, done] : {std::pair{c, &cdone}, std::pair{s, &sdone}}) {
      if (*done) continue;
      int r = SSL_do_handshake(ssl);
      if (r == 1) {
        *done = true;
      } else if (int e = SSL_get_error(ssl, r);
                 e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
        failed = true;
      }
    }
  }
  const bool ok = cdone && sdone && SSL_get0_peer_certificate(s) != nullptr;
  SSL_free(c);
  SSL_free(s);
  return ok;
}

void BM_Tls13Handshake(benchmark::State& state, ClientKey client_key) {
  if (client_key == ClientKey::kAgent && !agent_key(state)) return;
  Tls t;
  make_contexts(t, client_key);
  for (auto _ : state) {
    if (!handshake(t)) {
      state.SkipWithError("handshake failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK_CAPTURE(BM_Tls13Handshake, ClientKeyFromProvider, ClientKey::kProvider)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Tls13Handshake, ClientKeyFromPem, ClientKey::kPem)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Tls13Handshake, ClientKeyFromAgent, ClientKey::kAgent)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// Handshakes with the client key from the provider beside the PEM file, in alternating
// batches of about 8 ms.
void BM_Tls13HandshakeBeside(benchmark::State& state) {
  Tls from_provider, from_pem;
  make_contexts(from_provider, ClientKey::kProvider);
  make_contexts(from_pem, ClientKey::kPem);
  auto ours = [&] { return handshake(from_provider); };
  auto reference = [&] { return handshake(from_pem); };
  cv::bench::run_side_by_side(state, 4, ours, reference);
}
BENCHMARK(BM_Tls13HandshakeBeside)->UseRealTime()->Unit(benchmark::kMillisecond);

// The agent's budget: handshakes with the client key in the agent beside the PEM file, in
// alternating batches. The client signs its CertificateVerify through the agent (one round
// trip on the agent's socket per handshake).
void BM_Tls13HandshakeAgentBeside(benchmark::State& state) {
  if (!agent_key(state)) return;
  Tls from_agent, from_pem;
  make_contexts(from_agent, ClientKey::kAgent);
  make_contexts(from_pem, ClientKey::kPem);
  auto ours = [&] { return handshake(from_agent); };
  auto reference = [&] { return handshake(from_pem); };
  cv::bench::run_side_by_side(state, static_cast<int>(state.range(0)), ours, reference);
}
BENCHMARK(BM_Tls13HandshakeAgentBeside)
    ->Arg(4)
    ->Arg(16)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
