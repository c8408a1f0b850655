// The config schema: one row per key (dotted path, type, default or required, valid range or
// choices, a one-line doc, and the Config field it binds to). Parsing, validation, printing,
// config_to_yaml() and docs/configs.md are all driven by these rows: adding a key means adding
// one row to schema.cpp (and its field to config.h).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "config/config.h"
#include "config/sources.h"

namespace am {

// Schedule: a number, or a list of [step, value] pairs (a piecewise-constant coefficient).
enum class KeyKind { Int, UInt64, Float, Bool, String, Enum, Schedule };

// A parsed value of one key. Int holds int64_t (range-checked into int), UInt64 uint64_t,
// Float double, Bool bool, String and Enum std::string, Schedule a Schedule.
using KeyValue = std::variant<int64_t, uint64_t, double, bool, std::string, Schedule>;

// Numeric bounds; an absent bound is unbounded.
struct Range {
  std::optional<double> lo, hi;
  bool lo_open = false, hi_open = false;  // true: strict inequality

  bool contains(double v) const;
  std::string str() const;  // ">= 1", "> 0", "[0, 1)", "any"
};

Range at_least(double lo);                // [lo, inf)
Range greater_than(double lo);            // (lo, inf)
Range closed_open(double lo, double hi);  // [lo, hi)
Range open_closed(double lo, double hi);  // (lo, hi]

// Reads and writes one Config field as a KeyValue; the kind is deduced from the field's type.
struct Binding {
  KeyKind kind;
  std::function<KeyValue(const Config&)> get;
  std::function<void(Config&, const KeyValue&)> set;
};

// The kind of a field of C++ type T.
template <typename T>
constexpr KeyKind kind_of() {
  static_assert(std::is_same_v<T, int> || std::is_same_v<T, uint64_t> || std::is_same_v<T, double> ||
                    std::is_same_v<T, bool> || std::is_same_v<T, std::string> || std::is_same_v<T, Schedule>,
                "config fields are int, uint64_t, double, bool, std::string or Schedule");
  if constexpr (std::is_same_v<T, int>) return KeyKind::Int;
  if constexpr (std::is_same_v<T, uint64_t>) return KeyKind::UInt64;
  if constexpr (std::is_same_v<T, double>) return KeyKind::Float;
  if constexpr (std::is_same_v<T, bool>) return KeyKind::Bool;
  if constexpr (std::is_same_v<T, Schedule>) return KeyKind::Schedule;
  return KeyKind::String;
}

// bind([](auto& c) -> auto& { return c.model.d_model; }): the accessor is generic so that the
// same lambda serves const (get) and non-const (set) configs.
template <typename Access>
Binding bind(Access access) {
  using T = std::remove_cvref_t<decltype(access(std::declval<Config&>()))>;
  using Stored = std::conditional_t<std::is_same_v<T, int>, int64_t, T>;  // KeyValue's type
  return Binding{
      kind_of<T>(),
      [access](const Config& c) { return KeyValue(Stored(access(c))); },
      [access](Config& c, const KeyValue& v) { access(c) = T(std::get<Stored>(v)); },
  };
}

struct KeySpec {
  std::string path;                  // "model.moe.selector.k"
  bool required = false;             // no default: the config must set it
  std::string default_value;         // YAML text of the default (unused when required)
  Range range;                       // Int / Float keys; Schedule keys: every value
  std::vector<std::string> choices;  // Enum keys (their field is a std::string)
  std::string doc;                   // one line for docs/configs.md
  Binding field;

  KeyKind kind() const { return choices.empty() ? field.kind : KeyKind::Enum; }
  std::string section() const;  // "model.moe.selector" (everything before the last dot)
  std::string name() const;     // "k"
};

// Row helpers, so that a row reads: path, default (YAML text, or kRequired), range or choices, doc,
// field -- for the schema (schema.cpp) and the strategies' own keys (config/strategy.h).
inline constexpr const char* kRequired = "\x01required";
KeySpec config_key(std::string path, std::string dflt, Range range, std::string doc, Binding field);
KeySpec config_enum_key(std::string path, std::string dflt, std::vector<std::string> choices, std::string doc,
                        Binding field);
// AM_FIELD(model.d_model): the Binding of a Config member.
#define AM_FIELD(member) ::am::bind([](auto& c) -> auto& { return c.member; })

// Every key, grouped by section, in the order they are printed.
const std::vector<KeySpec>& config_schema();
// The top-level sections with a one-line doc each, in schema order.
const std::vector<std::pair<std::string, std::string>>& config_sections();
// nullptr when `path` is not a key.
const KeySpec* find_key(const std::string& path);
// True when `path` is a (possibly nested) section, e.g. "model" or "model.moe.aux".
bool is_section(const std::string& path);

// A rule that relates several keys. `check` returns a message when the rule is broken; `show`
// renders one key for that message as "model.d_model = 100 (base.yaml:4)".
using ShowKey = std::function<std::string(const std::string& path)>;
struct CrossRule {
  std::string doc;  // one line for docs/configs.md
  std::function<std::optional<std::string>(const Config&, const ShowKey&)> check;
};
const std::vector<CrossRule>& config_rules();
// The MoE layer's rules (rules_moe.cpp): those the strategies register (config/strategy.h), then
// the few that relate keys of several families. Part of config_rules(), after the general ones.
std::vector<CrossRule> moe_rules();

// ---- values: parsing and printing by kind (schema.cpp's helpers, used by the loader) ----

// "an integer", "a number", "true or false", "one of cpu, cuda, auto", ...
std::string kind_expectation(const KeySpec& key);
// "int", "uint64", "float", "bool", "string", "enum", "schedule"
std::string kind_name(KeyKind kind);
// Parses YAML scalar text for `key`; on failure returns nullopt and sets `error` to the reason
// ("expected an integer, got 'four'", "0 is out of range (valid: >= 1)", ...). A Schedule key
// takes a number here (a constant schedule); lists go through parse_schedule().
std::optional<KeyValue> parse_value(const KeySpec& key, const std::string& text, std::string& error);
// The value as YAML text that parses back to exactly the same value (floats in the shortest
// form that round-trips; strings quoted when YAML would read them otherwise; a constant schedule
// as a plain number, any other as a flow list "[[0, 0.02], [1000, 0.0001]]").
std::string format_value(const KeyValue& v);
// A float as YAML 1.1 and 1.2 parsers both read it as a float: the shortest text that reads back
// as the same double, with a '.' in the mantissa (10000.0, 1.0e-08, 2.5e+20; YAML 1.1 reads 1e-08
// as a string) and .inf / -.inf / .nan for the non-finite.
std::string yaml_float(double x);

// Parses a Schedule key's list value (entry.kind == Sequence): [[step, value], ...] with integer
// steps strictly increasing from 0 and every value in key.range. On failure returns nullopt, sets
// `error` to the reason naming the pair ("pair 2 [1000, -0.1]: the value -0.1 is out of range
// (valid: >= 0)") and `origin` to where that pair was written.
std::optional<Schedule> parse_schedule(const KeySpec& key, const ConfigEntry& entry, std::string& error,
                                       std::string& origin);

}  // namespace am
