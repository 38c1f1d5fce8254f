// The provider's URI grammar (certvault:NICKNAME?vault=DIR&serial=HEX&pin-source=file:PATH),
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
  EXPECT_EQ(u->pin_value, "secret-4711");
  EXPECT_EQ(u->display(), "certvault:api%20prod");
}

TEST(ProviderUri, NormalisesSerials) {
  EXPECT_EQ(normalise_serial("00ab"), "AB");
  EXPECT_EQ(normalise_serial("0X0a:0B"), "A0B");
  EXPECT_EQ(normalise_serial("0"), "0");
  EXPECT_EQ(normalise_serial("g1"), "");
}

}  // namespace
}  // namespace certvault::provider
