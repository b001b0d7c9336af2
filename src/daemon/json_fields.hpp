// Reads the fields of one JSON object (an app spec, the state file, a save
// file) with every value's type and range checked. A hand-edited or damaged
// file then fails with one line naming the key ("kill_timeout must be a whole
// number 0..1000000000000, got 1e+300"), never with nlohmann's exception text,
// and a number is converted only once it is known to fit: a float out of an
// integer's range converts with undefined behaviour.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace corral::daemon {

class json_fields {
 public:
  using json = nlohmann::json;

  /// Borrows `obj`, which outlives the reader. A key that is absent or null
  /// (null reads as absent, as in the control protocol) gives the fallback.
  explicit json_fields(const json& obj) : obj_(obj) {}

  /// Fails with "<key> is missing" unless the key is present and not null.
  void require(const char* key);
  std::string text(const char* key, std::string fallback = {});
  bool boolean(const char* key, bool fallback);
  /// A whole number lo..hi: an integer, or a float with no fraction.
  int64_t whole(const char* key, int64_t lo, int64_t hi, int64_t fallback);
  uint64_t whole_unsigned(const char* key, uint64_t lo, uint64_t hi, uint64_t fallback);
  std::vector<std::string> texts(const char* key);
  std::vector<int> wholes(const char* key, int lo, int hi);
  std::map<std::string, std::string> text_map(const char* key);
  /// An array (of objects the caller reads with readers of their own).
  const json& array(const char* key);

  /// Records an error of the caller's; the first one is kept.
  void fail(std::string what);
  /// The first error ("kill_timeout must be a number, got a string"), or "".
  const std::string& error() const noexcept { return error_; }

 private:
  const json* find(const char* key) const;

  const json& obj_;
  std::string error_;
};

/// What a JSON value is, as "got ..." says it: "a string", "a number", "null".
std::string json_kind(const nlohmann::json& v);

}  // namespace corral::daemon
