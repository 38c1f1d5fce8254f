// The keystore's URI grammars: the provider's certvault: URI
// (certvault:NICKNAME?vault=DIR&serial=HEX&pin-source=file:PATH&pin-value=PIN), parsed as
// the STORE and the URI-in-PEM decoder parse it and printed as the CLI prints it, and the
// parts of a PKCS#11 URI (RFC 7512) that certvault reads.
#include "uri.h"

#include <gtest/gtest.h>

namespace certvault {
namespace {

TEST(Uri, DecodesNicknameAndQuery) {
  auto u = parse_uri(
      "certvault:billing%20batch?vault=/srv/v%201&serial=0x00c1:b6&pin-source=file:/etc/pin");
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(u->nickname, "billing batch");
  EXPECT_EQ(u->vault, "/srv/v 1");
  EXPECT_EQ(u->serial, "C1B6");
  EXPECT_EQ(u->pin_source, "file:/etc/pin");
  EXPECT_FALSE(u->pin_value);
}

TEST(Uri, SchemeIsCaseInsensitiveAndNicknameMayBeEmpty) {
  auto u = parse_uri("CertVault:?vault=/srv/v");
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_TRUE(u->nickname.empty());
  EXPECT_EQ(u->vault, "/srv/v");
}

TEST(Uri, RefusesWhatItDoesNotUnderstand) {
  for (const char* bad : {"pkcs11:object=a", "certvault:a%2", "certvault:a%zz", "certvault:a/b",
                          "certvault:a?colour=blue", "certvault:a?vault", "certvault:a?vault=",
                          "certvault:a?serial=xyz", "certvault:a?pin-source=env:PIN"}) {
    SCOPED_TRACE(bad);
    auto u = parse_uri(bad);
    ASSERT_FALSE(u);
    EXPECT_EQ(u.error().code, Code::kInvalidInput);
    EXPECT_FALSE(u.error().message.empty());
  }
}

TEST(Uri, DisplayNeverShowsTheQuery) {
  auto u = parse_uri("certvault:api%20prod?pin-value=secret-4711");
  ASSERT_TRUE(u) << u.error().message;
  ASSERT_TRUE(u->pin_value);
  EXPECT_EQ(u->pin_value->view(), "secret-4711");
  EXPECT_EQ(u->display(), "certvault:api%20prod");
  EXPECT_EQ(certvault_uri("billing batch/2"), "certvault:billing%20batch%2F2");
}

TEST(Uri, PinValueIsPercentDecodedIntoGuardedMemory) {
  auto u = parse_uri("certvault:api?pin-value=p%26ss%3Dw%25rd&vault=/srv/v");
  ASSERT_TRUE(u) << u.error().message;
  ASSERT_TRUE(u->pin_value);
  EXPECT_EQ(u->pin_value->view(), "p&ss=w%rd");
  EXPECT_EQ(u->vault, "/srv/v");
}

TEST(Uri, EmptyOrBadlyEncodedPinValueIsRefusedWithoutEchoingIt) {
  for (const char* bad : {"certvault:api?pin-value=", "certvault:api?pin-value=s3cr%zzet"}) {
    SCOPED_TRACE(bad);
    auto u = parse_uri(bad);
    ASSERT_FALSE(u);
    EXPECT_EQ(u.error().code, Code::kInvalidInput);
    EXPECT_NE(u.error().message.find("pin-value"), std::string::npos) << u.error().message;
    EXPECT_EQ(u.error().message.find("s3cr"), std::string::npos) << u.error().message;
  }
}

TEST(Uri, UnknownAttributeMessageListsEveryAttribute) {
  auto u = parse_uri("certvault:api?pin=1234");
  ASSERT_FALSE(u);
  for (const char* name : {"vault", "serial", "pin-source", "pin-value"})
    EXPECT_NE(u.error().message.find(name), std::string::npos) << u.error().message;
  EXPECT_EQ(u.error().message.find("1234"), std::string::npos) << u.error().message;
}

TEST(Uri, NormalisesSerials) {
  EXPECT_EQ(normalise_serial("00ab"), "AB");
  EXPECT_EQ(normalise_serial("0X0a:0B"), "A0B");
  EXPECT_EQ(normalise_serial("0"), "0");
  EXPECT_EQ(normalise_serial("g1"), "");
}

// --- formatters ------------------------------------------------------------------------

TEST(Uri, FormattedCertvaultUriParsesBackToTheSameNickname) {
  for (const char* nickname : {"api-prod", "billing batch 2", "a_b-c", "x"}) {
    SCOPED_TRACE(nickname);
    const std::string uri = certvault_uri(nickname) + vault_query("/srv/vaults/ops 1");
    auto u = parse_uri(uri);
    ASSERT_TRUE(u) << uri << ": " << u.error().message;
    EXPECT_EQ(u->nickname, nickname);
    EXPECT_EQ(u->vault, "/srv/vaults/ops 1");
  }
}

TEST(Uri, VaultQueryKeepsSlashesAndEncodesTheRest) {
  EXPECT_EQ(vault_query("/srv/v 1/a&b"), "?vault=/srv/v%201/a%26b");
  EXPECT_EQ(certvault_uri("api prod"), "certvault:api%20prod");
}

TEST(Uri, Pkcs11UriEncodesSpacesAndSeparators) {
  EXPECT_EQ(pkcs11_uri("ops", "api-prod"), "pkcs11:token=ops;object=api-prod");
  EXPECT_EQ(pkcs11_uri("ops;lab", "api prod"), "pkcs11:token=ops%3Blab;object=api%20prod");
}

TEST(Uri, PercentEncodingRoundTripsEveryByte) {
  std::string all;
  for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
  auto back = percent_decode(percent_encode(all), "test value");
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, all);
  auto secret = percent_decode_secret(percent_encode(all, "-_.~"), "test value");
  ASSERT_TRUE(secret) << secret.error().message;
  EXPECT_EQ(secret->view(), all);
}

TEST(Uri, BadEscapeIsOneLineThatNamesTheValue) {
  for (const char* bad : {"%", "a%2", "%g0", "%0g"}) {
    SCOPED_TRACE(bad);
    auto r = percent_decode(bad, "object of a PKCS#11 URI");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Code::kInvalidInput);
    EXPECT_EQ(r.error().message,
              "bad percent-encoding in the object of a PKCS#11 URI; write '%' as %25");
  }
}

// --- pkcs11: ---------------------------------------------------------------------------

TEST(Pkcs11Uri, ReadsTokenObjectIdTypeAndPinSource) {
  auto u = parse_pkcs11_uri(
      "pkcs11:token=ops%20lab;object=api%20prod;id=%01%ab%00;type=private;"
      "manufacturer=certvault?pin-source=file:/run/pin&module-name=certvault-pkcs11");
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(u->token, "ops lab");
  EXPECT_EQ(u->object, "api prod");
  EXPECT_EQ(u->id, (std::vector<uint8_t>{0x01, 0xab, 0x00}));
  EXPECT_EQ(u->type, "private");
  EXPECT_EQ(u->pin_source, "file:/run/pin");
  EXPECT_FALSE(u->pin_value);
}

// GnuTLS takes only the bare path, libp11 both; so does certvault.
TEST(Pkcs11Uri, PinSourceIsABarePathOrAFileUri) {
  for (const char* source : {"/run/pin", "file:/run/pin"}) {
    SCOPED_TRACE(source);
    auto u = parse_pkcs11_uri(std::string("pkcs11:object=a;type=private?pin-source=") + source);
    ASSERT_TRUE(u) << u.error().message;
    EXPECT_EQ(u->pin_source, source);
  }
}

TEST(Pkcs11Uri, FormattedUriParsesBack) {
  auto u = parse_pkcs11_uri(pkcs11_uri("ops; lab", "billing batch/2"));
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(u->token, "ops; lab");
  EXPECT_EQ(u->object, "billing batch/2");
  EXPECT_FALSE(u->id);
  EXPECT_FALSE(u->type);
}

TEST(Pkcs11Uri, PinValueIsDecodedIntoGuardedMemory) {
  auto u = parse_pkcs11_uri("PKCS11:object=a?pin-value=p%26ss%3Bw%25rd");
  ASSERT_TRUE(u) << u.error().message;
  ASSERT_TRUE(u->pin_value);
  EXPECT_EQ(u->pin_value->view(), "p&ss;w%rd");
}

TEST(Pkcs11Uri, RefusesWhatItCannotServeWithOneClearLine) {
  for (const char* bad :
       {"certvault:api", "pkcs11:object=a%2", "pkcs11:id=%zz", "pkcs11:object=a;object=b",
        "pkcs11:colour=blue", "pkcs11:type=secret", "pkcs11:object", "pkcs11:object=a?pin=1",
        "pkcs11:object=a?pin-source=relative/pin",
        "pkcs11:object=a?pin-value=", "pkcs11:object=a?pin-source=file:/p&pin-value=s3cret"}) {
    SCOPED_TRACE(bad);
    auto u = parse_pkcs11_uri(bad);
    ASSERT_FALSE(u);
    EXPECT_EQ(u.error().code, Code::kInvalidInput);
    EXPECT_FALSE(u.error().message.empty());
    EXPECT_EQ(u.error().message.find('\n'), std::string::npos) << u.error().message;
    EXPECT_EQ(u.error().message.find("s3cret"), std::string::npos) << u.error().message;
  }
}

TEST(Pkcs11Uri, BadEscapeNamesTheAttribute) {
  auto u = parse_pkcs11_uri("pkcs11:token=ops;object=api%2");
  ASSERT_FALSE(u);
  EXPECT_EQ(u.error().message,
            "bad percent-encoding in the object of a PKCS#11 URI; write '%' as %25");
}

}  // namespace
}  // namespace certvault
