// JSON as certvault reads what it wrote (the manifest's lines, key and data object files): a
// member given twice is an error, where jsoncpp by default keeps the last one.
#pragma once

#include <json/json.h>

#include <memory>
#include <string>
#include <string_view>

namespace certvault {

inline std::unique_ptr<Json::CharReader> strict_json_reader() {
  Json::CharReaderBuilder rb;
  rb["rejectDupKeys"] = true;
  return std::unique_ptr<Json::CharReader>(rb.newCharReader());
}

// False when `text` is not one JSON value, or names a member twice.
inline bool parse_strict_json(std::string_view text, Json::Value& out) {
  std::string err;
  return strict_json_reader()->parse(text.data(), text.data() + text.size(), &out, &err);
}

}  // namespace certvault
