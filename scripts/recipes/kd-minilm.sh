#!/usr/bin/env bash
# Knowledge distillation vs none at the same budget (docs/reranker.md, "Knowledge distillation vs none"):
# all-MiniLM-L6-v2 M3-ized (backbone + new heads, configs/m3-minilm.yaml) twice on the same rows, seed, steps,
# batch and learning rates — once with `--knowledge-distillation` from m3-small's teacher scores, once without
# — then `trivec eval` of both on the English retrieval sets in all five modes (fp32).
#   bash scripts/recipes/kd-minilm.sh        # ≈ 20 min of CPU on 2 cores; wall times in $R/times.tsv
# Training rows: the MRPC and SICK train paraphrases with mined hard negatives of the minilm-m3 recipe (no
# evaluation corpus, query or qrel is read; built by minilm-contrastive.sh --data-only when missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
. .venv/bin/activate
B=build/minilm-data
R=${R:-runs/kd-minilm}
TEACHER=${TEACHER:-m3-small}
# The loss softmaxes teacher scores as written; m3-small's `all` scores are cosine-scale, so they are divided
# by the student's temperature (configs/m3-minilm.yaml): the target is then the distribution the student
# would give with the teacher's scores, as M3's self-distillation does with the ensemble's.
TEACHER_TEMPERATURE=0.05
TASKS=vaswani-npl,cranfield,cacm,lisa
LOCK=(flock /tmp/trivec-cpu.lock nice -n 5)  # the machine is shared: one heavy job at a time
mkdir -p "$R"
timed() {  # timed NAME COMMAND...: run it and append "NAME<TAB>wall seconds" (not counting the wait for
  local name=$1  # the lock) to $R/times.tsv
  shift
  "${LOCK[@]}" /usr/bin/time -f "$name\t%e" -a -o "$R/times.tsv" "$@"
}
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores" | tee "$R/cpu.txt"

# 1. rows: the minilm-m3 recipe's mined MRPC and SICK files, every row (1 positive + 3 hard negatives each)
if [ ! -f "$B/sick-mined.jsonl" ]; then
  bash scripts/recipes/minilm-contrastive.sh --data-only
fi
# 2. teacher scores for every positive and negative (pos_scores / neg_scores added, rows unchanged)
for name in mrpc sick; do
  [ -f "$R/$name-scored.jsonl" ] || timed "scores $name" trivec data scores --teacher "$TEACHER" \
      --teacher-mode all --temperature "$TEACHER_TEMPERATURE" --data "$B/$name-mined.jsonl" \
      --output "$R/$name-scored.jsonl" --quiet
done
# 3. two runs on the same scored files, every row (max_examples_per_file above both files' sizes); only
#    --knowledge-distillation differs (without it the scores are not read)
for run in nokd kd; do
  flags=()
  [ "$run" = kd ] && flags=(--knowledge-distillation)
  [ -f "$R/$run/config.json" ] || timed "train $run" trivec train m3 --config configs/m3-minilm.yaml \
      --data "$R/mrpc-scored.jsonl" --data "$R/sick-scored.jsonl" --set max_examples_per_file=100000 \
      --train-parts all --set sparse_init=idf "${flags[@]}" --output "$R/$run" >"$R/$run.log" 2>&1
done
# 4. both evaluated the same way: the English retrieval sets, every mode, fp32
for run in nokd kd; do
  [ -f "$R/eval/$run/lisa.json" ] || timed "eval $run" trivec eval --model "$R/$run" --tasks "$TASKS" \
      --modes dense,sparse,colbert,dense+sparse,all --dtype float32 --output "$R/eval/$run" --resume --quiet
done
trivec eval-report "$R/eval/nokd" "$R/eval/kd" --label "no KD" --label KD -o "$R/eval/compare"
cat "$R/times.tsv"
