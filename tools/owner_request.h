// The vault owner's commands that the agent carries out for the CLI (agent::Type::kOwner):
// their names and arguments as one JSON object, written by the CLI and read by the agent,
// so that both sides agree on one encoding. A file's contents and a password travel beside
// it in binary fields; the keystore request each names is the one the CLI would make.
#pragma once

#include <json/json.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "error.h"
#include "types.h"
#include "vault.h"

namespace certvault::cli::owner {

// The operations: create, rotate, disable, enable, delete, revoke, export, import, attach,
// csr, ca-create, ca-crl, policy-set, policy-clear, renew-rule, renew, publish, issuer-add,
// issuer-remove, enroll. (passwd is not one: a new PIN needs the old one.)
bool known_op(std::string_view op);

// Which policy fields `policy set` changes; the rest stay as they are at commit time.
struct PolicyChange {
  std::optional<Time> max_end_date;
  std::optional<KeyType> default_key_type;
  std::optional<Hash> default_hash;
  std::optional<ExportRule> export_rule;
  std::optional<RenewRule> renew;
  std::optional<std::optional<Time>> max_lifetime;  // holding nullopt: no limit
  std::optional<uint32_t> min_pin_length;
  void apply(Policy& policy) const;
};

// `renew-rule`: the rule (nullopt inside: follow the policy) and the command ("" none),
// each left as it is when absent.
struct RenewRuleChange {
  std::string nickname;
  std::optional<std::optional<RenewRule>> rule;
  std::optional<std::string> then;
  void apply(Vault::RenewalSettings& s) const;
};

// `revoke`: which certificate and why.
struct RevokeRequest {
  std::string nickname;
  std::optional<uint32_t> generation;  // the current one when absent
  RevocationReason reason = RevocationReason::kUnspecified;
};
// `ca crl`: until when, and the file the CLI writes it to ("" for stdout), for the record.
struct CrlRequest {
  Time next_update = 0;
  std::string file;
};

Json::Value to_json(const IssueRequest& r);
Json::Value to_json(const RevokeRequest& r);
Json::Value to_json(const CrlRequest& r);
Json::Value to_json(const CsrRequest& r);
Json::Value to_json(const CaRequest& r);
Json::Value to_json(const PolicyChange& c);
Json::Value to_json(const ExportRequest& r);  // nickname, encryption, chain; not `out`
Json::Value to_json(const RenewRuleChange& c);
// `issuer add`: the issuer as the CLI read it, its anchors as base64 DER; its shared secret
// or external account binding key, if any, travels in the password field.
Json::Value to_json(const OutsideIssuer& i);
// `create --issuer`.
Json::Value to_json(const EnrollmentRequest& r);
// `issuer remove`: the issuer's name alone.
Json::Value issuer_name_json(const std::string& name);
// `renew`: the nicknames (empty: whatever is due).
Json::Value renew_json(const std::vector<std::string>& nicknames, bool revoke_old);
// `publish`: the entry's file targets, or none (null).
Json::Value publish_json(const std::string& nickname, const std::optional<PublishTargets>& t);
Json::Value rotate_json(const std::string& nickname, std::optional<Time> not_after);
// disable, enable, delete, attach, import: the entry's nickname alone.
Json::Value nickname_json(const std::string& nickname);

Result<IssueRequest> issue_request(const Json::Value& v);
Result<RevokeRequest> revoke_request(const Json::Value& v);
Result<CrlRequest> crl_request(const Json::Value& v);
Result<CsrRequest> csr_request(const Json::Value& v);
Result<CaRequest> ca_request(const Json::Value& v);
Result<PolicyChange> policy_change(const Json::Value& v);
Result<ExportRequest> export_request(const Json::Value& v);
Result<RenewRuleChange> renew_rule_change(const Json::Value& v);
Result<std::vector<std::string>> renew_nicknames(const Json::Value& v);
bool renew_revoke_old(const Json::Value& v);
Result<std::optional<PublishTargets>> publish_targets(const Json::Value& v);
Result<std::string> nickname(const Json::Value& v);
Result<OutsideIssuer> outside_issuer(const Json::Value& v);
Result<EnrollmentRequest> enrollment_request(const Json::Value& v);
Result<std::string> issuer_name(const Json::Value& v);
Result<std::optional<Time>> optional_time(const Json::Value& v, const char* key);

std::string compact(const Json::Value& v);
Result<Json::Value> parse(std::string_view text);

}  // namespace certvault::cli::owner
