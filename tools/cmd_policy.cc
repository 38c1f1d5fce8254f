// policy show | set | clear
#include "commands.h"
#include "owner.h"
#include "owner_request.h"
#include "renewal.h"
#include "report.h"

namespace certvault::cli {

Outcome cmd_policy_show(const Globals& globals) {
  CV_TRY(vault, open_vault(globals));
  report_policy(globals, vault.policy(), "");
  return kExitOk;
}

Outcome cmd_policy_set(const Globals& globals, const PolicySetArgs& args) {
  if (!args.max_end_date && !args.default_key_type && !args.default_hash && !args.export_rule &&
      !args.max_lifetime && !args.renew_before && !args.renew_at && !args.renew_off &&
      !args.min_pin_length) {
    return invalid(
        "policy set needs at least one of --max-end-date, --max-lifetime, --default-key-type, "
        "--default-hash, --export, --renew-before, --renew-at, --renew-off, --min-pin-length");
  }
  if (args.min_pin_length && (*args.min_pin_length < 1 || *args.min_pin_length > kMaxMinPinLength))
    return invalid("--min-pin-length " + std::to_string(*args.min_pin_length) +
                   " is out of range; give 1 to " + std::to_string(kMaxMinPinLength));
  if ((args.renew_before ? 1 : 0) + (args.renew_at ? 1 : 0) + (args.renew_off ? 1 : 0) > 1)
    return invalid("give one of --renew-before, --renew-at and --renew-off");
  owner::PolicyChange change;
  CV_TRY(max_end_date, parse_optional_date(args.max_end_date));
  CV_TRY(key_type, parse_optional_key_type(args.default_key_type));
  CV_TRY(hash, parse_optional_hash(args.default_hash));
  change.max_end_date = max_end_date;
  change.default_key_type = key_type;
  change.default_hash = hash;
  if (args.export_rule) {
    CV_TRY(rule, parse_export_rule(*args.export_rule));
    change.export_rule = rule;
  }
  if (args.max_lifetime && *args.max_lifetime == "none") {
    change.max_lifetime = std::optional<Time>();
  } else if (args.max_lifetime) {
    CV_TRY(lifetime, parse_period(*args.max_lifetime, "--max-lifetime"));
    if (!check_lifetime(lifetime))
      return invalid("--max-lifetime '" + *args.max_lifetime +
                     "' is out of range; give 1h to 36500d, or none");
    change.max_lifetime = std::optional(lifetime);
  }
  if (args.renew_before) {
    CV_TRY(rule, parse_renew_before(*args.renew_before));
    change.renew = rule;
  }
  if (args.renew_at) {
    CV_TRY(rule, parse_renew_at(*args.renew_at));
    change.renew = rule;
  }
  if (args.renew_off) change.renew = RenewRule{};
  if (args.min_pin_length) change.min_pin_length = static_cast<uint32_t>(*args.min_pin_length);
  CV_TRY(vault, open_vault(globals));
  CV_TRY(reply, ask_agent(globals, vault, {"policy-set", owner::to_json(change)}));
  Policy policy;
  if (reply) {
    CV_CHECK(vault.refresh());
    policy = vault.policy();
  } else {
    CV_CHECK(unlock_here(globals, vault));
    CV_TRY(updated, vault.update_policy([&](Policy& p) { change.apply(p); }));
    policy = std::move(updated);
  }
  report_policy(globals, policy, "Updated the policy of vault '" + vault.label() + "'.");
  return kExitOk;
}

Outcome cmd_policy_clear(const Globals& globals) {
  CV_TRY(vault, open_vault(globals));
  CV_TRY(reply, ask_agent(globals, vault, {"policy-clear"}));
  if (reply) {
    CV_CHECK(vault.refresh());
  } else {
    CV_CHECK(unlock_here(globals, vault));
    CV_CHECK(vault.set_policy(Policy{}));
  }
  report_policy(globals, vault.policy(),
                "Cleared the policy of vault '" + vault.label() + "': defaults apply.");
  return kExitOk;
}

}  // namespace certvault::cli
