#include "acme_client.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <json/json.h>
#include <netdb.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "acme_ari.h"
#include "hook.h"
#include "ossl.h"
#include "renewal.h"
#include "seal.h"

namespace certvault::cli {
namespace {

using Bytes = std::vector<uint8_t>;
using Clock = std::chrono::steady_clock;

// One request may take this long; polling an authorization or an order this long in all.
constexpr long kRequestTimeout = 30;
constexpr auto kPollLimit = std::chrono::seconds(90);
// A server may refuse any nonce (RFC 8555 6.5; pebble refuses 5% by default): each request
// is sent again with the nonce the refusal carried, this many times at most.
constexpr int kBadNonceRetries = 8;
constexpr size_t kMaxBody = 1 << 20;

// The server's text, made one line with nothing a terminal would obey.
std::string one_line(std::string s) {
  if (s.size() > 300) s = s.substr(0, 300) + "...";
  for (char& c : s)
    if (c == '\n' || c == '\r' || c == '\t')
      c = ' ';
    else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      c = '?';
  return s;
}

std::string b64url(std::span<const uint8_t> data) {
  return seal::to_base64url(data);
}

std::string b64url(std::string_view text) {
  return b64url(std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

std::string compact(const Json::Value& v) {
  Json::StreamWriterBuilder w;
  w["indentation"] = "";
  return Json::writeString(w, v);
}

std::optional<Json::Value> parse_json(const std::string& text) {
  Json::CharReaderBuilder rb;
  std::unique_ptr<Json::CharReader> reader(rb.newCharReader());
  Json::Value v;
  std::string err;
  if (!reader->parse(text.data(), text.data() + text.size(), &v, &err) || !v.isObject())
    return std::nullopt;
  return v;
}

// --- HTTP (libcurl) ---------------------------------------------------------------------

struct Response {
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

size_t on_body(char* data, size_t size, size_t n, void* arg) {
  auto* body = static_cast<std::string*>(arg);
  if (body->size() + size * n > kMaxBody) return 0;  // too big: curl fails the transfer
  body->append(data, size * n);
  return size * n;
}

size_t on_header(char* data, size_t size, size_t n, void* arg) {
  auto* headers = static_cast<std::map<std::string, std::string>*>(arg);
  std::string line(data, size * n);
  const auto colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    std::string value = line.substr(colon + 1);
    const auto b = value.find_first_not_of(" \t");
    const auto e = value.find_last_not_of(" \t\r\n");
    (*headers)[name] = b == std::string::npos ? "" : value.substr(b, e - b + 1);
  }
  return size * n;
}

struct CurlFree {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistFree {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

class Http {
 public:
  // `server_ca`: PEM anchors of the server's TLS certificate; empty: the system's.
  explicit Http(std::string server_ca) : server_ca_(std::move(server_ca)) {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  }

  // GET (body null), HEAD (head), or POST of a JWS.
  Result<Response> fetch(const std::string& url, const std::string* body, bool head = false,
                         const char* accept = nullptr) const {
    std::unique_ptr<CURL, CurlFree> curl(curl_easy_init());
    if (!curl) return fail(Code::kIo, "cannot set up HTTP");
    CURL* c = curl.get();
    Response r;
    std::unique_ptr<curl_slist, SlistFree> headers;
    auto add = [&](const std::string& h) {
      headers.reset(curl_slist_append(headers.release(), h.c_str()));
    };
    add(std::string("Accept: ") + (accept ? accept : "application/json"));
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, kRequestTimeout);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "certvault");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r.headers);
    curl_easy_setopt(c, CURLOPT_SSLVERSION, CURL_SSLVERSION_TLSv1_2);
    curl_blob blob{};
    if (!server_ca_.empty()) {
      blob.data = const_cast<char*>(server_ca_.data());
      blob.len = server_ca_.size();
      blob.flags = CURL_BLOB_NOCOPY;
      curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &blob);
    }
    if (head) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body) {
      add("Content-Type: application/jose+json");
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, body->c_str());
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body->size()));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
    char error[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
    const CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK)
      return fail(Code::kIo, one_line(url + ": " + (error[0] ? error : curl_easy_strerror(rc))));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    return r;
  }

 private:
  std::string server_ca_;
};

// --- JWS (RFC 7515) with the account key: ES256 ------------------------------------------

// The account key's JWK, members in lexicographic order (RFC 7638 3.3: what its
// thumbprint hashes).
Result<std::string> jwk_of(EVP_PKEY* key) {
  unsigned char point[65];
  size_t len = 0;
  if (!EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point, &len) ||
      len != 65 || point[0] != 0x04)
    return ossl::crypto_fail("cannot read the ACME account key");
  return std::string(R"({"crv":"P-256","kty":"EC","x":")") + b64url(std::span(point + 1, 32)) +
         R"(","y":")" + b64url(std::span(point + 33, 32)) + R"("})";
}

Result<std::string> thumbprint(const std::string& jwk) {
  unsigned char digest[32];
  unsigned int n = 0;
  if (!EVP_Digest(jwk.data(), jwk.size(), digest, &n, EVP_sha256(), nullptr))
    return ossl::crypto_fail("cannot hash the account key");
  return b64url(std::span(digest, n));
}

// RFC 7518 3.4: ES256 is R || S, 32 bytes each, not DER.
Result<std::string> es256(EVP_PKEY* key, const std::string& input) {
  ossl::Ptr<EVP_MD_CTX, EVP_MD_CTX_free> md(EVP_MD_CTX_new());
  size_t len = 0;
  if (!md || EVP_DigestSignInit(md.get(), nullptr, EVP_sha256(), nullptr, key) != 1 ||
      EVP_DigestSign(md.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()),
                     input.size()) != 1)
    return ossl::crypto_fail("cannot sign an ACME request");
  Bytes der(len);
  if (EVP_DigestSign(md.get(), der.data(), &len,
                     reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1)
    return ossl::crypto_fail("cannot sign an ACME request");
  const unsigned char* p = der.data();
  ossl::Ptr<ECDSA_SIG, ECDSA_SIG_free> sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(len)));
  Bytes raw(64);
  if (!sig || BN_bn2binpad(ECDSA_SIG_get0_r(sig.get()), raw.data(), 32) != 32 ||
      BN_bn2binpad(ECDSA_SIG_get0_s(sig.get()), raw.data() + 32, 32) != 32)
    return ossl::crypto_fail("cannot sign an ACME request");
  return b64url(raw);
}

// --- http-01 responder (RFC 8555 8.3) ----------------------------------------------------

// Answers GET /.well-known/acme-challenge/TOKEN with the key authorization, on one
// address, for as long as it lives (the order is pending).
class Http01Responder {
 public:
  ~Http01Responder() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) ::close(fd_);
  }

  Result<void> start(const std::string& listen) {
    const auto colon = listen.rfind(':');
    std::string host = listen.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']')
      host = host.substr(1, host.size() - 2);
    addrinfo hints{};
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (::getaddrinfo(host.c_str(), listen.substr(colon + 1).c_str(), &hints, &found) != 0)
      return fail(Code::kInvalidInput,
                  "the http-01 address '" + listen + "' is not a numeric ADDRESS:PORT");
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> owned(found, ::freeaddrinfo);
    fd_ = ::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int on = 1;
    if (fd_ < 0 || ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
        ::bind(fd_, found->ai_addr, found->ai_addrlen) != 0 || ::listen(fd_, 16) != 0)
      return fail(Code::kIo,
                  "cannot answer http-01 challenges on " + listen + ": " + std::strerror(errno));
    thread_ = std::thread([this] { serve(); });
    return {};
  }

  void answer(const std::string& token, const std::string& key_authorization) {
    std::lock_guard lock(mutex_);
    answers_[token] = key_authorization;
  }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      const int conn = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (conn < 0) continue;
      reply(conn);
      ::close(conn);
    }
  }

  void reply(int conn) {
    std::string request;
    char buf[1024];
    const auto until = Clock::now() + std::chrono::seconds(5);
    while (request.find("\r\n\r\n") == std::string::npos && request.size() < 8192 &&
           Clock::now() < until && !stop_) {
      pollfd p{conn, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      const ssize_t n = ::recv(conn, buf, sizeof buf, 0);
      if (n <= 0) break;
      request.append(buf, static_cast<size_t>(n));
    }
    static constexpr std::string_view kPrefix = "GET /.well-known/acme-challenge/";
    std::string body;
    if (request.starts_with(kPrefix)) {
      const std::string token =
          request.substr(kPrefix.size(), request.find(' ', kPrefix.size()) - kPrefix.size());
      std::lock_guard lock(mutex_);
      if (auto it = answers_.find(token); it != answers_.end()) body = it->second;
    }
    const std::string response =
        (body.empty() ? std::string("HTTP/1.1 404 Not Found\r\n") : "HTTP/1.1 200 OK\r\n") +
        "Content-Type: application/octet-stream\r\nConnection: close\r\nContent-Length: " +
        std::to_string(body.size()) + "\r\n\r\n" + body;
    (void)::send(conn, response.data(), response.size(), MSG_NOSIGNAL);
  }

  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mutex_;
  std::map<std::string, std::string> answers_;
};

// --- the ACME exchange -------------------------------------------------------------------

// What the names of an entry become as ACME identifiers: DNS names and IP addresses only
// (RFC 8555 7.1.4, RFC 8738 3).
Result<Json::Value> identifiers_of(const Enrollment& en) {
  Json::Value out(Json::arrayValue);
  if (!en.alt_names.empty()) {
    const unsigned char* p = en.alt_names.data();
    ossl::Ext ext(d2i_X509_EXTENSION(nullptr, &p, static_cast<long>(en.alt_names.size())));
    auto* names = ext ? static_cast<GENERAL_NAMES*>(X509V3_EXT_d2i(ext.get())) : nullptr;
    std::unique_ptr<GENERAL_NAMES, void (*)(GENERAL_NAMES*)> owned(
        names, [](GENERAL_NAMES* n) { GENERAL_NAMES_free(n); });
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names); ++i) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, i);
      Json::Value id(Json::objectValue);
      if (gn->type == GEN_DNS) {
        id["type"] = "dns";
        id["value"] =
            std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(gn->d.dNSName)),
                        static_cast<size_t>(ASN1_STRING_length(gn->d.dNSName)));
      } else if (gn->type == GEN_IPADD) {
        const int len = ASN1_STRING_length(gn->d.iPAddress);
        char text[INET6_ADDRSTRLEN] = "";
        if (!inet_ntop(len == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(gn->d.iPAddress), text,
                       sizeof text))
          continue;
        id["type"] = "ip";
        id["value"] = text;
      } else {
        return fail(Code::kInvalidInput,
                    "'" + en.nickname +
                        "' has a subject alternative name that ACME cannot ask for: ACME "
                        "identifiers are DNS names and IP addresses only (--san DNS:...,IP:...)");
      }
      out.append(id);
    }
  }
  if (out.empty())
    return fail(Code::kInvalidInput,
                "'" + en.nickname +
                    "' has no DNS name or IP address to ask an ACME CA for: ACME identifiers "
                    "are DNS names and IP addresses only; give --san DNS:NAME or --san IP:ADDRESS");
  return out;
}

// A CSR (DER) for the enrollment's key, subject and names: what finalize sends.
Result<Bytes> csr_of(const Enrollment& en) {
  ossl::Ptr<X509_REQ, X509_REQ_free> req(X509_REQ_new_ex(ossl::libctx(), nullptr));
  const unsigned char* p = en.subject.data();
  ossl::Name subject(d2i_X509_NAME(nullptr, &p, static_cast<long>(en.subject.size())));
  if (!req || !subject || !X509_REQ_set_version(req.get(), 0) ||
      !X509_REQ_set_subject_name(req.get(), subject.get()) ||
      !X509_REQ_set_pubkey(req.get(), en.key.get()))
    return ossl::crypto_fail("cannot make the certificate request");
  if (!en.alt_names.empty()) {
    p = en.alt_names.data();
    ossl::Ext ext(d2i_X509_EXTENSION(nullptr, &p, static_cast<long>(en.alt_names.size())));
    STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
    const bool ok = ext && exts && sk_X509_EXTENSION_push(exts, ext.get()) &&
                    X509_REQ_add_extensions(req.get(), exts);
    sk_X509_EXTENSION_free(exts);  // the extension itself is ext's
    if (!ok) return ossl::crypto_fail("cannot make the certificate request");
  }
  const bool no_digest = EVP_PKEY_is_a(en.key.get(), "ED25519");
  if (!X509_REQ_sign(req.get(), en.key.get(), no_digest ? nullptr : EVP_sha256()))
    return ossl::crypto_fail("cannot sign the certificate request");
  return ossl::to_der<X509_REQ, i2d_X509_REQ>(req.get());
}

std::string pem_of(const std::vector<Bytes>& certs) {
  std::string out;
  for (const Bytes& der : certs) {
    auto cert = ossl::cert_from_der(der);
    if (!cert) continue;
    out += ossl::to_text([&](BIO* b) { PEM_write_bio_X509(b, cert->get()); });
  }
  return out;
}

// Seconds a server asks to wait (Retry-After, RFC 8555 7.5.1 and 7.4), within 1..10.
std::chrono::seconds retry_after(const Response& r) {
  const std::string v = r.header("retry-after");
  long s = 1;
  if (!v.empty() && std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; }))
    s = std::stol(v.substr(0, 6));
  return std::chrono::seconds(std::clamp<long>(s, 1, 10));
}

// --- challenges (RFC 8555 8) -------------------------------------------------------------

constexpr std::string_view kHttp01 = "http-01", kDns01 = "dns-01";

// A pending authorization and the challenge certvault answers for it.
struct Proof {
  std::string authz_url;
  std::string name;   // the identifier's value: for a wildcard, its base domain (RFC 8555 7.1.4)
  std::string shown;  // as ordered: "*.example.com" for a wildcard
  std::string type;   // kHttp01 or kDns01
  std::string token;
  std::string challenge_url;
};

// The identifier of `ordered` that the authorization `authz` is for, or nullptr. RFC 8555
// 7.1.4: a wildcard's authorization names its base domain; DNS names compare without case
// (RFC 4343), IP addresses by their bytes.
const Json::Value* ordered_identifier(const Json::Value& ordered, const Json::Value& authz) {
  const Json::Value& id = authz["identifier"];
  if (!id["value"].isString()) return nullptr;
  const bool wildcard = authz["wildcard"].isBool() && authz["wildcard"].asBool();
  const std::string value = (wildcard ? "*." : "") + id["value"].asString();
  for (const Json::Value& o : ordered) {
    if (o["type"] != id["type"]) continue;
    const std::string mine = o["value"].asString();
    if (o["type"] == "dns" && ::strcasecmp(mine.c_str(), value.c_str()) == 0) return &o;
    if (o["type"] == "ip") {
      const int family = mine.find(':') == std::string::npos ? AF_INET : AF_INET6;
      unsigned char a[16], b[16];
      if (inet_pton(family, mine.c_str(), a) == 1 && inet_pton(family, value.c_str(), b) == 1 &&
          std::memcmp(a, b, family == AF_INET ? 4 : 16) == 0)
        return &o;
    }
  }
  return nullptr;
}

// Which challenge certvault answers (docs/lifecycle.md, "Which challenge"): of those the
// server offers, dns-01 when the issuer has a hook, else http-01 when it has a responder;
// never dns-01 for an IP address (RFC 8738 7).
Result<Proof> choose_challenge(const OutsideIssuer& issuer, const Json::Value& authz,
                               const std::string& shown) {
  const bool ip = authz["identifier"]["type"] == "ip";
  auto offered = [&](std::string_view type) -> const Json::Value* {
    for (const Json::Value& c : authz["challenges"])
      if (c["type"] == std::string(type) && c["token"].isString() && c["url"].isString()) return &c;
    return nullptr;
  };
  for (std::string_view type : {kDns01, kHttp01}) {
    const bool ours =
        type == kDns01 ? !ip && !issuer.dns01_hook.empty() : !issuer.http01_listen.empty();
    if (const Json::Value* c = offered(type); c && ours)
      return Proof{{},
                   shown.starts_with("*.") ? shown.substr(2) : shown,
                   shown,
                   std::string(type),
                   (*c)["token"].asString(),
                   (*c)["url"].asString()};
  }
  std::string offers, add;
  for (const Json::Value& c : authz["challenges"])
    offers += (offers.empty() ? "" : ", ") + one_line(c["type"].asString());
  if (!ip && offered(kDns01)) add = "--dns01-hook COMMAND";
  if (offered(kHttp01))
    add += (add.empty() ? "" : " or ") + std::string("--http01-listen ADDR:PORT");
  return fail(Code::kInvalidInput,
              "issuer '" + issuer.name + "' has no way to prove '" + shown + "': the CA offers " +
                  (offers.empty() ? "no challenge" : offers) +
                  (ip ? " for this IP address (never dns-01, RFC 8738)" : " for it") +
                  (add.empty() ? ", and certvault answers only http-01 and dns-01; ask the CA"
                               : "; add the issuer again with " + add));
}

// RFC 8555 8.4: the TXT record's value, base64url(SHA-256(key authorization)).
Result<std::string> dns01_txt(const std::string& key_authorization) {
  unsigned char digest[32];
  unsigned int n = 0;
  if (!EVP_Digest(key_authorization.data(), key_authorization.size(), digest, &n, EVP_sha256(),
                  nullptr))
    return ossl::crypto_fail("cannot hash the dns-01 key authorization");
  return b64url(std::span(digest, n));
}

class Acme {
 public:
  Acme(Vault& vault, OutsideIssuer issuer, PrivateKey account_key, std::string jwk)
      : vault_(vault),
        issuer_(std::move(issuer)),
        key_(std::move(account_key)),
        jwk_(std::move(jwk)),
        http_(pem_of(issuer_.server_ca)) {}

  // The certificate chain (leaf first, DER) for `en`; `replaces`: the ARI id of the
  // certificate a renewal replaces ("" none).
  Result<std::vector<Bytes>> order(const Enrollment& en, const std::string& replaces) {
    CV_TRY(identifiers, identifiers_of(en));
    CV_CHECK(directory());
    CV_CHECK(account());
    Json::Value request(Json::objectValue);
    request["identifiers"] = identifiers;
    // RFC 9773 5: a CA that offers renewal information learns which certificate this
    // order replaces. One that says it was replaced already (an earlier order whose
    // certificate the vault refused) gets the order without it.
    if (!replaces.empty() && dir_["renewalInfo"].isString()) request["replaces"] = replaces;
    auto placed = post(dir_["newOrder"].asString(), &request);
    if (!placed && request.isMember("replaces") && placed.error().code == Code::kExists) {
      request.removeMember("replaces");
      placed = post(dir_["newOrder"].asString(), &request);
    }
    CV_TRY(created, std::move(placed));
    const std::string order_url = created.first.header("location");
    Json::Value order = created.second;
    if (order_url.empty() || !order["authorizations"].isArray() || !order["finalize"].isString())
      return fail(Code::kRefused, "the server's new order is not as RFC 8555 7.4 says");
    // Every pending authorization gets a challenge certvault can answer before any is
    // answered: nothing is half done for a name that cannot be proven.
    std::vector<Proof> proofs;
    for (const Json::Value& authz_url : order["authorizations"]) {
      CV_TRY(proof, challenge_for(authz_url.asString(), identifiers));
      if (proof) proofs.push_back(std::move(*proof));
    }
    std::unique_ptr<Http01Responder> responder;
    for (const Proof& proof : proofs) CV_CHECK(prove(proof, en, responder));
    responder.reset();  // no challenge is open any more
    CV_TRY(csr, csr_of(en));
    Json::Value finalize(Json::objectValue);
    finalize["csr"] = b64url(csr);
    CV_TRY(finalized, post(order["finalize"].asString(), &finalize));
    order = finalized.second;
    Response last = finalized.first;
    const auto until = Clock::now() + kPollLimit;
    while (order["status"] != "valid") {
      if (order["status"] == "invalid")
        return fail(Code::kRefused, "the order became invalid" + problem_text(order["error"]));
      if (Clock::now() >= until)
        return fail(Code::kRefused,
                    "the order was not ready within " + std::to_string(kPollLimit.count()) + " s");
      std::this_thread::sleep_for(retry_after(last));
      CV_TRY(polled, post(order_url, nullptr));
      last = polled.first;
      order = polled.second;
    }
    if (!order["certificate"].isString())
      return fail(Code::kRefused, "the valid order names no certificate");
    CV_TRY(download,
           post(order["certificate"].asString(), nullptr, "application/pem-certificate-chain"));
    return certificates_in(download.first.body, "the certificate the ACME server sent");
  }

 private:
  using Answer = std::pair<Response, Json::Value>;

  static std::string problem_text(const Json::Value& p) {
    if (!p.isObject()) return "";
    std::string out = ": " + p.get("detail", "").asString();
    if (p["type"].isString()) out += " (" + p["type"].asString() + ")";
    return one_line(out);
  }

  Result<void> directory() {
    CV_TRY(r, http_.fetch(issuer_.url, nullptr));
    auto v = parse_json(r.body);
    if (r.status != 200 || !v || !(*v)["newNonce"].isString() || !(*v)["newAccount"].isString() ||
        !(*v)["newOrder"].isString())
      return fail(Code::kRefused, "'" + issuer_.url + "' is not an ACME directory (HTTP " +
                                      std::to_string(r.status) + ")");
    dir_ = *v;
    return {};
  }

  Result<void> fresh_nonce() {
    CV_TRY(r, http_.fetch(dir_["newNonce"].asString(), nullptr, true));
    nonce_ = r.header("replay-nonce");
    if (nonce_.empty()) return fail(Code::kRefused, "the server gave no nonce (newNonce)");
    return {};
  }

  // RFC 8555 7.3: newAccount, agreeing to the terms; the account URL is its kid from then on.
  Result<void> account() {
    if (!issuer_.account.empty()) return {};
    Json::Value request(Json::objectValue);
    request["termsOfServiceAgreed"] = true;
    if (!issuer_.eab_kid.empty()) {
      CV_TRY(binding, external_binding());
      request["externalAccountBinding"] = binding;
    }
    CV_TRY(created, post(dir_["newAccount"].asString(), &request, nullptr, true));
    const std::string kid = created.first.header("location");
    if (kid.empty()) return fail(Code::kRefused, "the server's new account has no URL");
    CV_TRY(recorded, vault_.set_issuer_account(issuer_.name, kid));
    issuer_ = std::move(recorded);
    return {};
  }

  // RFC 8555 7.3.4: the account key (JWK) MACed (HS256) with the key the CA gave.
  Result<Json::Value> external_binding() {
    CV_TRY(secret, vault_.issuer_secret(issuer_.name));
    std::string b64(secret.view());
    for (char& c : b64) c = c == '-' ? '+' : c == '_' ? '/' : c;
    while (!b64.empty() && (b64.back() == '\n' || b64.back() == '\r' || b64.back() == ' '))
      b64.pop_back();
    while (b64.size() % 4) b64 += '=';
    auto mac_key = seal::from_base64(b64);
    OPENSSL_cleanse(b64.data(), b64.size());
    if (!mac_key || mac_key->empty())
      return fail(Code::kInvalidInput,
                  "the external account MAC key of issuer '" + issuer_.name + "' is not base64url");
    const std::string protected64 =
        b64url(R"({"alg":"HS256","kid":)" + compact(Json::Value(issuer_.eab_kid)) + R"(,"url":)" +
               compact(dir_["newAccount"]) + "}");
    const std::string payload64 = b64url(jwk_);
    const std::string input = protected64 + "." + payload64;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    const bool ok = HMAC(EVP_sha256(), mac_key->data(), static_cast<int>(mac_key->size()),
                         reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac,
                         &len) != nullptr;
    OPENSSL_cleanse(mac_key->data(), mac_key->size());
    if (!ok) return ossl::crypto_fail("cannot bind the ACME account");
    Json::Value jws(Json::objectValue);
    jws["protected"] = protected64;
    jws["payload"] = payload64;
    jws["signature"] = b64url(std::span(mac, len));
    return jws;
  }

  // RFC 8555 6.2, 6.3: a JWS POST (payload null: POST-as-GET), sent again with the fresh
  // nonce of a badNonce answer (6.5), up to kBadNonceRetries times.
  Result<Answer> post(const std::string& url, const Json::Value* payload,
                      const char* accept = nullptr, bool with_jwk = false) {
    for (int attempt = 0;; ++attempt) {
      if (nonce_.empty()) CV_CHECK(fresh_nonce());
      std::string header = R"({"alg":"ES256",)";
      header += with_jwk ? R"("jwk":)" + jwk_ : R"("kid":)" + compact(Json::Value(issuer_.account));
      header += R"(,"nonce":)" + compact(Json::Value(nonce_)) + R"(,"url":)" +
                compact(Json::Value(url)) + "}";
      nonce_.clear();
      const std::string protected64 = b64url(header);
      const std::string payload64 = payload ? b64url(compact(*payload)) : "";
      CV_TRY(signature, es256(key_.get(), protected64 + "." + payload64));
      Json::Value jws(Json::objectValue);
      jws["protected"] = protected64;
      jws["payload"] = payload64;
      jws["signature"] = signature;
      const std::string body = compact(jws);
      CV_TRY(r, http_.fetch(url, &body, false, accept));
      nonce_ = r.header("replay-nonce");
      const bool json_body = r.header("content-type").starts_with("application/") &&
                             r.header("content-type").find("json") != std::string::npos;
      Json::Value v = json_body ? parse_json(r.body).value_or(Json::Value()) : Json::Value();
      if (r.status >= 200 && r.status < 300) return Answer{std::move(r), std::move(v)};
      if (attempt < kBadNonceRetries && v["type"] == "urn:ietf:params:acme:error:badNonce")
        continue;
      // A rate limit's or an overloaded server's wait (RFC 8555 6.6), for the operator.
      // It is honoured: a renewal that failed so is not tried again before it.
      const auto wait = retry_after_at(r.header("retry-after"), renewal_now());
      // "Already done" answers (alreadyRevoked, alreadyReplaced) come back as kExists, by
      // their exact type, for the callers that take them as done.
      const bool already = v["type"] == "urn:ietf:params:acme:error:alreadyRevoked" ||
                           v["type"] == "urn:ietf:params:acme:error:alreadyReplaced";
      Error refused{already ? Code::kExists : Code::kRefused,
                    "HTTP " + std::to_string(r.status) + " from " + url +
                        (wait ? " (retry after " + format_time(*wait) + ")" : "") +
                        (v.isObject() ? problem_text(v) : ""),
                    wait.value_or(0)};
      return std::unexpected(std::move(refused));
    }
  }

  // RFC 8555 7.5: the authorization at `url` and the challenge certvault answers for it;
  // nullopt when the server already considers the name proven.
  Result<std::optional<Proof>> challenge_for(const std::string& url,
                                             const Json::Value& identifiers) {
    CV_TRY(got, post(url, nullptr));
    const Json::Value& authz = got.second;
    if (authz["status"] == "valid") return std::nullopt;
    // The names the hook and messages get are those ordered, never the server's text.
    const Json::Value* ordered = ordered_identifier(identifiers, authz);
    if (!ordered)
      return fail(Code::kRefused, "the server asks to prove '" +
                                      one_line(authz["identifier"]["value"].asString()) +
                                      "', which was not ordered");
    const std::string shown = (*ordered)["value"].asString();
    if (authz["status"] != "pending")
      return fail(Code::kRefused, "the authorization for '" + shown + "' is " +
                                      one_line(authz["status"].asString()));
    CV_TRY(proof, choose_challenge(issuer_, authz, shown));
    proof.authz_url = url;
    return proof;
  }

  // RFC 8555 8.3, 8.4: answer the challenge of `proof`, tell the server, wait for the
  // authorization; a dns-01 record is cleaned up afterwards whatever happened.
  Result<void> prove(const Proof& proof, const Enrollment& en,
                     std::unique_ptr<Http01Responder>& responder) {
    CV_TRY(print, thumbprint(jwk_));
    const std::string key_authorization = proof.token + "." + print;
    if (proof.type == kHttp01) {
      if (!responder) {
        responder = std::make_unique<Http01Responder>();
        CV_CHECK(responder->start(issuer_.http01_listen));
      }
      responder->answer(proof.token, key_authorization);
      return validate(proof);
    }
    // The hook is stored in the vault and runs with this process's rights: its owner's only.
    if (!may_run_hooks_of(vault_.owner_uid()))
      return fail(Code::kRefused, "the dns-01 hook of issuer '" + issuer_.name +
                                      "' runs only as the vault's owner (uid " +
                                      std::to_string(vault_.owner_uid()) + "); run as that user");
    CV_TRY(txt, dns01_txt(key_authorization));
    const std::string record = "_acme-challenge." + proof.name + ".";
    auto hook = [&](const char* action) {
      HookRun run{issuer_.dns01_hook,
                  {{"CERTVAULT_ACME_ACTION", action},
                   {"CERTVAULT_ACME_DOMAIN", proof.name},
                   {"CERTVAULT_ACME_RECORD", record},
                   {"CERTVAULT_ACME_TXT", txt},
                   {"CERTVAULT_ACME_ISSUER", issuer_.name},
                   {"CERTVAULT_NICKNAME", en.nickname}}};
      return run_hook(run);
    };
    const HookResult presented = hook("present");
    Result<void> done =
        presented.ok ? validate(proof)
                     : fail(Code::kRefused, "its dns-01 hook " + presented.what +
                                                " when asked to present the TXT record " + record +
                                                " (its output, if any, is above or in the "
                                                "agent's journal)");
    if (const HookResult cleaned = hook("cleanup"); !cleaned.ok)
      std::cerr << "certvault: the dns-01 hook of issuer '" << issuer_.name << "' " << cleaned.what
                << " when asked to clean up the TXT record " << record
                << "; remove it yourself if it is still there\n";
    return done;
  }

  // RFC 8555 7.5.1: the challenge is ready; poll its authorization until it is decided.
  Result<void> validate(const Proof& proof) {
    const Json::Value empty(Json::objectValue);
    CV_TRY(started, post(proof.challenge_url, &empty));
    Response last = started.first;
    const auto until = Clock::now() + kPollLimit;
    for (;;) {
      std::this_thread::sleep_for(retry_after(last));
      CV_TRY(polled, post(proof.authz_url, nullptr));
      last = polled.first;
      const Json::Value& authz = polled.second;
      if (authz["status"] == "valid") return {};
      if (authz["status"] != "pending" && authz["status"] != "processing") {
        std::string why;
        for (const Json::Value& c : authz["challenges"])
          if (c["type"] == proof.type) why = problem_text(c["error"]);
        return fail(Code::kRefused, "the server did not accept the " + proof.type + " proof for '" +
                                        proof.shown + "'" + why);
      }
      if (Clock::now() >= until)
        return fail(Code::kRefused, "the authorization for '" + proof.shown +
                                        "' was not done within " +
                                        std::to_string(kPollLimit.count()) + " s");
    }
  }

 public:
  // RFC 8555 7.6 revokeCert; defined after the class, apart from the order's code.
  Result<void> revoke(const Bytes& certificate, RevocationReason reason);

 private:
  Vault& vault_;
  OutsideIssuer issuer_;
  PrivateKey key_;
  std::string jwk_;
  Http http_;
  Json::Value dir_;
  std::string nonce_;
};

// jsoncpp throws when an answer has the wrong shape where an object was expected (a
// server's doing): a refusal in one line, never an exception out of the client (the
// agent's renewal thread calls it).
template <typename F>
auto guarded(const std::string& issuer, F body) -> decltype(body()) {
  try {
    return body();
  } catch (const std::exception& e) {
    return fail(Code::kRefused, "issuer '" + issuer +
                                    "' answered with a document not as RFC 8555 says (" +
                                    one_line(e.what()) + ")");
  }
}

Result<Entry> run(Vault& vault, const Enrollment& en) {
  auto issuer = vault.find_issuer(en.issuer);
  if (!issuer) return fail(Code::kNotFound, "issuer '" + en.issuer + "' was removed meanwhile");
  if (issuer->protocol != IssuerProtocol::kAcme)
    return fail(Code::kRefused, "issuer '" + en.issuer + "' does not speak ACME");
  CV_TRY(key, vault.issuer_account_key(issuer->name));
  CV_TRY(jwk, jwk_of(key.get()));
  // The certificate a renewal replaces, as RFC 9773 names it; none without an AKI.
  std::string replaces;
  if (en.renews)
    if (auto der = vault.certificate_der(en.nickname, en.renews))
      replaces = ari_cert_id(*der).value_or("");
  Acme acme(vault, *issuer, std::move(key), std::move(jwk));
  auto certs = guarded(issuer->name, [&] { return acme.order(en, replaces); });
  if (!certs && certs.error().code == Code::kInvalidInput) return std::unexpected(certs.error());
  if (!certs)
    return std::unexpected(Error{Code::kRefused,
                                 "issuer '" + issuer->name + "' (" + issuer->url + ") did not " +
                                     (en.renews ? "renew" : "issue") + " a certificate for '" +
                                     en.nickname + "': " + certs.error().message,
                                 certs.error().retry_after});
  return vault.finish_enrollment(en, *certs);
}

// --- revokeCert (RFC 8555 7.6) ------------------------------------------------------------

// Signed by the account key (kid): the account that ordered the certificate may revoke it.
// A certificate the server already revoked (alreadyRevoked) counts as revoked: an earlier
// try may have got there without the vault recording it.
Result<void> Acme::revoke(const Bytes& certificate, RevocationReason reason) {
  CV_CHECK(directory());
  if (!dir_["revokeCert"].isString())
    return fail(Code::kRefused, "the server's directory offers no revokeCert (RFC 8555 7.6)");
  if (issuer_.account.empty())
    return fail(Code::kRefused, "the vault has no account at this issuer to sign the request");
  Json::Value request(Json::objectValue);
  request["certificate"] = b64url(certificate);
  request["reason"] = static_cast<int>(reason);  // RFC 5280 5.3.1 CRLReason code
  auto done = post(dir_["revokeCert"].asString(), &request);
  if (!done && done.error().code == Code::kExists) return {};  // alreadyRevoked
  if (!done) return std::unexpected(done.error());
  return {};
}

}  // namespace

Result<void> acme_revoke(Vault& vault, const IssuerRevocation& revocation) {
  auto issuer = vault.find_issuer(revocation.issuer);
  if (!issuer || issuer->protocol != IssuerProtocol::kAcme)
    return fail(Code::kNotFound,
                "issuer '" + revocation.issuer + "' is no ACME issuer of " + "the vault any more");
  CV_TRY(key, vault.issuer_account_key(issuer->name));
  CV_TRY(jwk, jwk_of(key.get()));
  Acme acme(vault, *issuer, std::move(key), std::move(jwk));
  if (auto done = guarded(issuer->name,
                          [&] { return acme.revoke(revocation.certificate, revocation.reason); });
      !done)
    return fail(Code::kRefused, "issuer '" + issuer->name + "' (" + issuer->url +
                                    ") did not revoke generation " +
                                    std::to_string(revocation.generation) + " of '" +
                                    revocation.nickname + "': " + done.error().message);
  return {};
}

Result<Entry> acme_enroll(Vault& vault, const EnrollmentRequest& request) {
  CV_TRY(en, vault.begin_enrollment(request));
  return run(vault, en);
}

Result<Entry> acme_renew(Vault& vault, std::string_view nickname,
                         std::optional<uint32_t> if_current) {
  CV_TRY(en, vault.begin_renewal(nickname, if_current));
  return run(vault, en);
}

Result<AcmeGet> acme_get(const OutsideIssuer& issuer, const std::string& url) {
  CV_TRY(r, Http(pem_of(issuer.server_ca)).fetch(url, nullptr));
  return AcmeGet{r.status, std::move(r.body), r.header("retry-after")};
}

}  // namespace certvault::cli
