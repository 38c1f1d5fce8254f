#include "data_object.h"

#include <json/json.h>

#include <memory>

#include "seal.h"
#include "strict_json.h"

namespace certvault::data_object {

namespace {
constexpr std::string_view kOwnerPrefix = "data:";
}

Bytes encode(const DataFile& f) {
  Json::Value v(Json::objectValue);
  v["format"] = 1;
  v["vault"] = f.vault_id;
  v["owner"] = std::string(kOwnerPrefix) + f.id;
  v[f.sealed ? "sealed_value" : "value"] = seal::to_base64(f.value);
  Json::StreamWriterBuilder w;
  w["indentation"] = " ";
  std::string text = Json::writeString(w, v) + "\n";
  return Bytes(text.begin(), text.end());
}

Result<DataFile> decode(std::span<const uint8_t> bytes) {
  auto bad = [] { return fail(Code::kTampered, "data object file is malformed"); };
  Json::Value v;
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  if (!parse_strict_json(text, v) || !v.isObject() || v.size() != 4) return bad();
  const Json::Value& owner = v["owner"];
  const bool sealed = v.isMember("sealed_value");
  const Json::Value& value = v[sealed ? "sealed_value" : "value"];
  if (!v["format"].isInt() || v["format"].asInt() != 1 || !v["vault"].isString() ||
      !owner.isString() || !owner.asString().starts_with(kOwnerPrefix) || !value.isString())
    return bad();
  auto decoded = seal::from_base64(value.asString());
  if (!decoded) return bad();
  DataFile f;
  f.vault_id = v["vault"].asString();
  f.id = owner.asString().substr(kOwnerPrefix.size());
  f.sealed = sealed;
  f.value = std::move(*decoded);
  return f;
}

Bytes seal_ad(std::string_view vault_id, std::string_view id) {
  std::string ad = "certvault/data/v1";
  ad += '\0';
  ad += vault_id;
  ad += '\0';
  ad += id;
  return Bytes(ad.begin(), ad.end());
}

}  // namespace certvault::data_object
