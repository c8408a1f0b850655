#include "data/task_file.h"

#include "core/error.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>

namespace am {
namespace {

using json = nlohmann::json;

// Where an error points: "FILE:LINE: field 'NAME'".
struct Place {
  const std::string& path;
  int64_t line;
  std::string at(const std::string& field) const { return fmt::format("{}:{}: field '{}'", path, line, field); }
};

constexpr const char* kLayoutHint =
    "each line is {\"context\": str, \"choices\": [str, ...], \"label\": int} or a HellaSwag line "
    "(ctx_a, ctx_b, activity_label, endings, label); docs/evaluation.md";

const json& field(const json& j, const std::string& name, const Place& p) {
  const auto it = j.find(name);
  if (it == j.end()) throw UserError(fmt::format("{}: missing", p.at(name)), kLayoutHint);
  return *it;
}

std::string string_field(const json& j, const std::string& name, const Place& p) {
  const json& v = field(j, name, p);
  if (!v.is_string())
    throw UserError(fmt::format("{}: expected a string, got {}", p.at(name), v.type_name()), kLayoutHint);
  return v.get<std::string>();
}

std::vector<std::string> string_list(const json& v, const std::string& name, const Place& p) {
  if (!v.is_array())
    throw UserError(fmt::format("{}: expected a list of strings, got {}", p.at(name), v.type_name()), kLayoutHint);
  std::vector<std::string> out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_string()) {
      throw UserError(fmt::format("{}: element {} is {}, not a string", p.at(name), i, v[i].type_name()), kLayoutHint);
    }
    out.push_back(v[i].get<std::string>());
  }
  return out;
}

// The label as an index into n choices: an integer, or (HellaSwag's files) a string of digits.
int label_of(const json& j, size_t n, const Place& p) {
  const json& v = field(j, "label", p);
  int64_t label = -1;
  if (v.is_number_integer()) {
    label = v.get<int64_t>();
  } else if (v.is_string() && !v.get<std::string>().empty() && v.get<std::string>().size() < 10 &&
             v.get<std::string>().find_first_not_of("0123456789") == std::string::npos) {
    label = std::stoll(v.get<std::string>());
  } else {
    throw UserError(fmt::format("{}: expected an integer, got {}", p.at("label"), v.dump()), kLayoutHint);
  }
  if (label < 0 || label >= static_cast<int64_t>(n)) {
    throw UserError(fmt::format("{}: {} is out of range: the example has {} choices (labels 0 to {})", p.at("label"),
                                label, n, n - 1));
  }
  return static_cast<int>(label);
}

std::string strip(const std::string& s) {
  const char* ws = " \t\n\r\f\v";
  const size_t a = s.find_first_not_of(ws);
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(ws) - a + 1);
}

// Python's str.capitalize() on ASCII letters: the first character upper case, the rest lower.
std::string capitalize(std::string s) {
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) s[i] = static_cast<char>(i == 0 ? std::toupper(c) : std::tolower(c));
  }
  return s;
}

std::string replace_all(const std::string& s, const std::string& from, const std::string& to) {
  std::string out;
  size_t i = 0;
  for (size_t j; (j = s.find(from, i)) != std::string::npos; i = j + from.size()) out += s.substr(i, j - i) + to;
  return out + s.substr(i);
}

TaskExample hellaswag_example(const json& j, const Place& p) {
  const std::string ctx = j.contains("ctx_a") || !j.contains("ctx")
                              ? string_field(j, "ctx_a", p) + " " + capitalize(string_field(j, "ctx_b", p))
                              : string_field(j, "ctx", p);
  TaskExample ex;
  ex.continuations = string_list(j["endings"], "endings", p);
  for (auto& e : ex.continuations) e = hellaswag_preprocess(e);
  ex.contexts.assign(ex.continuations.size(), hellaswag_preprocess(string_field(j, "activity_label", p) + ": " + ctx));
  ex.label = label_of(j, ex.continuations.size(), p);
  return ex;
}

TaskExample generic_example(const json& j, const Place& p) {
  TaskExample ex;
  ex.continuations = string_list(field(j, "choices", p), "choices", p);
  const json& c = field(j, "context", p);
  if (c.is_array()) {
    ex.contexts = string_list(c, "context", p);
    if (ex.contexts.size() != ex.continuations.size()) {
      throw UserError(fmt::format("{}: a list of {} contexts for {} choices", p.at("context"), ex.contexts.size(),
                                  ex.continuations.size()),
                      "a list of contexts holds one context per choice");
    }
  } else if (c.is_string()) {
    ex.contexts.assign(ex.continuations.size(), c.get<std::string>());
  } else {
    throw UserError(fmt::format("{}: expected a string or a list of strings, got {}", p.at("context"), c.type_name()),
                    kLayoutHint);
  }
  ex.label = label_of(j, ex.continuations.size(), p);
  return ex;
}

TaskExample parse_example(const std::string& text, const Place& p) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    throw UserError(fmt::format("{}:{}: invalid JSON: {}", p.path, p.line, e.what()), kLayoutHint);
  }
  if (!j.is_object())
    throw UserError(fmt::format("{}:{}: expected a JSON object, got {}", p.path, p.line, j.type_name()), kLayoutHint);
  TaskExample ex = j.contains("endings") ? hellaswag_example(j, p) : generic_example(j, p);
  const char* list = j.contains("endings") ? "endings" : "choices";
  if (ex.continuations.size() < 2) {
    throw UserError(fmt::format("{}: {} choice(s); a multiple-choice example needs at least 2", p.at(list),
                                ex.continuations.size()));
  }
  for (size_t i = 0; i < ex.continuations.size(); ++i) {
    if (ex.continuations[i].empty()) throw UserError(fmt::format("{}: choice {} is empty", p.at(list), i));
  }
  ex.line = p.line;
  return ex;
}

}  // namespace

std::string hellaswag_preprocess(const std::string& text) {
  std::string s = replace_all(strip(text), " [title]", ". ");
  std::string out;  // re.sub("\\[.*?\\]", "", s): '.' does not match a newline
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '[') {
      const size_t close = s.find_first_of("]\n", i + 1);
      if (close != std::string::npos && s[close] == ']') {
        i = close;
        continue;
      }
    }
    out += s[i];
  }
  return replace_all(out, "  ", " ");
}

std::vector<std::string> split_task_list(const std::string& list) {
  std::vector<std::string> out;
  for (size_t start = 0, comma; start <= list.size(); start = comma + 1) {
    comma = std::min(list.find(',', start), list.size());
    if (comma > start) out.push_back(list.substr(start, comma - start));
  }
  return out;
}

TaskFile read_task_file(const std::string& path, int64_t limit) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw UserError(fmt::format("task file '{}' cannot be read", path), "pass a JSONL task file: docs/evaluation.md");
  TaskFile f;
  f.path = path;
  f.name = std::filesystem::path(path).stem().string();
  std::string text;
  for (int64_t line = 1; std::getline(in, text); ++line) {
    if (!text.empty() && text.back() == '\r') text.pop_back();
    if (text.find_first_not_of(" \t") == std::string::npos) continue;
    f.examples.push_back(parse_example(text, Place{path, line}));
    if (limit > 0 && static_cast<int64_t>(f.examples.size()) == limit) break;
  }
  if (f.examples.empty()) throw UserError(fmt::format("task file '{}' holds no examples", path), kLayoutHint);
  return f;
}

}  // namespace am
