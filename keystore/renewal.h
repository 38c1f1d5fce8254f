// Renewal rules and when they make an entry due (docs/lifecycle.md). Rules, dates and past
// failures are public data, so `renew --dry-run`, `check` and `list` work this out without
// the PIN.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "error.h"
#include "types.h"

namespace certvault {

// The clock renewal decisions read; issuing always reads the real one (now()). In a build
// with tests (CERTVAULT_TEST_CLOCK), $CERTVAULT_TEST_NOW moves it: seconds since the epoch,
// or +N followed by s, m, h or d from now. So tests see entries fall due without waiting
// and without faking the clock of the servers they talk to.
Time renewal_now();

// Within what the vault format allows: `before` from 1 minute to 10 years, `at` a fraction
// num/den with 0 < num < den <= 1000.
bool check_renew_rule(const RenewRule& rule);
// A policy's maximum lifetime: 1 hour to 100 years.
bool check_lifetime(Time seconds);

// "30d", "12h", "90m", "45s" (N followed by s, m, h or d) -> seconds, at most 100 years;
// `option` names the input in the error.
Result<Time> parse_period(std::string_view text, std::string_view option);
// The shortest exact form of the same: 2592000 -> "30d", 5400 -> "90m".
std::string format_period(Time seconds);
Result<RenewRule> parse_renew_before(std::string_view text);  // "30d"
Result<RenewRule> parse_renew_at(std::string_view text);      // "2/3"
// "30d before expiry", "at 2/3 of its lifetime", "off".
std::string rule_text(const RenewRule& rule);
// "30d", "2/3" or "off": the rule as `renew-rule` and `policy set` take it, and back.
std::string rule_spec(const RenewRule& rule);
Result<RenewRule> parse_rule_spec(std::string_view spec);

// File targets as the format allows them: at least one path; every path absolute,
// normalised, without control characters, all different; a mode of at most 0755 that
// lets neither group nor others write.
bool check_publish_targets(const PublishTargets& targets);

// Who renews an entry: the vault itself (its CA, or a new self-signed certificate), an
// outside CA the vault reaches by CMP (the entry's `issuer`), or a person (a certificate
// from an outside CA, imported or attached by hand).
// `issuers` tells which protocol the entry's issuer speaks (CMP when it is not among them).
enum class Renewer { kVaultCa, kSelfSigned, kCmp, kAcme, kByHand };
Renewer renewer_of(const Entry& entry, const Generation& g,
                   std::span<const OutsideIssuer> issuers = {});
std::string_view to_string(Renewer r);  // "vault-ca", "self-signed", "cmp", "acme", "by-hand"

// Where the renewal window of a certificate with these dates begins under `rule`; nullopt
// when the rule is off.
std::optional<Time> window_start(const RenewRule& rule, Time not_before, Time not_after);
// How far into its window an entry's renewal falls: a fixed pseudo-random offset in the
// first tenth of the window, from the entry's id and generation, so that many hosts and
// entries do not all ask their CA at the same moment.
Time spread(std::string_view entry_id, uint32_t generation, Time window);
// The pseudo-random offset itself: in [0, span), fixed for an entry's generation; 0 when
// span <= 0. spread() takes it over a tenth of the window; an ACME CA's suggested renewal
// window (RFC 9773) over the whole of it.
Time stable_offset(std::string_view entry_id, uint32_t generation, Time span);
// The pause after `failures` consecutive failures before the next try: 1 h, doubling, at
// most 24 h.
Time retry_delay(uint32_t failures);

struct RenewalPlan {
  RenewRule rule;                // the rule that applies
  bool from_policy = false;      // the entry has no rule of its own
  Generation current;            // the certificate renewal replaces
  std::optional<Time> due;       // nullopt: the rule is off
  std::optional<Time> retry_at;  // after failures: not before this
  Renewer renewer = Renewer::kByHand;
  // Due and not held back by a recent failure at `t`.
  bool ready(Time t) const { return due && *due <= t && (!retry_at || *retry_at <= t); }
};
// nullopt when the entry has nothing to renew (no active certificate: pending or disabled).
std::optional<RenewalPlan> plan_renewal(const Entry& entry, const Policy& policy,
                                        std::span<const OutsideIssuer> issuers = {});

}  // namespace certvault
