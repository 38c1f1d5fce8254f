#include "output.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <iostream>

namespace certvault::cli {
namespace {

std::string to_json_text(const Json::Value& value, bool indented) {
  Json::StreamWriterBuilder builder;
  builder["indentation"] = indented ? "  " : "";
  builder["emitUTF8"] = true;
  builder["enableYAMLCompatibility"] = true;  // "key": value, as print_json_with_secret writes
  return Json::writeString(builder, value);
}

bool g_write_failed = false;

void write_all(const uint8_t* data, size_t size) {
  std::cout.flush();
  std::fflush(stdout);
  while (size > 0) {
    ssize_t n = ::write(STDOUT_FILENO, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      g_write_failed = true;
      return;
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
}

// The secret as a JSON string literal, built in guarded memory.
SecureBytes json_quote(const SecureBytes& secret) {
  static constexpr char kHex[] = "0123456789abcdef";
  SecureBytes out(secret.size() * 6 + 2);
  uint8_t* p = out.data();
  *p++ = '"';
  for (uint8_t c : secret.span()) {
    if (c == '"' || c == '\\') {
      *p++ = '\\';
      *p++ = c;
    } else if (c < 0x20 || c == 0x7f) {
      for (char e : {'\\', 'u', '0', '0'}) *p++ = static_cast<uint8_t>(e);
      *p++ = static_cast<uint8_t>(kHex[c >> 4]);
      *p++ = static_cast<uint8_t>(kHex[c & 0xF]);
    } else {
      *p++ = c;
    }
  }
  *p++ = '"';
  out.truncate(static_cast<size_t>(p - out.data()));
  return out;
}

}  // namespace

void print_json(const Json::Value& value) {
  std::cout << json_text(value);
}

std::string json_text(const Json::Value& value) {
  return to_json_text(value, true) + "\n";
}

void print_json_with_secret(const Json::Value& fields, std::string_view secret_name,
                            const SecureBytes& secret) {
  std::string head = "{";
  for (const auto& name : fields.getMemberNames()) {
    head += "\n  " + to_json_text(Json::Value(name), false) + ": " +
            to_json_text(fields[name], false) + ",";
  }
  head += "\n  " + to_json_text(Json::Value(std::string(secret_name)), false) + ": ";
  std::cout << head;
  write_secret(json_quote(secret));
  std::cout << "\n}\n";
}

void write_secret(const SecureBytes& secret) {
  write_all(secret.data(), secret.size());
}

bool stdout_ok() {
  std::cout.flush();
  bool flushed = std::fflush(stdout) == 0;
  return !g_write_failed && std::cout.good() && flushed;
}

void print_fields(const Fields& fields, std::string_view indent) {
  size_t width = 0;
  for (const auto& [label, value] : fields) width = std::max(width, label.size());
  for (const auto& [label, value] : fields) {
    std::cout << indent << label << ':' << std::string(width - label.size() + 2, ' ') << value
              << '\n';
  }
}

void print_table(const std::vector<std::vector<std::string>>& rows, std::string_view indent) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()));
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line(indent);
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    std::cout << line << '\n';
  }
}

}  // namespace certvault::cli
