// Writing to stdout: JSON documents, aligned text, and secrets (which never pass through
// a std::string or stdio's buffer).
#pragma once

#include <json/json.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "secure.h"

namespace certvault::cli {

void print_json(const Json::Value& value);
// The same document as text (with its final line break), for a file.
std::string json_text(const Json::Value& value);
// `fields` (public values) plus one secret member, as one JSON object.
void print_json_with_secret(const Json::Value& fields, std::string_view secret_name,
                            const SecureBytes& secret);
// Writes the secret's bytes to stdout with write(2), after flushing what precedes it.
void write_secret(const SecureBytes& secret);
// After the command: did everything reach stdout? (A password lost to a full disk or a
// closed pipe must not pass silently.)
bool stdout_ok();

// "Label:   value" lines, values aligned.
using Fields = std::vector<std::pair<std::string, std::string>>;
void print_fields(const Fields& fields, std::string_view indent = "");
// Columns padded to their widest cell; the first row is the header.
void print_table(const std::vector<std::vector<std::string>>& rows, std::string_view indent = "");

}  // namespace certvault::cli
