// Values of config keys: ranges, strict parsing of YAML scalar text by kind, and printing that
// round-trips exactly.
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cmath>
#include <limits>

#include "config/schema.h"

namespace am {

namespace {

std::string num(double v) { return fmt::format("{}", v); }

// Full-string integer parse; accepts an optional leading '+'.
template <typename T>
bool parse_integer(const std::string& text, T& out) {
  const char* b = text.data();
  const char* e = b + text.size();
  if (b != e && *b == '+') ++b;
  if (b == e) return false;
  auto [p, ec] = std::from_chars(b, e, out);
  return ec == std::errc() && p == e;
}

bool looks_numeric(const std::string& text) {
  double d;
  const char* b = text.data();
  if (!text.empty() && text[0] == '+') ++b;
  auto [p, ec] = std::from_chars(b, text.data() + text.size(), d);
  return ec == std::errc() && p == text.data() + text.size();
}

}  // namespace

std::string yaml_float(double x) {
  if (!std::isfinite(x)) return std::isnan(x) ? ".nan" : (x > 0 ? ".inf" : "-.inf");
  std::string s = fmt::format("{}", x);  // shortest text that reads back as the same double
  const size_t e = s.find_first_of("eE");
  const std::string mantissa = s.substr(0, e);
  if (mantissa.find('.') == std::string::npos) s.insert(mantissa.size(), ".0");  // 1e-08 -> 1.0e-08
  return s;
}

Range at_least(double lo) { return Range{lo, std::nullopt, false, false}; }
Range greater_than(double lo) { return Range{lo, std::nullopt, true, false}; }
Range closed_open(double lo, double hi) { return Range{lo, hi, false, true}; }
Range open_closed(double lo, double hi) { return Range{lo, hi, true, false}; }

bool Range::contains(double v) const {
  if (lo && (lo_open ? !(v > *lo) : !(v >= *lo))) return false;
  if (hi && (hi_open ? !(v < *hi) : !(v <= *hi))) return false;
  return true;
}

std::string Range::str() const {
  if (lo && hi) {
    return fmt::format("{}{}, {}{}", lo_open ? '(' : '[', num(*lo), num(*hi), hi_open ? ')' : ']');
  }
  if (lo) return fmt::format("{} {}", lo_open ? ">" : ">=", num(*lo));
  if (hi) return fmt::format("{} {}", hi_open ? "<" : "<=", num(*hi));
  return "any";
}

std::string kind_name(KeyKind kind) {
  switch (kind) {
    case KeyKind::Int:
      return "int";
    case KeyKind::UInt64:
      return "uint64";
    case KeyKind::Float:
      return "float";
    case KeyKind::Bool:
      return "bool";
    case KeyKind::String:
      return "string";
    case KeyKind::Enum:
      return "enum";
    case KeyKind::Schedule:
      return "schedule";
  }
  return "?";
}

std::string kind_expectation(const KeySpec& key) {
  switch (key.kind()) {
    case KeyKind::Int:
      return "an integer";
    case KeyKind::UInt64:
      return "a non-negative integer (uint64)";
    case KeyKind::Float:
      return "a number";
    case KeyKind::Bool:
      return "true or false";
    case KeyKind::String:
      return "a string";
    case KeyKind::Enum:
      return "one of " + fmt::format("{}", fmt::join(key.choices, ", "));
    case KeyKind::Schedule:
      return "a number or a list of [step, value] pairs";
  }
  return "?";
}

std::optional<KeyValue> parse_value(const KeySpec& key, const std::string& text, std::string& error) {
  auto bad_type = [&] {
    error = fmt::format("expected {}, got '{}'", kind_expectation(key), text);
    return std::nullopt;
  };
  auto out_of_range = [&](const std::string& shown) {
    error = fmt::format("{} is out of range (valid: {})", shown, key.range.str());
    return std::nullopt;
  };
  switch (key.kind()) {
    case KeyKind::Int: {
      int64_t v;
      if (!parse_integer(text, v)) return bad_type();
      if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max()) {
        error = fmt::format("{} does not fit a 32-bit integer (valid: {})", text, key.range.str());
        return std::nullopt;
      }
      if (!key.range.contains(double(v))) return out_of_range(text);
      return KeyValue(v);
    }
    case KeyKind::UInt64: {
      uint64_t v;
      if (!parse_integer(text, v)) {
        if (!text.empty() && text[0] == '-') {
          error = fmt::format("expected {}, got the negative value '{}'", kind_expectation(key), text);
          return std::nullopt;
        }
        return bad_type();
      }
      return KeyValue(v);
    }
    case KeyKind::Float:
    case KeyKind::Schedule: {  // a number here is a constant schedule
      if (!looks_numeric(text)) return bad_type();
      double v = 0;
      const char* b = text.data() + (text[0] == '+' ? 1 : 0);
      std::from_chars(b, text.data() + text.size(), v);
      if (!std::isfinite(v)) {
        error = fmt::format("expected a finite number, got '{}'", text);
        return std::nullopt;
      }
      if (std::fabs(v) > std::numeric_limits<float>::max()) {  // the model and optimizer compute in float
        error = fmt::format(
            "{} does not fit a float (largest magnitude {}); the model and optimizer "
            "compute in fp32, where it would be infinite (valid: {})",
            text, std::numeric_limits<float>::max(), key.range.str());
        return std::nullopt;
      }
      if (v != 0 && static_cast<float>(v) == 0.0f) {  // underflow: "> 0" would hold, fp32 would see 0
        error = fmt::format(
            "{} is too small for a float (smallest magnitude {}); the model and optimizer "
            "compute in fp32, where it would be 0 (valid: {})",
            text, std::numeric_limits<float>::denorm_min(), key.range.str());
        return std::nullopt;
      }
      if (!key.range.contains(v)) return out_of_range(text);
      return key.kind() == KeyKind::Schedule ? KeyValue(Schedule(v)) : KeyValue(v);
    }
    case KeyKind::Bool: {
      if (text == "true" || text == "True" || text == "TRUE") return KeyValue(true);
      if (text == "false" || text == "False" || text == "FALSE") return KeyValue(false);
      return bad_type();
    }
    case KeyKind::String:
      return KeyValue(text);
    case KeyKind::Enum: {
      for (const std::string& c : key.choices) {
        if (c == text) return KeyValue(text);
      }
      return bad_type();
    }
  }
  return std::nullopt;
}

std::string format_value(const KeyValue& v) {
  struct Visitor {
    std::string operator()(int64_t x) const { return std::to_string(x); }
    std::string operator()(uint64_t x) const { return std::to_string(x); }
    std::string operator()(bool x) const { return x ? "true" : "false"; }
    std::string operator()(double x) const { return yaml_float(x); }
    std::string operator()(const Schedule& x) const {
      if (x.points.size() == 1 && x.points[0].first == 0) return (*this)(x.points[0].second);
      std::vector<std::string> pairs;
      for (const auto& [step, value] : x.points) {
        pairs.push_back(fmt::format("[{}, {}]", step, (*this)(value)));
      }
      return fmt::format("[{}]", fmt::join(pairs, ", "));
    }
    std::string operator()(const std::string& x) const {
      YAML::Emitter e;  // quotes only what plain YAML would read differently ("", "null", "a: b")
      e << x;
      return e.c_str();
    }
  };
  return std::visit(Visitor{}, v);
}

}  // namespace am
