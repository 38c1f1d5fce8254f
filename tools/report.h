// How entries, CAs and the policy read, as text and as JSON. Commands that show or change
// one of them share these, so every command prints the same thing the same way.
#pragma once

#include <json/json.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cli.h"
#include "types.h"
#include "vault.h"

namespace certvault::cli {

// Whole days until `not_after`, rounded up (a certificate made with +30d has 30 days left).
int64_t days_left(Time not_after, Time now);
bool expired(Time not_after, Time now);
// An active certificate that expires within `window` seconds of `now`, or already has:
// what `list --expiring` and `check` call soon.
bool expires_within(const Entry& entry, Time now, int64_t window);
// "expired" or "expires in N days".
std::string expiry_phrase(Time not_after, Time now);

// The generation that describes an entry: the current one, else the newest.
const Generation* shown_generation(const Entry& entry);
Status entry_status(const Entry& entry);

Json::Value entry_json(const Entry& entry, const Vault& vault, Time now);
Json::Value ca_json(const CaInfo& ca, Time now);
Json::Value policy_json(const Policy& policy);
// An entry's renewal: its rule (or the policy's), when it is due and who renews it, its
// command and its failures.
Json::Value renewal_json(const Entry& entry, const Policy& policy,
                         std::span<const OutsideIssuer> issuers = {});

void print_entry(const Entry& entry, const Vault& vault, Time now);
void print_entry_table(const std::vector<Entry>& entries, const Policy& policy, Time now);
void print_ca(const CaInfo& ca, Time now);
void print_policy(const Policy& policy);

// After a change: `headline` then the details, or the JSON object alone.
void report_entry(const Globals& globals, const Vault& vault, const Entry& entry,
                  std::string_view headline);
void report_ca(const Globals& globals, const CaInfo& ca, std::string_view headline);
void report_policy(const Globals& globals, const Policy& policy, std::string_view headline);
// A change with nothing to show but a sentence; JSON gets {"nickname":..., key: true}.
void report_done(const Globals& globals, std::string_view nickname, std::string_view key,
                 std::string_view sentence);

// "-----BEGIN CERTIFICATE-----" ... from DER.
std::string der_to_pem(const std::vector<uint8_t>& der, std::string_view type);

}  // namespace certvault::cli
