// Schedules: coefficients that are piecewise constant in the step. Evaluation, and parsing of
// the YAML list form [[step, value], ...] with an error that names the offending pair.
#include <fmt/format.h>

#include <charconv>
#include <cmath>

#include "config/config.h"
#include "config/schema.h"

namespace am {

double Schedule::at(int64_t step) const {
  double v = points.empty() ? 0.0 : points.front().second;
  for (const auto& [s, value] : points) {
    if (s > step) break;
    v = value;
  }
  return v;
}

bool Schedule::active() const {
  for (const auto& p : points) {
    if (p.second > 0) return true;
  }
  return false;
}

namespace {

// "[1000, -0.1]", "[1000]", "a map": how one list element was written, for messages.
std::string show_item(const ConfigEntry& item) {
  if (item.kind != ConfigEntry::Kind::Sequence) return item.describe();
  std::vector<std::string> parts;
  for (const ConfigEntry& e : item.items) {
    parts.push_back(e.kind == ConfigEntry::Kind::Scalar && !e.quoted ? e.text : e.describe());
  }
  return fmt::format("[{}]", fmt::join(parts, ", "));
}

bool parse_step(const ConfigEntry& e, int64_t& out) {
  if (e.kind != ConfigEntry::Kind::Scalar || e.quoted || e.text.empty()) return false;
  const char* b = e.text.data() + (e.text[0] == '+' ? 1 : 0);
  const char* end = e.text.data() + e.text.size();
  auto [p, ec] = std::from_chars(b, end, out);
  return ec == std::errc() && p == end;
}

}  // namespace

std::optional<Schedule> parse_schedule(const KeySpec& key, const ConfigEntry& entry, std::string& error,
                                       std::string& origin) {
  origin = entry.origin;
  if (entry.kind != ConfigEntry::Kind::Sequence) {
    error = fmt::format("expected {}, got {}", kind_expectation(key), entry.describe());
    return std::nullopt;
  }
  if (entry.items.empty()) {
    error = fmt::format("expected {}, got an empty list; write a number, or e.g. [[0, 0.02], [1000, 1.0e-4]]",
                        kind_expectation(key));
    return std::nullopt;
  }
  Schedule sched;
  sched.points.clear();
  for (size_t i = 0; i < entry.items.size(); ++i) {
    const ConfigEntry& item = entry.items[i];
    origin = item.origin;
    const std::string pair = fmt::format("pair {} {}", i + 1, show_item(item));
    if (item.kind != ConfigEntry::Kind::Sequence || item.items.size() != 2) {
      error = fmt::format("{}: expected a [step, value] pair (a list of two numbers)", pair);
      return std::nullopt;
    }
    int64_t step = 0;
    if (!parse_step(item.items[0], step)) {
      error = fmt::format("{}: the step must be an integer, got {}", pair, item.items[0].describe());
      return std::nullopt;
    }
    if (i == 0 && step != 0) {
      error = fmt::format(
          "{}: the first step must be 0 (the schedule needs a value from the "
          "start), got {}",
          pair, step);
      return std::nullopt;
    }
    if (i > 0 && step <= sched.points.back().first) {
      error = fmt::format(
          "{}: step {} must be greater than the previous step {} (steps "
          "strictly increase)",
          pair, step, sched.points.back().first);
      return std::nullopt;
    }
    const ConfigEntry& value = item.items[1];
    std::string value_error;
    std::optional<KeyValue> v = value.kind == ConfigEntry::Kind::Scalar && !value.quoted
                                    ? parse_value(key, value.text, value_error)  // a number, range-checked
                                    : std::nullopt;
    if (!v) {
      error = value_error.empty()
                  ? fmt::format("{}: the value must be a number, got {}", pair, value.describe())
                  : fmt::format("{}: the value {}", pair,
                                value_error.rfind("expected", 0) == 0 ? "must be a number, got " + value.describe()
                                                                      : value_error);
      return std::nullopt;
    }
    sched.points.emplace_back(step, std::get<Schedule>(*v).points.front().second);
  }
  return sched;
}

}  // namespace am
