// policy show | set | clear
#include "commands.h"
#include "report.h"

namespace certvault::cli {

Outcome cmd_policy_show(const Globals& globals) {
  CV_TRY(vault, open_vault(globals));
  report_policy(globals, vault.policy(), "");
  return kExitOk;
}

Outcome cmd_policy_set(const Globals& globals, const PolicySetArgs& args) {
  if (!args.max_end_date && !args.default_key_type && !args.default_hash && !args.export_rule) {
    return invalid(
        "policy set needs at least one of --max-end-date, --default-key-type, --default-hash, "
        "--export");
  }
  CV_TRY(max_end_date, parse_optional_date(args.max_end_date));
  CV_TRY(key_type, parse_optional_key_type(args.default_key_type));
  CV_TRY(hash, parse_optional_hash(args.default_hash));
  std::optional<ExportRule> export_rule;
  if (args.export_rule) {
    CV_TRY(rule, parse_export_rule(*args.export_rule));
    export_rule = rule;
  }
  CV_TRY(vault, open_unlocked(globals));
  CV_TRY(policy, vault.update_policy([&](Policy& p) {
    if (max_end_date) p.max_end_date = *max_end_date;
    if (key_type) p.default_key_type = *key_type;
    if (hash) p.default_hash = *hash;
    if (export_rule) p.export_rule = *export_rule;
  }));
  report_policy(globals, policy, "Updated the policy of vault '" + vault.label() + "'.");
  return kExitOk;
}

Outcome cmd_policy_clear(const Globals& globals) {
  CV_TRY(vault, open_unlocked(globals));
  CV_CHECK(vault.set_policy(Policy{}));
  report_policy(globals, vault.policy(),
                "Cleared the policy of vault '" + vault.label() + "': defaults apply.");
  return kExitOk;
}

}  // namespace certvault::cli
