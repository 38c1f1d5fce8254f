// ACME Renewal Information (RFC 9773) as certvault reads it, on recorded answers: the
// certificate identifier (the RFC's own example must come out exactly), the renewalInfo
// body, Retry-After, the moment chosen in a window, and the cache the agent keeps between
// passes. The fetch itself is tested against a loopback server in acme_test.
#include "acme_ari.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <set>
#include <string>
#include <vector>

#include "vault.h"

namespace cvtest {
namespace {

using certvault::Time;
using certvault::cli::AriCache;
using certvault::cli::RenewalInfo;
namespace cli = certvault::cli;

// RFC 9773 Appendix A: the example certificate of section 4.1 (AKI keyIdentifier
// 69:88:5B:...:C8:D4, serial 0x87654321).
constexpr const char* kRfcExampleCert = R"(-----BEGIN CERTIFICATE-----
MIIBQzCB66ADAgECAgUAh2VDITAKBggqhkjOPQQDAjAVMRMwEQYDVQQDEwpFeGFt
cGxlIENBMCIYDzAwMDEwMTAxMDAwMDAwWhgPMDAwMTAxMDEwMDAwMDBaMBYxFDAS
BgNVBAMTC2V4YW1wbGUuY29tMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEeBZu
7cbpAYNXZLbbh8rNIzuOoqOOtmxA1v7cRm//AwyMwWxyHz4zfwmBhcSrf47NUAFf
qzLQ2PPQxdTXREYEnKMjMCEwHwYDVR0jBBgwFoAUaYhba4dGQEHhs3uEe6CuLN4B
yNQwCgYIKoZIzj0EAwIDRwAwRAIge09+S5TZAlw5tgtiVvuERV6cT4mfutXIlwTb
+FYN/8oCIClDsqBklhB9KAelFiYt9+6FDj3z4KGVelYM5MdsO3pK
-----END CERTIFICATE-----
)";
constexpr const char* kRfcExampleId = "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE";

// RFC 9773 4.2: the example renewalInfo answer.
constexpr const char* kRfcExampleAnswer = R"({
  "suggestedWindow": {
    "start": "2025-01-02T04:00:00Z",
    "end": "2025-01-03T04:00:00Z"
  },
  "explanationURL": "https://acme.example.com/docs/ari"
})";

std::vector<uint8_t> der_of_pem(const char* pem) {
  BIO* bio = BIO_new_mem_buf(pem, -1);
  X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  std::vector<uint8_t> out;
  unsigned char* der = nullptr;
  const int n = x ? i2d_X509(x, &der) : 0;
  if (n > 0) out.assign(der, der + n);
  OPENSSL_free(der);
  X509_free(x);
  return out;
}

Time at(const char* rfc3339) {
  return cli::parse_rfc3339(rfc3339).value_or(-1);
}

TEST(AcmeAri, TheRfcExampleIdentifierComesOutExactly) {
  const std::vector<uint8_t> key_id{0x69, 0x88, 0x5B, 0x6B, 0x87, 0x46, 0x40, 0x41, 0xE1, 0xB3,
                                    0x7B, 0x84, 0x7B, 0xA0, 0xAE, 0x2C, 0xDE, 0x01, 0xC8, 0xD4};
  const std::vector<uint8_t> serial{0x00, 0x87, 0x65, 0x43, 0x21};
  EXPECT_EQ(cli::ari_cert_id(key_id, serial), kRfcExampleId);
}

TEST(AcmeAri, TheRfcExampleCertificateGivesTheRfcIdentifier) {
  const auto der = der_of_pem(kRfcExampleCert);
  ASSERT_FALSE(der.empty());
  auto id = cli::ari_cert_id(der);
  ASSERT_TRUE(id) << id.error().message;
  EXPECT_EQ(*id, kRfcExampleId);
}

TEST(AcmeAri, ACertificateWithoutAuthorityKeyIdentifierHasNoIdentifier) {
  // A self-signed certificate made without extensions.
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x = X509_new();
  ASSERT_TRUE(key && x);
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, key);
  ASSERT_TRUE(X509_sign(x, key, EVP_sha256()));
  unsigned char* der = nullptr;
  const int n = i2d_X509(x, &der);
  const std::vector<uint8_t> bytes(der, der + n);
  OPENSSL_free(der);
  X509_free(x);
  EVP_PKEY_free(key);
  auto id = cli::ari_cert_id(bytes);
  ASSERT_FALSE(id);
  EXPECT_NE(id.error().message.find("no authority key identifier"), std::string::npos)
      << id.error().message;
  EXPECT_FALSE(cli::ari_cert_id(std::vector<uint8_t>{0x30, 0x03, 0x02, 0x01, 0x01}));
}

TEST(AcmeAri, TheRfcExampleAnswerIsRead) {
  auto info = cli::parse_renewal_info(kRfcExampleAnswer, "https://ca.example/ri/x");
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(certvault::format_time(info->start), "2025-01-02T04:00:00Z");
  EXPECT_EQ(certvault::format_time(info->end), "2025-01-03T04:00:00Z");
  EXPECT_EQ(info->explanation_url, "https://acme.example.com/docs/ari");
  // explanationURL is optional.
  info = cli::parse_renewal_info(
      R"({"suggestedWindow": {"start": "2025-01-02T04:00:00Z", "end": "2025-01-03T04:00:00Z"}})",
      "u");
  ASSERT_TRUE(info);
  EXPECT_EQ(info->explanation_url, "");
}

TEST(AcmeAri, AWindowWhoseEndIsNotAfterItsStartIsRefusedInOneClearLine) {
  for (const char* end : {"2025-01-02T04:00:00Z", "2025-01-01T04:00:00Z"}) {
    const std::string body =
        std::string(R"({"suggestedWindow": {"start": "2025-01-02T04:00:00Z", "end": ")") + end +
        R"("}})";
    auto info = cli::parse_renewal_info(body, "https://ca.example/ri/x");
    ASSERT_FALSE(info) << end;
    const std::string& m = info.error().message;
    EXPECT_NE(m.find("https://ca.example/ri/x"), std::string::npos) << m;
    EXPECT_NE(m.find("is not after its start"), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
}

TEST(AcmeAri, AnAnswerWithoutAWindowIsRefused) {
  for (const char* body :
       {"", "not json", "[]", R"({"suggestedWindow": 1})",
        R"({"suggestedWindow": {"start": "2025-01-02T04:00:00Z"}})",
        R"({"suggestedWindow": {"start": "yesterday", "end": "2025-01-03T04:00:00Z"}})",
        R"({"suggestedWindow": {"start": 1735790400, "end": 1735876800}})"}) {
    auto info = cli::parse_renewal_info(body, "u");
    EXPECT_FALSE(info) << body;
  }
}

TEST(AcmeAri, AnExplanationUrlThatIsNotAPlainHttpUrlIsNotShown) {
  for (const char* url :
       {"javascript:alert(1)", "https://ca.example/\\u001b[31mred", "https://ca.example/a b"}) {
    const std::string body =
        std::string(
            R"({"suggestedWindow": {"start": "2025-01-02T04:00:00Z", "end": "2025-01-03T04:00:00Z"},)") +
        R"("explanationURL": ")" + url + R"("})";
    auto info = cli::parse_renewal_info(body, "u");
    ASSERT_TRUE(info) << body;
    EXPECT_EQ(info->explanation_url, "") << url;
  }
}

TEST(AcmeAri, Rfc3339TimesAreRead) {
  EXPECT_EQ(at("2025-01-02T04:00:00Z"), 1735790400);
  EXPECT_EQ(at("2025-01-02t04:00:00z"), 1735790400);
  EXPECT_EQ(at("2025-01-02T04:00:00.123456789Z"), 1735790400);
  EXPECT_EQ(at("2025-01-02T06:30:00+02:30"), 1735790400);
  EXPECT_EQ(at("2025-01-01T23:00:00-05:00"), 1735790400);
  for (const char* bad :
       {"2025-01-02", "2025-01-02T04:00:00", "2025-13-02T04:00:00Z", "2025-01-02T04:00:00.Z",
        "2025-01-02T04:00:00+2:00", "2025-01-02 04:00:00Z", "2025-01-02T04:00:00Zjunk"})
    EXPECT_FALSE(cli::parse_rfc3339(bad)) << bad;
}

TEST(AcmeAri, RetryAfterIsClampedToOneMinuteToOneDay) {
  const Time now = 1735790400;  // Thu, 02 Jan 2025 04:00:00 GMT
  EXPECT_EQ(cli::ari_retry_after("21600", now), 21600);
  EXPECT_EQ(cli::ari_retry_after("0", now), 60);
  EXPECT_EQ(cli::ari_retry_after("10", now), 60);
  EXPECT_EQ(cli::ari_retry_after("999999", now), 86400);
  EXPECT_EQ(cli::ari_retry_after("99999999999999999999", now), cli::kAriDefaultRecheck);
  // HTTP-date, in each of the forms RFC 9110 allows.
  EXPECT_EQ(cli::ari_retry_after("Thu, 02 Jan 2025 06:00:00 GMT", now), 7200);
  EXPECT_EQ(cli::ari_retry_after("Thursday, 02-Jan-25 06:00:00 GMT", now), 7200);
  EXPECT_EQ(cli::ari_retry_after("Thu Jan  2 06:00:00 2025", now), 7200);
  EXPECT_EQ(cli::ari_retry_after("Wed, 01 Jan 2025 06:00:00 GMT", now), 60);
  EXPECT_EQ(cli::ari_retry_after("Thu, 09 Jan 2025 06:00:00 GMT", now), 86400);
  // None, or unreadable: six hours.
  EXPECT_EQ(cli::ari_retry_after("", now), cli::kAriDefaultRecheck);
  EXPECT_EQ(cli::ari_retry_after("soon", now), cli::kAriDefaultRecheck);
  EXPECT_EQ(cli::ari_retry_after("-5", now), cli::kAriDefaultRecheck);
  // Unclamped, for a rate limit's message.
  EXPECT_EQ(cli::retry_after_at("3600", now), now + 3600);
  EXPECT_FALSE(cli::retry_after_at("", now));
}

TEST(AcmeAri, TheRenewalTimeIsInTheWindowAndTheSameOnEveryPass) {
  RenewalInfo w;
  w.start = at("2025-01-02T04:00:00Z");
  w.end = at("2025-01-03T04:00:00Z");
  std::set<Time> seen;
  for (int i = 0; i < 200; ++i) {
    const std::string id = "entry-" + std::to_string(i);
    const Time t = cli::ari_renewal_time(w, id, 1);
    EXPECT_GE(t, w.start);
    EXPECT_LT(t, w.end);
    EXPECT_EQ(cli::ari_renewal_time(w, id, 1), t) << "stable for an entry's generation";
    seen.insert(t);
  }
  // Spread over the window, not bunched at one end.
  EXPECT_GT(seen.size(), 190u);
  EXPECT_LT(*seen.begin(), w.start + 6 * 3600);
  EXPECT_GT(*seen.rbegin(), w.end - 6 * 3600);
  // A window that is already over chose a moment that has passed: renew now.
  RenewalInfo past;
  past.start = 1000;
  past.end = 1001;
  EXPECT_LE(cli::ari_renewal_time(past, "entry-1", 3), 1001);
}

TEST(AcmeAri, TheDirectoryTellsWhereRenewalInformationIs) {
  EXPECT_EQ(cli::renewal_info_url(R"({"newNonce": "https://ca/n", "newAccount": "https://ca/a",
      "newOrder": "https://ca/o", "renewalInfo": "https://ca.example/renewal-info"})"),
            "https://ca.example/renewal-info");
  // Pebble 2.4's directory: no renewalInfo.
  EXPECT_EQ(cli::renewal_info_url(R"({"newNonce": "https://ca/n", "newAccount": "https://ca/a",
      "newOrder": "https://ca/o", "revokeCert": "https://ca/r", "keyChange": "https://ca/k"})"),
            "");
  EXPECT_EQ(cli::renewal_info_url(R"({"renewalInfo": 5})"), "");
  EXPECT_EQ(cli::renewal_info_url("<html>"), "");
}

TEST(AcmeAri, TheCacheAsksAgainOnlyAfterRetryAfter) {
  AriCache cache;
  EXPECT_TRUE(cache.stale("a.b", 100)) << "never asked";
  RenewalInfo w;
  w.start = 500;
  w.end = 900;
  cache.answered("a.b", w, 100 + 3600);
  EXPECT_FALSE(cache.stale("a.b", 100));
  EXPECT_FALSE(cache.stale("a.b", 3699));
  EXPECT_TRUE(cache.stale("a.b", 3700));
  // A failed fetch keeps the CA's last word and waits again.
  cache.failed("a.b", 3700 + 3600);
  EXPECT_FALSE(cache.stale("a.b", 3700));
  ASSERT_TRUE(cache.find("a.b") && cache.find("a.b")->info);
  EXPECT_EQ(cache.find("a.b")->info->end, 900);
  cache.failed("c.d", 200);
  EXPECT_FALSE(cache.find("c.d")->info) << "no answer yet";
  // Replaced certificates are forgotten.
  cache.keep_only({"c.d"});
  EXPECT_FALSE(cache.find("a.b"));
  EXPECT_TRUE(cache.find("c.d"));
  // A directory is read again once its time has passed.
  cache.set_directory("https://ca/dir", {"https://ca/ri", 1000});
  ASSERT_TRUE(cache.directory("https://ca/dir", 999));
  EXPECT_EQ(cache.directory("https://ca/dir", 999)->renewal_info, "https://ca/ri");
  EXPECT_FALSE(cache.directory("https://ca/dir", 1000));
}

}  // namespace
}  // namespace cvtest
