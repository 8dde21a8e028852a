#!/usr/bin/env bash
# Run 2 of docs/retromae.md: does RetroMAE help all-MiniLM-L6-v2? Three arms, fine-tuned and evaluated alike:
#   none     — no further pre-training
#   retromae — continued pre-training with RetroMAE (enhanced decoding)
#   mlm      — continued pre-training with plain whole-word MLM, same data, masking, steps and learning rate
# Pre-training text: the four English retrieval corpora (documents only); fine-tuning: (title → abstract)
# pairs of cranfield and lisa, in-batch negatives; evaluation: dense nDCG@10 / MAP. CLS pooling in every arm
# (RetroMAE trains the CLS vector). ≈ 35 min on 2 cores.
#   bash scripts/recipes/retromae-minilm.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
. .venv/bin/activate
D=${TRIVEC_SHARED:-../shared}/data
R=${R:-runs/retromae-minilm}
STEPS=${STEPS:-150}
FT_STEPS=${FT_STEPS:-100}
C=$D/vaswani-npl/corpus.jsonl,$D/cranfield/corpus.jsonl,$D/cacm/corpus.jsonl,$D/lisa/corpus.jsonl
TASKS=vaswani-npl,cranfield,cacm,lisa,trecqa
mkdir -p "$R"

# fine-tuning pairs (no query or qrel of any evaluated set is read)
python - "$D" "$R/pairs.jsonl" <<'PY'
import json, sys
data, out = sys.argv[1], sys.argv[2]
with open(out, "w", encoding="utf-8") as handle:
    for name in ("cranfield", "lisa"):
        for line in open(f"{data}/{name}/corpus.jsonl", encoding="utf-8"):
            row = json.loads(line)
            title, text = (row.get("title") or "").strip(), (row.get("text") or "").strip()
            if title and text and title.lower() != text.lower():
                handle.write(json.dumps({"query": title, "pos": [text], "neg": []}) + "\n")
PY

for arm in none retromae mlm; do
  start=all-MiniLM-L6-v2
  if [ "$arm" != none ]; then
    [ -f "$R/$arm/encoder_model/config.json" ] || trivec train retromae --model all-MiniLM-L6-v2 --corpus "$C" \
        -o "$R/$arm" --objective "$arm" --max-steps "$STEPS" --batch-size 32 --max-seq-length 96 \
        --learning-rate 5e-5 --seed 42 --set weight_decay=0.01 --set logging_steps=10 --set save_strategy=no
    start=$R/$arm/encoder_model
  fi
  [ -f "$R/ft-$arm/config.json" ] || trivec train contrastive --model "$start" --data "$R/pairs.jsonl" \
      -o "$R/ft-$arm" --group-size 1 --batch-size 32 --max-steps "$FT_STEPS" --learning-rate 5e-5 \
      --passage-max-len 128 --query-max-len 32 --temperature 0.05 --seed 42 \
      --set pooling=cls --set save_strategy=no
  trivec eval -m "$R/ft-$arm" -t "$TASKS" --modes dense --max-length 256 -o "$R/eval-$arm" --resume --quiet
done
trivec eval-report "$R/eval-none" "$R/eval-retromae" "$R/eval-mlm" --label none --label retromae --label mlm \
    -o "$R/compare"
