// Keystore API behaviour: input rules, issuing, PIN handling, secrets at rest, lifecycle.
#include "vault.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <string>
#include <vector>

#include "support.h"
#include "test_vault.h"

namespace cvtest {
namespace {

using certvault::Code;
using certvault::Hash;
using certvault::KeyType;
using certvault::SecureBytes;
using certvault::Status;
using certvault::Vault;

int64_t asn1_to_time(const ASN1_TIME* t) {
  std::tm tm{};
  ASN1_TIME_to_tm(t, &tm);
  return timegm(&tm);
}

bool ext_critical(X509* cert, int nid) {
  int i = X509_get_ext_by_NID(cert, nid, -1);
  return i >= 0 && X509_EXTENSION_get_critical(X509_get_ext(cert, i)) == 1;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string sha256_hex(const std::vector<uint8_t>& der) {
  unsigned char md[32];
  unsigned int len = 0;
  EVP_Digest(der.data(), der.size(), md, &len, EVP_sha256(), nullptr);
  return to_hex(std::string_view(reinterpret_cast<char*>(md), len));
}

// ---------------------------------------------------------------------------------------
// Nicknames

class RejectedNickname : public VaultTest {
 protected:
  void ExpectRejected(const std::string& nickname) {
    auto checked = certvault::check_nickname(nickname);
    ASSERT_FALSE(checked) << "check_nickname accepted '" << nickname << "'";
    EXPECT_EQ(checked.error().code, Code::kInvalidInput) << why(checked);
    auto before = snapshot(dir_);
    certvault::IssueRequest req;
    req.nickname = nickname;
    req.not_after = certvault::now() + 30 * kDay;
    auto made = vault().create(req);
    ASSERT_FALSE(made) << "create accepted '" << nickname << "'";
    EXPECT_EQ(made.error().code, Code::kInvalidInput) << why(made);
    EXPECT_FALSE(made.error().message.empty());
    EXPECT_EQ(describe_difference(before, snapshot(dir_)), "");
    EXPECT_TRUE(vault().entries().empty());
  }
};

TEST_F(RejectedNickname, RejectsNicknameWithSlash) {
  ExpectRejected("a/b");
}
TEST_F(RejectedNickname, RejectsNicknameOf65Characters) {
  ExpectRejected(std::string(65, 'x'));
}
TEST_F(RejectedNickname, RejectsEmptyNickname) {
  ExpectRejected("");
}
TEST_F(RejectedNickname, RejectsNonAsciiNickname) {
  ExpectRejected("caf\xc3\xa9");
}
TEST_F(RejectedNickname, RejectsNicknameWithNewline) {
  ExpectRejected("api\nprod");
}
TEST_F(RejectedNickname, RejectsNicknameWithColonOrSemicolon) {
  ExpectRejected("api:prod");
  ExpectRejected("api;prod");
}

TEST_F(VaultTest, AcceptsNicknameOf64CharactersAndAllowedPunctuation) {
  std::string longest(64, 'n');
  EXPECT_TRUE(certvault::check_nickname(longest));
  EXPECT_TRUE(certvault::check_nickname("Api prod-01_x"));
  issue(longest);
  issue("Api prod-01_x");
  EXPECT_TRUE(vault().find(longest));
  EXPECT_TRUE(vault().find("Api prod-01_x"));
}

TEST_F(VaultTest, NicknamesCompareExactly) {
  issue("api");
  issue("API");
  EXPECT_EQ(vault().entries().size(), 2u);
  EXPECT_FALSE(vault().find("Api"));
  EXPECT_FALSE(vault().find("api "));
}

TEST_F(VaultTest, RefusesDuplicateNickname) {
  issue("api");
  auto before = snapshot(dir_);
  certvault::IssueRequest req;
  req.nickname = "api";
  req.not_after = certvault::now() + 30 * kDay;
  auto made = vault().create(req);
  ASSERT_FALSE(made);
  EXPECT_EQ(made.error().code, Code::kExists) << why(made);
  EXPECT_NE(made.error().message.find("api"), std::string::npos) << made.error().message;
  EXPECT_EQ(describe_difference(before, snapshot(dir_)), "");
}

TEST_F(VaultTest, UnknownNicknameIsNotFound) {
  auto before = snapshot(dir_);
  EXPECT_EQ(vault().certificate_der("nope").error().code, Code::kNotFound);
  EXPECT_EQ(vault().private_key("nope").error().code, Code::kNotFound);
  EXPECT_EQ(vault().rotate("nope", {}).error().code, Code::kNotFound);
  EXPECT_EQ(vault().disable("nope").error().code, Code::kNotFound);
  EXPECT_EQ(vault().remove("nope").error().code, Code::kNotFound);
  EXPECT_EQ(describe_difference(before, snapshot(dir_)), "");
}

// ---------------------------------------------------------------------------------------
// Dates

TEST(Dates, DayMeansEndOfThatDayUtc) {
  auto t = certvault::parse_date("2027-06-30");
  ASSERT_TRUE(t) << why(t);
  EXPECT_EQ(*t, end_of_day_utc("2027-06-30"));
  EXPECT_EQ(certvault::format_date(*t), "2027-06-30");
  EXPECT_EQ(certvault::format_time(*t), "2027-06-30T23:59:59Z");
}

TEST(Dates, RelativeDaysCountFromNow) {
  auto t = certvault::parse_date("+5d");
  ASSERT_TRUE(t) << why(t);
  auto start = certvault::now() + 5 * kDay;
  // "N days from now": at least that moment, at most the end of that day.
  EXPECT_GE(*t, start - 5);
  EXPECT_LE(*t, end_of_day_utc(date_in_days(5)) + 5);
}

TEST(Dates, RejectsIllFormedDates) {
  for (std::string bad : {"", "2027-13-01", "2027-02-30", "2027-00-10", "27-06-30", "2027/06/30",
                          "2027-06-30x", "tomorrow", "+5", "+d", "+-3d", "+5w", "30.06.2027"}) {
    auto t = certvault::parse_date(bad);
    EXPECT_FALSE(t) << "accepted '" << bad << "'";
    if (!t) {
      EXPECT_EQ(t.error().code, Code::kInvalidInput) << bad;
    }
  }
}

TEST_F(VaultTest, RefusesEndDateInThePast) {
  auto before = snapshot(dir_);
  certvault::IssueRequest req;
  req.nickname = "old";
  req.not_after = certvault::now() - kDay;
  auto made = vault().create(req);
  ASSERT_FALSE(made);
  EXPECT_TRUE(made.error().code == Code::kInvalidInput || made.error().code == Code::kRefused)
      << why(made);
  EXPECT_EQ(describe_difference(before, snapshot(dir_)), "");
}

TEST_F(VaultTest, RefusesEndDateAfterCaEndNamingTheLimit) {
  auto ca = vault().active_ca();
  ASSERT_TRUE(ca);
  auto before = snapshot(dir_);
  certvault::IssueRequest req;
  req.nickname = "late";
  req.not_after = ca->not_after + 10 * kDay;
  auto made = vault().create(req);
  ASSERT_FALSE(made);
  EXPECT_EQ(made.error().code, Code::kRefused) << why(made);
  const auto& msg = made.error().message;
  EXPECT_NE(msg.find(certvault::format_date(ca->not_after)), std::string::npos) << msg;
  EXPECT_NE(msg.find("ca create"), std::string::npos) << "no hint how to lift it: " << msg;
  EXPECT_EQ(describe_difference(before, snapshot(dir_)), "");
}

TEST_F(VaultTest, PolicyMaxEndDateRefusesLaterDateUntilCleared) {
  certvault::Policy policy = vault().policy();
  policy.max_end_date = end_of_day_utc(date_in_days(100));
  ASSERT_TRUE(vault().set_policy(policy));
  auto before = snapshot(dir_);
  certvault::IssueRequest req;
  req.nickname = "late";
  req.not_after = end_of_day_utc(date_in_days(200));
  auto made = vault().create(req);
  ASSERT_FALSE(made);
  EXPECT_EQ(made.error().code, Code::kRefused) << why(made);
  EXPECT_NE(made.error().message.find(date_in_days(100)), std::string::npos)
      << made.error().message;
  EXPECT_NE(made.error().message.find("policy"), std::string::npos) << made.error().message;
  EXPECT_EQ(describe_difference(before, snapshot(dir_)), "");

  req.not_after = end_of_day_utc(date_in_days(100));
  EXPECT_TRUE(vault().create(req)) << "the max end date itself is allowed";

  policy.max_end_date.reset();
  ASSERT_TRUE(vault().set_policy(policy));
  req.nickname = "late2";
  req.not_after = end_of_day_utc(date_in_days(200));
  auto later = vault().create(req);
  EXPECT_TRUE(later) << why(later);
  EXPECT_FALSE(Vault::open(dir_)->policy().max_end_date);
}

TEST_F(VaultTest, PolicyUpdateChangesOnlyGivenFields) {
  auto typed =
      vault().update_policy([](certvault::Policy& p) { p.default_key_type = KeyType::kRsa2048; });
  ASSERT_TRUE(typed) << why(typed);
  const auto max = end_of_day_utc(date_in_days(100));
  auto limited = vault().update_policy([&](certvault::Policy& p) { p.max_end_date = max; });
  ASSERT_TRUE(limited) << why(limited);
  EXPECT_EQ(limited->default_key_type, KeyType::kRsa2048) << "the second update lost the first";

  auto kept = Vault::open(dir_)->policy();
  EXPECT_EQ(kept.default_key_type, KeyType::kRsa2048);
  ASSERT_TRUE(kept.max_end_date) << "max end date not kept";
  EXPECT_EQ(*kept.max_end_date, max);
  EXPECT_EQ(kept.default_hash, Hash::kSha256) << "a field nobody set changed";
  EXPECT_EQ(kept.export_rule, certvault::ExportRule::kOnce) << "a field nobody set changed";
  // Both take effect: an entry made without a key type is RSA 2048, and held to the limit.
  auto entry = issue("dflt", 50);
  ASSERT_TRUE(entry.current());
  EXPECT_EQ(entry.current()->key_type, KeyType::kRsa2048);
  certvault::IssueRequest late;
  late.nickname = "late";
  late.not_after = end_of_day_utc(date_in_days(200));
  auto refused = vault().create(late);
  ASSERT_FALSE(refused) << "the max end date set second was not applied";
  EXPECT_EQ(refused.error().code, Code::kRefused) << why(refused);
}

// ---------------------------------------------------------------------------------------
// Vault files

TEST_F(VaultTest, VaultDirectoryIsPrivate) {
  issue("api");
  EXPECT_EQ(file_mode(dir_), 0700u);
  for (const auto& e : fs::recursive_directory_iterator(dir_)) {
    auto mode = file_mode(e.path());
    if (e.is_directory())
      EXPECT_EQ(mode & 077, 0u) << e.path();
    else
      EXPECT_EQ(mode, 0600u) << e.path();
  }
}

TEST(VaultInit, RefusesExistingVault) {
  TempDir tmp;
  auto dir = tmp / "vault";
  auto first = Vault::init(dir, pin(), cheap_init());
  ASSERT_TRUE(first) << why(first);
  auto before = snapshot(dir);
  auto second = Vault::init(dir, pin(), cheap_init());
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, Code::kExists) << why(second);
  EXPECT_EQ(describe_difference(before, snapshot(dir)), "");
}

TEST(VaultInit, RefusesNonEmptyDirectory) {
  TempDir tmp;
  auto dir = tmp / "vault";
  fs::create_directory(dir);
  fs::permissions(dir, fs::perms::owner_all);
  write_file(dir / "notes.txt", "mine");
  auto made = Vault::init(dir, pin(), cheap_init());
  EXPECT_FALSE(made);
  EXPECT_EQ(read_file(dir / "notes.txt"), "mine");
}

TEST(VaultInit, OpenMissingVaultIsNotFound) {
  TempDir tmp;
  auto opened = Vault::open(tmp / "absent");
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code, Code::kNotFound) << why(opened);
}

TEST(VaultInit, OutOfRangeKdfRefusedWithoutCreatingAnything) {
  TempDir tmp;
  auto dir = tmp / "vault";
  for (auto kdf :
       {certvault::KdfParams{kKdfOps, 5ull << 30}, certvault::KdfParams{0, kKdfMemBytes}}) {
    SCOPED_TRACE("ops " + std::to_string(kdf.ops) + ", mem " + std::to_string(kdf.mem_bytes));
    auto options = cheap_init();
    options.kdf = kdf;
    auto made = Vault::init(dir, pin(), options);
    ASSERT_FALSE(made) << "init accepted an out-of-range Argon2id cost";
    EXPECT_EQ(made.error().code, Code::kInvalidInput) << why(made);
    EXPECT_FALSE(fs::exists(dir)) << "the refused init left " << dir;
  }

  auto pin_file = write_secret_file(tmp / "pin", kPin);
  auto r = run({cli(), "--vault", dir.string(), "--pin-file", pin_file.string(), "init",
                "--kdf-ops", "1", "--kdf-mem-kib", "5000000"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  auto lines = r.err_lines();
  ASSERT_EQ(lines.size(), 1u) << "stderr must be exactly one line, was:\n" << r.err;
  EXPECT_EQ(lines[0].rfind("certvault: ", 0), 0u) << lines[0];
  EXPECT_FALSE(fs::exists(dir)) << "the refused init left " << dir;
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(tmp.path())) left.push_back(e.path().string());
  EXPECT_EQ(left, std::vector<std::string>{pin_file.string()}) << "init created files";
}

TEST_F(VaultTest, LooseDirectoryPermissionsRefused) {
  issue("api");
  vault_.reset();
  ::chmod(dir_.c_str(), 0755);
  auto before = snapshot(dir_);
  auto opened = Vault::open(dir_);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code, Code::kBadPermissions) << why(opened);
  EXPECT_NE(opened.error().message.find(dir_.string()), std::string::npos)
      << opened.error().message;
  EXPECT_EQ(describe_difference(before, snapshot(dir_)), "");
}

TEST_F(VaultTest, GroupReadableFileRefused) {
  issue("api");
  vault_.reset();
  // Every file the vault keeps is its business alone; try each one in turn.
  auto clean = snapshot(dir_);
  for (const auto& [rel, content] : clean.files) {
    if (content.empty()) continue;  // the lock file holds nothing to protect
    SCOPED_TRACE(rel);
    ::chmod((dir_ / rel).c_str(), 0644);
    auto before = snapshot(dir_);
    auto opened = Vault::open(dir_);
    certvault::Result<void> outcome;
    if (!opened) {
      outcome = std::unexpected(opened.error());
    } else {
      outcome = opened->unlock(pin());
      if (outcome) {
        // Object files are checked when read: read every one.
        if (auto ca = opened->ca_certificate_der(); !ca) outcome = std::unexpected(ca.error());
        for (const auto& e : opened->entries()) {
          auto k = opened->private_key(e.nickname);
          if (!k) outcome = std::unexpected(k.error());
        }
      }
    }
    ASSERT_FALSE(outcome) << "a 0644 " << rel << " was accepted";
    EXPECT_EQ(outcome.error().code, Code::kBadPermissions) << why(outcome);
    EXPECT_EQ(describe_difference(before, snapshot(dir_)), "");
    ::chmod((dir_ / rel).c_str(), 0600);
  }
}

TEST_F(VaultTest, OpenReadsPublicDataWithoutPin) {
  issue("api");
  auto opened = Vault::open(dir_);
  ASSERT_TRUE(opened) << why(opened);
  EXPECT_FALSE(opened->unlocked());
  EXPECT_EQ(opened->label(), "ops");
  EXPECT_EQ(opened->kdf().ops, kKdfOps);
  EXPECT_EQ(opened->kdf().mem_bytes, kKdfMemBytes);
  ASSERT_EQ(opened->entries().size(), 1u);
  auto der = opened->certificate_der("api");
  ASSERT_TRUE(der) << why(der);
  EXPECT_TRUE(x509_from_der(*der));
  auto key = opened->private_key("api");
  ASSERT_FALSE(key);
  EXPECT_EQ(key.error().code, Code::kLocked) << why(key);
}

TEST_F(VaultTest, SecondHandleSeesCommitOfFirst) {
  auto other = Vault::open(dir_);
  ASSERT_TRUE(other) << why(other);
  EXPECT_FALSE(other->find("api"));
  issue("api");
  EXPECT_TRUE(other->find("api")) << "a commit by another handle was not noticed";
  ASSERT_TRUE(other->unlock(pin()));
  certvault::IssueRequest req;
  req.nickname = "web";
  req.not_after = certvault::now() + 30 * kDay;
  ASSERT_TRUE(other->create(req));
  EXPECT_TRUE(vault().find("web"));
  EXPECT_EQ(vault().entries().size(), 2u);
}

// The label is JSON text in the manifest and CK_UTF8CHAR in PKCS#11: bytes that are not
// UTF-8 were stored as U+FFFD, a label other than the one given (found through
// fuzz/manifest_fuzz.cc). They are refused, and nothing is created.
TEST(VaultInit, RefusesALabelThatIsNotUtf8) {
  TempDir tmp;
  auto dir = tmp / "vault";
  for (const std::string label : {"caf\xe9",
                                  "a\xed\xa0\x80"
                                  "b",
                                  "\xc0\xaf", "\xf4\x90\x80\x80"}) {
    auto options = cheap_init(label);
    auto made = Vault::init(dir, pin(), options);
    ASSERT_FALSE(made) << "init accepted a label that is not UTF-8";
    EXPECT_EQ(made.error().code, Code::kInvalidInput) << why(made);
    EXPECT_NE(made.error().message.find("UTF-8"), std::string::npos) << why(made);
    EXPECT_FALSE(fs::exists(dir)) << "the refused init left " << dir;
  }
  auto made = Vault::init(dir, pin(), cheap_init("caf\xc3\xa9 \xf0\x9f\x94\x91"));
  ASSERT_TRUE(made) << why(made);
  EXPECT_EQ(made->first.label(), "caf\xc3\xa9 \xf0\x9f\x94\x91");
  EXPECT_EQ(Vault::open(dir).value().label(), "caf\xc3\xa9 \xf0\x9f\x94\x91");
}

TEST(VaultInit, InitRefusesPinEndingInNewline) {
  TempDir tmp;
  for (std::string_view bad : {"test-pin\n", "test-pin\r", "test-pin\r\n"}) {
    SCOPED_TRACE(testing::PrintToString(std::string(bad)));
    auto made = Vault::init(tmp / "v", certvault::SecureBytes::from(bad), cheap_init());
    ASSERT_FALSE(made) << "a PIN ending in a line break was accepted";
    EXPECT_EQ(made.error().code, certvault::Code::kInvalidInput) << why(made);
    EXPECT_NE(made.error().message.find("line break"), std::string::npos) << why(made);
    EXPECT_FALSE(fs::exists(tmp / "v" / "manifest"));
  }
}

TEST_F(VaultTest, NewPinEndingInLineBreakIsRefusedByEveryPinChange) {
  const auto bad = certvault::SecureBytes::from("new-pin\n");
  auto changed = vault().change_pin(bad);
  ASSERT_FALSE(changed);
  EXPECT_EQ(changed.error().code, certvault::Code::kInvalidInput) << why(changed);
  auto reset = vault().reset_pin(recovery_, &bad);
  ASSERT_FALSE(reset);
  EXPECT_EQ(reset.error().code, certvault::Code::kInvalidInput) << why(reset);
  ASSERT_TRUE(vault().unlock_with_recovery(recovery_));
  auto after_recovery = vault().set_pin_after_recovery(bad);
  ASSERT_FALSE(after_recovery);
  EXPECT_EQ(after_recovery.error().code, certvault::Code::kInvalidInput) << why(after_recovery);
  // The PIN is still the old one.
  auto other = Vault::open(dir_);
  ASSERT_TRUE(other) << why(other);
  EXPECT_TRUE(other->unlock(pin()));
}

TEST_F(VaultTest, EmptyPinCostsNoTry) {
  auto other = Vault::open(dir_);
  ASSERT_TRUE(other) << why(other);
  auto r = other->unlock(certvault::SecureBytes());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, certvault::Code::kInvalidInput) << why(r);
  EXPECT_EQ(other->pin_failures(), 0);
  ASSERT_FALSE(other->unlock(certvault::SecureBytes::from("wrong")));
  EXPECT_EQ(other->pin_failures(), 1);
}

// After unlock the manifest is authenticated: a change made behind the handle's back is
// damage on every later call, never a quietly "locked" vault or stale data.
TEST_F(VaultTest, ManifestTamperedAfterUnlockIsDamageUntilLocked) {
  issue("api");
  const auto manifest = dir_ / "manifest";
  std::string bytes = read_file(manifest);
  const size_t at = bytes.find("\tapi\t");
  ASSERT_NE(at, std::string::npos);
  bytes[at + 3] = 'x';  // "apx": still well-formed, but not what the MAC covers
  overwrite_in_place(manifest, bytes);
  for (int i = 0; i < 2; ++i) {
    SCOPED_TRACE("refresh " + std::to_string(i + 1));
    auto r = vault().refresh();
    ASSERT_FALSE(r) << "tampered manifest accepted";
    EXPECT_EQ(r.error().code, certvault::Code::kTampered) << why(r);
  }
  auto key = vault().private_key("api");
  ASSERT_FALSE(key);
  EXPECT_EQ(key.error().code, certvault::Code::kTampered) << why(key);
  certvault::IssueRequest req;
  req.nickname = "web";
  req.not_after = certvault::now() + 30 * kDay;
  auto made = vault().create(req);
  ASSERT_FALSE(made);
  EXPECT_EQ(made.error().code, certvault::Code::kTampered) << why(made);
  EXPECT_FALSE(vault().find("apx")) << "tampered data served after unlock";
  // Locked, the handle reads public data again, which carries no MAC to check.
  vault().lock();
  EXPECT_TRUE(vault().refresh());
  auto again = vault().unlock(pin());
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, certvault::Code::kTampered) << why(again);
}

TEST_F(VaultTest, ObjectFileWithLooseModeIsRefusedWhenRead) {
  auto before = snapshot(dir_);
  issue("api");
  std::vector<std::string> added;
  for (const auto& [rel, content] : snapshot(dir_).files)
    if (rel.rfind("objects/", 0) == 0 && !before.files.contains(rel)) added.push_back(rel);
  ASSERT_EQ(added.size(), 1u) << "expected one new file under objects/ for the new entry";
  auto object = dir_ / added[0];
  ASSERT_EQ(::chmod(object.c_str(), 0644), 0);
  vault_.reset();

  auto opened = Vault::open(dir_);
  ASSERT_TRUE(opened) << why(opened);
  auto unlocked = opened->unlock(pin());
  ASSERT_TRUE(unlocked) << "unlock needs no object file: " << why(unlocked);
  auto key = opened->private_key("api");
  ASSERT_FALSE(key) << "the key was read from a 0644 object file";
  EXPECT_EQ(key.error().code, Code::kBadPermissions) << why(key);
  EXPECT_NE(key.error().message.find(object.string()), std::string::npos)
      << "the file is not named: " << key.error().message;
  EXPECT_NE(key.error().message.find("chmod 0600"), std::string::npos)
      << "no fix given: " << key.error().message;
}

// ---------------------------------------------------------------------------------------
// Issuing

TEST_F(VaultTest, IssuedCertificateHasClientAuthProfile) {
  auto date = date_in_days(200);
  certvault::IssueRequest req;
  req.nickname = "api-prod";
  req.not_after = end_of_day_utc(date);
  auto made = vault().create(req);
  ASSERT_TRUE(made) << why(made);
  auto der = vault().certificate_der("api-prod");
  ASSERT_TRUE(der) << why(der);
  auto cert = x509_from_der(*der);
  ASSERT_TRUE(cert);

  EXPECT_EQ(X509_get_version(cert.get()), 2) << "not X.509 v3";
  EXPECT_TRUE(X509_get_extended_key_usage(cert.get()) & XKU_SSL_CLIENT);
  EXPECT_TRUE(X509_get_key_usage(cert.get()) & KU_DIGITAL_SIGNATURE);
  EXPECT_TRUE(ext_critical(cert.get(), NID_key_usage));
  EXPECT_EQ(X509_check_ca(cert.get()), 0);
  EXPECT_TRUE(ext_critical(cert.get(), NID_basic_constraints));
  EXPECT_TRUE(X509_get0_subject_key_id(cert.get()));
  EXPECT_TRUE(X509_get0_authority_key_id(cert.get()));
  EXPECT_EQ(asn1_to_time(X509_get0_notAfter(cert.get())), end_of_day_utc(date));

  char cn[128] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert.get()), NID_commonName, cn, sizeof cn);
  EXPECT_STREQ(cn, "api-prod");

  auto ca_der = vault().ca_certificate_der();
  ASSERT_TRUE(ca_der) << why(ca_der);
  auto ca = x509_from_der(*ca_der);
  ASSERT_TRUE(ca);
  EXPECT_EQ(X509_verify(cert.get(), X509_get0_pubkey(ca.get())), 1) << "not signed by vault CA";
  EXPECT_EQ(X509_check_issued(ca.get(), cert.get()), X509_V_OK);

  const auto* gen = made->current();
  ASSERT_TRUE(gen);
  EXPECT_EQ(gen->status, Status::kActive);
  EXPECT_EQ(gen->issuer, certvault::IssuerKind::kVaultCa);
  EXPECT_EQ(lower(gen->fingerprint), sha256_hex(*der));
  EXPECT_EQ(gen->not_after, end_of_day_utc(date));
  auto found = vault().find_by_fingerprint(gen->fingerprint);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->nickname, "api-prod");
  auto by_id = vault().find_by_key_id(gen->key_id);
  ASSERT_TRUE(by_id);
  EXPECT_EQ(by_id->nickname, "api-prod");
}

TEST_F(VaultTest, SerialsAreRandomAndDistinct) {
  auto a = issue("a");
  auto b = issue("b");
  ASSERT_TRUE(a.current() && b.current());
  EXPECT_NE(a.current()->serial, b.current()->serial);
  // 128 random bits: leading zero nibbles aside, far more than 16 hex digits.
  EXPECT_GE(a.current()->serial.size(), 20u) << a.current()->serial;
}

class KeyTypes : public VaultTest, public ::testing::WithParamInterface<KeyType> {};

TEST_P(KeyTypes, IssuesKeyOfRequestedTypeMatchingCertificate) {
  auto entry = issue("k", 200, GetParam());
  ASSERT_TRUE(entry.current());
  EXPECT_EQ(entry.current()->key_type, GetParam());
  auto key = vault().private_key("k");
  ASSERT_TRUE(key) << why(key);
  auto cert = x509_from_der(*vault().certificate_der("k"));
  ASSERT_TRUE(cert);
  EXPECT_EQ(X509_check_private_key(cert.get(), key->get()), 1);
  int id = EVP_PKEY_get_base_id(key->get());
  int bits = EVP_PKEY_get_bits(key->get());
  switch (GetParam()) {
    case KeyType::kEcP256:
      EXPECT_TRUE(id == EVP_PKEY_EC && bits == 256);
      break;
    case KeyType::kEcP384:
      EXPECT_TRUE(id == EVP_PKEY_EC && bits == 384);
      break;
    case KeyType::kRsa2048:
      EXPECT_TRUE(id == EVP_PKEY_RSA && bits == 2048);
      break;
    case KeyType::kRsa3072:
      EXPECT_TRUE(id == EVP_PKEY_RSA && bits == 3072);
      break;
    case KeyType::kRsa4096:
      EXPECT_TRUE(id == EVP_PKEY_RSA && bits == 4096);
      break;
    case KeyType::kEd25519:
      EXPECT_EQ(id, EVP_PKEY_ED25519);
      break;
  }
  auto spki = vault().public_key_der("k");
  ASSERT_TRUE(spki) << why(spki);
  const unsigned char* p = spki->data();
  PkeyPtr pub(d2i_PUBKEY(nullptr, &p, static_cast<long>(spki->size())));
  ASSERT_TRUE(pub);
  EXPECT_EQ(EVP_PKEY_eq(pub.get(), key->get()), 1);
}

INSTANTIATE_TEST_SUITE_P(Vault, KeyTypes,
                         ::testing::Values(KeyType::kEcP256, KeyType::kEcP384, KeyType::kRsa2048,
                                           KeyType::kRsa3072, KeyType::kRsa4096, KeyType::kEd25519),
                         [](const auto& info) {
                           std::string s(certvault::to_string(info.param));
                           std::erase(s, '-');
                           return s;
                         });

TEST_F(VaultTest, SelfSignedCertificateSignsItself) {
  auto entry = issue("solo", 100, KeyType::kEcP384, Hash::kSha384, true);
  ASSERT_TRUE(entry.current());
  EXPECT_EQ(entry.current()->issuer, certvault::IssuerKind::kSelfSigned);
  auto cert = x509_from_der(*vault().certificate_der("solo"));
  ASSERT_TRUE(cert);
  EXPECT_EQ(X509_NAME_cmp(X509_get_subject_name(cert.get()), X509_get_issuer_name(cert.get())), 0);
  EXPECT_EQ(X509_verify(cert.get(), X509_get0_pubkey(cert.get())), 1);
  EXPECT_EQ(X509_get_signature_nid(cert.get()), NID_ecdsa_with_SHA384);
  EXPECT_TRUE(X509_get_extended_key_usage(cert.get()) & XKU_SSL_CLIENT);
  EXPECT_EQ(X509_check_ca(cert.get()), 0);
}

TEST_F(VaultTest, CaCertificateIsSelfSignedCa) {
  auto der = vault().ca_certificate_der();
  ASSERT_TRUE(der) << why(der);
  auto ca = x509_from_der(*der);
  ASSERT_TRUE(ca);
  EXPECT_GT(X509_check_ca(ca.get()), 0);
  EXPECT_EQ(X509_verify(ca.get(), X509_get0_pubkey(ca.get())), 1);
  ASSERT_EQ(vault().cas().size(), 1u);
  EXPECT_TRUE(vault().cas()[0].active);
}

TEST_F(VaultTest, SecondCaNeedsReplace) {
  auto before = snapshot(dir_);
  certvault::CaRequest req;
  req.not_after = certvault::now() + 365 * kDay;
  auto again = vault().create_ca(req);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Code::kExists) << why(again);
  EXPECT_NE(again.error().message.find("replace"), std::string::npos) << again.error().message;
  EXPECT_EQ(describe_difference(before, snapshot(dir_)), "");

  auto old_ca = vault().active_ca();
  req.replace = true;
  auto replaced = vault().create_ca(req);
  ASSERT_TRUE(replaced) << why(replaced);
  ASSERT_EQ(vault().cas().size(), 2u);
  EXPECT_EQ(vault().active_ca()->fingerprint, replaced->fingerprint);
  EXPECT_NE(replaced->fingerprint, old_ca->fingerprint);
  auto e = issue("after-replace", 30);
  auto cert = x509_from_der(*vault().certificate_der("after-replace"));
  auto ca = x509_from_der(*vault().ca_certificate_der());
  EXPECT_EQ(X509_verify(cert.get(), X509_get0_pubkey(ca.get())), 1);
}

// The signature algorithm of an entry's certificate, by its OpenSSL long name.
std::string signature_algorithm(const Vault& vault, const std::string& nickname) {
  auto der = vault.certificate_der(nickname);
  if (!der) return why(der);
  auto cert = x509_from_der(*der);
  if (!cert) return "unreadable certificate";
  return OBJ_nid2ln(X509_get_signature_nid(cert.get()));
}

// Whether an entry's certificate verifies under the vault's active CA.
bool signed_by_active_ca(const Vault& vault, const std::string& nickname) {
  auto der = vault.certificate_der(nickname);
  auto ca_der = vault.ca_certificate_der();
  if (!der || !ca_der) return false;
  auto cert = x509_from_der(*der);
  auto ca = x509_from_der(*ca_der);
  return cert && ca && X509_verify(cert.get(), X509_get0_pubkey(ca.get())) == 1;
}

TEST_F(VaultTest, HashFollowsTheSigningKey) {
  ASSERT_EQ(vault().active_ca()->key_type, KeyType::kEcP256);
  // An Ed25519 client key does not make the EC CA sign without a hash.
  issue("ed-default", 100, KeyType::kEd25519);
  EXPECT_EQ(signature_algorithm(vault(), "ed-default"), OBJ_nid2ln(NID_ecdsa_with_SHA256));
  EXPECT_TRUE(signed_by_active_ca(vault(), "ed-default"));
  issue("ed-384", 100, KeyType::kEd25519, Hash::kSha384);
  EXPECT_EQ(signature_algorithm(vault(), "ed-384"), OBJ_nid2ln(NID_ecdsa_with_SHA384));
  EXPECT_TRUE(signed_by_active_ca(vault(), "ed-384"));

  certvault::CaRequest ed_ca;
  ed_ca.not_after = certvault::now() + 3650 * kDay;
  ed_ca.key_type = KeyType::kEd25519;
  ed_ca.replace = true;
  auto replaced = vault().create_ca(ed_ca);
  ASSERT_TRUE(replaced) << why(replaced);
  EXPECT_EQ(replaced->key_type, KeyType::kEd25519);

  // An Ed25519 CA signs an EC client certificate with Ed25519, which has no separate hash.
  issue("ec-under-ed", 100, KeyType::kEcP256);
  EXPECT_EQ(signature_algorithm(vault(), "ec-under-ed"), OBJ_nid2ln(NID_ED25519));
  EXPECT_TRUE(signed_by_active_ca(vault(), "ec-under-ed"));

  auto before = snapshot(dir_);
  certvault::IssueRequest req;
  req.nickname = "ec-384-under-ed";
  req.not_after = end_of_day_utc(date_in_days(100));
  req.key_type = KeyType::kEcP256;
  req.hash = Hash::kSha384;
  auto made = vault().create(req);
  ASSERT_FALSE(made) << "a hash the Ed25519 CA cannot use was accepted";
  EXPECT_EQ(made.error().code, Code::kInvalidInput) << why(made);
  EXPECT_EQ(describe_difference(before, snapshot(dir_)), "");
  EXPECT_FALSE(vault().find("ec-384-under-ed"));
}

// ---------------------------------------------------------------------------------------
// Secrets at rest

// Searches every file under the vault for the key's private bytes in any usual spelling.
void ExpectNotInClear(const fs::path& dir, EVP_PKEY* key, const std::string& what) {
  auto snap = snapshot(dir);
  auto needles = secret_encodings(key);
  ASSERT_FALSE(needles.empty());
  for (const auto& [label, needle] : needles)
    for (const auto& [file, content] : snap.files)
      EXPECT_EQ(content.find(needle), std::string::npos)
          << what << ": " << label << " found in the clear in " << file;
}

TEST_F(VaultTest, NoPrivateKeyInTheClear) {
  std::vector<std::string> nicks;
  for (auto type : {KeyType::kEcP256, KeyType::kEcP384, KeyType::kRsa2048, KeyType::kRsa3072,
                    KeyType::kRsa4096, KeyType::kEd25519}) {
    std::string nick = "k-" + std::string(certvault::to_string(type));
    issue(nick, 200, type);
    nicks.push_back(nick);
  }
  issue("self", 200, KeyType::kEd25519, {}, true);
  nicks.push_back("self");

  // An imported key goes through another path; it must be sealed just the same.
  auto imported_key = generate_ec_key();
  auto imported_cert = make_self_signed(imported_key.get(), "imported", -60, 90 * kDay);
  auto imported = vault().import_pem(
      "imported", x509_to_pem(imported_cert.get()) + key_to_pem(imported_key.get()));
  ASSERT_TRUE(imported) << why(imported);
  nicks.push_back("imported");

  // A pending key (CSR made, certificate not attached yet).
  certvault::CsrRequest csr;
  csr.nickname = "pending";
  ASSERT_TRUE(vault().make_csr(csr));

  // Rotation leaves the old key behind; neither may be in the clear.
  auto rotated = vault().rotate("k-ec-p256", {});
  ASSERT_TRUE(rotated) << why(rotated);

  ExpectNotInClear(dir_, imported_key.get(), "imported key (original)");
  for (const auto& nick : nicks) {
    auto entry = vault().find(nick);
    ASSERT_TRUE(entry) << nick;
    for (const auto& gen : entry->generations) {
      auto key = vault().private_key(nick, gen.number);
      if (!key && gen.status == Status::kSuperseded) continue;  // may be dropped on rotation
      ASSERT_TRUE(key) << nick << " gen " << gen.number << ": " << why(key);
      ExpectNotInClear(dir_, key->get(), nick + " gen " + std::to_string(gen.number));
    }
  }
  auto pending = vault().private_key("pending", 1);
  if (pending) ExpectNotInClear(dir_, pending->get(), "pending CSR key");
}

TEST(VaultCa, ImportedCaKeyNotInTheClearAndIssues) {
  TempDir tmp;
  auto dir = tmp / "vault";
  auto made = Vault::init(dir, pin(), cheap_init());
  ASSERT_TRUE(made) << why(made);
  auto& vault = made->first;
  auto ca_key = generate_ec_key();
  auto ca_cert = make_self_signed(ca_key.get(), "Imported CA", -60, 365 * kDay, true);
  ASSERT_TRUE(ca_cert);
  auto imported = vault.import_ca(x509_to_pem(ca_cert.get()), key_to_pem(ca_key.get()));
  ASSERT_TRUE(imported) << why(imported);
  certvault::IssueRequest req;
  req.nickname = "api";
  req.not_after = certvault::now() + 30 * kDay;
  ASSERT_TRUE(vault.create(req));
  auto cert = x509_from_der(*vault.certificate_der("api"));
  ASSERT_TRUE(cert);
  EXPECT_EQ(X509_verify(cert.get(), ca_key.get()), 1) << "not issued by the imported CA";
  ExpectNotInClear(dir, ca_key.get(), "imported CA key");
}

TEST_F(VaultTest, RecoverySecretAndPinNotStoredInClear) {
  issue("api");
  auto snap = snapshot(dir_);
  std::string recovery(recovery_.view());
  for (const auto& [file, content] : snap.files) {
    EXPECT_EQ(content.find(kPin), std::string::npos) << "PIN in " << file;
    EXPECT_EQ(content.find(recovery), std::string::npos) << "recovery secret in " << file;
  }
}

// ---------------------------------------------------------------------------------------
// PIN

TEST_F(VaultTest, WrongPinCountsDownAndCountIsOnDisk) {
  vault().lock();
  EXPECT_FALSE(vault().unlocked());
  EXPECT_EQ(vault().pin_attempts_left(), Vault::kMaxPinFailures);
  auto wrong = SecureBytes::from("not-the-pin");
  for (int i = 1; i <= 3; ++i) {
    auto r = vault().unlock(wrong);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Code::kWrongPin) << why(r);
    EXPECT_EQ(r.error().message.find("not-the-pin"), std::string::npos) << "message shows PIN";
    EXPECT_EQ(vault().pin_attempts_left(), Vault::kMaxPinFailures - i);
    auto fresh = Vault::open(dir_);
    ASSERT_TRUE(fresh);
    EXPECT_EQ(fresh->pin_failures(), i) << "count not on disk";
  }
  ASSERT_TRUE(vault().unlock(pin()));
  EXPECT_EQ(vault().pin_failures(), 0) << "correct PIN did not reset the count";
  EXPECT_EQ(Vault::open(dir_)->pin_failures(), 0);
}

TEST_F(VaultTest, LocksAfterTenWrongPinsEvenForCorrectPin) {
  issue("api");
  vault().lock();
  auto wrong = SecureBytes::from("0000");
  for (int i = 0; i < Vault::kMaxPinFailures; ++i) {
    auto r = vault().unlock(wrong);
    ASSERT_FALSE(r);
    EXPECT_TRUE(r.error().code == Code::kWrongPin || r.error().code == Code::kPinLocked) << why(r);
  }
  EXPECT_EQ(vault().pin_attempts_left(), 0);
  auto right = vault().unlock(pin());
  ASSERT_FALSE(right) << "correct PIN accepted on a locked vault";
  EXPECT_EQ(right.error().code, Code::kPinLocked) << why(right);
  EXPECT_FALSE(vault().unlocked());

  // Another process sees the same lock.
  auto fresh = Vault::open(dir_);
  ASSERT_TRUE(fresh);
  EXPECT_EQ(fresh->pin_attempts_left(), 0);
  auto r = fresh->unlock(pin());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kPinLocked) << why(r);
  EXPECT_EQ(fresh->private_key("api").error().code, Code::kLocked);
}

TEST_F(VaultTest, RecoverySecretLiftsLockoutAndWrongRecoveryIsRefused) {
  issue("api");
  vault().lock();
  auto wrong = SecureBytes::from("0000");
  for (int i = 0; i < Vault::kMaxPinFailures; ++i) (void)vault().unlock(wrong);
  ASSERT_EQ(vault().pin_attempts_left(), 0);

  // Well-formed, but not this vault's: the last digit changed.
  std::string wrong_recovery(recovery_.view());
  wrong_recovery.back() = wrong_recovery.back() == '0' ? '1' : '0';
  auto bad = vault().reset_pin(SecureBytes::from(wrong_recovery), nullptr);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Code::kWrongPin) << why(bad);
  EXPECT_EQ(vault().unlock(pin()).error().code, Code::kPinLocked)
      << "a wrong recovery secret lifted the lock";

  auto good = vault().reset_pin(recovery_, nullptr);
  ASSERT_TRUE(good) << why(good);
  EXPECT_EQ(vault().pin_attempts_left(), Vault::kMaxPinFailures);
  auto fresh = Vault::open(dir_);
  ASSERT_TRUE(fresh);
  auto unlocked = fresh->unlock(pin());
  ASSERT_TRUE(unlocked) << why(unlocked);
  EXPECT_TRUE(fresh->private_key("api")) << "key lost after reset";
}

TEST_F(VaultTest, RecoverySecretSetsNewPin) {
  issue("api");
  auto new_pin = SecureBytes::from("brand-new-pin");
  auto reset = vault().reset_pin(recovery_, &new_pin);
  ASSERT_TRUE(reset) << why(reset);
  auto fresh = Vault::open(dir_);
  ASSERT_TRUE(fresh);
  EXPECT_EQ(fresh->unlock(pin()).error().code, Code::kWrongPin);
  auto r = fresh->unlock(new_pin);
  ASSERT_TRUE(r) << why(r);
  EXPECT_TRUE(fresh->private_key("api"));
}

TEST_F(VaultTest, ChangePinReplacesOldPin) {
  issue("api");
  auto new_pin = SecureBytes::from("another-pin-99");
  auto changed = vault().change_pin(new_pin);
  ASSERT_TRUE(changed) << why(changed);
  auto fresh = Vault::open(dir_);
  ASSERT_TRUE(fresh);
  auto old = fresh->unlock(pin());
  ASSERT_FALSE(old);
  EXPECT_EQ(old.error().code, Code::kWrongPin);
  auto r = fresh->unlock(new_pin);
  ASSERT_TRUE(r) << why(r);
  EXPECT_TRUE(fresh->private_key("api"));
}

TEST_F(VaultTest, LockForgetsKeys) {
  issue("api");
  ASSERT_TRUE(vault().private_key("api"));
  vault().lock();
  auto key = vault().private_key("api");
  ASSERT_FALSE(key);
  EXPECT_EQ(key.error().code, Code::kLocked);
  certvault::IssueRequest req;
  req.nickname = "web";
  req.not_after = certvault::now() + 30 * kDay;
  EXPECT_EQ(vault().create(req).error().code, Code::kLocked);
}

// The entry's key loads and belongs to its current certificate.
void ExpectKeyMatchesCertificate(const Vault& vault, const std::string& nickname) {
  SCOPED_TRACE(nickname);
  auto key = vault.private_key(nickname);
  ASSERT_TRUE(key) << why(key);
  auto der = vault.certificate_der(nickname);
  ASSERT_TRUE(der) << why(der);
  auto cert = x509_from_der(*der);
  ASSERT_TRUE(cert);
  EXPECT_EQ(X509_check_private_key(cert.get(), key->get()), 1) << "key and certificate differ";
}

TEST_F(VaultTest, LockThenUnlockAfterOwnCommitsWorks) {
  for (const char* nickname : {"a", "b", "c"}) issue(nickname);
  vault().lock();
  auto unlocked = vault().unlock(pin());
  ASSERT_TRUE(unlocked) << "after creating entries: " << why(unlocked);
  for (const char* nickname : {"a", "b", "c"}) ExpectKeyMatchesCertificate(vault(), nickname);

  auto rotated = vault().rotate("a", {});
  ASSERT_TRUE(rotated) << why(rotated);
  ASSERT_TRUE(vault().remove("b"));
  vault().lock();
  unlocked = vault().unlock(pin());
  ASSERT_TRUE(unlocked) << "after rotate and delete: " << why(unlocked);
  ExpectKeyMatchesCertificate(vault(), "a");
  ExpectKeyMatchesCertificate(vault(), "c");
  EXPECT_EQ(vault().private_key("b").error().code, Code::kNotFound);

  // Another handle commits in between.
  auto other = Vault::open(dir_);
  ASSERT_TRUE(other) << why(other);
  ASSERT_TRUE(other->unlock(pin()));
  certvault::IssueRequest req;
  req.nickname = "from-other";
  req.not_after = end_of_day_utc(date_in_days(100));
  auto made = other->create(req);
  ASSERT_TRUE(made) << why(made);
  vault().lock();
  unlocked = vault().unlock(pin());
  ASSERT_TRUE(unlocked) << "after another handle's commit: " << why(unlocked);
  EXPECT_TRUE(vault().find("from-other")) << "the other handle's entry is not seen";
  ExpectKeyMatchesCertificate(vault(), "from-other");
  ExpectKeyMatchesCertificate(vault(), "c");
}

// ---------------------------------------------------------------------------------------
// Lifecycle

TEST_F(VaultTest, RotateSupersedesOldGenerationUnderSameNickname) {
  auto first = issue("api");
  ASSERT_TRUE(first.current());
  auto old_serial = first.current()->serial;
  auto old_key = vault().private_key("api");
  ASSERT_TRUE(old_key);
  auto new_end = end_of_day_utc(date_in_days(300));
  auto rotated = vault().rotate("api", new_end);
  ASSERT_TRUE(rotated) << why(rotated);

  auto fresh = Vault::open(dir_);
  ASSERT_TRUE(fresh);
  auto entry = fresh->find("api");
  ASSERT_TRUE(entry);
  ASSERT_EQ(entry->generations.size(), 2u);
  ASSERT_TRUE(entry->current());
  EXPECT_EQ(entry->current()->number, entry->generations[1].number);
  EXPECT_NE(entry->current()->serial, old_serial);
  EXPECT_EQ(entry->current()->not_after, new_end);
  EXPECT_EQ(entry->generations[0].status, Status::kSuperseded);
  EXPECT_EQ(entry->id, first.id) << "entry id changed on rotation";

  auto der = fresh->certificate_der("api");
  ASSERT_TRUE(der);
  EXPECT_EQ(sha256_hex(*der), lower(entry->current()->fingerprint));
  ASSERT_TRUE(vault().unlocked());
  auto new_key = vault().private_key("api");
  ASSERT_TRUE(new_key);
  EXPECT_NE(EVP_PKEY_eq(new_key->get(), old_key->get()), 1) << "rotation kept the key";
  auto cert = x509_from_der(*der);
  EXPECT_EQ(X509_check_private_key(cert.get(), new_key->get()), 1);
}

// The keystore hands out a signing handle only for a generation that may still sign, and
// says why not in words meant for any program (no CLI command in them).
TEST_F(VaultTest, SigningKeyFollowsTheStatusRules) {
  issue("api");
  ASSERT_TRUE(vault().rotate("api", {}));
  EXPECT_TRUE(vault().signing_key("api", 1)) << "a replaced generation signs until its notAfter";
  EXPECT_TRUE(vault().signing_key("api"));
  auto missing = vault().signing_key("api", 7);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Code::kNotFound);
  EXPECT_NE(missing.error().message.find("has no generation 7"), std::string::npos) << why(missing);

  ASSERT_TRUE(vault().disable("api"));
  for (std::optional<uint32_t> generation :
       {std::optional<uint32_t>{1}, std::optional<uint32_t>{2}, std::optional<uint32_t>{}}) {
    auto key = vault().signing_key("api", generation);
    ASSERT_FALSE(key) << "generation " << generation.value_or(0) << " of a disabled entry signs";
    EXPECT_EQ(key.error().code, Code::kRefused);
    EXPECT_EQ(key.error().message, "'api' is disabled");
  }
}

TEST_F(VaultTest, DisableEnableDelete) {
  issue("api");
  auto disabled = vault().disable("api");
  ASSERT_TRUE(disabled) << why(disabled);
  auto entry = Vault::open(dir_)->find("api");
  ASSERT_TRUE(entry);
  EXPECT_EQ(entry->current(), nullptr) << "a disabled entry still resolves";
  EXPECT_EQ(entry->newest()->status, Status::kDisabled);
  {
    certvault::ExportRequest req;
    req.nickname = "api";
    req.out = tmp_ / "disabled.p12";
    auto exported = vault().export_pkcs12(req);
    ASSERT_FALSE(exported);
    EXPECT_EQ(exported.error().code, Code::kRefused) << why(exported);
    EXPECT_FALSE(fs::exists(req.out));
  }

  auto enabled = vault().enable("api");
  ASSERT_TRUE(enabled) << why(enabled);
  entry = Vault::open(dir_)->find("api");
  ASSERT_TRUE(entry && entry->current());
  EXPECT_EQ(entry->current()->status, Status::kActive);

  ASSERT_TRUE(vault().remove("api"));
  EXPECT_FALSE(Vault::open(dir_)->find("api"));
  EXPECT_EQ(vault().remove("api").error().code, Code::kNotFound);
  EXPECT_EQ(vault().private_key("api").error().code, Code::kNotFound);
  // The nickname is free again.
  issue("api");
}

// ---------------------------------------------------------------------------------------
// PKCS#12

TEST_F(VaultTest, ExportsOnceThenRefusesWithRotateHint) {
  issue("api");
  certvault::ExportRequest req;
  req.nickname = "api";
  req.out = tmp_ / "api.p12";
  auto password = vault().export_pkcs12(req);
  ASSERT_TRUE(password) << why(password);
  EXPECT_GE(password->size(), 12u) << "weak generated password";
  EXPECT_EQ(file_mode(req.out), 0600u);
  EXPECT_NE(vault().find("api")->current()->exported_at, 0);

  // The file opens with the password and holds the entry's key and certificate.
  auto bytes = read_bytes(req.out);
  const unsigned char* p = bytes.data();
  std::unique_ptr<PKCS12, decltype(&PKCS12_free)> p12(
      d2i_PKCS12(nullptr, &p, static_cast<long>(bytes.size())), PKCS12_free);
  ASSERT_TRUE(p12);
  std::string pw(password->view());
  EXPECT_EQ(PKCS12_verify_mac(p12.get(), pw.c_str(), static_cast<int>(pw.size())), 1);
  EVP_PKEY* k = nullptr;
  X509* c = nullptr;
  ASSERT_EQ(PKCS12_parse(p12.get(), pw.c_str(), &k, &c, nullptr), 1);
  PkeyPtr key(k);
  X509Ptr cert(c);
  EXPECT_EQ(EVP_PKEY_eq(key.get(), vault().private_key("api")->get()), 1);

  auto before = snapshot(dir_);
  req.out = tmp_ / "again.p12";
  auto again = vault().export_pkcs12(req);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Code::kRefused) << why(again);
  EXPECT_NE(again.error().message.find("rotate"), std::string::npos) << again.error().message;
  EXPECT_FALSE(fs::exists(req.out));
  EXPECT_EQ(describe_difference(before, snapshot(dir_)), "");

  // A new generation may be exported once more.
  ASSERT_TRUE(vault().rotate("api", {}));
  req.out = tmp_ / "rotated.p12";
  EXPECT_TRUE(vault().export_pkcs12(req));
}

TEST_F(VaultTest, ExportNeverPolicyRefusesExport) {
  issue("api");
  auto policy = vault().policy();
  policy.export_rule = certvault::ExportRule::kNever;
  ASSERT_TRUE(vault().set_policy(policy));
  certvault::ExportRequest req;
  req.nickname = "api";
  req.out = tmp_ / "api.p12";
  auto exported = vault().export_pkcs12(req);
  ASSERT_FALSE(exported);
  EXPECT_EQ(exported.error().code, Code::kRefused);
  EXPECT_FALSE(fs::exists(req.out));
}

TEST_F(VaultTest, ExportNeverOverwritesAFile) {
  issue("api");
  write_file(tmp_ / "taken.p12", "precious");
  certvault::ExportRequest req;
  req.nickname = "api";
  req.out = tmp_ / "taken.p12";
  auto exported = vault().export_pkcs12(req);
  ASSERT_FALSE(exported);
  EXPECT_EQ(read_file(req.out), "precious");
  EXPECT_EQ(vault().find("api")->current()->exported_at, 0) << "a failed export counted";
}

TEST_F(VaultTest, Pkcs12ExportImportRoundTrip) {
  issue("api", 200, KeyType::kRsa2048, Hash::kSha384);
  certvault::ExportRequest req;
  req.nickname = "api";
  req.out = tmp_ / "api.p12";
  req.chain = true;
  auto password = vault().export_pkcs12(req);
  ASSERT_TRUE(password) << why(password);

  auto other = Vault::init(tmp_ / "other", pin(), cheap_init("other"));
  ASSERT_TRUE(other) << why(other);
  auto& second = other->first;
  auto bytes = read_bytes(req.out);
  auto imported = second.import_pkcs12("copy", bytes, *password);
  ASSERT_TRUE(imported) << why(imported);
  ASSERT_TRUE(imported->current());
  EXPECT_EQ(imported->current()->fingerprint, vault().find("api")->current()->fingerprint);
  EXPECT_EQ(imported->current()->issuer, certvault::IssuerKind::kExternal);
  auto k1 = vault().private_key("api");
  auto k2 = second.private_key("copy");
  ASSERT_TRUE(k1 && k2) << why(k2);
  EXPECT_EQ(EVP_PKEY_eq(k1->get(), k2->get()), 1);
  ExpectNotInClear(tmp_ / "other", k2->get(), "key imported from PKCS#12");
  auto chain = second.chain_der("copy");
  ASSERT_TRUE(chain) << why(chain);
  EXPECT_FALSE(chain->empty());
}

TEST_F(VaultTest, ImportRefusesKeyNotMatchingCertificate) {
  auto key1 = generate_ec_key();
  auto key2 = generate_ec_key();
  auto cert = make_self_signed(key1.get(), "mismatch", -60, 30 * kDay);
  auto before = snapshot(dir_);
  auto imported = vault().import_pem("mismatch", x509_to_pem(cert.get()) + key_to_pem(key2.get()));
  ASSERT_FALSE(imported);
  EXPECT_EQ(imported.error().code, Code::kInvalidInput) << why(imported);
  EXPECT_EQ(describe_difference(before, snapshot(dir_)), "");
}

TEST_F(VaultTest, ImportRefusesWrongPkcs12Password) {
  issue("api");
  certvault::ExportRequest req;
  req.nickname = "api";
  req.out = tmp_ / "api.p12";
  ASSERT_TRUE(vault().export_pkcs12(req));
  auto before = snapshot(dir_);
  auto imported =
      vault().import_pkcs12("copy", read_bytes(req.out), SecureBytes::from("wrong password"));
  ASSERT_FALSE(imported);
  EXPECT_NE(imported.error().code, Code::kTampered) << why(imported);
  EXPECT_EQ(describe_difference(before, snapshot(dir_)), "");
}

TEST_F(VaultTest, CsrCreatesPendingEntryWithMatchingKey) {
  certvault::CsrRequest req;
  req.nickname = "ext";
  req.subject = "CN=ext.example,O=Example";
  req.key_type = KeyType::kEcP384;
  auto pem = vault().make_csr(req);
  ASSERT_TRUE(pem) << why(pem);
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem->data(), (int)pem->size()),
                                                BIO_free);
  std::unique_ptr<X509_REQ, decltype(&X509_REQ_free)> csr(
      PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr), X509_REQ_free);
  ASSERT_TRUE(csr);
  EXPECT_EQ(X509_REQ_verify(csr.get(), X509_REQ_get0_pubkey(csr.get())), 1);
  char cn[128] = {};
  X509_NAME_get_text_by_NID(X509_REQ_get_subject_name(csr.get()), NID_commonName, cn, sizeof cn);
  EXPECT_STREQ(cn, "ext.example");
  auto entry = vault().find("ext");
  ASSERT_TRUE(entry);
  EXPECT_EQ(entry->current(), nullptr) << "a pending entry resolves";
  ASSERT_TRUE(entry->newest());
  EXPECT_EQ(entry->newest()->status, Status::kPending);
  auto spki = vault().public_key_der("ext", entry->newest()->number);
  ASSERT_TRUE(spki) << why(spki);
  const unsigned char* p = spki->data();
  PkeyPtr pub(d2i_PUBKEY(nullptr, &p, static_cast<long>(spki->size())));
  EXPECT_EQ(EVP_PKEY_eq(pub.get(), X509_REQ_get0_pubkey(csr.get())), 1);
}

TEST_F(VaultTest, GeneratedKeyWaitsForItsCertificateThenAttachMakesItActive) {
  auto made = vault().generate_key("p11 made", KeyType::kEcP384);
  ASSERT_TRUE(made) << why(made);
  ASSERT_EQ(made->current(), nullptr);
  ASSERT_TRUE(made->newest());
  EXPECT_EQ(made->newest()->status, Status::kPending);
  EXPECT_EQ(made->newest()->key_type, KeyType::kEcP384);
  // Stands in for an outside CA: a self-signed client certificate for the waiting key.
  auto key = vault().private_key("p11 made", made->newest()->number);
  ASSERT_TRUE(key) << why(key);
  auto cert = make_self_signed(key->get(), "p11 made", -60, 30 * kDay);
  auto attached = vault().attach("p11 made", x509_to_pem(cert.get()));
  ASSERT_TRUE(attached) << why(attached);
  ASSERT_TRUE(attached->current());
  EXPECT_EQ(attached->current()->key_id, made->newest()->key_id);
  EXPECT_TRUE(vault().certificate_der("p11 made")) << "resolves by nickname now";
}

TEST_F(VaultTest, GenerateKeyRefusesANicknameThatHasACertificate) {
  issue("taken");
  const auto before = snapshot(dir_);
  auto made = vault().generate_key("taken", KeyType::kEcP256);
  ASSERT_FALSE(made);
  EXPECT_EQ(made.error().code, Code::kExists) << why(made);
  EXPECT_EQ(describe_difference(before, snapshot(dir_)), "");
}

TEST_F(VaultTest, RenameMovesEveryGenerationToTheNewNickname) {
  issue("before");
  ASSERT_TRUE(vault().rotate("before", std::nullopt));
  auto renamed = vault().rename("before", "after");
  ASSERT_TRUE(renamed) << why(renamed);
  EXPECT_EQ(renamed->generations.size(), 2u);
  EXPECT_FALSE(vault().find("before"));
  auto fresh = Vault::open(dir_);
  ASSERT_TRUE(fresh);
  ASSERT_TRUE(fresh->find("after"));
  ASSERT_TRUE(fresh->unlock(pin()));
  EXPECT_TRUE(fresh->private_key("after")) << "the key follows the new nickname";
  EXPECT_TRUE(vault().generate_key("before", KeyType::kEcP256)) << "the old nickname is free";
}

TEST_F(VaultTest, RenameRefusesATakenOrInvalidNicknameAndChangesNothing) {
  issue("one");
  issue("two");
  const auto before = snapshot(dir_);
  auto taken = vault().rename("one", "two");
  ASSERT_FALSE(taken);
  EXPECT_EQ(taken.error().code, Code::kExists) << why(taken);
  auto bad = vault().rename("one", "no/slash");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Code::kInvalidInput) << why(bad);
  auto missing = vault().rename("three", "four");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Code::kNotFound) << why(missing);
  EXPECT_EQ(describe_difference(before, snapshot(dir_)), "");
}

TEST(VaultInit, SecurityOfficerVaultHasNoUserPinUntilTheOfficerSetsOne) {
  TempDir tmp;
  const auto so_pin = SecureBytes::from("officer-1");
  auto made = Vault::init_for_security_officer(tmp / "v", so_pin, cheap_init("so"));
  ASSERT_TRUE(made) << why(made);
  made->lock();
  EXPECT_FALSE(made->pin_initialized());
  auto early = made->unlock(pin());
  ASSERT_FALSE(early);
  EXPECT_EQ(early.error().code, Code::kPinLocked) << why(early);
  // Said in words for any program (a PKCS#11 application sees it too); the CLI adds how
  // the security officer sets one.
  EXPECT_NE(early.error().message.find("has no user PIN yet"), std::string::npos)
      << early.error().message;
  EXPECT_EQ(early.error().message.find("`certvault"), std::string::npos) << early.error().message;
  // The officer's PIN is the recovery secret; it is stretched, not parsed as hex.
  auto wrong = made->unlock_with_recovery(SecureBytes::from("officer-2"));
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, Code::kWrongPin) << why(wrong);
  ASSERT_TRUE(made->unlock_with_recovery(so_pin));
  ASSERT_TRUE(made->set_pin_after_recovery(pin()));
  auto fresh = Vault::open(tmp / "v");
  ASSERT_TRUE(fresh);
  EXPECT_TRUE(fresh->pin_initialized());
  auto unlocked = fresh->unlock(pin());
  EXPECT_TRUE(unlocked) << why(unlocked);
  EXPECT_EQ(fresh->label(), "so");
}

TEST_F(VaultTest, AttachRefusesCertificateForAnotherKey) {
  certvault::CsrRequest req;
  req.nickname = "ext";
  ASSERT_TRUE(vault().make_csr(req));
  auto other = generate_ec_key();
  auto cert = make_self_signed(other.get(), "ext", -60, 30 * kDay);
  auto before = snapshot(dir_);
  auto attached = vault().attach("ext", x509_to_pem(cert.get()));
  ASSERT_FALSE(attached);
  EXPECT_TRUE(attached.error().code == Code::kInvalidInput ||
              attached.error().code == Code::kRefused)
      << why(attached);
  EXPECT_EQ(describe_difference(before, snapshot(dir_)), "");
  EXPECT_EQ(vault().find("ext")->current(), nullptr);
}

// A certificate from make_self_signed with its extended key usage replaced by `eku` (none
// when null), signed again.
X509Ptr with_eku(X509Ptr cert, EVP_PKEY* key, const char* eku) {
  if (!cert) return nullptr;
  int i = X509_get_ext_by_NID(cert.get(), NID_ext_key_usage, -1);
  if (i >= 0) X509_EXTENSION_free(X509_delete_ext(cert.get(), i));
  if (eku) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, NID_ext_key_usage, eku);
    if (!ext) return nullptr;
    X509_add_ext(cert.get(), ext, -1);
    X509_EXTENSION_free(ext);
  }
  if (X509_sign(cert.get(), key, EVP_sha256()) <= 0) return nullptr;
  return cert;
}

TEST_F(VaultTest, ImportRefusesCertificateWithoutClientAuth) {
  auto server_key = generate_ec_key();
  auto server = with_eku(make_self_signed(server_key.get(), "server", -60, 30 * kDay),
                         server_key.get(), "serverAuth");
  ASSERT_TRUE(server);
  auto server_pem = x509_to_pem(server.get());
  auto reread = x509_from_pem(server_pem);
  ASSERT_TRUE(reread);
  ASSERT_EQ(X509_get_extended_key_usage(reread.get()) & XKU_SSL_CLIENT, 0u) << "test setup";
  auto before = snapshot(dir_);
  auto refused = vault().import_pem("server", server_pem + key_to_pem(server_key.get()));
  ASSERT_FALSE(refused) << "a serverAuth-only certificate was imported";
  EXPECT_TRUE(refused.error().code == Code::kInvalidInput || refused.error().code == Code::kRefused)
      << why(refused);
  EXPECT_NE(refused.error().message.find("clientAuth"), std::string::npos)
      << "the reason is not clear: " << refused.error().message;
  EXPECT_EQ(describe_difference(before, snapshot(dir_)), "");
  EXPECT_FALSE(vault().find("server"));

  // No extended key usage at all means any use, client authentication included.
  auto plain_key = generate_ec_key();
  auto plain = with_eku(make_self_signed(plain_key.get(), "plain", -60, 30 * kDay), plain_key.get(),
                        nullptr);
  ASSERT_TRUE(plain);
  ASSERT_LT(X509_get_ext_by_NID(plain.get(), NID_ext_key_usage, -1), 0) << "test setup";
  auto imported =
      vault().import_pem("plain", x509_to_pem(plain.get()) + key_to_pem(plain_key.get()));
  ASSERT_TRUE(imported) << why(imported);
  ASSERT_TRUE(imported->current());
  ExpectKeyMatchesCertificate(vault(), "plain");
}

TEST_F(VaultTest, ImportRefusesCertificateBeyondPolicyEndDate) {
  const auto max = date_in_days(100);
  auto set =
      vault().update_policy([&](certvault::Policy& p) { p.max_end_date = end_of_day_utc(max); });
  ASSERT_TRUE(set) << why(set);
  auto key = generate_ec_key();
  auto cert = make_self_signed(key.get(), "late", -60, 200 * kDay);
  ASSERT_TRUE(cert);
  auto before = snapshot(dir_);
  auto refused = vault().import_pem("late", x509_to_pem(cert.get()) + key_to_pem(key.get()));
  ASSERT_FALSE(refused) << "a certificate ending after the policy's limit was imported";
  EXPECT_EQ(refused.error().code, Code::kRefused) << why(refused);
  EXPECT_NE(refused.error().message.find(max), std::string::npos) << refused.error().message;
  EXPECT_EQ(describe_difference(before, snapshot(dir_)), "");
  EXPECT_FALSE(vault().find("late"));

  // Within the limit it is imported.
  auto early_key = generate_ec_key();
  auto early = make_self_signed(early_key.get(), "early", -60, 50 * kDay);
  auto imported =
      vault().import_pem("early", x509_to_pem(early.get()) + key_to_pem(early_key.get()));
  EXPECT_TRUE(imported) << why(imported);
}

}  // namespace
}  // namespace cvtest
