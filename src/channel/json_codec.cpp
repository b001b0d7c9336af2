// The channel's JSON encoder and line parser (see json_codec.hpp).
#include "channel/json_codec.hpp"

#include <charconv>
#include <cstdint>
#include <cstring>

#include "core/json_nesting.hpp"

namespace corral::detail {
namespace {

// Length of the valid UTF-8 sequence at p (RFC 3629, as nlohmann checks it),
// or 0 if it is not one.
std::size_t utf8_length(const unsigned char* p, const unsigned char* end) {
  unsigned c = p[0];
  std::size_t len;
  unsigned lo = 0x80, hi = 0xBF;  // range of the second byte
  if (c < 0xC2) return 0;
  if (c < 0xE0) {
    len = 2;
  } else if (c < 0xF0) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;  // no surrogates
  } else if (c < 0xF5) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return 0;
  }
  if (static_cast<std::size_t>(end - p) < len) return 0;
  if (p[1] < lo || p[1] > hi) return 0;
  for (std::size_t i = 2; i < len; ++i)
    if (p[i] < 0x80 || p[i] > 0xBF) return 0;
  return len;
}

// Bytes that a JSON string cannot hold raw, or that need a closer look.
struct byte_classes {
  bool special[256];
  constexpr byte_classes() : special() {
    for (int c = 0; c < 256; ++c) special[c] = c < 0x20 || c == '"' || c == '\\' || c >= 0x80;
  }
};
constexpr byte_classes classes;

void append_string(std::string& out, const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  out.push_back('"');
  while (p < end) {
    const auto* run = p;
    while (p < end && !classes.special[*p]) ++p;
    out.append(reinterpret_cast<const char*>(run), static_cast<std::size_t>(p - run));
    if (p == end) break;
    unsigned char c = *p;
    if (c >= 0x80) {
      std::size_t n = utf8_length(p, end);
      if (n == 0) {  // invalid UTF-8: as nlohmann's error_handler_t::replace
        out.append("\xEF\xBF\xBD");
        ++p;
      } else {
        out.append(reinterpret_cast<const char*>(p), n);
        p += n;
      }
      continue;
    }
    ++p;
    switch (c) {
      case '"': out.append("\\\""); break;
      case '\\': out.append("\\\\"); break;
      case '\b': out.append("\\b"); break;
      case '\f': out.append("\\f"); break;
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\t': out.append("\\t"); break;
      default: {
        static constexpr char hex[] = "0123456789abcdef";
        char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        out.append(esc, 6);
      }
    }
  }
  out.push_back('"');
}

template <class Int>
void append_integer(std::string& out, Int v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, static_cast<std::size_t>(r.ptr - buf));
}

class fast_parser {
 public:
  fast_parser(const char* p, const char* end) : p_(p), end_(end) {}

  bool document(json& out) {
    skip_ws();
    if (!value(out)) return false;
    skip_ws();
    return p_ == end_;
  }

 private:
  // nlohmann parses iteratively; this parser recurses, so deep documents are
  // left to nlohmann rather than risking the stack.
  static constexpr int max_depth = 128;

  void skip_ws() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }

  bool literal(const char* word, std::size_t n) {
    if (static_cast<std::size_t>(end_ - p_) < n || std::memcmp(p_, word, n) != 0) return false;
    p_ += n;
    return true;
  }

  bool value(json& out) {
    if (p_ == end_) return false;
    switch (*p_) {
      case '{': return object(out);
      case '[': return array(out);
      case '"': {
        std::string s;
        if (!string(s)) return false;
        out = std::move(s);
        return true;
      }
      case 't': out = true; return literal("true", 4);
      case 'f': out = false; return literal("false", 5);
      case 'n': out = nullptr; return literal("null", 4);
      default: return number(out);
    }
  }

  bool object(json& out) {
    if (++depth_ > max_depth) return false;
    ++p_;
    out = json::object();
    auto& obj = out.get_ref<json::object_t&>();
    skip_ws();
    if (p_ < end_ && *p_ == '}') {
      ++p_;
      --depth_;
      return true;
    }
    for (;;) {
      if (p_ == end_ || *p_ != '"') return false;
      std::string key;
      if (!string(key)) return false;
      skip_ws();
      if (p_ == end_ || *p_ != ':') return false;
      ++p_;
      skip_ws();
      json& slot = obj[std::move(key)];  // a repeated key: the last one wins, as in nlohmann
      if (!value(slot)) return false;
      skip_ws();
      if (p_ == end_) return false;
      if (*p_ == ',') {
        ++p_;
        skip_ws();
        continue;
      }
      if (*p_ != '}') return false;
      ++p_;
      --depth_;
      return true;
    }
  }

  bool array(json& out) {
    if (++depth_ > max_depth) return false;
    ++p_;
    out = json::array();
    auto& arr = out.get_ref<json::array_t&>();
    skip_ws();
    if (p_ < end_ && *p_ == ']') {
      ++p_;
      --depth_;
      return true;
    }
    for (;;) {
      if (!value(arr.emplace_back())) return false;
      skip_ws();
      if (p_ == end_) return false;
      if (*p_ == ',') {
        ++p_;
        skip_ws();
        continue;
      }
      if (*p_ != ']') return false;
      ++p_;
      --depth_;
      return true;
    }
  }

  bool hex4(unsigned& out) {
    if (end_ - p_ < 4) return false;
    out = 0;
    for (int i = 0; i < 4; ++i) {
      char c = *p_++;
      out <<= 4;
      if (c >= '0' && c <= '9') out |= static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f') out |= static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') out |= static_cast<unsigned>(c - 'A' + 10);
      else return false;
    }
    return true;
  }

  static void append_utf8(std::string& s, unsigned cp) {
    if (cp < 0x80) {
      s.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      s.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      s.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      s.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  bool string(std::string& s) {
    ++p_;  // the opening quote
    for (;;) {
      const char* run = p_;
      while (p_ < end_ && !classes.special[static_cast<unsigned char>(*p_)]) ++p_;
      s.append(run, static_cast<std::size_t>(p_ - run));
      if (p_ == end_) return false;
      auto c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        ++p_;
        return true;
      }
      if (c < 0x20) return false;  // raw control characters are not allowed
      if (c >= 0x80) {
        std::size_t n = utf8_length(reinterpret_cast<const unsigned char*>(p_),
                                    reinterpret_cast<const unsigned char*>(end_));
        if (n == 0) return false;
        s.append(p_, n);
        p_ += n;
        continue;
      }
      // A backslash escape.
      if (++p_ == end_) return false;
      switch (*p_++) {
        case '"': s.push_back('"'); break;
        case '\\': s.push_back('\\'); break;
        case '/': s.push_back('/'); break;
        case 'b': s.push_back('\b'); break;
        case 'f': s.push_back('\f'); break;
        case 'n': s.push_back('\n'); break;
        case 'r': s.push_back('\r'); break;
        case 't': s.push_back('\t'); break;
        case 'u': {
          unsigned cp;
          if (!hex4(cp)) return false;
          if (cp >= 0xDC00 && cp <= 0xDFFF) return false;  // a lone low surrogate
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            unsigned lo;
            if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') return false;
            p_ += 2;
            if (!hex4(lo) || lo < 0xDC00 || lo > 0xDFFF) return false;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          append_utf8(s, cp);
          break;
        }
        default: return false;
      }
    }
  }

  bool number(json& out) {
    const char* start = p_;
    bool negative = false;
    if (*p_ == '-') {
      negative = true;
      ++p_;
    }
    if (p_ == end_ || *p_ < '0' || *p_ > '9') return false;
    std::uint64_t v = 0;
    bool overflow = false;
    if (*p_ == '0') {
      ++p_;
    } else {
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') {
        unsigned d = static_cast<unsigned>(*p_++ - '0');
        if (v > (UINT64_MAX - d) / 10) overflow = true;
        v = v * 10 + d;
      }
    }
    bool is_float = false;
    if (p_ < end_ && *p_ == '.') {
      is_float = true;
      ++p_;
      if (p_ == end_ || *p_ < '0' || *p_ > '9') return false;
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    }
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      is_float = true;
      ++p_;
      if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (p_ == end_ || *p_ < '0' || *p_ > '9') return false;
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    }
    if (is_float) {
      // from_chars rounds correctly, as strtod (nlohmann's) does; a value out
      // of range is left to nlohmann.
      double d;
      auto r = std::from_chars(start, p_, d);
      if (r.ec != std::errc() || r.ptr != p_) return false;
      out = d;
      return true;
    }
    if (overflow) return false;  // nlohmann makes it a float
    if (negative) {
      if (v > static_cast<std::uint64_t>(INT64_MAX) + 1) return false;
      out = static_cast<std::int64_t>(0 - v);
    } else {
      out = v;
    }
    return true;
  }

  const char* p_;
  const char* end_;
  int depth_ = 0;
};

}  // namespace

void append_json(std::string& out, const json& v) {
  switch (v.type()) {
    case json::value_t::null: out.append("null"); return;
    case json::value_t::boolean: out.append(v.get_ref<const json::boolean_t&>() ? "true" : "false"); return;
    case json::value_t::number_integer: append_integer(out, v.get_ref<const json::number_integer_t&>()); return;
    case json::value_t::number_unsigned: append_integer(out, v.get_ref<const json::number_unsigned_t&>()); return;
    case json::value_t::string: append_string(out, v.get_ref<const json::string_t&>()); return;
    case json::value_t::object: {
      out.push_back('{');
      bool first = true;
      for (const auto& [key, value] : v.get_ref<const json::object_t&>()) {
        if (!first) out.push_back(',');
        first = false;
        append_string(out, key);
        out.push_back(':');
        append_json(out, value);
      }
      out.push_back('}');
      return;
    }
    case json::value_t::array: {
      out.push_back('[');
      bool first = true;
      for (const auto& item : v.get_ref<const json::array_t&>()) {
        if (!first) out.push_back(',');
        first = false;
        append_json(out, item);
      }
      out.push_back(']');
      return;
    }
    default:  // floats (nlohmann's shortest round-trip format), binary, discarded
      out.append(v.dump(-1, ' ', false, json::error_handler_t::replace));
      return;
  }
}

json parse_json_line(const char* begin, const char* end) {
  json out;
  if (fast_parser(begin, end).document(out)) return out;
  if (json_nests_deeper_than(std::string_view(begin, static_cast<std::size_t>(end - begin)), max_json_nesting))
    return json(json::value_t::discarded);
  return json::parse(begin, end, nullptr, /*allow_exceptions=*/false);
}

bool parse_json_fast_for_test(const char* begin, const char* end, json& out) {
  return fast_parser(begin, end).document(out);
}

}  // namespace corral::detail
