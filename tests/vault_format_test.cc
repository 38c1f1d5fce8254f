// Vault format version 2 (docs/vault-format.md): reading version 1, upgrading on the first
// write, refusing newer versions, per-entry attribute lines; and the access rules they
// carry (keystore/access.h).
#include <gtest/gtest.h>
#include <json/json.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <sodium.h>
#include <unistd.h>

#include <algorithm>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "access.h"
#include "renewal.h"
#include "support.h"
#include "test_vault.h"
#include "vault.h"

namespace cvtest {
namespace {

using certvault::AccessRule;
using certvault::Code;
using certvault::Entry;
using certvault::Peer;
using certvault::PeerKind;
using certvault::SecureBytes;
using certvault::Vault;

// tests/data/vault-format-1: made by certvault before format 2 (see its .md).
const fs::path kV1Fixture = fs::path(CERTVAULT_TEST_DATA) / "vault-format-1";
constexpr std::string_view kV1Pin = "v1-fixture-pin";

// tests/data/vault-format-2: made by certvault before format 3 (see its .md).
const fs::path kV2Fixture = fs::path(CERTVAULT_TEST_DATA) / "vault-format-2";
constexpr std::string_view kV2Pin = "v2-fixture-pin";

// tests/data/vault-format-3: made by certvault before format 4 (see its .md).
const fs::path kV3Fixture = fs::path(CERTVAULT_TEST_DATA) / "vault-format-3";
constexpr std::string_view kV3Pin = "v3-fixture-pin";

// tests/data/vault-format-4: made by certvault before format 5 (see its .md).
const fs::path kV4Fixture = fs::path(CERTVAULT_TEST_DATA) / "vault-format-4";
constexpr std::string_view kV4Pin = "v4-fixture-pin";

// tests/data/vault-format-5: made by certvault before format 6 (see its .md).
const fs::path kV5Fixture = fs::path(CERTVAULT_TEST_DATA) / "vault-format-5";
constexpr std::string_view kV5Pin = "v5-fixture-pin";

// A private copy of a fixture, with the modes git does not keep.
fs::path copy_fixture(const TempDir& tmp, const fs::path& fixture) {
  fs::path dir = tmp / fixture.filename().string();
  fs::copy(fixture, dir, fs::copy_options::recursive);
  fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace);
  fs::permissions(dir / "objects", fs::perms::owner_all, fs::perm_options::replace);
  for (const auto& f : fs::recursive_directory_iterator(dir))
    if (f.is_regular_file())
      fs::permissions(f.path(), fs::perms::owner_read | fs::perms::owner_write,
                      fs::perm_options::replace);
  return dir;
}

fs::path copy_v1_fixture(const TempDir& tmp) {
  return copy_fixture(tmp, kV1Fixture);
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    out.push_back(text.substr(pos, eol - pos));
    pos = eol + 1;
  }
  return out;
}

std::vector<std::string> lines_starting(const std::string& text, std::string_view prefix) {
  std::vector<std::string> out;
  for (auto& l : lines_of(text))
    if (l.starts_with(prefix)) out.push_back(l);
  return out;
}

std::vector<uint8_t> from_b64(const std::string& s) {
  std::vector<uint8_t> out(s.size());
  size_t len = 0;
  if (sodium_base642bin(out.data(), out.size(), s.data(), s.size(), nullptr, &len, nullptr,
                        sodium_base64_VARIANT_ORIGINAL) != 0)
    ADD_FAILURE() << "bad base64 in the header";
  out.resize(len);
  return out;
}

// Replaces the MAC line of `manifest_text` with one computed as docs/vault-format.md says,
// straight from libsodium: Argon2id(PIN) opens pin_wrap, the MAC key is subkey 2 of the
// vault key, the MAC is keyed BLAKE2b-256 over every byte before the MAC line (up to format
// 5) or over their unkeyed BLAKE2b-256 (format 6).
enum class MacOver { kAsTheFormatSays, kTheBytes, kTheHash };
std::string with_mac(std::string text, std::string_view pin,
                     MacOver over = MacOver::kAsTheFormatSays) {
  text.erase(text.rfind("mac "));
  auto lines = lines_of(text);
  Json::Value h;
  Json::CharReaderBuilder rb;
  std::istringstream header(lines.at(1));
  std::string errs;
  EXPECT_TRUE(Json::parseFromStream(rb, header, &h, &errs)) << errs;
  auto salt = from_b64(h["kdf"]["salt"].asString());
  auto wrap = from_b64(h["pin_wrap"].asString());
  unsigned char pin_key[32], vault_key[32], mac_key[32], tag[32];
  EXPECT_EQ(
      crypto_pwhash(pin_key, 32, pin.data(), pin.size(), salt.data(), h["kdf"]["ops"].asUInt64(),
                    h["kdf"]["mem"].asUInt64(), crypto_pwhash_ALG_ARGON2ID13),
      0);
  std::string ad = "certvault/vault-key/v1";
  ad += '\0';
  ad += h["vault_id"].asString();
  ad += '\0';
  ad += "pin";
  const size_t nonce = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
  unsigned long long key_len = 0;
  EXPECT_EQ(crypto_aead_xchacha20poly1305_ietf_decrypt(
                vault_key, &key_len, nullptr, wrap.data() + nonce, wrap.size() - nonce,
                reinterpret_cast<const unsigned char*>(ad.data()), ad.size(), wrap.data(), pin_key),
            0);
  crypto_kdf_derive_from_key(mac_key, 32, 2, "cvault01", vault_key);
  // The version on the first line, "certvault-vault N" (0 when it is not one).
  const int format = text.starts_with("certvault-vault ") ? std::atoi(text.c_str() + 16) : 0;
  std::span<const unsigned char> covered(reinterpret_cast<const unsigned char*>(text.data()),
                                         text.size());
  unsigned char hash[32];
  if (over == MacOver::kTheHash || (over == MacOver::kAsTheFormatSays && format >= 6)) {
    crypto_generichash(hash, 32, covered.data(), covered.size(), nullptr, 0);
    covered = hash;
  }
  crypto_generichash(tag, 32, covered.data(), covered.size(), mac_key, 32);
  return text + "mac " + to_hex(std::string_view(reinterpret_cast<char*>(tag), 32)) + "\n";
}

bool signs_and_verifies(Vault& v, const std::string& nickname) {
  auto key = v.private_key(nickname);
  auto cert_der = v.certificate_der(nickname);
  if (!key || !cert_der) return false;
  X509Ptr cert = x509_from_der(*cert_der);
  const unsigned char msg[] = "certvault signs this";
  std::vector<unsigned char> sig(256);
  size_t sig_len = sig.size();
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key->get()) == 1 &&
            EVP_DigestSign(ctx, sig.data(), &sig_len, msg, sizeof msg) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok) return false;
  ctx = EVP_MD_CTX_new();
  ok = EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, X509_get0_pubkey(cert.get())) ==
           1 &&
       EVP_DigestVerify(ctx, sig.data(), sig_len, msg, sizeof msg) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

AccessRule allow(PeerKind k, std::string v) {
  return {true, k, std::move(v)};
}
AccessRule deny(PeerKind k, std::string v) {
  return {false, k, std::move(v)};
}

// --- version 1 ---------------------------------------------------------------------------

TEST(VaultFormat, Version1VaultOpensAndUnlocks) {
  TempDir tmp;
  fs::path dir = copy_v1_fixture(tmp);
  const std::string before = read_file(dir / "manifest");
  ASSERT_TRUE(before.starts_with("certvault-vault 1\n"));
  auto v = Vault::open(dir);
  ASSERT_TRUE(v) << why(v);
  auto entries = v->entries();
  ASSERT_EQ(entries.size(), 2u);
  auto client = v->find("client");
  ASSERT_TRUE(client);
  ASSERT_EQ(client->generations.size(), 2u);
  EXPECT_EQ(client->current()->number, 2u);
  EXPECT_TRUE(client->access.empty());
  EXPECT_FALSE(client->listed_publicly);
  ASSERT_TRUE(v->unlock(SecureBytes::from(kV1Pin))) << "the fixture's PIN opens it";
  EXPECT_TRUE(signs_and_verifies(*v, "client"));
  EXPECT_TRUE(signs_and_verifies(*v, "other"));
  // Reading, unlocking and signing write nothing: the vault stays version 1.
  EXPECT_EQ(read_file(dir / "manifest"), before);
}

TEST(VaultFormat, FirstWriteToVersion1UpgradesToTheCurrentVersion) {
  TempDir tmp;
  fs::path dir = copy_v1_fixture(tmp);
  const std::string v1 = read_file(dir / "manifest");
  {
    auto v = Vault::open(dir);
    ASSERT_TRUE(v) << why(v);
    ASSERT_TRUE(v->unlock(SecureBytes::from(kV1Pin)));
    auto disabled = v->disable("other");  // a write that touches no attribute
    ASSERT_TRUE(disabled) << why(disabled);
  }
  const std::string v2 = read_file(dir / "manifest");
  EXPECT_TRUE(v2.starts_with("certvault-vault 6\n"));
  // The untouched entry's lines are carried over byte for byte.
  auto client_lines = [](const std::string& t) {
    auto all = lines_starting(t, "g\t");
    std::erase_if(all, [](const auto& l) { return l.find("\tclient\t") == std::string::npos; });
    return all;
  };
  EXPECT_EQ(client_lines(v2), client_lines(v1));
  EXPECT_EQ(client_lines(v2).size(), 2u);
  auto again = Vault::open(dir);
  ASSERT_TRUE(again) << why(again);
  auto unlocked = again->unlock(SecureBytes::from(kV1Pin));
  ASSERT_TRUE(unlocked) << why(unlocked);
  EXPECT_EQ(again->find("other")->generations.back().status, certvault::Status::kDisabled);
  EXPECT_TRUE(signs_and_verifies(*again, "client"));
}

TEST(VaultFormat, AttributeLineInVersion1ManifestIsDamage) {
  TempDir tmp;
  fs::path dir = copy_v1_fixture(tmp);
  std::string text = read_file(dir / "manifest");
  auto g = lines_starting(text, "g\t").back();
  std::string id = g.substr(2, 32);
  text.insert(text.find(g) + g.size() + 1, "a\t" + id + "\t{\"public\":true}\n");
  overwrite_in_place(dir / "manifest", with_mac(text, kV1Pin));
  auto v = Vault::open(dir);
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code, Code::kTampered) << why(v);
}

// --- version 2 ---------------------------------------------------------------------------

TEST(VaultFormat, Version2VaultOpensUnlocksAndKeepsItsAttributes) {
  TempDir tmp;
  fs::path dir = copy_fixture(tmp, kV2Fixture);
  const std::string before = read_file(dir / "manifest");
  ASSERT_TRUE(before.starts_with("certvault-vault 2\n"));
  auto v = Vault::open(dir);
  ASSERT_TRUE(v) << why(v);
  EXPECT_EQ(v->find("client")->access, std::vector<AccessRule>{allow(PeerKind::kUid, "1234")});
  EXPECT_TRUE(v->find("other")->listed_publicly);
  EXPECT_FALSE(v->find("client")->renew_rule) << "follows the policy, which has no rule";
  EXPECT_EQ(v->policy().renew.kind, certvault::RenewRule::Kind::kOff);
  EXPECT_FALSE(v->policy().max_lifetime);
  ASSERT_TRUE(v->policy().max_end_date);
  ASSERT_TRUE(v->unlock(SecureBytes::from(kV2Pin))) << "the fixture's PIN opens it";
  EXPECT_TRUE(signs_and_verifies(*v, "client"));
  EXPECT_TRUE(signs_and_verifies(*v, "other"));
  EXPECT_EQ(read_file(dir / "manifest"), before) << "reading and signing write nothing";
}

TEST(VaultFormat, FirstWriteToVersion2UpgradesAndKeepsEverything) {
  TempDir tmp;
  fs::path dir = copy_fixture(tmp, kV2Fixture);
  const std::string v2 = read_file(dir / "manifest");
  {
    auto v = Vault::open(dir);
    ASSERT_TRUE(v) << why(v);
    ASSERT_TRUE(v->unlock(SecureBytes::from(kV2Pin)));
    auto ruled = v->update_renewal("client", [](Vault::RenewalSettings& s) {
      s.rule = certvault::parse_renew_before("30d").value();
    });
    ASSERT_TRUE(ruled) << why(ruled);
  }
  const std::string v3 = read_file(dir / "manifest");
  EXPECT_TRUE(v3.starts_with("certvault-vault 6\n"));
  // The untouched entry's lines are carried over byte for byte.
  auto other_lines = [](const std::string& t) {
    auto all = lines_of(t);
    std::erase_if(all, [](const auto& l) {
      return l.find("32e0fd89f2f2d39096b16a8527e66dab") == std::string::npos;
    });
    return all;
  };
  EXPECT_EQ(other_lines(v3), other_lines(v2));
  EXPECT_EQ(other_lines(v3).size(), 2u);
  auto again = Vault::open(dir);
  ASSERT_TRUE(again) << why(again);
  ASSERT_TRUE(again->unlock(SecureBytes::from(kV2Pin)));
  EXPECT_EQ(again->find("client")->access, std::vector<AccessRule>{allow(PeerKind::kUid, "1234")});
  ASSERT_TRUE(again->find("client")->renew_rule);
  EXPECT_EQ(again->find("client")->renew_rule->before, 30 * 86400);
  EXPECT_EQ(again->policy().max_end_date, certvault::parse_date("2099-01-31").value());
  EXPECT_TRUE(signs_and_verifies(*again, "client"));
}

// Everything format 3 added, read back from a vault a format-3 certvault wrote.
void expect_v3_fixture(Vault& v) {
  const auto client = v.find("client");
  ASSERT_TRUE(client && client->current());
  EXPECT_EQ(client->current()->number, 2u);
  EXPECT_EQ(client->access, std::vector<AccessRule>{allow(PeerKind::kUid, "1234")});
  ASSERT_TRUE(client->renew_rule);
  EXPECT_EQ(client->renew_rule->kind, certvault::RenewRule::Kind::kAt);
  EXPECT_EQ(client->renew_hook, "systemctl reload nginx");
  ASSERT_TRUE(client->publish);
  EXPECT_EQ(client->publish->cert, "/tmp/client.pem");
  EXPECT_EQ(client->publish->mode, 0640u);
  EXPECT_TRUE(v.find("other")->listed_publicly);
  const auto retired = v.find("retired");
  ASSERT_TRUE(retired);
  ASSERT_EQ(retired->revoked.size(), 1u);
  EXPECT_EQ(retired->revoked[0].reason, certvault::RevocationReason::kSuperseded);
  EXPECT_EQ(v.policy().renew.before, 30 * 86400);
  EXPECT_EQ(v.policy().max_lifetime, 3650 * 86400);
  EXPECT_EQ(v.policy().max_end_date, certvault::parse_date("2099-01-31").value());
  const auto issuers = v.issuers();
  ASSERT_EQ(issuers.size(), 2u);
  EXPECT_EQ(v.find_issuer("corp")->reference, "ref-1");
  EXPECT_TRUE(v.find_issuer("corp")->has_secret);
  EXPECT_EQ(v.find_issuer("acme1")->http01_listen, "127.0.0.1:5002");
}

TEST(VaultFormat, Version3VaultOpensUnlocksAndKeepsEverything) {
  TempDir tmp;
  fs::path dir = copy_fixture(tmp, kV3Fixture);
  const std::string before = read_file(dir / "manifest");
  ASSERT_TRUE(before.starts_with("certvault-vault 3\n"));
  auto v = Vault::open(dir);
  ASSERT_TRUE(v) << why(v);
  expect_v3_fixture(*v);
  ASSERT_TRUE(v->unlock(SecureBytes::from(kV3Pin))) << "the fixture's PIN opens it";
  auto secret = v->issuer_secret("corp");
  ASSERT_TRUE(secret) << why(secret);
  EXPECT_EQ(secret->view(), "fixture-cmp-secret");
  EXPECT_TRUE(v->issuer_account_key("acme1"));
  EXPECT_TRUE(signs_and_verifies(*v, "client"));
  EXPECT_TRUE(signs_and_verifies(*v, "other"));
  EXPECT_EQ(read_file(dir / "manifest"), before) << "reading and signing write nothing";
}

TEST(VaultFormat, FirstWriteToVersion3UpgradesAndKeepsEverything) {
  TempDir tmp;
  fs::path dir = copy_fixture(tmp, kV3Fixture);
  {
    auto v = Vault::open(dir);
    ASSERT_TRUE(v) << why(v);
    ASSERT_TRUE(v->unlock(SecureBytes::from(kV3Pin)));
    ASSERT_TRUE(v->record_renewal_failure("other", "rate limited", certvault::now() + 3600));
  }
  EXPECT_TRUE(read_file(dir / "manifest").starts_with("certvault-vault 6\n"));
  auto again = Vault::open(dir);
  ASSERT_TRUE(again) << why(again);
  expect_v3_fixture(*again);
  EXPECT_GT(again->find("other")->renewal.not_before, 0);
  ASSERT_TRUE(again->unlock(SecureBytes::from(kV3Pin)));
  EXPECT_EQ(again->issuer_secret("corp")->view(), "fixture-cmp-secret");
  EXPECT_TRUE(signs_and_verifies(*again, "client"));
}

// --- version 4 ---------------------------------------------------------------------------

// What the format-4 fixture holds, format 4's own members (the dns-01 hook) included; the
// format-5 fixture holds the same and data objects.
void expect_v4_contents(Vault& v) {
  const auto client = v.find("client");
  ASSERT_TRUE(client && client->current());
  EXPECT_EQ(client->current()->number, 2u);
  EXPECT_EQ(client->access, std::vector<AccessRule>{allow(PeerKind::kUid, "1234")});
  ASSERT_TRUE(client->renew_rule);
  EXPECT_EQ(client->renew_rule->kind, certvault::RenewRule::Kind::kAt);
  EXPECT_EQ(client->renew_hook, "systemctl reload nginx");
  ASSERT_TRUE(client->publish);
  EXPECT_EQ(client->publish->fullchain, "/tmp/client-full.pem");
  EXPECT_EQ(client->publish->mode, 0640u);
  EXPECT_TRUE(v.find("other")->listed_publicly);
  const auto retired = v.find("retired");
  ASSERT_TRUE(retired);
  ASSERT_EQ(retired->revoked.size(), 1u);
  EXPECT_EQ(retired->revoked[0].reason, certvault::RevocationReason::kSuperseded);
  ASSERT_TRUE(v.crl_state());
  EXPECT_EQ(v.crl_state()->number, 1u);
  EXPECT_EQ(v.policy().renew.before, 30 * 86400);
  EXPECT_EQ(v.policy().max_lifetime, 3650 * 86400);
  EXPECT_EQ(v.policy().max_end_date, certvault::parse_date("2099-01-31").value());
  ASSERT_EQ(v.issuers().size(), 2u);
  EXPECT_EQ(v.find_issuer("corp")->reference, "ref-1");
  EXPECT_EQ(v.find_issuer("acme1")->http01_listen, "127.0.0.1:5002");
  EXPECT_EQ(v.find_issuer("acme1")->dns01_hook, "/usr/local/bin/dns-hook --zone example.com");
}

void expect_v4_fixture(Vault& v) {
  expect_v4_contents(v);
  EXPECT_TRUE(v.data_objects().empty());
}

TEST(VaultFormat, Version4VaultOpensUnlocksAndKeepsEverything) {
  TempDir tmp;
  fs::path dir = copy_fixture(tmp, kV4Fixture);
  const std::string before = read_file(dir / "manifest");
  ASSERT_TRUE(before.starts_with("certvault-vault 4\n"));
  auto v = Vault::open(dir);
  ASSERT_TRUE(v) << why(v);
  expect_v4_fixture(*v);
  ASSERT_TRUE(v->unlock(SecureBytes::from(kV4Pin))) << "the fixture's PIN opens it";
  expect_v4_fixture(*v);
  EXPECT_EQ(v->issuer_secret("corp")->view(), "fixture-cmp-secret");
  EXPECT_TRUE(v->issuer_account_key("acme1"));
  EXPECT_TRUE(signs_and_verifies(*v, "client"));
  EXPECT_TRUE(signs_and_verifies(*v, "other"));
  EXPECT_EQ(read_file(dir / "manifest"), before) << "reading and signing write nothing";
}

TEST(VaultFormat, FirstWriteToVersion4UpgradesAndKeepsEverything) {
  TempDir tmp;
  fs::path dir = copy_fixture(tmp, kV4Fixture);
  const std::string v4 = read_file(dir / "manifest");
  std::string id;
  {
    auto v = Vault::open(dir);
    ASSERT_TRUE(v) << why(v);
    ASSERT_TRUE(v->unlock(SecureBytes::from(kV4Pin)));
    certvault::DataObjectRequest r;
    r.label = "first data object";
    r.value = SecureBytes::from("kept sealed");
    auto made = v->create_data_object(r);
    ASSERT_TRUE(made) << why(made);
    id = made->id;
  }
  const std::string v5 = read_file(dir / "manifest");
  EXPECT_TRUE(v5.starts_with("certvault-vault 6\n"));
  // Every entry's lines are carried over byte for byte; the data object's line follows them.
  auto entry_lines = [](const std::string& t) {
    auto all = lines_of(t);
    std::erase_if(all,
                  [](const auto& l) { return !l.starts_with("g\t") && !l.starts_with("a\t"); });
    return all;
  };
  EXPECT_EQ(entry_lines(v5), entry_lines(v4));
  EXPECT_EQ(lines_starting(v5, "d\t").size(), 1u);
  auto again = Vault::open(dir);
  ASSERT_TRUE(again) << why(again);
  expect_v4_fixture(*again);
  ASSERT_TRUE(again->unlock(SecureBytes::from(kV4Pin)));
  EXPECT_EQ(again->issuer_secret("corp")->view(), "fixture-cmp-secret");
  EXPECT_TRUE(signs_and_verifies(*again, "client"));
  ASSERT_EQ(again->data_objects().size(), 1u);
  EXPECT_EQ(again->data_object_value(id)->view(), "kept sealed");
}

TEST(VaultFormat, DataObjectLineInVersion4ManifestIsDamage) {
  TempDir tmp;
  fs::path dir = copy_fixture(tmp, kV4Fixture);
  std::string text = read_file(dir / "manifest");
  text.insert(text.rfind("mac "), "d\t" + std::string(32, 'a') + "\t{\"object\":\"" +
                                      std::string(64, 'b') + "\",\"private\":false,\"size\":0}\n");
  overwrite_in_place(dir / "manifest", with_mac(text, kV4Pin));
  auto v = Vault::open(dir);
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code, Code::kTampered) << why(v);
  EXPECT_NE(v.error().message.find("data object line in a version-4 manifest"), std::string::npos)
      << why(v);
}

// --- version 5 ---------------------------------------------------------------------------

// What the format-5 fixture holds: the format-4 fixture's contents and two data objects.
void expect_v5_fixture(Vault& v) {
  expect_v4_contents(v);
  const auto data = v.data_objects();
  auto labelled = [&](std::string_view label) {
    auto it = std::ranges::find(data, label, &certvault::DataObject::label);
    return it == data.end() ? std::optional<certvault::DataObject>() : *it;
  };
  auto note = labelled("public note");
  ASSERT_TRUE(note);
  EXPECT_EQ(note->application, "fixture");
  EXPECT_FALSE(note->is_private);
  EXPECT_EQ(v.data_object_value(note->id)->view(), "public note");
  if (!v.unlocked()) return;  // a private data object is listed only once unlocked
  auto secret = labelled("private note");
  ASSERT_TRUE(secret);
  EXPECT_EQ(v.data_object_value(secret->id)->view(), "kept sealed");
}

TEST(VaultFormat, Version5VaultOpensUnlocksAndKeepsEverything) {
  TempDir tmp;
  fs::path dir = copy_fixture(tmp, kV5Fixture);
  const std::string before = read_file(dir / "manifest");
  ASSERT_TRUE(before.starts_with("certvault-vault 5\n"));
  for (auto threads : {Vault::Threads::kOne, Vault::Threads::kTwo}) {
    auto v = Vault::open(dir);
    ASSERT_TRUE(v) << why(v);
    expect_v5_fixture(*v);
    ASSERT_TRUE(v->unlock(SecureBytes::from(kV5Pin), threads)) << "the fixture's PIN opens it";
    expect_v5_fixture(*v);
    EXPECT_EQ(v->issuer_secret("corp")->view(), "fixture-cmp-secret");
    EXPECT_TRUE(signs_and_verifies(*v, "client"));
    EXPECT_TRUE(signs_and_verifies(*v, "other"));
  }
  EXPECT_EQ(read_file(dir / "manifest"), before) << "reading and signing write nothing";
}

TEST(VaultFormat, FirstWriteToVersion5UpgradesAndKeepsEverything) {
  TempDir tmp;
  fs::path dir = copy_fixture(tmp, kV5Fixture);
  const std::string v5 = read_file(dir / "manifest");
  {
    auto v = Vault::open(dir);
    ASSERT_TRUE(v) << why(v);
    ASSERT_TRUE(v->unlock(SecureBytes::from(kV5Pin)));
    certvault::DataObjectRequest r;
    r.label = "third note";
    r.value = SecureBytes::from("made by format 6");
    ASSERT_TRUE(v->create_data_object(r));
  }
  const std::string v6 = read_file(dir / "manifest");
  EXPECT_TRUE(v6.starts_with("certvault-vault 6\n"));
  // Every entry's and data object's lines are carried over byte for byte; the new data
  // object's line follows them.
  EXPECT_EQ(lines_starting(v6, "g\t"), lines_starting(v5, "g\t"));
  EXPECT_EQ(lines_starting(v6, "a\t"), lines_starting(v5, "a\t"));
  auto data = lines_starting(v6, "d\t");
  ASSERT_EQ(data.size(), 3u);
  data.pop_back();
  EXPECT_EQ(data, lines_starting(v5, "d\t"));
  // The MAC is the one docs/vault-format.md gives for format 6: over the hash of the bytes.
  EXPECT_EQ(with_mac(v6, kV5Pin), v6);
  EXPECT_NE(with_mac(v6, kV5Pin, MacOver::kTheBytes), v6);
  auto again = Vault::open(dir);
  ASSERT_TRUE(again) << why(again);
  ASSERT_TRUE(again->unlock(SecureBytes::from(kV5Pin), Vault::Threads::kTwo));
  expect_v5_fixture(*again);
  EXPECT_EQ(again->data_objects().size(), 3u);
  EXPECT_TRUE(signs_and_verifies(*again, "client"));
}

// --- version 6 ---------------------------------------------------------------------------

// A copy of the format-5 fixture after its first write, which made it format 6.
fs::path upgraded_v5_fixture(const TempDir& tmp) {
  fs::path dir = copy_fixture(tmp, kV5Fixture);
  auto v = Vault::open(dir);
  EXPECT_TRUE(v && v->unlock(SecureBytes::from(kV5Pin)));
  EXPECT_TRUE(v && v->set_listed_publicly("retired", true));
  return dir;
}

// The manifest with the access rule's uid 1234 replaced: the structure stays valid, the MAC
// does not.
std::string with_uid_changed(std::string text, std::string_view uid) {
  const size_t at = text.find("\"uid\":\"1234\"");
  EXPECT_NE(at, std::string::npos);
  if (at != std::string::npos) text.replace(at + 7, 4, uid);
  return text;
}

// Unlocking the vault at `dir` with the right PIN fails as damage, on one thread or two,
// and counts no wrong attempt.
void expect_unlock_is_damage(const fs::path& dir, std::string_view pin) {
  for (auto threads : {Vault::Threads::kOne, Vault::Threads::kTwo}) {
    auto v = Vault::open(dir);
    ASSERT_TRUE(v) << "without the key, only the structure is read: " << why(v);
    auto unlocked = v->unlock(SecureBytes::from(pin), threads);
    ASSERT_FALSE(unlocked);
    EXPECT_EQ(unlocked.error().code, Code::kTampered) << why(unlocked);
    EXPECT_NE(unlocked.error().message.find("failed authentication"), std::string::npos)
        << why(unlocked);
    EXPECT_FALSE(v->unlocked());
    EXPECT_EQ(v->pin_failures(), 0) << "the right PIN is no wrong attempt";
  }
}

// A format-6 manifest whose MAC is taken over its bytes, as format 5 took it, fails
// authentication: the version on the first line decides how the MAC is checked.
TEST(VaultFormat, Version6ManifestWithAVersion5MacIsDamage) {
  TempDir tmp;
  fs::path dir = upgraded_v5_fixture(tmp);
  overwrite_in_place(dir / "manifest",
                     with_mac(read_file(dir / "manifest"), kV5Pin, MacOver::kTheBytes));
  expect_unlock_is_damage(dir, kV5Pin);
}

// The hash computed beside Argon2id is that of the manifest in hand: a manifest changed
// outside certvault while the vault was locked fails authentication, on one thread or two,
// and the right PIN is not counted as a wrong one.
TEST(VaultFormat, ManifestChangedWhileLockedFailsUnlockOnOneThreadOrTwo) {
  TempDir tmp;
  fs::path dir = upgraded_v5_fixture(tmp);
  overwrite_in_place(dir / "manifest", with_uid_changed(read_file(dir / "manifest"), "5234"));
  auto v = Vault::open(dir);
  ASSERT_TRUE(v) << why(v);
  EXPECT_EQ(v->find("client")->access, std::vector<AccessRule>{allow(PeerKind::kUid, "5234")});
  expect_unlock_is_damage(dir, kV5Pin);
}

// A version-5 manifest whose MAC is taken the format-6 way fails authentication too.
TEST(VaultFormat, Version5ManifestWithAVersion6MacIsDamage) {
  TempDir tmp;
  fs::path dir = copy_fixture(tmp, kV5Fixture);
  overwrite_in_place(dir / "manifest",
                     with_mac(read_file(dir / "manifest"), kV5Pin, MacOver::kTheHash));
  expect_unlock_is_damage(dir, kV5Pin);
}

// A handle keeps the manifest's hash across lock and unlock while the manifest is the same;
// after another process's commit it hashes the new one, and a manifest then changed outside
// certvault fails, whatever hash it had before.
TEST(VaultFormat, UnlockAgainHashesAManifestThatChangedMeanwhile) {
  TempDir tmp;
  fs::path dir = copy_fixture(tmp, kV5Fixture);
  auto a = Vault::open(dir);
  ASSERT_TRUE(a) << why(a);
  ASSERT_TRUE(a->unlock(SecureBytes::from(kV5Pin), Vault::Threads::kTwo));
  ASSERT_TRUE(a->set_listed_publicly("retired", true));  // writes format 6
  a->lock();
  ASSERT_TRUE(a->unlock(SecureBytes::from(kV5Pin), Vault::Threads::kTwo));
  a->lock();
  {
    auto b = Vault::open(dir);
    ASSERT_TRUE(b->unlock(SecureBytes::from(kV5Pin)));
    ASSERT_TRUE(b->set_listed_publicly("retired", false));
  }
  auto again = a->unlock(SecureBytes::from(kV5Pin), Vault::Threads::kTwo);
  ASSERT_TRUE(again) << "the other handle's commit is authentic: " << why(again);
  EXPECT_FALSE(a->find("retired")->listed_publicly);
  a->lock();
  // Another size, so that the handle notices the change.
  overwrite_in_place(dir / "manifest", with_uid_changed(read_file(dir / "manifest"), "12345"));
  auto tampered = a->unlock(SecureBytes::from(kV5Pin), Vault::Threads::kTwo);
  ASSERT_FALSE(tampered);
  EXPECT_EQ(tampered.error().code, Code::kTampered) << why(tampered);
}

// --- newer versions ----------------------------------------------------------------------

class VaultFormatTest : public VaultTest {
 protected:
  std::string manifest() { return read_file(dir_ / "manifest"); }
  void rewrite(const std::string& text) {
    overwrite_in_place(dir_ / "manifest", with_mac(text, kPin));
  }
};

// --- version 3 ---------------------------------------------------------------------------

TEST_F(VaultFormatTest, RenewalRulesHooksFailuresAndPolicySurviveReopen) {
  issue("a");
  issue("b");
  ASSERT_TRUE(vault().update_renewal("a", [](Vault::RenewalSettings& s) {
    s.rule = certvault::parse_renew_at("2/3").value();
    s.hook = "systemctl reload nginx";
  }));
  ASSERT_TRUE(vault().update_renewal("b", [](Vault::RenewalSettings& s) {
    s.rule = certvault::RenewRule{};  // off, whatever the policy says
  }));
  ASSERT_TRUE(vault().record_renewal_failure("b", "the CA said no\nsecond line"));
  ASSERT_TRUE(vault().update_policy([](certvault::Policy& p) {
    p.renew = certvault::parse_renew_before("30d").value();
    p.max_lifetime = 90 * 86400;
  }));
  auto v = Vault::open(dir_);
  ASSERT_TRUE(v) << why(v);
  auto a = v->find("a"), b = v->find("b");
  ASSERT_TRUE(a->renew_rule);
  EXPECT_EQ(certvault::rule_text(*a->renew_rule), "at 2/3 of its lifetime");
  EXPECT_EQ(a->renew_hook, "systemctl reload nginx");
  ASSERT_TRUE(b->renew_rule);
  EXPECT_EQ(b->renew_rule->kind, certvault::RenewRule::Kind::kOff);
  EXPECT_EQ(b->renewal.failures, 1u);
  EXPECT_EQ(b->renewal.failures_total, 1u);
  EXPECT_EQ(b->renewal.last_error, "the CA said no second line") << "one line";
  EXPECT_EQ(certvault::rule_text(v->policy().renew), "30d before expiry");
  EXPECT_EQ(v->policy().max_lifetime, 90 * 86400);
  auto unlocked = v->unlock(pin());
  EXPECT_TRUE(unlocked) << why(unlocked);
}

TEST_F(VaultFormatTest, UnknownHeaderAndPolicyMembersSurviveARewrite) {
  issue("a");
  std::string text = manifest();
  text.replace(text.find("{\"cas\""), 6, R"({"acme":[{"account":"acme1"}],"cas")");
  text.replace(text.find("\"default_hash\""), 14, R"("crl_days":7,"default_hash")");
  rewrite(text);
  auto v = Vault::open(dir_);
  ASSERT_TRUE(v) << why(v);
  ASSERT_TRUE(v->unlock(pin()));
  ASSERT_TRUE(v->disable("a"));
  text = manifest();
  EXPECT_NE(text.find(R"("acme":[{"account":"acme1"}])"), std::string::npos) << text;
  EXPECT_NE(text.find(R"("crl_days":7)"), std::string::npos) << text;
}

TEST_F(VaultFormatTest, OutsideIssuersAreReadStrictlyAndTheirSecretIsSealed) {
  cvtest::PkeyPtr key = cvtest::generate_ec_key();
  cvtest::X509Ptr anchor = cvtest::make_self_signed(key.get(), "Corp CA", -60, 86400, true);
  certvault::OutsideIssuer issuer;
  issuer.name = "corp";
  issuer.url = "http://127.0.0.1:1/pkix/";
  issuer.reference = "3078";
  unsigned char* der = nullptr;
  int n = i2d_X509(anchor.get(), &der);
  issuer.trust.emplace_back(der, der + n);
  OPENSSL_free(der);
  const auto secret = certvault::SecureBytes::from("shared-secret-of-corp");
  auto added = vault().add_issuer(issuer, &secret);
  ASSERT_TRUE(added) << why(added);
  std::string text = manifest();
  EXPECT_EQ(text.find("shared-secret-of-corp"), std::string::npos) << "sealed, never in clear";
  auto v = Vault::open(dir_);
  ASSERT_TRUE(v) << why(v);
  ASSERT_EQ(v->issuers().size(), 1u);
  EXPECT_EQ(v->issuers()[0].reference, "3078");
  EXPECT_TRUE(v->issuers()[0].has_secret);
  ASSERT_TRUE(v->unlock(pin()));
  auto opened = v->issuer_secret("corp");
  ASSERT_TRUE(opened) << why(opened);
  EXPECT_EQ(std::string(opened->view()), "shared-secret-of-corp");
  // An issuer member this reader does not know is damage, not an unknown member.
  text.replace(text.find(R"("name":"corp")"), 13, R"("name":"corp","deny":true)");
  rewrite(text);
  auto damaged = Vault::open(dir_);
  ASSERT_FALSE(damaged);
  EXPECT_EQ(damaged.error().code, Code::kTampered) << why(damaged);
}

TEST_F(VaultFormatTest, AcmeIssuersKeepASealedAccountKeyAndAreReadStrictly) {
  cvtest::PkeyPtr key = cvtest::generate_ec_key();
  cvtest::X509Ptr anchor = cvtest::make_self_signed(key.get(), "ACME CA", -60, 86400, true);
  certvault::OutsideIssuer issuer;
  issuer.name = "acme";
  issuer.protocol = certvault::IssuerProtocol::kAcme;
  issuer.url = "https://127.0.0.1:1/dir";
  issuer.http01_listen = "127.0.0.1:5002";
  issuer.dns01_hook = "/usr/local/bin/dns-hook --zone example.test";
  unsigned char* der = nullptr;
  int n = i2d_X509(anchor.get(), &der);
  issuer.trust.emplace_back(der, der + n);
  OPENSSL_free(der);
  auto added = vault().add_issuer(issuer, nullptr);
  ASSERT_TRUE(added) << why(added);
  auto account = vault().issuer_account_key("acme");
  ASSERT_TRUE(account) << why(account);
  EXPECT_TRUE(EVP_PKEY_is_a(account->get(), "EC"));
  ASSERT_TRUE(vault().set_issuer_account("acme", "https://127.0.0.1:1/acct/7"));
  auto v = Vault::open(dir_);
  ASSERT_TRUE(v) << why(v);
  ASSERT_EQ(v->issuers().size(), 1u);
  EXPECT_EQ(v->issuers()[0].protocol, certvault::IssuerProtocol::kAcme);
  EXPECT_EQ(v->issuers()[0].account, "https://127.0.0.1:1/acct/7");
  EXPECT_EQ(v->issuers()[0].http01_listen, "127.0.0.1:5002");
  EXPECT_EQ(v->issuers()[0].dns01_hook, "/usr/local/bin/dns-hook --zone example.test");
  ASSERT_TRUE(v->unlock(pin()));
  auto reopened = v->issuer_account_key("acme");
  ASSERT_TRUE(reopened) << why(reopened);
  EXPECT_EQ(EVP_PKEY_eq(reopened->get(), account->get()), 1);
  EXPECT_FALSE(v->issuer_secret("acme")) << "an account key is not a CMP shared secret";
  // A CMP member in an ACME issuer is damage.
  std::string text = manifest();
  text.replace(text.find(R"("name":"acme")"), 13, R"("name":"acme","reference":"3078")");
  rewrite(text);
  auto damaged = Vault::open(dir_);
  ASSERT_FALSE(damaged);
  EXPECT_EQ(damaged.error().code, Code::kTampered) << why(damaged);
}

TEST_F(VaultFormatTest, MalformedRenewalRuleIsDamage) {
  issue("client");
  ASSERT_TRUE(vault().update_renewal("client", [](Vault::RenewalSettings& s) {
    s.rule = certvault::parse_renew_at("2/3").value();
  }));
  std::string text = manifest();
  text.replace(text.find("\"2/3\""), 5, "\"3/2\"");  // past the end of the lifetime
  rewrite(text);
  auto v = Vault::open(dir_);
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code, Code::kTampered) << why(v);
}

// A revocation that cannot be read must not be skipped: the certificate would drop off the
// CRL and `enable` could use it again.
TEST_F(VaultFormatTest, MalformedRevocationIsDamage) {
  issue("client");
  ASSERT_TRUE(vault().revoke("client", std::nullopt, certvault::RevocationReason::kKeyCompromise));
  const std::string good = manifest();
  ASSERT_NE(good.find(R"("reason":"keyCompromise")"), std::string::npos) << good;
  for (auto [from, to] : std::vector<std::pair<std::string, std::string>>{
           {R"("reason":"keyCompromise")", R"("reason":"certificateHold")"},
           {R"("generation":1)", R"("generation":"1")"},
           {R"("revoked":[{)", R"("revoked":[{"why":"x",)"},
           {R"("revoked":[)", R"("revoked":{"list":[)"}}) {
    SCOPED_TRACE(to);
    std::string text = good;
    text.replace(text.find(from), from.size(), to);
    if (to.starts_with(R"("revoked":{)"))
      text.replace(text.find("]}\n", text.find(to)), 3, "]}}\n");
    rewrite(text);
    auto v = Vault::open(dir_);
    ASSERT_FALSE(v);
    EXPECT_EQ(v.error().code, Code::kTampered) << why(v);
  }
}

TEST_F(VaultFormatTest, CrlStateSurvivesAndMalformedCrlStateIsDamage) {
  ASSERT_TRUE(vault().make_crl(certvault::now() + 7 * kDay, "/var/lib/certvault/ca.crl"));
  issue("client");  // another commit rewrites the header
  auto v = Vault::open(dir_);
  ASSERT_TRUE(v) << why(v);
  ASSERT_TRUE(v->crl_state());
  EXPECT_EQ(v->crl_state()->number, 1u);
  EXPECT_EQ(v->crl_state()->file, "/var/lib/certvault/ca.crl");
  std::string text = manifest();
  const std::string from = R"("number":1)";
  ASSERT_NE(text.find(from), std::string::npos) << text;
  text.replace(text.find(from), from.size(), R"("number":"1")");
  rewrite(text);
  auto damaged = Vault::open(dir_);
  ASSERT_FALSE(damaged);
  EXPECT_EQ(damaged.error().code, Code::kTampered) << why(damaged);
}

TEST_F(VaultFormatTest, NewerVersionIsRefusedWithOneLine) {
  issue("client");
  std::string text = manifest();
  text.replace(0, text.find('\n'), "certvault-vault 7");
  rewrite(text);
  auto before = snapshot(dir_);
  const std::string expected = "vault " + dir_.string() +
                               " was written by a newer certvault (format 7; this one reads 1 "
                               "to 6); upgrade certvault";
  auto opened = Vault::open(dir_);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code, Code::kInvalidInput);
  EXPECT_EQ(opened.error().message, expected);
  // A handle opened before the newer certvault wrote refuses to commit over it.
  auto changed = vault().set_listed_publicly("client", true);
  ASSERT_FALSE(changed);
  EXPECT_EQ(changed.error().message, expected);
  EXPECT_EQ(describe_difference(before, snapshot(dir_)), "");
}

// The vault id is 32 lower-case hex digits; other bytes would not survive the next rewrite
// (found by fuzz/manifest_fuzz.cc: a byte that is not UTF-8 came back as U+FFFD, and the
// vault could no longer be read after its next commit).
TEST_F(VaultFormatTest, VaultIdThatIsNotLowerCaseHexIsDamage) {
  const std::string good = manifest();
  const size_t at = good.find(R"("vault_id":")");
  ASSERT_NE(at, std::string::npos) << good;
  for (const std::string digit : {"g", "A", "\xe9"}) {
    SCOPED_TRACE(digit);
    std::string text = good;
    text.replace(at + 12 + 31, 1, digit);  // the last of the 32 digits
    // The old MAC line stays: opening without the PIN reads the structure only, and the
    // MAC could not be made anew, since the vault id is part of the PIN wrap's data.
    overwrite_in_place(dir_ / "manifest", text);
    auto v = Vault::open(dir_);
    ASSERT_FALSE(v);
    EXPECT_EQ(v.error().code, Code::kTampered) << why(v);
  }
}

TEST_F(VaultFormatTest, MalformedFirstLineIsDamageNotNewer) {
  std::string text = manifest();
  text.replace(0, text.find('\n'), "certvault-vault 02");
  rewrite(text);
  auto opened = Vault::open(dir_);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code, Code::kTampered) << why(opened);
}

// --- attribute lines ---------------------------------------------------------------------

TEST_F(VaultFormatTest, EntriesWithoutAttributesHaveNoAttributeLine) {
  issue("plain");
  issue("ruled");
  EXPECT_TRUE(lines_starting(manifest(), "a\t").empty());
  ASSERT_TRUE(vault().set_access("ruled", {allow(PeerKind::kUid, "1001")}));
  auto a = lines_starting(manifest(), "a\t");
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0], "a\t" + vault().find("ruled")->id +
                      "\t{\"access\":[{\"allow\":true,\"uid\":\"1001\"}]}");
  ASSERT_TRUE(vault().set_access("ruled", {}));
  EXPECT_TRUE(lines_starting(manifest(), "a\t").empty());
}

TEST_F(VaultFormatTest, AttributesSurviveReopenAndUnlock) {
  issue("agent");
  std::vector<AccessRule> rules{deny(PeerKind::kExe, "/usr/bin/curl"),
                                allow(PeerKind::kUnit, "backup.service"),
                                allow(PeerKind::kGid, "100")};
  ASSERT_TRUE(vault().set_access("agent", rules));
  ASSERT_TRUE(vault().set_listed_publicly("agent", true));
  auto v = Vault::open(dir_);
  ASSERT_TRUE(v) << why(v);
  EXPECT_EQ(v->find("agent")->access, rules);
  EXPECT_TRUE(v->find("agent")->listed_publicly);
  auto unlocked = v->unlock(pin());
  EXPECT_TRUE(unlocked) << why(unlocked);
  EXPECT_EQ(v->entries().at(0).access, rules);
}

TEST_F(VaultFormatTest, UnknownAttributesSurviveARewrite) {
  issue("a");
  issue("b");
  issue("c");
  ASSERT_TRUE(vault().set_access("a", {allow(PeerKind::kUid, "1001")}));
  // What a newer certvault might write: an attribute this one does not know, on an entry
  // that also has known ones, and on an entry that has no other.
  const std::string a_id = vault().find("a")->id, b_id = vault().find("b")->id;
  const std::string renewal = R"("watch":{"days":30,"targets":["/etc/x.pem"]})";
  std::string text = manifest();
  const std::string a_line = lines_starting(text, "a\t" + a_id).at(0);
  text.replace(text.find(a_line), a_line.size(),
               "a\t" + a_id + "\t{\"access\":[{\"allow\":true,\"uid\":\"1001\"}]," + renewal + "}");
  const std::string b_last = lines_starting(text, "g\t" + b_id).back();
  text.insert(text.find(b_last) + b_last.size() + 1, "a\t" + b_id + "\t{" + renewal + "}\n");
  rewrite(text);

  auto v = Vault::open(dir_);
  ASSERT_TRUE(v) << why(v);
  ASSERT_TRUE(v->unlock(pin()));
  EXPECT_EQ(v->find("a")->access.size(), 1u);
  // Re-encode a and b (changed), and commit something else too.
  ASSERT_TRUE(v->set_listed_publicly("a", true));
  ASSERT_TRUE(v->rename("b", "b2"));
  ASSERT_TRUE(v->disable("c"));
  auto rotated = v->rotate("a", std::nullopt);
  ASSERT_TRUE(rotated) << why(rotated);

  text = manifest();
  auto a_attrs = lines_starting(text, "a\t" + a_id);
  auto b_attrs = lines_starting(text, "a\t" + b_id);
  ASSERT_EQ(a_attrs.size(), 1u);
  ASSERT_EQ(b_attrs.size(), 1u);
  EXPECT_EQ(a_attrs[0], "a\t" + a_id +
                            "\t{\"access\":[{\"allow\":true,\"uid\":\"1001\"}],\"public\":true," +
                            renewal + "}");
  EXPECT_EQ(b_attrs[0], "a\t" + b_id + "\t{" + renewal + "}");
  auto again = Vault::open(dir_);
  ASSERT_TRUE(again) << why(again);
  EXPECT_TRUE(again->unlock(pin()));
}

TEST_F(VaultFormatTest, AttributeLineTamperedAfterUnlockIsDamage) {
  issue("client");
  ASSERT_TRUE(vault().set_access("client", {allow(PeerKind::kUid, "1001")}));
  auto reader = Vault::open(dir_);
  ASSERT_TRUE(reader);
  ASSERT_TRUE(reader->unlock(pin()));
  // Grant another user behind certvault's back; the MAC is left as it was.
  std::string text = manifest();
  size_t at = text.find("\"uid\":\"1001\"");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 12, "\"uid\":\"1002\"");
  overwrite_in_place(dir_ / "manifest", text);

  auto refreshed = reader->refresh();
  ASSERT_FALSE(refreshed);
  EXPECT_EQ(refreshed.error().code, Code::kTampered) << why(refreshed);
  EXPECT_FALSE(reader->unlocked());  // nothing secret is done on a damaged vault
  EXPECT_FALSE(reader->private_key("client"));
  auto fresh = Vault::open(dir_);
  ASSERT_TRUE(fresh);
  auto unlocked = fresh->unlock(pin());
  ASSERT_FALSE(unlocked);
  EXPECT_EQ(unlocked.error().code, Code::kTampered) << why(unlocked);
}

TEST_F(VaultFormatTest, MalformedAccessRuleIsDamage) {
  issue("client");
  ASSERT_TRUE(vault().set_access("client", {allow(PeerKind::kUid, "1001")}));
  std::string text = manifest();
  size_t at = text.find("\"uid\":\"1001\"");
  text.replace(at, 12, "\"pid\":\"1001\"");  // a peer kind this format does not have
  rewrite(text);
  auto v = Vault::open(dir_);
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code, Code::kTampered) << why(v);
}

// --- the keystore API ---------------------------------------------------------------------

// --- data objects (version 5) ---------------------------------------------------------

// The data object file of `id`: the one whose owner is "data:<id>".
fs::path data_file(const fs::path& dir, const std::string& id) {
  for (const auto& f : fs::directory_iterator(dir / "objects"))
    if (read_file(f.path()).find("\"data:" + id + "\"") != std::string::npos) return f.path();
  ADD_FAILURE() << "no file for data object " << id;
  return {};
}

certvault::DataObject make_data(Vault& v, bool is_private, std::string value = "value") {
  certvault::DataObjectRequest r;
  r.label = "label";
  r.is_private = is_private;
  r.value = SecureBytes::from(value);
  auto made = v.create_data_object(r);
  EXPECT_TRUE(made) << why(made);
  return made ? *made : certvault::DataObject{};
}

TEST_F(VaultFormatTest, DataObjectLinesAreAsDocumented) {
  issue("client");
  const auto pub = make_data(vault(), false, "clear");
  const auto priv = make_data(vault(), true, "sealed");
  auto d = lines_starting(manifest(), "d\t");
  ASSERT_EQ(d.size(), 2u);
  const std::string pub_file = data_file(dir_, pub.id).filename().string();
  const std::string priv_file = data_file(dir_, priv.id).filename().string();
  EXPECT_EQ(d[0], "d\t" + pub.id + "\t{\"label\":\"label\",\"object\":\"" + pub_file +
                      "\",\"private\":false,\"size\":5}");
  EXPECT_EQ(d[1], "d\t" + priv.id + "\t{\"label\":\"label\",\"object\":\"" + priv_file +
                      "\",\"private\":true,\"size\":6}");
  // A non-private value is in the clear, as a certificate is; a private one is sealed.
  EXPECT_NE(read_file(dir_ / "objects" / pub_file).find("\"value\" : \"Y2xlYXI=\""),
            std::string::npos);
  EXPECT_NE(read_file(dir_ / "objects" / priv_file).find("\"sealed_value\""), std::string::npos);
}

// A sealed value whose tag does not verify, in a file and manifest otherwise intact (its
// hash renamed, the MAC recomputed): the AEAD itself must refuse it.
TEST_F(VaultFormatTest, SealedDataValueWithAWrongTagIsDamage) {
  const auto made = make_data(vault(), true, "sealed value");
  const fs::path old_file = data_file(dir_, made.id);
  std::string text = read_file(old_file);
  const std::string key = "\"sealed_value\" : \"";
  const size_t at = text.find(key) + key.size();
  const size_t end = text.find('"', at);
  std::vector<uint8_t> sealed = from_b64(text.substr(at, end - at));
  sealed.back() ^= 1;  // the last byte of the Poly1305 tag
  std::string b64(sodium_base64_ENCODED_LEN(sealed.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(b64.data(), b64.size(), sealed.data(), sealed.size(),
                    sodium_base64_VARIANT_ORIGINAL);
  b64.pop_back();
  text.replace(at, end - at, b64);
  unsigned char hash[32];
  crypto_generichash(hash, 32, reinterpret_cast<const unsigned char*>(text.data()), text.size(),
                     nullptr, 0);
  const std::string new_name = to_hex(std::string_view(reinterpret_cast<char*>(hash), 32));
  write_file(dir_ / "objects" / new_name, text);
  fs::permissions(dir_ / "objects" / new_name, fs::perms::owner_read | fs::perms::owner_write,
                  fs::perm_options::replace);
  std::string m = manifest();
  m.replace(m.find(old_file.filename().string()), 64, new_name);
  rewrite(m);

  auto v = Vault::open(dir_);
  ASSERT_TRUE(v) << why(v);
  ASSERT_TRUE(v->unlock(pin())) << "the manifest itself is intact";
  auto read = v->data_object_value(made.id);
  ASSERT_FALSE(read);
  EXPECT_EQ(read.error().code, Code::kTampered) << why(read);
  EXPECT_NE(read.error().message.find("sealed value of data object " + made.id + " does not open"),
            std::string::npos)
      << why(read);
}

TEST_F(VaultFormatTest, AVaultHoldsAtMost1000DataObjects) {
  const auto first = make_data(vault(), false);
  // The other 999 lines written straight into the manifest (one commit each would be slow);
  // they share the first one's file, which no reader here opens.
  std::string text = manifest();
  const std::string line = lines_starting(text, "d\t").at(0);
  std::string more;
  for (size_t i = 1; i < certvault::kDataObjectsMax; ++i) {
    std::string copy = line;
    copy.replace(2, 32,
                 to_hex(std::string_view(reinterpret_cast<const char*>(&i), sizeof i)) +
                     std::string(32 - 2 * sizeof i, '0'));
    more += copy + "\n";
  }
  text.insert(text.rfind("mac "), more);
  rewrite(text);
  auto v = Vault::open(dir_);
  ASSERT_TRUE(v) << why(v);
  ASSERT_TRUE(v->unlock(pin()));
  ASSERT_EQ(v->data_objects().size(), certvault::kDataObjectsMax);
  auto before = snapshot(dir_);
  auto refused = v->create_data_object(certvault::DataObjectRequest{});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Code::kRefused) << why(refused);
  EXPECT_NE(refused.error().message.find("holds 1000 data objects, the most it keeps; destroy one "
                                         "first"),
            std::string::npos)
      << why(refused);
  EXPECT_EQ(describe_difference(before, snapshot(dir_)), "") << "nothing written, not even a file";
  ASSERT_TRUE(v->destroy_data_object(v->data_objects().back().id));
  EXPECT_TRUE(v->create_data_object(certvault::DataObjectRequest{}));
}

TEST_F(VaultFormatTest, DataObjectLineTamperedAfterUnlockIsDamage) {
  const auto made = make_data(vault(), true);
  auto reader = Vault::open(dir_);
  ASSERT_TRUE(reader);
  ASSERT_TRUE(reader->unlock(pin()));
  // Make the private object public behind certvault's back; the MAC is left as it was.
  std::string text = manifest();
  text.replace(text.find("\"private\":true"), 14, "\"private\":false");
  overwrite_in_place(dir_ / "manifest", text);
  auto refreshed = reader->refresh();
  ASSERT_FALSE(refreshed);
  EXPECT_EQ(refreshed.error().code, Code::kTampered) << why(refreshed);
  EXPECT_FALSE(reader->data_object_value(made.id));
}

TEST_F(VaultFormatTest, MalformedDataObjectLinesAreDamage) {
  issue("client");
  make_data(vault(), false);
  const std::string good = manifest();
  const std::string line = lines_starting(good, "d\t").at(0);
  auto damaged_by = [&](const std::string& replacement) {
    std::string text = good;
    text.replace(text.find(line), line.size(), replacement);
    rewrite(text);
    auto v = Vault::open(dir_);
    if (v) return "opened: " + replacement;
    return v.error().code == Code::kTampered ? std::string() : why(v);
  };
  std::string unknown = line;
  unknown.replace(unknown.find("{"), 1, "{\"modifiable\":false,");
  EXPECT_EQ(damaged_by(unknown), "") << "a member this version does not know";
  std::string no_size = line;
  no_size.replace(no_size.find(",\"size\":5"), 9, "");
  EXPECT_EQ(damaged_by(no_size), "");
  std::string bad_oid = line;
  bad_oid.replace(bad_oid.find("{"), 1, "{\"object_id\":\"zz\",");
  EXPECT_EQ(damaged_by(bad_oid), "");
  EXPECT_EQ(damaged_by(line + "\n" + line), "") << "the same id twice";
  // An entry's lines after a data object's.
  const std::string client = lines_starting(good, "g\t").at(0);
  std::string moved = good;
  moved.erase(moved.find(client), client.size() + 1);
  moved.insert(moved.find("mac "), client + "\n");
  rewrite(moved);
  auto v = Vault::open(dir_);
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code, Code::kTampered) << why(v);
}

TEST_F(VaultFormatTest, OwnerUidIsTheVaultDirectorysOwner) {
  EXPECT_EQ(vault().owner_uid(), ::geteuid());
  auto v = Vault::open(dir_);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->owner_uid(), ::geteuid());
}

TEST_F(VaultFormatTest, SetAccessNeedsUnlock) {
  issue("client");
  auto v = Vault::open(dir_);
  ASSERT_TRUE(v);
  auto r = v->set_access("client", {allow(PeerKind::kUid, "1001")});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kLocked);
  auto p = v->set_listed_publicly("client", true);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, Code::kLocked);
}

TEST_F(VaultFormatTest, SetAccessOnUnknownNicknameIsNotFound) {
  auto r = vault().set_access("nobody", {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kNotFound);
}

TEST_F(VaultFormatTest, RotationRenameDisableEnableKeepAttributes) {
  issue("client");
  std::vector<AccessRule> rules{allow(PeerKind::kUid, "1001"), deny(PeerKind::kGid, "50")};
  ASSERT_TRUE(vault().set_access("client", rules));
  ASSERT_TRUE(vault().set_listed_publicly("client", true));
  auto rotated = vault().rotate("client", std::nullopt);
  ASSERT_TRUE(rotated) << why(rotated);
  EXPECT_EQ(rotated->access, rules);
  EXPECT_EQ(rotated->generations.size(), 2u);
  auto renamed = vault().rename("client", "renamed");
  ASSERT_TRUE(renamed);
  EXPECT_EQ(renamed->access, rules);
  EXPECT_TRUE(renamed->listed_publicly);
  ASSERT_TRUE(vault().disable("renamed"));
  auto enabled = vault().enable("renamed");
  ASSERT_TRUE(enabled);
  EXPECT_EQ(enabled->access, rules);
  EXPECT_TRUE(enabled->listed_publicly);
  EXPECT_EQ(vault().find_by_key_id(enabled->current()->key_id)->access, rules);
}

TEST_F(VaultFormatTest, DeleteRemovesAttributes) {
  issue("client");
  ASSERT_TRUE(vault().set_access("client", {allow(PeerKind::kUid, "1001")}));
  ASSERT_TRUE(vault().set_listed_publicly("client", true));
  ASSERT_TRUE(vault().remove("client"));
  EXPECT_TRUE(lines_starting(manifest(), "a\t").empty());
  auto made = issue("client");
  EXPECT_TRUE(made.access.empty());
  EXPECT_FALSE(made.listed_publicly);
}

// Each bad rule is refused with one line naming it, and nothing is written.
class RejectedRule : public VaultFormatTest, public ::testing::WithParamInterface<AccessRule> {};

TEST_P(RejectedRule, SetAccessRefusesBadRuleAndChangesNothing) {
  issue("client");
  ASSERT_TRUE(vault().set_access("client", {allow(PeerKind::kUid, "1001")}));
  auto before = snapshot(dir_);
  const AccessRule bad = GetParam();
  auto r = vault().set_access("client", {allow(PeerKind::kUid, "1002"), bad});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kInvalidInput);
  EXPECT_NE(r.error().message.find(certvault::describe(bad)), std::string::npos)
      << r.error().message;
  EXPECT_EQ(r.error().message.find('\n'), std::string::npos);
  EXPECT_EQ(describe_difference(before, snapshot(dir_)), "");
  EXPECT_EQ(vault().find("client")->access.size(), 1u);
}

INSTANTIATE_TEST_SUITE_P(
    Access, RejectedRule,
    ::testing::Values(allow(PeerKind::kUid, ""), allow(PeerKind::kUid, "-1"),
                      allow(PeerKind::kUid, "+5"), allow(PeerKind::kUid, "01001"),
                      allow(PeerKind::kUid, "4294967295"), allow(PeerKind::kUid, "99999999999"),
                      deny(PeerKind::kGid, "wheel"), allow(PeerKind::kUnit, "backup"),
                      allow(PeerKind::kUnit, "a/b.service"), allow(PeerKind::kUnit, ".service"),
                      allow(PeerKind::kUnit, "getty@.service"),
                      allow(PeerKind::kUnit, "bad name.service"),
                      deny(PeerKind::kExe, "usr/bin/curl"), deny(PeerKind::kExe, "/usr//bin/curl"),
                      deny(PeerKind::kExe, "/usr/bin/../bin/curl"),
                      deny(PeerKind::kExe, "/usr/./bin/curl"), deny(PeerKind::kExe, "/usr/bin/"),
                      deny(PeerKind::kExe, "/")));

TEST(Access, ValidRulesPass) {
  for (const AccessRule& r :
       {allow(PeerKind::kUid, "0"), allow(PeerKind::kUid, "4294967294"),
        allow(PeerKind::kGid, "100"), allow(PeerKind::kUnit, "backup.service"),
        allow(PeerKind::kUnit, "getty@tty1.service"), allow(PeerKind::kUnit, "cups.socket"),
        allow(PeerKind::kUnit, "session-3.scope"), allow(PeerKind::kExe, "/usr/bin/curl"),
        deny(PeerKind::kExe, "/opt/my app/bin/x")})
    EXPECT_TRUE(certvault::check_access_rule(r)) << certvault::describe(r);
}

// --- decide_access -------------------------------------------------------------------------

Entry entry_with(std::vector<AccessRule> rules) {
  Entry e;
  e.nickname = "client";
  e.access = std::move(rules);
  return e;
}

Peer peer(uid_t uid, gid_t gid = 1000, std::vector<gid_t> groups = {}, std::string unit = {},
          std::string exe = {}) {
  return Peer{uid, gid, std::move(groups), std::move(unit), std::move(exe)};
}

constexpr uid_t kOwner = 1000;

TEST(Access, OwnerAndRootAreAlwaysAllowed) {
  Entry e = entry_with({deny(PeerKind::kUid, "1000"), deny(PeerKind::kUid, "0"),
                        deny(PeerKind::kUnit, "x.service")});
  EXPECT_TRUE(certvault::decide_access(e, kOwner, peer(kOwner)).allowed);
  EXPECT_TRUE(certvault::decide_access(e, kOwner, peer(0, 0)).allowed);
}

TEST(Access, NoRuleRefusesOthersNamingTheDefault) {
  auto d = certvault::decide_access(entry_with({}), kOwner, peer(1001));
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.reason, "no rule allows uid 1001 (default: only the vault owner and root)");
}

TEST(Access, AllowUidAdmitsThatUidOnly) {
  Entry e = entry_with({allow(PeerKind::kUid, "1001")});
  auto d = certvault::decide_access(e, kOwner, peer(1001));
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.reason, "allow uid 1001");
  EXPECT_FALSE(certvault::decide_access(e, kOwner, peer(1002)).allowed);
}

TEST(Access, DenyWinsOverAnEarlierAllow) {
  Entry e = entry_with({allow(PeerKind::kGid, "100"), deny(PeerKind::kUid, "1001")});
  auto d = certvault::decide_access(e, kOwner, peer(1001, 100));
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.reason, "deny uid 1001");
  EXPECT_TRUE(certvault::decide_access(e, kOwner, peer(1002, 100)).allowed);
}

TEST(Access, GidRuleMatchesSupplementaryGroups) {
  Entry e = entry_with({allow(PeerKind::kGid, "27")});
  EXPECT_TRUE(certvault::decide_access(e, kOwner, peer(1001, 1001, {4, 27})).allowed);
  EXPECT_TRUE(certvault::decide_access(e, kOwner, peer(1001, 27)).allowed);
  EXPECT_FALSE(certvault::decide_access(e, kOwner, peer(1001, 1001, {4})).allowed);
}

TEST(Access, UnknownUnitOrExeNeverAdmits) {
  Entry e = entry_with(
      {allow(PeerKind::kUnit, "backup.service"), allow(PeerKind::kExe, "/usr/bin/curl")});
  EXPECT_FALSE(certvault::decide_access(e, kOwner, peer(1001)).allowed);
  EXPECT_TRUE(certvault::decide_access(e, kOwner, peer(1001, 1001, {}, "backup.service")).allowed);
  EXPECT_TRUE(
      certvault::decide_access(e, kOwner, peer(1001, 1001, {}, "", "/usr/bin/curl")).allowed);
  EXPECT_FALSE(certvault::decide_access(e, kOwner, peer(1001, 1001, {}, "other.service")).allowed);
}

TEST(Access, DenyUnitOrExeRefusesWhenThePeerValueIsUnknown) {
  Entry e = entry_with({deny(PeerKind::kExe, "/usr/bin/curl"), allow(PeerKind::kUid, "1001")});
  auto d = certvault::decide_access(e, kOwner, peer(1001));
  EXPECT_FALSE(d.allowed);
  EXPECT_NE(d.reason.find("deny exe /usr/bin/curl"), std::string::npos) << d.reason;
  EXPECT_NE(d.reason.find("unknown"), std::string::npos) << d.reason;
  // Known and different: the deny does not apply, the allow does.
  EXPECT_TRUE(
      certvault::decide_access(e, kOwner, peer(1001, 1001, {}, "", "/usr/bin/wget")).allowed);
  Entry u = entry_with({deny(PeerKind::kUnit, "evil.service"), allow(PeerKind::kUid, "1001")});
  EXPECT_FALSE(certvault::decide_access(u, kOwner, peer(1001)).allowed);
  EXPECT_TRUE(certvault::decide_access(u, kOwner, peer(1001, 1001, {}, "good.service")).allowed);
}

TEST(Access, FirstMatchingDenyNamesTheRule) {
  Entry e = entry_with({deny(PeerKind::kGid, "50"), deny(PeerKind::kUid, "1001")});
  auto d = certvault::decide_access(e, kOwner, peer(1001, 50));
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.reason, "deny gid 50");
}

}  // namespace
}  // namespace cvtest
