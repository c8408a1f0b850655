// Multiple-choice task files (JSONL, one example per line) for zero-shot evaluation
// (docs/evaluation.md). Two layouts, recognised per line:
//  - generic: {"context": str, "choices": [str, ...], "label": int}; "context" may instead be a
//    list with one context per choice (WinoGrande's partial scoring: the choices differ in their
//    context and share the continuation);
//  - HellaSwag: {"ctx_a": str, "ctx_b": str, "activity_label": str, "endings": [str, ...],
//    "label": int or str} (or "ctx" instead of ctx_a/ctx_b), with lm-evaluation-harness's
//    preprocessing of its text.
// Either way an example becomes, per choice, a context and a continuation (the text scored).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace am {

struct TaskExample {
  std::vector<std::string> contexts;       // one per choice (the same string for most tasks)
  std::vector<std::string> continuations;  // the choices as written (without the delimiter)
  int label = 0;                           // index of the correct choice
  int64_t line = 0;                        // 1-based line of the file
};

struct TaskFile {
  std::string path;
  std::string name;  // the file name without its extension
  std::vector<TaskExample> examples;
};

// Reads the first `limit` examples (0: all) of a JSONL task file. Blank lines are skipped. Errors
// (UserError) name the file, the line and the field: invalid JSON, a missing or mistyped field,
// fewer than two choices, a label out of range, an empty choice.
TaskFile read_task_file(const std::string& path, int64_t limit = 0);

// The task files of a comma-separated list (`eval --task a.jsonl,b.jsonl`, eval.tasks); empty
// items are skipped.
std::vector<std::string> split_task_list(const std::string& list);

// lm-evaluation-harness's HellaSwag text preprocessing: strip, " [title]" -> ". ", drop every
// "[...]" bracket, then "  " -> " ".
std::string hellaswag_preprocess(const std::string& text);

}  // namespace am
