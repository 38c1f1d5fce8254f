// PKCS#11 data objects (CKO_DATA) in the vault: listing, reading, creating, destroying.
// Their attributes are manifest lines; each value is a file of its own (data_object.h), so a
// vault without data objects pays nothing for them.
#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/objects.h>

#include <algorithm>

#include "data_object.h"
#include "seal.h"
#include "vault_impl.h"

namespace certvault {
namespace {

// PKCS#11 types CKA_APPLICATION and CKA_LABEL as RFC 2279 (UTF-8) strings: OpenSSL checks the
// encoding. NUL is refused, as no client means it in a label.
bool is_utf8_text(std::string_view s) {
  if (s.empty()) return true;
  if (s.find('\0') != std::string_view::npos) return false;
  ERR_set_mark();
  const int type = ASN1_mbstring_copy(nullptr, reinterpret_cast<const unsigned char*>(s.data()),
                                      static_cast<int>(s.size()), MBSTRING_UTF8, B_ASN1_UTF8STRING);
  ERR_pop_to_mark();
  return type > 0;
}

// CKA_OBJECT_ID (v3.0 4.5): the DER encoding of one OBJECT IDENTIFIER, nothing after it.
bool is_der_oid(std::span<const uint8_t> der) {
  const unsigned char* p = der.data();
  ERR_set_mark();
  ASN1_OBJECT* o = d2i_ASN1_OBJECT(nullptr, &p, static_cast<long>(der.size()));
  ERR_pop_to_mark();
  const bool whole = o && p == der.data() + der.size();
  ASN1_OBJECT_free(o);
  return whole;
}

Result<void> check_text(std::string_view text, std::string_view what) {
  if (text.size() > kDataTextMax)
    return fail(Code::kInvalidInput, "the data object's " + std::string(what) + " is " +
                                         std::to_string(text.size()) + " bytes; at most " +
                                         std::to_string(kDataTextMax) + " are stored");
  if (!is_utf8_text(text))
    return fail(Code::kInvalidInput, "the data object's " + std::string(what) +
                                         " is not UTF-8 text; give it as UTF-8, without NUL");
  return {};
}

// 32 lower-case hex digits, as data_objects() lists them; keeps other bytes out of messages.
Result<void> check_data_id(std::string_view id) {
  if (id.size() == 32 && std::all_of(id.begin(), id.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
      }))
    return {};
  return fail(Code::kInvalidInput,
              "a data object id is 32 lower-case hex digits, as the vault lists them");
}

const manifest::DataRecord* find_data(const manifest::Manifest& m, std::string_view id) {
  for (const auto& d : m.data)
    if (d.info.id == id) return &d;
  return nullptr;
}

std::unexpected<Error> no_data_object(const Vault::Impl& v, std::string_view id) {
  return fail(Code::kNotFound, "no data object " + std::string(id) + " in " + v.where());
}

// What a handle may see: a private object only once unlocked (v3.0 4.4.1, CKA_PRIVATE).
bool visible(const Vault::Impl& v, const manifest::DataRecord& d) {
  return !d.info.is_private || v.unlocked();
}

}  // namespace

Result<void> check_data_object(const DataObjectRequest& r) {
  CV_CHECK(check_text(r.application, "application (CKA_APPLICATION)"));
  CV_CHECK(check_text(r.label, "label (CKA_LABEL)"));
  if (r.object_id.size() > kDataObjectIdMax)
    return fail(Code::kInvalidInput, "the data object's CKA_OBJECT_ID is " +
                                         std::to_string(r.object_id.size()) + " bytes; at most " +
                                         std::to_string(kDataObjectIdMax) + " are stored");
  if (!r.object_id.empty() && !is_der_oid(r.object_id))
    return fail(Code::kInvalidInput,
                "the data object's CKA_OBJECT_ID is not one DER-encoded object identifier; give "
                "the DER of an OID (06 ...), or none");
  if (r.value.size() > kDataValueMax)
    return fail(Code::kInvalidInput, "the data object's value (CKA_VALUE) is " +
                                         std::to_string(r.value.size()) + " bytes; at most " +
                                         std::to_string(kDataValueMax) + " are stored");
  return {};
}

std::vector<DataObject> Vault::data_objects() const {
  (void)impl_->refresh();
  std::vector<DataObject> out;
  for (const auto& d : impl_->m.data)
    if (visible(*impl_, d)) out.push_back(d.info);
  return out;
}

std::optional<DataObject> Vault::find_data_object(std::string_view id) const {
  (void)impl_->refresh();
  const auto* d = find_data(impl_->m, id);
  if (!d || !visible(*impl_, *d)) return std::nullopt;
  return d->info;
}

Result<SecureBytes> Vault::data_object_value(std::string_view id) const {
  const Impl& v = *impl_;
  CV_CHECK(check_data_id(id));
  CV_CHECK(v.refresh());
  const auto* d = find_data(v.m, id);
  if (!d) return no_data_object(v, id);
  if (d->info.is_private) CV_CHECK(v.require_unlocked("read a private data object"));
  CV_TRY(bytes, v.object_bytes(d->object));
  const std::string& vault_id = v.m.header.vault_id;
  auto file = data_object::decode(bytes);
  if (!file || file->vault_id != vault_id || file->id != d->info.id ||
      file->sealed != d->info.is_private)
    return v.object_damaged(d->object);
  SecureBytes value;
  if (file->sealed) {
    auto opened = seal::open(v.seal_key, file->value, data_object::seal_ad(vault_id, d->info.id));
    if (!opened)
      return fail(Code::kTampered, v.where() +
                                       " failed authentication: the sealed value of data "
                                       "object " +
                                       d->info.id +
                                       " does not open; restore the vault directory from a "
                                       "backup");
    value = std::move(*opened);
  } else {
    value = SecureBytes(file->value.data(), file->value.size());
  }
  if (value.size() != d->info.value_size) return v.object_damaged(d->object);
  return value;
}

Result<DataObject> Vault::create_data_object(const DataObjectRequest& request) {
  CV_CHECK(check_data_object(request));
  Impl& v = *impl_;
  DataObject made;
  CV_CHECK(v.transact([&](manifest::Manifest& m, Impl::Txn& txn) -> Result<void> {
    if (m.data.size() >= kDataObjectsMax)
      return fail(Code::kRefused, v.where() + " holds " + std::to_string(kDataObjectsMax) +
                                      " data objects, the most it keeps; destroy one first");
    manifest::DataRecord r;
    r.info.id = new_id();
    r.info.application = request.application;
    r.info.object_id = request.object_id;
    r.info.label = request.label;
    r.info.is_private = request.is_private;
    r.info.value_size = static_cast<uint32_t>(request.value.size());
    data_object::DataFile file;
    file.vault_id = m.header.vault_id;
    file.id = r.info.id;
    file.sealed = request.is_private;
    if (file.sealed)
      file.value = seal::seal(v.seal_key, request.value.span(),
                              data_object::seal_ad(file.vault_id, file.id));
    else
      file.value.assign(request.value.span().begin(), request.value.span().end());
    CV_TRY(hash, txn.put_bytes(data_object::encode(file)));
    r.object = std::move(hash);
    made = r.info;
    m.data.push_back(std::move(r));
    return {};
  }));
  return made;
}

Result<void> Vault::destroy_data_object(std::string_view id) {
  CV_CHECK(check_data_id(id));
  Impl& v = *impl_;
  return v.transact([&](manifest::Manifest& m, Impl::Txn& txn) -> Result<void> {
    auto it = std::find_if(m.data.begin(), m.data.end(),
                           [&](const manifest::DataRecord& d) { return d.info.id == id; });
    if (it == m.data.end()) return no_data_object(v, id);
    txn.drop(it->object);
    m.data.erase(it);
    return {};
  });
}

}  // namespace certvault
