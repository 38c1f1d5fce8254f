// Revocation of the vault CA's certificates and the CRL that lists them (Vault::revoke,
// Vault::make_crl; docs/revocation.md).
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <map>
#include <memory>
#include <set>
#include <string>

#include "signing.h"
#include "support.h"
#include "test_vault.h"
#include "vault.h"

namespace cvtest {
namespace {

using certvault::Code;
using certvault::Entry;
using certvault::RevocationReason;
using certvault::Status;
using certvault::Vault;

struct CrlFree {
  void operator()(X509_CRL* p) const { X509_CRL_free(p); }
};
using CrlPtr = std::unique_ptr<X509_CRL, CrlFree>;

CrlPtr crl_from_pem(const std::string& pem) {
  BIO* b = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  CrlPtr crl(PEM_read_bio_X509_CRL(b, nullptr, nullptr, nullptr));
  BIO_free(b);
  return crl;
}

std::string hex_of(const ASN1_INTEGER* serial) {
  BIGNUM* bn = ASN1_INTEGER_to_BN(serial, nullptr);
  char* hex = BN_bn2hex(bn);
  std::string out = hex;
  OPENSSL_free(hex);
  BN_free(bn);
  return out;
}

// Serial (upper-case hex) -> reason code, -1 when the entry has none.
std::map<std::string, long> listed(X509_CRL* crl) {
  std::map<std::string, long> out;
  STACK_OF(X509_REVOKED)* revoked = X509_CRL_get_REVOKED(crl);
  for (int i = 0; i < sk_X509_REVOKED_num(revoked); ++i) {
    X509_REVOKED* r = sk_X509_REVOKED_value(revoked, i);
    auto* reason = static_cast<ASN1_ENUMERATED*>(
        X509_REVOKED_get_ext_d2i(r, NID_crl_reason, nullptr, nullptr));
    out[hex_of(X509_REVOKED_get0_serialNumber(r))] = reason ? ASN1_ENUMERATED_get(reason) : -1;
    ASN1_ENUMERATED_free(reason);
  }
  return out;
}

long crl_number(X509_CRL* crl) {
  auto* n = static_cast<ASN1_INTEGER*>(X509_CRL_get_ext_d2i(crl, NID_crl_number, nullptr, nullptr));
  long v = n ? ASN1_INTEGER_get(n) : -1;
  ASN1_INTEGER_free(n);
  return v;
}

class RevocationTest : public VaultTest {
 protected:
  X509Ptr ca_cert() {
    auto der = vault().ca_certificate_der();
    EXPECT_TRUE(der) << why(der);
    return der ? x509_from_der(*der) : nullptr;
  }
  // Whether a program holding that generation's key may still sign with it.
  bool usable(const std::string& nickname, uint32_t generation) {
    auto e = vault().find(nickname);
    return e && e->generation(generation) &&
           certvault::check_usable(*e, *e->generation(generation), certvault::now());
  }
  CrlPtr crl(certvault::Time next_update = certvault::now() + 7 * kDay) {
    auto pem = vault().make_crl(next_update, "");
    EXPECT_TRUE(pem) << why(pem);
    return pem ? crl_from_pem(*pem) : nullptr;
  }
};

TEST_F(RevocationTest, RevokeRecordsTheCertificateAndStopsItSigning) {
  const Entry issued = issue("laptop");
  const std::string serial = issued.current()->serial;
  auto revoked = vault().revoke("laptop", std::nullopt, RevocationReason::kKeyCompromise);
  ASSERT_TRUE(revoked) << why(revoked);
  ASSERT_EQ(revoked->revoked.size(), 1u);
  EXPECT_EQ(revoked->revoked[0].generation, 1u);
  EXPECT_EQ(revoked->revoked[0].serial, serial);
  EXPECT_EQ(revoked->revoked[0].reason, RevocationReason::kKeyCompromise);
  EXPECT_EQ(revoked->generations[0].status, Status::kDisabled);
  EXPECT_FALSE(vault().signing_key("laptop"));
  EXPECT_FALSE(usable("laptop", 1));

  // Another process sees it as it was committed.
  auto other = Vault::open(dir_);
  ASSERT_TRUE(other) << why(other);
  EXPECT_EQ(other->find("laptop")->revoked, revoked->revoked);
}

TEST_F(RevocationTest, RevokingTwiceIsRefusedWithOneLine) {
  issue("laptop");
  ASSERT_TRUE(vault().revoke("laptop", std::nullopt, RevocationReason::kSuperseded));
  for (std::optional<uint32_t> generation : {std::optional<uint32_t>(), std::optional(1u)}) {
    auto again = vault().revoke("laptop", generation, RevocationReason::kKeyCompromise);
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().code, Code::kRefused);
    EXPECT_NE(again.error().message.find("already revoked"), std::string::npos) << why(again);
    EXPECT_EQ(again.error().message.find('\n'), std::string::npos);
  }
  EXPECT_EQ(vault().find("laptop")->revoked.size(), 1u);
}

TEST_F(RevocationTest, EnableRefusesARevokedGenerationAndRotateReplacesIt) {
  issue("laptop");
  ASSERT_TRUE(vault().revoke("laptop", std::nullopt, RevocationReason::kKeyCompromise));
  auto enabled = vault().enable("laptop");
  ASSERT_FALSE(enabled);
  EXPECT_EQ(enabled.error().code, Code::kRefused);
  EXPECT_NE(enabled.error().message.find("revoked"), std::string::npos) << why(enabled);
  EXPECT_NE(enabled.error().message.find("rotate"), std::string::npos) << why(enabled);

  auto rotated = vault().rotate("laptop", std::nullopt);
  ASSERT_TRUE(rotated) << why(rotated);
  ASSERT_TRUE(rotated->current());
  EXPECT_EQ(rotated->current()->number, 2u);
  EXPECT_EQ(rotated->generations[0].status, Status::kDisabled);
  EXPECT_TRUE(vault().signing_key("laptop"));
}

TEST_F(RevocationTest, RevokingAnOlderGenerationDisablesItAlone) {
  issue("laptop");
  ASSERT_TRUE(vault().rotate("laptop", std::nullopt));
  auto revoked = vault().revoke("laptop", 1u, RevocationReason::kSuperseded);
  ASSERT_TRUE(revoked) << why(revoked);
  EXPECT_EQ(revoked->generations[0].status, Status::kDisabled);
  EXPECT_EQ(revoked->generations[1].status, Status::kActive);
  EXPECT_FALSE(usable("laptop", 1));
  EXPECT_TRUE(usable("laptop", 2));
  EXPECT_TRUE(vault().signing_key("laptop"));
}

TEST_F(RevocationTest, SelfSignedAndExternalCertificatesAreRefused) {
  issue("self", 200, {}, {}, /*self_signed=*/true);
  auto self = vault().revoke("self", std::nullopt, RevocationReason::kKeyCompromise);
  ASSERT_FALSE(self);
  EXPECT_EQ(self.error().code, Code::kRefused);
  EXPECT_NE(self.error().message.find("self-signed"), std::string::npos) << why(self);

  // Issued by another vault's CA, brought here as PKCS#12.
  auto other = Vault::init(tmp_ / "other", pin(), cheap_init("other"));
  ASSERT_TRUE(other) << why(other);
  certvault::CaRequest ca;
  ca.not_after = certvault::now() + 365 * kDay;
  ASSERT_TRUE(other->first.create_ca(ca));
  certvault::IssueRequest req;
  req.nickname = "outside";
  req.not_after = certvault::now() + 100 * kDay;
  ASSERT_TRUE(other->first.create(req));
  certvault::ExportRequest exported;
  exported.nickname = "outside";
  exported.out = tmp_ / "outside.p12";
  auto password = other->first.export_pkcs12(exported);
  ASSERT_TRUE(password) << why(password);
  auto imported = vault().import_pkcs12("outside", read_bytes(exported.out), *password);
  ASSERT_TRUE(imported) << why(imported);
  auto before = snapshot(dir_);
  auto outside = vault().revoke("outside", std::nullopt, RevocationReason::kKeyCompromise);
  ASSERT_FALSE(outside);
  EXPECT_EQ(outside.error().code, Code::kRefused);
  EXPECT_NE(outside.error().message.find("CA"), std::string::npos) << why(outside);
  EXPECT_EQ(snapshot(dir_), before);
}

TEST_F(RevocationTest, UnknownGenerationIsRefusedAndChangesNothing) {
  issue("laptop");
  auto before = snapshot(dir_);
  auto r = vault().revoke("laptop", 7u, RevocationReason::kKeyCompromise);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kNotFound) << why(r);
  EXPECT_EQ(snapshot(dir_), before);
}

TEST_F(RevocationTest, CrlVerifiesAgainstTheCaAndListsExactlyTheRevoked) {
  const std::string a = issue("a").current()->serial;
  issue("b");
  const std::string c = issue("c").current()->serial;
  ASSERT_TRUE(vault().revoke("a", std::nullopt, RevocationReason::kKeyCompromise));
  ASSERT_TRUE(vault().revoke("c", std::nullopt, RevocationReason::kUnspecified));
  auto ca = ca_cert();
  const certvault::Time next = certvault::now() + 3 * kDay;
  auto list = crl(next);
  ASSERT_TRUE(ca && list);
  EXPECT_EQ(X509_CRL_verify(list.get(), X509_get0_pubkey(ca.get())), 1);
  EXPECT_EQ(X509_CRL_get_version(list.get()), X509_CRL_VERSION_2);
  EXPECT_EQ(X509_NAME_cmp(X509_CRL_get_issuer(list.get()), X509_get_subject_name(ca.get())), 0);
  EXPECT_EQ(ASN1_TIME_cmp_time_t(X509_CRL_get0_nextUpdate(list.get()), next), 0);
  // keyCompromise is code 1; "unspecified" leaves the reason out (RFC 5280 5.3.1).
  EXPECT_EQ(listed(list.get()), (std::map<std::string, long>{{a, 1}, {c, -1}}));
  auto* akid = static_cast<AUTHORITY_KEYID*>(
      X509_CRL_get_ext_d2i(list.get(), NID_authority_key_identifier, nullptr, nullptr));
  ASSERT_NE(akid, nullptr);
  EXPECT_EQ(ASN1_OCTET_STRING_cmp(akid->keyid, X509_get0_subject_key_id(ca.get())), 0);
  AUTHORITY_KEYID_free(akid);
}

TEST_F(RevocationTest, CrlNumberGrowsByOneAndIsKeptInTheVault) {
  EXPECT_FALSE(vault().crl_state());
  auto first = crl();
  ASSERT_TRUE(first);
  EXPECT_EQ(crl_number(first.get()), 1);
  auto pem = vault().make_crl(certvault::now() + kDay, "/srv/crl/ca.crl");
  ASSERT_TRUE(pem) << why(pem);
  EXPECT_EQ(crl_number(crl_from_pem(*pem).get()), 2);
  auto other = Vault::open(dir_);
  ASSERT_TRUE(other) << why(other);
  auto state = other->crl_state();
  ASSERT_TRUE(state);
  EXPECT_EQ(state->number, 2u);
  EXPECT_EQ(state->file, "/srv/crl/ca.crl");
  EXPECT_GT(state->next_update, state->last_issued);
  ASSERT_TRUE(other->unlock(pin()));
  auto third = other->make_crl(certvault::now() + kDay, "");
  ASSERT_TRUE(third) << why(third);
  EXPECT_EQ(crl_number(crl_from_pem(*third).get()), 3);
}

TEST_F(RevocationTest, CrlLeavesOutCertificatesOfARetiredCa) {
  issue("old");
  ASSERT_TRUE(vault().revoke("old", std::nullopt, RevocationReason::kKeyCompromise));
  certvault::CaRequest replace;
  replace.not_after = certvault::now() + 3650 * kDay;
  replace.replace = true;  // the same subject, another key
  ASSERT_TRUE(vault().create_ca(replace));
  const std::string fresh = issue("new").current()->serial;
  ASSERT_TRUE(vault().revoke("new", std::nullopt, RevocationReason::kAffiliationChanged));
  auto list = crl();
  ASSERT_TRUE(list);
  EXPECT_EQ(listed(list.get()), (std::map<std::string, long>{{fresh, 3}}));
}

TEST_F(RevocationTest, CrlNeedsTheCaAndASensibleNextUpdate) {
  for (certvault::Time next : {certvault::now() - kDay, certvault::now() + 400 * kDay}) {
    auto before = snapshot(dir_);
    auto r = vault().make_crl(next, "");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Code::kInvalidInput) << why(r);
    EXPECT_EQ(snapshot(dir_), before);
  }
  vault().lock();
  auto locked = vault().make_crl(certvault::now() + kDay, "");
  ASSERT_FALSE(locked);
  EXPECT_EQ(locked.error().code, Code::kLocked);
}

TEST_F(RevocationTest, DeleteWaitsUntilTheRevokedCertificateExpires) {
  issue("laptop");
  ASSERT_TRUE(vault().revoke("laptop", std::nullopt, RevocationReason::kKeyCompromise));
  auto removed = vault().remove("laptop");
  ASSERT_FALSE(removed);
  EXPECT_EQ(removed.error().code, Code::kRefused);
  EXPECT_NE(removed.error().message.find("CRL"), std::string::npos) << why(removed);
  EXPECT_TRUE(vault().find("laptop"));
}

}  // namespace
}  // namespace cvtest
