// A fixture for API-level tests: a fresh vault with cheap Argon2id, unlocked, with a
// vault CA valid for ten years.
#pragma once

#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "support.h"
#include "vault.h"

namespace cvtest {

inline certvault::SecureBytes pin() {
  return certvault::SecureBytes::from(kPin);
}

inline certvault::InitOptions cheap_init(std::string label = "ops") {
  certvault::InitOptions options;
  options.label = std::move(label);
  options.kdf = certvault::KdfParams{kKdfOps, kKdfMemBytes};
  return options;
}

inline std::string code_name(certvault::Code c) {
  using certvault::Code;
  switch (c) {
    case Code::kInvalidInput:
      return "kInvalidInput";
    case Code::kNotFound:
      return "kNotFound";
    case Code::kExists:
      return "kExists";
    case Code::kRefused:
      return "kRefused";
    case Code::kWrongPin:
      return "kWrongPin";
    case Code::kPinLocked:
      return "kPinLocked";
    case Code::kLocked:
      return "kLocked";
    case Code::kTampered:
      return "kTampered";
    case Code::kBadPermissions:
      return "kBadPermissions";
    case Code::kIo:
      return "kIo";
    case Code::kCrypto:
      return "kCrypto";
  }
  return "?";
}

// "ok" or "<code>: <message>", for assertion messages.
template <typename T>
std::string why(const certvault::Result<T>& r) {
  if (r) return "ok";
  return code_name(r.error().code) + ": " + r.error().message;
}

inline constexpr certvault::Time kDay = 86400;

class VaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = tmp_ / "vault";
    auto made = certvault::Vault::init(dir_, pin(), cheap_init());
    ASSERT_TRUE(made) << why(made);
    vault_.emplace(std::move(made->first));
    recovery_ = std::move(made->second);
    ASSERT_FALSE(recovery_.empty());
    certvault::CaRequest ca;
    ca.not_after = certvault::now() + 3650 * kDay;
    auto made_ca = vault_->create_ca(ca);
    ASSERT_TRUE(made_ca) << why(made_ca);
  }

  certvault::Vault& vault() { return *vault_; }

  // Issues an entry from the vault CA; fails the test when refused.
  certvault::Entry issue(const std::string& nickname, int days = 200,
                         std::optional<certvault::KeyType> key_type = {},
                         std::optional<certvault::Hash> hash = {}, bool self_signed = false) {
    certvault::IssueRequest req;
    req.nickname = nickname;
    req.not_after = end_of_day_utc(date_in_days(days));
    req.key_type = key_type;
    req.hash = hash;
    req.self_signed = self_signed;
    auto made = vault_->create(req);
    EXPECT_TRUE(made) << nickname << ": " << why(made);
    return made ? *made : certvault::Entry{};
  }

  TempDir tmp_;
  fs::path dir_;
  std::optional<certvault::Vault> vault_;
  certvault::SecureBytes recovery_;
};

}  // namespace cvtest
