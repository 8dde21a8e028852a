#!/usr/bin/env bash
# The real run of docs/training.md: contrastive fine-tuning of all-MiniLM-L6-v2 (minilm-m3.s backbone) on
# training splits of ../shared/data, then `trivec eval` before and after on the English retrieval, reranking
# and STS tasks. Nothing here trains on a split that is evaluated: MRPC / SICK / TrecQA train splits only,
# and every positive that is also an evaluation pair (either order) is removed first.
#   bash scripts/recipes/minilm-contrastive.sh              # ≈ 12 min on 2 cores
#   bash scripts/recipes/minilm-contrastive.sh --data-only  # steps 1-2 (also used by m3-minilm.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
. .venv/bin/activate
D=${TRIVEC_SHARED:-../shared}/data
B=build/minilm-data
OUT=${OUT:-runs/minilm-contrastive}
TASKS=vaswani-npl,cranfield,cacm,lisa,trecqa,semeval-sts-2012,semeval-sts-2013,semeval-sts-2014,semeval-sts-2015,semeval-sts-2016,sick,stsb-multi-mt-en
mkdir -p "$B/clean"
AGAINST=(--against "$D/semeval-sts/pairs.jsonl" --against "$D/stsb-multi-mt/pairs.jsonl"
         --against "$D/sick/pairs.jsonl" --against "$D/mrpc/pairs.jsonl")

# 1. training pairs: SICK train pairs with gold ≥ 4, MRPC train paraphrases, TrecQA train (wrong answers as negatives)
trivec data pairs --corpus "$D/sick/pairs.jsonl" --query-field sentence1 --passage-field sentence2 \
    --where split=train --at-least score=4 -o "$B/sick.jsonl"
trivec data decontaminate -d "$B/sick.jsonl" -o "$B/clean/sick.jsonl" "${AGAINST[@]}"
trivec data decontaminate -d "$D/mrpc/train.jsonl" -o "$B/clean/mrpc.jsonl" "${AGAINST[@]}"
cp "$D/trecqa/train.jsonl" "$B/clean/trecqa.jsonl"
cp "$D/flagembedding-examples/train.jsonl" "$B/clean/flagembedding-examples.jsonl"

# 2. hard negatives for the paraphrase sets, from ranks 3-50 of all-MiniLM-L6-v2, 0.05 below the positive
for name in sick mrpc; do
  trivec mine -m all-MiniLM-L6-v2 -d "$B/clean/$name.jsonl" -o "$B/$name-mined.jsonl" --range 3-50 --negatives 3 --margin 0.05
done

[ "${1:-}" = "--data-only" ] && exit 0

# 3. fine-tune (configs/contrastive-minilm.yaml holds every setting)
trivec train contrastive --config configs/contrastive-minilm.yaml --output "$OUT"

# 4. evaluate before and after, same tasks and settings
trivec eval --model all-MiniLM-L6-v2 --tasks "$TASKS" --modes dense --output "$OUT-eval/before" --resume
trivec eval --model "$OUT" --tasks "$TASKS" --modes dense --output "$OUT-eval/after" --resume
trivec eval-report "$OUT-eval/before" "$OUT-eval/after" --label before --label after -o "$OUT-eval/compare"
