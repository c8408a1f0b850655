#!/usr/bin/env bash
# Builds the files the multiple-choice evaluation tests read (tests/cli/tasks.cmake), under WORK: a
# tiny text corpus, its SentencePiece tokenizer and token shards (dataset.json names the
# tokenizer), a small run trained on them that scores a task file every 3 steps (eval.tasks), the
# same run without it, and task files, good and broken.
#   task_fixture.sh BUILD_DIR SOURCE_DIR WORK
set -euo pipefail
build=$1
src=$2
work=$3
rm -rf "$work"
mkdir -p "$work/tasks"
words=(the cat sat on a mat dog ran to big red house and then slept)
for d in $(seq 0 79); do
  text=""
  for w in $(seq 0 11); do text+="${text:+ }${words[$(((d * 7 + w * 5) % 15))]}"; done
  printf '{"text": "%s."}\n' "$text"
done >"$work/corpus.jsonl"
data="$build/data_tools/autonomoe-data"
"$data" train-tokenizer --input "$work/corpus.jsonl" --vocab-size 64 --model-prefix "$work/tok" \
  --no-byte-fallback --character-coverage 1.0 --threads 1 >/dev/null
"$data" encode --tokenizer "$work/tok.model" --input "$work/corpus.jsonl" --out-dir "$work/data" --name text \
  --val-fraction 0.1 --threads 1 >/dev/null

cat >"$work/tasks/good.jsonl" <<'JSONL'
{"context": "the cat sat on", "choices": ["a mat", "the big red house"], "label": 0}
{"context": ["the dog sat on", "the cat ran to"], "choices": ["the mat", "the mat"], "label": 1}
{"ctx_a": "the dog ran to the house.", "ctx_b": "then the", "activity_label": "Dogs", "endings": ["cat slept.", "big red [title] mat.", "dog sat on a mat.", "house."], "label": "2"}
JSONL
printf '{"context": "a", "choices": ["b", "c"], "label": 0}\n{"context": "a", "choices": ["b", "c"], "label": 5}\n' \
  >"$work/tasks/bad_label.jsonl"
printf '{"context": "a", "choices": ["b", "c"], "label": 0}\n\n{"context": "a", "label": 0}\n' >"$work/tasks/no_choices.jsonl"
printf '{"context": "a", "choices": ["b" "c"], "label": 0}\n' >"$work/tasks/bad_json.jsonl"

"$build/autonomoe" train --config "$src/tests/data/cli/small.yaml" --set "run.out_dir=$work/runs" \
  --set run.name=text --set model.vocab_size=64 --set "data.train=$work/data/text_train_*.bin" \
  --set "data.val=$work/data/text_val_*.bin" --set "eval.tasks=$work/tasks/good.jsonl" --set eval.every=3 >/dev/null
# the same run without eval.tasks: its losses must be the same (scoring changes nothing in training)
"$build/autonomoe" train --config "$src/tests/data/cli/small.yaml" --set "run.out_dir=$work/runs" \
  --set run.name=plain --set model.vocab_size=64 --set "data.train=$work/data/text_train_*.bin" \
  --set "data.val=$work/data/text_val_*.bin" --set eval.every=3 >/dev/null
echo "task fixture ready in $work"
