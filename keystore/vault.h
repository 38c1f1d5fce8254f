// The keystore API: the only code that touches vault files or secrets. tools/, provider/
// and pkcs11/ are thin adapters over this class.
//
// A Vault handle is move-only and not thread-safe; callers that share one across threads
// serialise access. Every call first notices a commit made by another handle or process
// (generation counter) and reloads.
#pragma once

#include <openssl/evp.h>
#include <sys/types.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "error.h"
#include "secure.h"
#include "signing.h"
#include "types.h"

namespace certvault {

struct EvpPkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using PrivateKey = std::unique_ptr<EVP_PKEY, EvpPkeyFree>;

// --vault DIR, else $CERTVAULT_VAULT, else ${XDG_DATA_HOME:-$HOME/.local/share}/certvault/default.
std::filesystem::path default_vault_dir();

struct InitOptions {
  std::string label = "certvault";
  KdfParams kdf;
};

struct IssueRequest {
  std::string nickname;
  Time not_after = 0;
  std::optional<KeyType> key_type;  // policy default when absent
  std::optional<Hash> hash;         // policy default when absent
  std::string subject;              // "/CN=a/O=b" or "CN=a,O=b"; CN=nickname when empty
  std::string alt_names;            // "DNS:a,URI:b,email:c,IP:d"; none when empty
  bool self_signed = false;
};

struct CaRequest {
  Time not_after = 0;
  std::string subject;  // "CN=<label> CA" when empty
  std::optional<KeyType> key_type;
  bool replace = false;  // retire the current CA instead of refusing
};

struct CsrRequest {
  std::string nickname;   // new entry, or a new pending generation of an entry
  std::string subject;    // empty: the entry's certificate's, else CN=nickname
  std::string alt_names;  // empty: the entry's certificate's, if any
  std::optional<KeyType> key_type;
  std::optional<Hash> hash;
};

struct ExportRequest {
  std::string nickname;
  std::filesystem::path out;  // written 0600; never overwritten (export_pkcs12 only)
  P12Encryption encryption = P12Encryption::kAes256;
  bool chain = false;
};

// A new entry enrolled at an outside issuer (docs/lifecycle.md, "Outside CAs: CMP").
struct EnrollmentRequest {
  std::string nickname;
  std::string issuer;  // the name of an outside issuer of the vault
  std::optional<KeyType> key_type;
  std::string subject;            // CN=nickname when empty
  std::string alt_names;          // as IssueRequest's
  std::optional<Time> not_after;  // asked of the CA; the CA decides when absent
};

// What a protocol client needs to ask an outside CA for a certificate: a key the vault made,
// held in memory only (never stored until its certificate is accepted), and what to ask for.
// A renewal also names the generation it replaces; its client signs with that key.
struct Enrollment {
  std::string nickname;
  std::string issuer;
  PrivateKey key;
  std::vector<uint8_t> subject;    // X509_NAME DER
  std::vector<uint8_t> alt_names;  // subjectAltName X509_EXTENSION DER; empty: none
  std::optional<Time> not_after;   // nullopt: the CA decides
  uint32_t renews = 0;             // generation replaced by a renewal; 0: a new entry
};

// A revocation asked of the outside issuer a generation came from (docs/revocation.md,
// "Outside CAs"): which certificate and why. The protocol client signs the request with the
// vault's keys; the vault records it only once the issuer has done it.
struct IssuerRevocation {
  std::string nickname;
  std::string issuer;  // the name of the entry's outside issuer
  uint32_t generation = 0;
  std::string serial;                // upper-case hex, as the generation's
  std::vector<uint8_t> certificate;  // DER
  RevocationReason reason = RevocationReason::kUnspecified;
};

// A new PKCS#11 data object (CKO_DATA): its attributes and value, within the limits in
// types.h. The value stays in guarded memory; a private one is stored sealed.
struct DataObjectRequest {
  std::string application;         // CKA_APPLICATION: UTF-8, no NUL
  std::vector<uint8_t> object_id;  // CKA_OBJECT_ID: DER of one OID, or empty
  std::string label;               // CKA_LABEL: UTF-8, no NUL
  bool is_private = true;          // CKA_PRIVATE
  SecureBytes value;               // CKA_VALUE
};

// Everything `Vault::init` checks before it creates anything: label, Argon2id cost, and a
// directory that is absent or empty. Front ends call it before asking for a PIN.
Result<void> check_init(const std::filesystem::path& dir, const InitOptions& options);

class Vault {
 public:
  // Creates an empty vault in `dir` (made 0700 if absent, must be empty otherwise) and
  // returns it unlocked, with the recovery secret to show once.
  static Result<std::pair<Vault, SecureBytes>> init(const std::filesystem::path& dir,
                                                    const SecureBytes& pin,
                                                    const InitOptions& options);
  // C_InitToken: an empty vault whose recovery secret is the security officer's PIN, a
  // secret a person chose and so stretched with Argon2id like a user PIN. It has no user
  // PIN until set_pin_after_recovery; it is returned unlocked as the security officer.
  static Result<Vault> init_for_security_officer(const std::filesystem::path& dir,
                                                 const SecureBytes& so_pin,
                                                 const InitOptions& options);
  // Opens without the PIN: public data only.
  static Result<Vault> open(const std::filesystem::path& dir);

  Vault(Vault&&) noexcept;
  Vault& operator=(Vault&&) noexcept;
  ~Vault();  // wipes every secret

  const std::filesystem::path& dir() const;
  std::string label() const;
  std::string id() const;
  // Grows by one with every commit, by any process; this is its value as of the last
  // refresh (which refresh() and every reading call make). A cheap way to notice change.
  uint64_t commit_counter() const;
  // The manifest file as this handle last read it (inode, modification time, size), and
  // as it is on disk now (one stat, no handle needed): equal stamps mean no commit since,
  // which a caller can so learn without taking the lock that guards its handle.
  struct Stamp {
    uint64_t inode = 0;
    int64_t mtime_ns = 0;
    int64_t size = -1;
    bool operator==(const Stamp&) const = default;
  };
  Stamp manifest_stamp() const;
  static Stamp manifest_stamp_now(const std::filesystem::path& dir);
  KdfParams kdf() const;
  // The user who owns the vault directory (as it was at open); the agent always admits it.
  uid_t owner_uid() const;

  // --- PIN -------------------------------------------------------------------------
  static constexpr int kMaxPinFailures = 10;
  // Whether unlock may start a thread of its own: the agent and the CLI let it hash the
  // manifest (format 6) on a second core while Argon2id runs; the provider and the PKCS#11
  // module, guests in another program's process, do not start threads.
  enum class Threads { kOne, kTwo };
  // Counts a wrong PIN on disk; an empty PIN is refused (kInvalidInput) without counting.
  Result<void> unlock(const SecureBytes& pin, Threads threads = Threads::kOne);
  // Wipes the vault key and cached keys, and forgets damage seen while unlocked.
  void lock();
  bool unlocked() const;
  int pin_failures() const;      // consecutive wrong PINs, from disk
  bool pin_initialized() const;  // false for a security officer's vault before its first PIN
  int pin_attempts_left() const { return kMaxPinFailures - pin_failures(); }
  // A new PIN (here, in init, reset_pin and set_pin_after_recovery) must pass
  // check_new_pin: not empty, no trailing line break.
  Result<void> change_pin(const SecureBytes& new_pin);  // needs unlock
  // Clears the failure count with the recovery secret; sets a new PIN when given.
  Result<void> reset_pin(const SecureBytes& recovery, const SecureBytes* new_pin);
  // Whether `recovery` has the shape of this vault's recovery secret (8 groups of 8 hex
  // digits, unless chosen by a security officer); tells nothing about whether it is right.
  Result<void> check_recovery_format(const SecureBytes& recovery) const;
  // The two halves of reset_pin, for the PKCS#11 security officer: unlock with the
  // recovery secret (the counter is left as it is), then set a new PIN and clear the
  // counter, which needs a handle unlocked that way.
  Result<void> unlock_with_recovery(const SecureBytes& recovery);
  Result<void> set_pin_after_recovery(const SecureBytes& new_pin);
  bool unlocked_with_recovery() const;

  // --- reading (no PIN) ------------------------------------------------------------
  std::vector<Entry> entries() const;
  std::optional<Entry> find(std::string_view nickname) const;
  std::optional<Entry> find_by_key_id(std::string_view key_id_hex) const;
  std::optional<Entry> find_by_fingerprint(std::string_view sha256_hex) const;
  Policy policy() const;
  std::vector<CaInfo> cas() const;  // active CA first
  std::optional<CaInfo> active_ca() const;
  // DER of the certificate / chain (issuer first) / SubjectPublicKeyInfo of a generation
  // (the current one when `generation` is absent).
  Result<std::vector<uint8_t>> certificate_der(std::string_view nickname,
                                               std::optional<uint32_t> generation = {}) const;
  Result<std::vector<std::vector<uint8_t>>> chain_der(
      std::string_view nickname, std::optional<uint32_t> generation = {}) const;
  Result<std::vector<uint8_t>> public_key_der(std::string_view nickname,
                                              std::optional<uint32_t> generation = {}) const;
  Result<std::vector<uint8_t>> ca_certificate_der() const;
  // The last CRL `make_crl` made; nullopt before the first.
  std::optional<CrlState> crl_state() const;
  std::vector<OutsideIssuer> issuers() const;
  std::optional<OutsideIssuer> find_issuer(std::string_view name) const;

  // --- secrets (needs unlock) ------------------------------------------------------
  Result<PrivateKey> private_key(std::string_view nickname,
                                 std::optional<uint32_t> generation = {}) const;
  // The same key as a handle that signs: what front ends hold instead of the key itself.
  // Only for a generation that may still sign (resolve_generation in signing.h).
  Result<std::shared_ptr<const SigningKey>> signing_key(
      std::string_view nickname, std::optional<uint32_t> generation = {}) const;
  // An outside issuer's shared secret (never shown; for the protocol client only): CMP's,
  // or an ACME issuer's external account binding MAC key.
  Result<SecureBytes> issuer_secret(std::string_view name) const;
  // An ACME issuer's account key (RFC 8555 7.3; for the protocol client only).
  Result<PrivateKey> issuer_account_key(std::string_view name) const;

  // --- changes (needs unlock; each is one atomic commit) ---------------------------
  Result<CaInfo> create_ca(const CaRequest& request);
  Result<CaInfo> import_ca(std::string_view cert_pem, std::string_view key_pem);
  Result<Entry> create(const IssueRequest& request);
  // Many entries in one commit (all or none): for operators who issue in bulk.
  Result<std::vector<Entry>> create_many(std::span<const IssueRequest> requests);
  Result<std::string> make_csr(const CsrRequest& request);  // PEM
  // A new entry holding only a key, waiting for its certificate (attach): what PKCS#11's
  // C_GenerateKeyPair makes.
  Result<Entry> generate_key(std::string_view nickname, KeyType key_type);
  Result<Entry> attach(std::string_view nickname, std::string_view cert_pem);
  // PKCS#12 (DER) with its password, or PEM holding a certificate, its key and any chain.
  Result<Entry> import_pkcs12(std::string_view nickname, std::span<const uint8_t> der,
                              const SecureBytes& password);
  Result<Entry> import_pem(std::string_view nickname, std::string_view pem);
  // Writes the PKCS#12 and returns its generated password, to be shown once.
  Result<SecureBytes> export_pkcs12(const ExportRequest& request);
  // The same export (policy, record) without a file: the PKCS#12 bytes and their password,
  // for the agent, whose caller writes the file in its own context. `out` is not used.
  Result<std::pair<std::vector<uint8_t>, SecureBytes>> export_pkcs12_bytes(
      const ExportRequest& request);
  Result<Entry> rotate(std::string_view nickname, std::optional<Time> not_after);
  // Renewal by the vault itself (vault CA or self-signed; docs/lifecycle.md): `rotate` with
  // the certificate's lifetime as before, capped by the policy and the CA's own end, and
  // refused when the capped certificate would fall due again at once. Ends a run of
  // failed renewals. An imported entry, or one from an outside CA, is refused (by hand).
  // With `if_current`, only when that generation is still the current one (else refused:
  // another process renewed or changed it since the caller looked).
  Result<Entry> renew(std::string_view nickname, std::optional<uint32_t> if_current = {});
  // Counts a failed renewal of the entry, with its reason (one line, no secret) and, when
  // the CA said when to ask again (Retry-After), that time: no retry comes before it.
  Result<Entry> record_renewal_failure(std::string_view nickname, std::string_view reason,
                                       Time not_before = 0);
  // An entry's renewal rule (nullopt: the policy's) and hook, as they are at commit time.
  struct RenewalSettings {
    std::optional<RenewRule> rule;
    std::string hook;
  };
  Result<Entry> update_renewal(std::string_view nickname,
                               const std::function<void(RenewalSettings&)>& edit);
  // The files rewritten whenever the entry's current certificate changes; nullopt: none.
  Result<Entry> set_publish(std::string_view nickname, std::optional<PublishTargets> targets);
  Result<Entry> disable(std::string_view nickname);
  // The newest disabled generation that was not revoked becomes active again.
  Result<Entry> enable(std::string_view nickname);
  // Takes back a certificate the vault CA issued (the current generation when `generation`
  // is absent): records it for the CRL, and the generation stops signing at once and is
  // never enabled again (`rotate` makes a new one). A certificate from elsewhere is
  // refused: the CA that issued it revokes it (for an outside issuer, see below).
  Result<Entry> revoke(std::string_view nickname, std::optional<uint32_t> generation,
                       RevocationReason reason);
  // Revocation at an outside issuer, in two steps around the protocol exchange: what to ask
  // (the generation as `revoke` picks it; refused as `revoke` refuses a pending, self-signed
  // or already revoked one, or one from a CA the vault reaches by no protocol), nullopt when
  // the generation is the vault CA's (`revoke` takes it back); then, once the issuer has
  // revoked it, the record: the generation stops signing as with `revoke`, and is never on
  // the vault CA's CRL. A generation revoked meanwhile by another process stays as it is.
  Result<std::optional<IssuerRevocation>> revocation_at_issuer(std::string_view nickname,
                                                               std::optional<uint32_t> generation,
                                                               RevocationReason reason) const;
  Result<Entry> record_issuer_revocation(const IssuerRevocation& revocation);
  // A CRL (PEM) signed by the active CA, valid until `next_update`, listing every revoked
  // certificate that CA issued (not those of retired CAs). Its number, one more than the
  // last, is committed with `file` (an absolute path, or "" for stdout) as the last CRL.
  Result<std::string> make_crl(Time next_update, std::string file);
  Result<void> remove(std::string_view nickname);
  // Gives an entry another nickname (the nickname rules apply; the new one must be free).
  // Programs that name it by URI follow the new nickname.
  Result<Entry> rename(std::string_view nickname, std::string_view new_nickname);
  // Replaces who may use an entry's key through the agent (rules in order; see access.h).
  // Every rule is checked first: one bad rule changes nothing.
  Result<Entry> set_access(std::string_view nickname, std::vector<AccessRule> rules);
  // Whether any peer may list the entry's certificates and public keys.
  Result<Entry> set_listed_publicly(std::string_view nickname, bool on);
  // Outside issuers: added with their shared secret (sealed, nullptr: none), removed when
  // no entry enrolls from them any more.
  Result<OutsideIssuer> add_issuer(const OutsideIssuer& issuer, const SecureBytes* secret);
  Result<void> remove_issuer(std::string_view name);
  // Records the account URL an ACME issuer gave when the account was registered.
  Result<OutsideIssuer> set_issuer_account(std::string_view name, std::string_view account);
  // Enrollment at an outside issuer, in two steps around the protocol exchange: the key and
  // what to ask for (a new entry, or a renewal of an entry enrolled from an issuer); then
  // the CA's answer (its certificate first, then any others it sent), checked (the key, EKU
  // clientAuth, dates, the policy, a chain to the issuer's trust anchor) and stored in one
  // commit. Nothing is written before; a refused answer leaves the vault unchanged.
  Result<Enrollment> begin_enrollment(const EnrollmentRequest& request);
  // With if_current, a renewal of any other generation than that one is refused before any
  // key is made or CA asked (a renewal pass planned on what has been renewed since). A
  // renewal by another process during the exchange with the CA is caught only at
  // finish_enrollment, which refuses the CA's answer.
  Result<Enrollment> begin_renewal(std::string_view nickname,
                                   std::optional<uint32_t> if_current = std::nullopt);
  Result<Entry> finish_enrollment(const Enrollment& enrollment,
                                  std::span<const std::vector<uint8_t>> certs);
  // The same checks alone, for the protocol client to tell the CA it refuses an answer.
  Result<void> check_enrollment(const Enrollment& enrollment,
                                std::span<const std::vector<uint8_t>> certs) const;
  Result<void> set_policy(const Policy& policy);
  // Changes some fields of the policy as it stands at commit time (no lost update).
  Result<Policy> update_policy(const std::function<void(Policy&)>& edit);

  // --- data objects (PKCS#11 CKO_DATA; docs/vault-format.md, "Data objects") -------
  // No PIN needed for non-private ones, as for certificates. A locked handle lists only
  // the non-private ones and finds no private one; an unlocked one sees them all.
  std::vector<DataObject> data_objects() const;
  std::optional<DataObject> find_data_object(std::string_view id) const;
  // CKA_VALUE, in guarded memory; a private object's needs unlock (kLocked).
  Result<SecureBytes> data_object_value(std::string_view id) const;
  // Each one atomic commit (needs unlock). Bad input changes nothing.
  Result<DataObject> create_data_object(const DataObjectRequest& request);
  Result<void> destroy_data_object(std::string_view id);

  // Re-reads the vault if another handle or process committed since the last look. Data
  // that fails authentication after unlock is damage (Code::kTampered), reported by every
  // refresh and every call that needs the key until lock(). The reading calls above that
  // return no Result refresh too but keep the last good data on failure: adapters call
  // refresh() first and report its error.
  Result<void> refresh() const;

  struct Impl;  // opaque; defined in vault_impl.h

 private:
  explicit Vault(std::unique_ptr<Impl> impl);
  Result<Entry> replace_key(std::string_view nickname, std::optional<Time> not_after, bool renewal,
                            std::optional<uint32_t> if_current = {});
  static Result<std::unique_ptr<Impl>> create(const std::filesystem::path& dir,
                                              const SecureBytes* pin, const SecureBytes& recovery,
                                              bool recovery_chosen, const InitOptions& options);
  std::unique_ptr<Impl> impl_;
};

// Input rules shared by every front end.
Result<void> check_nickname(std::string_view nickname);
// The certificates of a PEM (or DER, or PKCS#7) file, as DER; `what` names it in errors.
Result<std::vector<std::vector<uint8_t>>> certificates_in(std::string_view text,
                                                          std::string_view what);
// A data object's attributes and value against the limits (types.h), before any PIN.
Result<void> check_data_object(const DataObjectRequest& request);
// "YYYY-MM-DD" (end of that day, UTC) or "+Nd" (N days from now).
Result<Time> parse_date(std::string_view text);
std::string format_date(Time t);                        // "2027-06-30"
std::string format_time(Time t);                        // "2027-06-30T23:59:59Z"
std::optional<Time> parse_time(std::string_view text);  // what format_time writes

}  // namespace certvault
