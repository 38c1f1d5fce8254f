// ACME Renewal Information (ARI, RFC 9773): how a certificate is named to its CA, what the
// CA's renewalInfo answer says, and when in its suggested window to renew. Pure functions
// and an in-memory cache: no network (acme_client fetches), no vault (the renewal pass
// decides). docs/lifecycle.md, "Outside CAs: ACME".
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>

#include "error.h"
#include "types.h"

namespace certvault::cli {

// RFC 9773 4.1: base64url(AKI keyIdentifier) "." base64url(the serial's DER content octets).
std::string ari_cert_id(std::span<const uint8_t> key_identifier,
                        std::span<const uint8_t> serial_content);
// The same read from a certificate (DER); refused when it has no authority key identifier.
Result<std::string> ari_cert_id(std::span<const uint8_t> cert_der);

// The renewalInfo URL of an ACME directory (RFC 9773 3); "" when it offers none or the
// body is not a directory.
std::string renewal_info_url(std::string_view directory_body);

// RFC 9773 4.2: a renewalInfo answer. `start` < `end`.
struct RenewalInfo {
  Time start = 0;
  Time end = 0;
  std::string explanation_url;  // for the operator; "" none (or not a plain http(s) URL)
};
// The body of a renewalInfo answer; `url` names it in the error.
Result<RenewalInfo> parse_renewal_info(std::string_view body, std::string_view url);

// RFC 3339 date-time ("2025-01-02T04:00:00Z", "...T04:00:00.5+02:00"): seconds since the
// epoch (a fraction dropped).
std::optional<Time> parse_rfc3339(std::string_view text);

// The moment a Retry-After header names (delta-seconds or an HTTP-date, RFC 9110 10.2.3),
// read at `now`; nullopt when there is none or it cannot be read.
std::optional<Time> retry_after_at(std::string_view header, Time now);

// How long to wait before asking for renewal information again, from a Retry-After header
// (delta-seconds or an HTTP-date) read at `now`: clamped to 1 minute .. 1 day (RFC 9773
// 4.3.3); 6 hours when there is none or it cannot be read.
Time ari_retry_after(std::string_view header, Time now);
constexpr Time kAriDefaultRecheck = 6 * 3600;

// RFC 9773 4.2: the moment to renew, uniform within [start, end) as the RFC asks but fixed
// for an entry's generation (from its id, as renewal rules spread due times), so that
// passes agree. Never after the window's end: a window already past means now.
Time ari_renewal_time(const RenewalInfo& info, std::string_view entry_id, uint32_t generation);

// What is known of each certificate's window, by certificate id: the agent keeps it across
// passes, a one-shot `renew` for one run. Never stored. Safe to share between threads.
class AriCache {
 public:
  struct Window {
    std::optional<RenewalInfo> info;  // the CA's last answer; nullopt: none yet
    Time next_fetch = 0;              // not asked again before this (Retry-After)
  };
  // Whether to ask the CA about `cert_id` at `t`: never asked, or Retry-After has passed.
  bool stale(const std::string& cert_id, Time t) const;
  std::optional<Window> find(const std::string& cert_id) const;
  void answered(const std::string& cert_id, const RenewalInfo& info, Time next_fetch);
  // A failed fetch: the last answer (if any) stays, asked again after `next_fetch`.
  void failed(const std::string& cert_id, Time next_fetch);
  // Forgets the certificates not in `cert_ids` (replaced, or their entry gone).
  void keep_only(const std::set<std::string>& cert_ids);

  // An issuer's directory, by its URL: its renewalInfo URL ("" none), until `next_fetch`.
  struct Directory {
    std::string renewal_info;
    Time next_fetch = 0;
  };
  std::optional<Directory> directory(const std::string& url, Time t) const;  // while fresh
  void set_directory(const std::string& url, const Directory& d);

 private:
  mutable std::mutex mu_;
  std::map<std::string, Window> windows_;
  std::map<std::string, Directory> directories_;
};

}  // namespace certvault::cli
