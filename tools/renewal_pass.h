// One renewal pass over a vault (docs/lifecycle.md): what `certvault renew` and the agent's
// schedule do. Without nicknames it renews every entry that is due and not held back by a
// recent failure; with nicknames, those, due or not. A failed renewal leaves the entry as
// it was and is recorded in the vault (reason, time, count) for `check` and the retries.
// A dry run reads public data only and changes nothing.
#pragma once

#include <json/json.h>

#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "acme_ari.h"
#include "error.h"
#include "publish.h"
#include "types.h"
#include "vault.h"

namespace certvault::cli {

struct RenewalOutcome {
  enum class Kind {
    kRenewed,     // a new generation is current
    kWouldRenew,  // dry run: would be renewed
    kByHand,      // due (or asked for), but the vault cannot renew it by itself
    kHeldBack,    // due, but a recent failure holds the next try back
    kFailed,      // tried and failed; recorded
  };
  Kind kind = Kind::kFailed;
  std::string nickname;
  std::string renewer;           // "vault-ca", "self-signed", "cmp", "by-hand"
  std::optional<Time> due;       // nullopt: its rule is off (asked for by name)
  std::optional<Time> retry_at;  // kHeldBack, kFailed: not before this
  std::string message;           // kByHand, kHeldBack, kFailed: why, and what to do
  // kRenewed: the new generation, and the entry's command to run now.
  uint32_t generation = 0;
  std::string serial;
  Time not_after = 0;
  std::string hook;
  std::string
      revoked_old;  // kRenewed with revoke_old: what became of the old generation (a sentence)
  bool revoke_failed = false;        // ... and it was not revoked (not in JSON: the sentence says)
  std::optional<AfterChange> after;  // its files and command, to carry out (not in JSON)
  // Due before its rule because its ACME CA's renewal information (RFC 9773) says so: the
  // moment chosen in the CA's window, and the CA's explanation URL ("" none).
  std::optional<Time> ari_at;
  std::string ari_explanation;
};
std::string_view to_string(RenewalOutcome::Kind kind);  // "renewed", "would-renew", ...

struct RenewalPass {
  std::vector<RenewalOutcome> outcomes;
  // Of the entries not due: the one due soonest, for "nothing is due; next: ...".
  std::optional<std::pair<std::string, Time>> next_due;
  // For the log: renewal information that could not be had (the rules decided instead).
  std::vector<std::string> notes;
  // Every renewal asked for (named, or due) was made (or, in a dry run, could be).
  bool all_done() const;
};

struct PassRequest {
  std::vector<std::string> nicknames;  // empty: every entry that is due
  bool dry_run = false;
  // Once a renewal is stored, revoke the generation it superseded (reason superseded), so
  // that it stops working at once: on the vault CA's next CRL, or at the outside issuer.
  bool revoke_old = false;
  // Called before each renewal: where the agent lets signing in between renewals (it drops
  // and takes the vault's lock again). False ends the pass (the vault was locked
  // meanwhile, or the agent is stopping).
  std::function<bool()> between;
  // ACME renewal information (RFC 9773): the CA's windows known so far, consulted for ACME
  // entries that are not yet due by their rule (a window can make them due earlier, never
  // later). Null: not consulted, as in `renew --dry-run`.
  AriCache* ari = nullptr;
  // Whether the pass may ask the CAs for the windows `ari` lacks or holds past their
  // Retry-After (the agent asks beforehand, without the vault's lock).
  bool fetch_ari = true;
  // Without nicknames: look only at these entries (by the same rules as a pass over all),
  // the ones a dry run on a read-only handle found due. The agent plans there, without the
  // lock its signing takes, and takes the lock only for what needs doing.
  std::optional<std::vector<std::string>> only;
};

// An ACME entry that is not yet due by its rule, whose CA may want it renewed earlier.
struct AriTarget {
  std::string nickname;
  std::string cert_id;  // its current certificate's ARI id (RFC 9773 4.1)
  OutsideIssuer issuer;
};
// Public data only: works on a locked vault.
std::vector<AriTarget> ari_targets(const Vault& vault, Time t);
// Asks the targets' CAs for the renewal information `cache` lacks or holds stale (one
// directory read per issuer, then a GET per certificate; RFC 9773 4.1) and forgets the
// certificates that are no longer targets. A failure is not a renewal failure: it returns
// a line for the log and the rule decides. Touches no vault.
std::vector<std::string> fetch_renewal_info(std::span<const AriTarget> targets, AriCache& cache,
                                            Time t);

// `vault` must be unlocked unless it is a dry run. A nickname that is not in the vault is
// refused before anything is renewed.
Result<RenewalPass> renewal_pass(Vault& vault, const PassRequest& request);

Json::Value to_json(const RenewalPass& pass);
Result<RenewalPass> pass_from_json(const Json::Value& v);

}  // namespace certvault::cli
