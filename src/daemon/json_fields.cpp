#include "daemon/json_fields.hpp"

#include <cmath>
#include <optional>
#include <type_traits>

namespace corral::daemon {

namespace {

using json = nlohmann::json;

// The integer `v` holds exactly, if it is one T can hold. 2^63 and 2^64 are
// exact doubles, and every double below them converts without loss of range.
template <class T>
std::optional<T> exact(const json& v) {
  constexpr bool is_unsigned = std::is_unsigned_v<T>;
  if (v.is_number_unsigned()) {
    auto u = v.get<uint64_t>();
    if (!is_unsigned && u > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
    return static_cast<T>(u);
  }
  if (v.is_number_integer()) {
    auto i = v.get<int64_t>();
    if (is_unsigned && i < 0) return std::nullopt;
    return static_cast<T>(i);
  }
  double d = v.get<double>();
  constexpr double top = is_unsigned ? 18446744073709551616.0 : 9223372036854775808.0;
  constexpr double bottom = is_unsigned ? 0.0 : -9223372036854775808.0;
  if (!(d >= bottom && d < top) || d != std::floor(d)) return std::nullopt;
  return static_cast<T>(d);
}

template <class T>
std::optional<T> in_range(const json& v, T lo, T hi) {
  auto n = exact<T>(v);
  if (!n || *n < lo || *n > hi) return std::nullopt;
  return n;
}

std::string range_error(const std::string& name, auto lo, auto hi, const json& v) {
  return name + " must be a whole number " + std::to_string(lo) + ".." + std::to_string(hi) + ", got " + v.dump();
}

}  // namespace

std::string json_kind(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::object: return "an object";
    case json::value_t::array: return "an array";
    case json::value_t::string: return "a string";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float: return "a number";
    default: return "an unknown value";
  }
}

const json* json_fields::find(const char* key) const {
  auto it = obj_.find(key);
  return it == obj_.end() || it->is_null() ? nullptr : &*it;
}

void json_fields::fail(std::string what) {
  if (error_.empty()) error_ = std::move(what);
}

void json_fields::require(const char* key) {
  if (!find(key)) fail(std::string(key) + " is missing");
}

std::string json_fields::text(const char* key, std::string fallback) {
  const json* v = find(key);
  if (!v) return fallback;
  if (!v->is_string()) {
    fail(std::string(key) + " must be a string, got " + json_kind(*v));
    return fallback;
  }
  return v->get<std::string>();
}

bool json_fields::boolean(const char* key, bool fallback) {
  const json* v = find(key);
  if (!v) return fallback;
  if (!v->is_boolean()) {
    fail(std::string(key) + " must be true or false, got " + json_kind(*v));
    return fallback;
  }
  return v->get<bool>();
}

int64_t json_fields::whole(const char* key, int64_t lo, int64_t hi, int64_t fallback) {
  const json* v = find(key);
  if (!v) return fallback;
  if (!v->is_number()) {
    fail(std::string(key) + " must be a number, got " + json_kind(*v));
    return fallback;
  }
  auto n = in_range<int64_t>(*v, lo, hi);
  if (!n) {
    fail(range_error(key, lo, hi, *v));
    return fallback;
  }
  return *n;
}

uint64_t json_fields::whole_unsigned(const char* key, uint64_t lo, uint64_t hi, uint64_t fallback) {
  const json* v = find(key);
  if (!v) return fallback;
  if (!v->is_number()) {
    fail(std::string(key) + " must be a number, got " + json_kind(*v));
    return fallback;
  }
  auto n = in_range<uint64_t>(*v, lo, hi);
  if (!n) {
    fail(range_error(key, lo, hi, *v));
    return fallback;
  }
  return *n;
}

std::vector<std::string> json_fields::texts(const char* key) {
  const json* v = find(key);
  if (!v) return {};
  if (!v->is_array()) {
    fail(std::string(key) + " must be an array of strings, got " + json_kind(*v));
    return {};
  }
  std::vector<std::string> out;
  for (size_t k = 0; k < v->size(); ++k) {
    const json& e = (*v)[k];
    if (!e.is_string()) {
      fail(std::string(key) + "[" + std::to_string(k) + "] must be a string, got " + json_kind(e));
      return {};
    }
    out.push_back(e.get<std::string>());
  }
  return out;
}

std::vector<int> json_fields::wholes(const char* key, int lo, int hi) {
  const json* v = find(key);
  if (!v) return {};
  if (!v->is_array()) {
    fail(std::string(key) + " must be an array of numbers, got " + json_kind(*v));
    return {};
  }
  std::vector<int> out;
  for (size_t k = 0; k < v->size(); ++k) {
    const json& e = (*v)[k];
    std::string name = std::string(key) + "[" + std::to_string(k) + "]";
    if (!e.is_number()) {
      fail(name + " must be a number, got " + json_kind(e));
      return {};
    }
    auto n = in_range<int64_t>(e, lo, hi);
    if (!n) {
      fail(range_error(name, lo, hi, e));
      return {};
    }
    out.push_back(static_cast<int>(*n));
  }
  return out;
}

std::map<std::string, std::string> json_fields::text_map(const char* key) {
  const json* v = find(key);
  if (!v) return {};
  if (!v->is_object()) {
    fail(std::string(key) + " must be an object of strings, got " + json_kind(*v));
    return {};
  }
  std::map<std::string, std::string> out;
  for (auto it = v->begin(); it != v->end(); ++it) {
    if (!it->is_string()) {
      fail(std::string(key) + "." + it.key() + " must be a string, got " + json_kind(*it));
      return {};
    }
    out[it.key()] = it->get<std::string>();
  }
  return out;
}

const json& json_fields::array(const char* key) {
  static const json empty = json::array();
  const json* v = find(key);
  if (!v) return empty;
  if (!v->is_array()) {
    fail(std::string(key) + " must be an array, got " + json_kind(*v));
    return empty;
  }
  return *v;
}

}  // namespace corral::daemon
