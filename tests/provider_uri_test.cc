// The provider's URI grammar
// (certvault:NICKNAME?vault=DIR&serial=HEX&pin-source=file:PATH&pin-value=PIN),
// parsed as the STORE and the URI-in-PEM decoder parse it.
#include <gtest/gtest.h>

#include "uri.h"

namespace certvault::provider {
namespace {

TEST(ProviderUri, DecodesNicknameAndQuery) {
  auto u = parse_uri(
      "certvault:billing%20batch?vault=/srv/v%201&serial=0x00c1:b6&pin-source=file:/etc/pin");
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(u->nickname, "billing batch");
  EXPECT_EQ(u->vault, "/srv/v 1");
  EXPECT_EQ(u->serial, "C1B6");
  EXPECT_EQ(u->pin_source, "file:/etc/pin");
  EXPECT_FALSE(u->pin_value);
}

TEST(ProviderUri, SchemeIsCaseInsensitiveAndNicknameMayBeEmpty) {
  auto u = parse_uri("CertVault:?vault=/srv/v");
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_TRUE(u->nickname.empty());
  EXPECT_EQ(u->vault, "/srv/v");
}

TEST(ProviderUri, RefusesWhatItDoesNotUnderstand) {
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

TEST(ProviderUri, DisplayNeverShowsTheQuery) {
  auto u = parse_uri("certvault:api%20prod?pin-value=secret-4711");
  ASSERT_TRUE(u) << u.error().message;
  ASSERT_TRUE(u->pin_value);
  EXPECT_EQ(u->pin_value->view(), "secret-4711");
  EXPECT_EQ(u->display(), "certvault:api%20prod");
  EXPECT_EQ(display_uri("billing batch/2"), "certvault:billing%20batch%2F2");
}

TEST(ProviderUri, PinValueIsPercentDecodedIntoGuardedMemory) {
  auto u = parse_uri("certvault:api?pin-value=p%26ss%3Dw%25rd&vault=/srv/v");
  ASSERT_TRUE(u) << u.error().message;
  ASSERT_TRUE(u->pin_value);
  EXPECT_EQ(u->pin_value->view(), "p&ss=w%rd");
  EXPECT_EQ(u->vault, "/srv/v");
}

TEST(ProviderUri, EmptyOrBadlyEncodedPinValueIsRefusedWithoutEchoingIt) {
  for (const char* bad : {"certvault:api?pin-value=", "certvault:api?pin-value=s3cr%zzet"}) {
    SCOPED_TRACE(bad);
    auto u = parse_uri(bad);
    ASSERT_FALSE(u);
    EXPECT_EQ(u.error().code, Code::kInvalidInput);
    EXPECT_NE(u.error().message.find("pin-value"), std::string::npos) << u.error().message;
    EXPECT_EQ(u.error().message.find("s3cr"), std::string::npos) << u.error().message;
  }
}

TEST(ProviderUri, UnknownAttributeMessageListsEveryAttribute) {
  auto u = parse_uri("certvault:api?pin=1234");
  ASSERT_FALSE(u);
  for (const char* name : {"vault", "serial", "pin-source", "pin-value"})
    EXPECT_NE(u.error().message.find(name), std::string::npos) << u.error().message;
  EXPECT_EQ(u.error().message.find("1234"), std::string::npos) << u.error().message;
}

TEST(ProviderUri, NormalisesSerials) {
  EXPECT_EQ(normalise_serial("00ab"), "AB");
  EXPECT_EQ(normalise_serial("0X0a:0B"), "A0B");
  EXPECT_EQ(normalise_serial("0"), "0");
  EXPECT_EQ(normalise_serial("g1"), "");
}

}  // namespace
}  // namespace certvault::provider
