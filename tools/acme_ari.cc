#include "acme_ari.h"

#include <curl/curl.h>
#include <json/json.h>
#include <openssl/asn1.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <charconv>
#include <memory>

#include "ossl.h"
#include "renewal.h"
#include "seal.h"
#include "vault.h"

namespace certvault::cli {
namespace {

constexpr Time kMinute = 60;
constexpr Time kDay = 86400;

std::string b64url(std::span<const uint8_t> data) {
  return seal::to_base64url(data);
}

std::optional<Json::Value> parse_object(std::string_view text) {
  Json::CharReaderBuilder rb;
  std::unique_ptr<Json::CharReader> reader(rb.newCharReader());
  Json::Value v;
  std::string err;
  if (!reader->parse(text.data(), text.data() + text.size(), &v, &err) || !v.isObject())
    return std::nullopt;
  return v;
}

template <typename T>
bool digits(std::string_view s, T& out) {
  if (s.empty() || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

// A URL shown to the operator: http(s), printable ASCII, of a sane length; else nothing.
std::string shown_url(const Json::Value& v) {
  if (!v.isString()) return "";
  const std::string s = v.asString();
  const bool plain = s.size() <= 500 && std::all_of(s.begin(), s.end(), [](unsigned char c) {
                       return c > 0x20 && c < 0x7f;
                     });
  return plain && (s.starts_with("https://") || s.starts_with("http://")) ? s : "";
}

}  // namespace

std::string ari_cert_id(std::span<const uint8_t> key_identifier,
                        std::span<const uint8_t> serial_content) {
  return b64url(key_identifier) + "." + b64url(serial_content);
}

Result<std::string> ari_cert_id(std::span<const uint8_t> cert_der) {
  CV_TRY(cert, ossl::cert_from_der(cert_der));
  ossl::Ptr<AUTHORITY_KEYID, AUTHORITY_KEYID_free> aki(static_cast<AUTHORITY_KEYID*>(
      X509_get_ext_d2i(cert.get(), NID_authority_key_identifier, nullptr, nullptr)));
  if (!aki || !aki->keyid || ASN1_STRING_length(aki->keyid) <= 0)
    return fail(Code::kInvalidInput,
                "the certificate has no authority key identifier, so ACME renewal information "
                "cannot name it (RFC 9773 4.1)");
  // The serial's DER content octets: its encoding without tag and length (a leading zero
  // kept when the first byte has its top bit set).
  unsigned char* der = nullptr;
  const int n = i2d_ASN1_INTEGER(X509_get0_serialNumber(cert.get()), &der);
  std::unique_ptr<unsigned char, void (*)(unsigned char*)> owned(
      der, [](unsigned char* p) { OPENSSL_free(p); });
  const unsigned char* p = der;
  long len = 0;
  int tag = 0, xclass = 0;
  if (n <= 0 || (ASN1_get_object(&p, &len, &tag, &xclass, n) & 0x80) || tag != V_ASN1_INTEGER ||
      len <= 0 || p + len != der + n)
    return fail(Code::kInvalidInput, "the certificate's serial number cannot be read");
  return ari_cert_id(std::span(ASN1_STRING_get0_data(aki->keyid),
                               static_cast<size_t>(ASN1_STRING_length(aki->keyid))),
                     std::span(p, static_cast<size_t>(len)));
}

std::string renewal_info_url(std::string_view directory_body) {
  auto dir = parse_object(directory_body);
  if (!dir || !(*dir)["renewalInfo"].isString()) return "";
  return shown_url((*dir)["renewalInfo"]);
}

std::optional<Time> parse_rfc3339(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS, then an optional fraction, then Z or +HH:MM / -HH:MM (RFC 3339 5.6).
  if (s.size() < 20 || (s[10] != 'T' && s[10] != 't')) return std::nullopt;
  std::string whole(s.substr(0, 19));
  whole[10] = 'T';
  auto t = parse_time(whole + "Z");  // keystore's reader checks each field's range
  if (!t) return std::nullopt;
  std::string_view rest = s.substr(19);
  if (rest.front() == '.') {
    size_t n = 1;
    while (n < rest.size() && rest[n] >= '0' && rest[n] <= '9') ++n;
    if (n == 1) return std::nullopt;
    rest.remove_prefix(n);
  }
  if (rest == "Z" || rest == "z") return t;
  int hours = 0, minutes = 0;
  if (rest.size() != 6 || (rest[0] != '+' && rest[0] != '-') || rest[3] != ':' ||
      !digits(rest.substr(1, 2), hours) || !digits(rest.substr(4, 2), minutes) || hours > 23 ||
      minutes > 59)
    return std::nullopt;
  const Time offset = hours * 3600 + minutes * 60;
  return rest[0] == '+' ? *t - offset : *t + offset;
}

Result<RenewalInfo> parse_renewal_info(std::string_view body, std::string_view url) {
  const std::string where = "the renewal information at " + std::string(url);
  auto v = parse_object(body);
  if (!v || !(*v)["suggestedWindow"].isObject())
    return fail(Code::kRefused, where + " has no suggestedWindow (RFC 9773 4.2)");
  const Json::Value& w = (*v)["suggestedWindow"];
  RenewalInfo info;
  const bool read =
      w["start"].isString() && w["end"].isString() &&
      parse_rfc3339(w["start"].asString()).transform([&](Time t) { return info.start = t; }) &&
      parse_rfc3339(w["end"].asString()).transform([&](Time t) { return info.end = t; });
  if (!read)
    return fail(
        Code::kRefused,
        where + " gives a suggestedWindow without an RFC 3339 start and end (RFC 9773 4.2)");
  // RFC 9773 4.2: such an answer is invalid; treat it as no answer.
  if (info.end <= info.start)
    return fail(Code::kRefused, where + " gives a suggestedWindow whose end (" +
                                    format_time(info.end) + ") is not after its start (" +
                                    format_time(info.start) +
                                    "); it is ignored as RFC 9773 4.2 says");
  info.explanation_url = shown_url((*v)["explanationURL"]);
  return info;
}

std::optional<Time> retry_after_at(std::string_view header, Time now) {
  if (int64_t s = 0; header.size() <= 12 && digits(header, s)) return now + s;
  if (header.empty() || header.size() > 100) return std::nullopt;
  // curl reads the three date formats HTTP allows.
  const std::string text(header);
  const time_t at = curl_getdate(text.c_str(), nullptr);
  if (at == static_cast<time_t>(-1)) return std::nullopt;
  return static_cast<Time>(at);
}

Time ari_retry_after(std::string_view header, Time now) {
  const auto at = retry_after_at(header, now);
  return std::clamp<Time>(at ? *at - now : kAriDefaultRecheck, kMinute, kDay);
}

Time ari_renewal_time(const RenewalInfo& info, std::string_view entry_id, uint32_t generation) {
  return info.start + stable_offset(entry_id, generation, info.end - info.start);
}

bool AriCache::stale(const std::string& cert_id, Time t) const {
  std::lock_guard lock(mu_);
  auto it = windows_.find(cert_id);
  return it == windows_.end() || it->second.next_fetch <= t;
}

std::optional<AriCache::Window> AriCache::find(const std::string& cert_id) const {
  std::lock_guard lock(mu_);
  auto it = windows_.find(cert_id);
  if (it == windows_.end()) return std::nullopt;
  return it->second;
}

void AriCache::answered(const std::string& cert_id, const RenewalInfo& info, Time next_fetch) {
  std::lock_guard lock(mu_);
  windows_[cert_id] = Window{info, next_fetch};
}

void AriCache::failed(const std::string& cert_id, Time next_fetch) {
  std::lock_guard lock(mu_);
  windows_[cert_id].next_fetch = next_fetch;
}

void AriCache::keep_only(const std::set<std::string>& cert_ids) {
  std::lock_guard lock(mu_);
  std::erase_if(windows_, [&](const auto& w) { return !cert_ids.contains(w.first); });
}

std::optional<AriCache::Directory> AriCache::directory(const std::string& url, Time t) const {
  std::lock_guard lock(mu_);
  auto it = directories_.find(url);
  if (it == directories_.end() || it->second.next_fetch <= t) return std::nullopt;
  return it->second;
}

void AriCache::set_directory(const std::string& url, const Directory& d) {
  std::lock_guard lock(mu_);
  directories_[url] = d;
}

}  // namespace certvault::cli
