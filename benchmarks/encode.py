"""Encoding speed and memory of trivec, side by side with FlagEmbedding 1.4.2 on the same models and texts.

    python benchmarks/encode.py                     # full run (about 45 minutes on 2 cores)
    python benchmarks/encode.py --quick             # smoke run (a few minutes)
    python benchmarks/encode.py --sections d,e      # m3-small only (--passages N: fewer texts)

Sections:
  (a) all-MiniLM-L6-v2 (the default model, mean pooling) dense, 2,000 real passages from ../shared/data
      corpora in their natural length mix, max_length 512 on both sides;
  (b) a BGE-M3-layout model of realistic shape (XLM-R config, 6 layers × hidden 384, vocab 250,002, random
      weights, built once under benchmarks/.cache/) returning dense + lexical weights + ColBERT vectors;
  (c) 100 texts of ~8,000 tokens, max_length 8192: time and peak memory; trivec at two token budgets,
      FlagEmbedding at its batch size (256 by default; its own probe shrinks it when memory runs out);
  (d) m3-small (trivec's multilingual default model: XLM-R 12 × 384, mean pooling) dense, the passages of (a),
      max_length 512 (its limit);
  (e) m3-small dense + lexical weights + ColBERT vectors, the same passages.
  m3-small reads text in capitals lower-cased (`fold_capitals`); FlagEmbedding does not, so (d) and (e) give
  both sides the passages folded already.

In (a), (d) (dense only), (b) and (e) (all three outputs) trivec also runs on its ONNX backend: the model exported once
with `trivec export onnx --quantize int8` (under benchmarks/.cache/), rows "ONNX fp32" (onnx/model.onnx)
and "ONNX int8" (onnx/model_int8.onnx) in onnxruntime, same token-budget batching (`--no-onnx` skips them).

Each side runs in its own process (peak RSS per side; the peak mark is reset after loading and warm-up, so
"encode peak" is the highest RSS while encoding, model and texts included), with the same torch thread
count. FlagEmbedding lives in its own virtual environment (benchmarks/.venv-ref, created on first use) and
is never a dependency of trivec. Texts and outputs go through files. Every output is compared: dense
vectors, lexical weights per token id, ColBERT rows. The encode GFLOP/s counts the encoder's matmul and
attention FLOPs over the real (unpadded) tokens and is printed next to a plain fp32 matmul measured in the
same run. The header names the CPU, its ISA flags that matter here (AVX2, AVX-512, AVX512-BF16 / VNNI, AMX)
and what `dtype="auto"` resolves to on it; the bf16 rows are what `auto` gives on AMX / AVX512-BF16 CPUs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CACHE = BENCH / ".cache"
sys.path.insert(0, str(BENCH))

from _reference_env import REFERENCE_VENV, reference_python  # noqa: E402
from _side_common import encoder_flops  # noqa: E402

CORPORA = ("vaswani-npl", "cranfield", "cacm", "lisa", "trecqa")
BF16_LABEL = "bf16 (dtype auto here)"


def shared_dir() -> Path:
    return Path(os.environ.get("TRIVEC_SHARED", ROOT.parent / "shared"))


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- inputs
def corpus_passages(count: int, seed: int = 42) -> list[str]:
    """`count` passages drawn evenly from the English retrieval corpora ("title text" where a title exists)."""
    from trivec.io import iter_jsonl

    rng = random.Random(seed)
    per_corpus = -(-count // len(CORPORA))
    texts: list[str] = []
    for name in CORPORA:
        rows = []
        for _, obj in iter_jsonl(shared_dir() / "data" / name / "corpus.jsonl"):
            title, text = str(obj.get("title") or ""), str(obj.get("text") or "")
            rows.append(f"{title} {text}".strip() if title else text)
        texts.extend(rng.sample(rows, min(per_corpus, len(rows))))
    rng.shuffle(texts)
    return texts[:count]


def long_texts(tokenizer: Any, count: int, seed: int = 7) -> list[str]:
    """`count` documents of roughly 7,600–8,600 tokens, each a run of consecutive passages of one corpus."""
    from trivec.io import iter_jsonl

    rng = random.Random(seed)
    pools = []
    for name in ("lisa", "vaswani-npl", "cranfield"):
        pools.append(
            [
                str(obj.get("text") or "")
                for _, obj in iter_jsonl(shared_dir() / "data" / name / "corpus.jsonl")
            ]
        )
    docs = []
    for i in range(count):
        pool = pools[i % len(pools)]
        target = rng.randint(7600, 8600)
        start = rng.randrange(len(pool))
        parts: list[str] = []
        tokens = 2
        while tokens < target:
            passage = pool[(start + len(parts)) % len(pool)]
            parts.append(passage)
            tokens += len(tokenizer(passage, add_special_tokens=False)["input_ids"])
        docs.append("\n".join(parts))
    return docs


@dataclass(frozen=True)
class Shape:
    layers: int
    hidden: int
    heads: int
    intermediate: int


def build_m3_checkpoint(directory: Path, shape: Shape, seed: int = 0) -> Path:
    """A random-weight BGE-M3-layout checkpoint (XLM-R config, real 250,002-piece tokenizer), built once."""
    if (directory / "colbert_linear.pt").is_file() and (directory / "sparse_linear.pt").is_file():
        return directory
    import torch
    from transformers import AutoTokenizer, XLMRobertaConfig, XLMRobertaModel

    from trivec.models.heads import ColbertHead, SparseHead
    from trivec.models.m3 import M3Model

    log(f"building the M3-layout benchmark model {directory.name} ...")
    config = XLMRobertaConfig(
        vocab_size=250002,
        hidden_size=shape.hidden,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        intermediate_size=shape.intermediate,
        max_position_embeddings=8194,
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        layer_norm_eps=1e-5,
        hidden_act="gelu",
    )
    torch.manual_seed(seed)
    backbone = XLMRobertaModel(config)
    tokenizer = AutoTokenizer.from_pretrained(shared_dir() / "fixtures" / "xlmr-tokenizer")
    model = M3Model(
        backbone,
        tokenizer,
        pooling="cls",
        normalize=True,
        sparse_head=SparseHead(shape.hidden),
        colbert_head=ColbertHead(shape.hidden),
    )
    tmp = directory.with_name(directory.name + ".tmp")
    model.save_pretrained(tmp, head_dtype=torch.float16)  # heads in fp16 on disk, as on the hub
    tmp.rename(directory)
    return directory


def onnx_export_dir(model_dir: Path, cache: Path = CACHE) -> Path:
    """`model_dir` exported with `trivec export onnx --quantize int8` under `cache` (once; reused after, until
    the export writes a different graph: its `EXPORT_FORMAT` changed)."""
    import onnx

    from trivec.export import export_onnx
    from trivec.inference.onnx_backend import EXPORT_FORMAT, META_FORMAT, ONNX_DIR, ONNX_FILE, ONNX_INT8_FILE

    target = cache / f"{Path(model_dir).name}-onnx"
    graph = target / ONNX_DIR / ONNX_FILE
    if graph.is_file() and (target / ONNX_DIR / ONNX_INT8_FILE).is_file():
        meta = {p.key: p.value for p in onnx.load(str(graph), load_external_data=False).metadata_props}
        if meta.get(META_FORMAT) == str(EXPORT_FORMAT):
            return target
    log(f"exporting {Path(model_dir).name} to ONNX (fp32 + int8) ...")
    return export_onnx(model_dir, target, quantize="int8", overwrite=True)


def onnx_runs(section: Section, export_dir: Path, job: dict[str, Any]) -> list[Run]:
    """The trivec rows of `section` on the ONNX backend: the float32 graph and the int8 one."""
    from trivec.inference.onnx_backend import ONNX_INT8_FILE

    common = {**job, "model": str(export_dir), "backend": "onnx"}
    return [
        Run(section, "trivec", "ONNX fp32, default budget", {**common, "onnx_file": None}),
        Run(section, "trivec", "ONNX int8, default budget", {**common, "onnx_file": ONNX_INT8_FILE}),
    ]


# ---------------------------------------------------------------------------------------------- machine
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")


def cpu_description() -> str:
    """The CPU model, which of `ISA_FLAGS` it has, and what `dtype="auto"` resolves to on it."""
    import torch

    from trivec.inference.precision import describe_auto

    model, flags = "?", set()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "?":
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    present = " ".join(f for f in ISA_FLAGS if f in flags) or "(flags unreadable)"
    absent = " ".join(f for f in ISA_FLAGS if f not in flags and flags)
    return (
        f"CPU: {model}; ISA: {present}"
        + (f" (absent: {absent})" if absent else "")
        + f"; dtype='auto' → {describe_auto(torch.device('cpu'))}"
    )


# ---------------------------------------------------------------------------------------------- machine limit
def matmul_gflops(threads: int, dtype: str = "float32", sizes: tuple[int, ...] = (1024, 2048, 4096)) -> float:
    """Best GFLOP/s of a plain square torch matmul (the machine's practical limit for this dtype)."""
    import torch

    torch.set_num_threads(threads)
    best = 0.0
    for n in sizes:
        a = torch.randn(n, n).to(getattr(torch, dtype))
        b = torch.randn(n, n).to(getattr(torch, dtype))
        a @ b
        repeats = max(2, int(4e10 / (2 * n**3)))
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(repeats):
                a @ b
            best = max(best, 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9)
    return best


# ---------------------------------------------------------------------------------------------- runs
@dataclass
class Section:
    key: str
    title: str
    model: str
    kind: str  # "flag_model" (FlagModel, dense) or "m3" (BGEM3FlagModel)
    texts: Path
    outputs: tuple[str, ...]
    max_length: int
    shape: Shape
    pooling: str = "cls"


@dataclass
class Run:
    section: Section
    side: str  # "FlagEmbedding" or "trivec"
    label: str
    job: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    diff: dict[str, float] = field(default_factory=dict)


def run_side(run: Run, python: Path, threads: int, out_dir: Path, index: int) -> None:
    section = run.section
    out = out_dir / f"{section.key}-{index}-{run.side}"
    job = {
        "model": section.model,
        "kind": section.kind,
        "pooling": section.pooling,
        "texts": str(section.texts),
        "outputs": list(section.outputs),
        "max_length": section.max_length,
        "threads": threads,
        "out": str(out),
        **run.job,
    }
    job_file = out.with_suffix(".job.json")
    job_file.write_text(json.dumps(job), encoding="utf-8")
    script = BENCH / ("_flag_side.py" if run.side == "FlagEmbedding" else "_trivec_side.py")
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_VERBOSITY": "error",
        "TQDM_DISABLE": "1",
        "PYTHONWARNINGS": "ignore",
    }
    env.pop("PYTHONPATH", None)
    log(f"({section.key}) {run.side} {run.label} ...")
    proc = subprocess.run([str(python), str(script), str(job_file)], env=env, capture_output=True, text=True)
    metrics_file = Path(str(out) + ".json")
    if proc.returncode != 0 or not metrics_file.is_file():
        tail = (proc.stderr or proc.stdout)[-1500:]
        run.metrics = {
            "error": f"exit {proc.returncode}: {tail.strip().splitlines()[-1] if tail.strip() else ''}"
        }
        log(f"  failed (exit {proc.returncode}):\n{tail}")
        return
    run.metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
    run.metrics["outputs_file"] = str(out) + ".npz"
    times = run.metrics.get("times") or []
    log(f"  times {[round(t, 2) for t in times]} s, encode peak {run.metrics.get('peak_rss_mb', 0):.0f} MB")


def _load_outputs(path: str) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def compare_outputs(reference: str, candidate: str) -> dict[str, float]:
    """Max abs differences per output (lexical weights per token id, a missing id counting as 0)."""
    ref, cand = _load_outputs(reference), _load_outputs(candidate)
    diff: dict[str, float] = {}
    if "dense" in ref and "dense" in cand:
        a, b = ref["dense"].astype(np.float64), cand["dense"].astype(np.float64)
        if a.shape != b.shape:
            diff["dense"] = float("inf")
        else:
            diff["dense"] = float(np.abs(a - b).max(initial=0.0))
            cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
            diff["dense_min_cos"] = float(cos.min(initial=1.0))
    if "sparse_ids" in ref and "sparse_ids" in cand:
        worst = 0.0
        ro, co = ref["sparse_offsets"], cand["sparse_offsets"]
        if len(ro) != len(co):
            worst = float("inf")
        else:
            for i in range(len(ro) - 1):
                r = dict(
                    zip(
                        ref["sparse_ids"][ro[i] : ro[i + 1]].tolist(),
                        ref["sparse_values"][ro[i] : ro[i + 1]].tolist(),
                        strict=True,
                    )
                )
                c = dict(
                    zip(
                        cand["sparse_ids"][co[i] : co[i + 1]].tolist(),
                        cand["sparse_values"][co[i] : co[i + 1]].tolist(),
                        strict=True,
                    )
                )
                for key in r.keys() | c.keys():
                    worst = max(worst, abs(r.get(key, 0.0) - c.get(key, 0.0)))
        diff["sparse"] = worst
    if "colbert_rows" in ref and "colbert_rows" in cand:
        if not np.array_equal(ref["colbert_offsets"], cand["colbert_offsets"]):
            diff["colbert"] = float("inf")
        else:
            a, b = ref["colbert_rows"], cand["colbert_rows"]
            diff["colbert"] = float(np.abs(a - b).max(initial=0.0))
            cos = (a * b).sum(1, dtype=np.float64)  # rows are unit vectors (or zero)
            diff["colbert_min_cos"] = float(cos.min(initial=1.0))
    return diff


# ---------------------------------------------------------------------------------------------- table
def _fmt(value: float | None, spec: str) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "—" if value is None else str(value)
    return format(value, spec)


def _reference_transformers() -> str:
    """The transformers version installed in the reference venv (read from its marker file)."""
    try:
        return json.loads((REFERENCE_VENV / "trivec-benchmark.json").read_text(encoding="utf-8"))[
            "transformers"
        ]
    except (OSError, ValueError, KeyError):
        return "?"


def render_table(runs: list[Run], matmul: dict[str, float]) -> str:
    header = (
        "| case | side | setting | tokens | best s | tokens/s | × FlagEmb | GFLOP/s | % matmul | "
        "encode peak RSS MB | RSS after load MB | max abs diff (dense / sparse / colbert) |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    reference_speed: dict[str, float] = {}
    for run in runs:
        m = run.metrics
        if run.side == "FlagEmbedding" and m.get("times"):
            reference_speed[run.section.key] = m["tokens"] / min(m["times"])
    for run in runs:
        m = run.metrics
        section = run.section
        if not m.get("times"):
            lines.append(
                f"| {section.key} | {run.side} | {run.label} | | | failed: {m.get('error', '?')} | | | | | | |"
            )
            continue
        label = run.label
        if run.side == "trivec" and "default budget" in label:
            label = label.replace("default budget", f"default batch_tokens {m['batch_tokens']:,}")
        best = min(m["times"])
        speed = m["tokens"] / best
        flops = encoder_flops(
            m["lengths"], section.shape.layers, section.shape.hidden, section.shape.intermediate
        )
        gflops = flops / best / 1e9
        limit = matmul["bfloat16" if "bf16" in run.label else "float32"]
        ratio = speed / reference_speed[section.key] if section.key in reference_speed else None
        d = run.diff
        if run.side == "FlagEmbedding":
            diffs = "reference"
        else:
            parts = [_fmt(d.get(k), ".1e") for k in ("dense", "sparse", "colbert") if k in section.outputs]
            diffs = " / ".join(parts)
            if ("bf16" in run.label or "int8" in run.label) and "dense_min_cos" in d:
                diffs += f" (min cos {d['dense_min_cos']:.5f})"
        lines.append(
            f"| {section.key} | {run.side} | {label} | {m['tokens']:,} | {best:.2f} | {speed:,.0f} | "
            f"{_fmt(ratio, '.2f')} | {gflops:.0f} | {100 * gflops / limit:.0f}% | {m['peak_rss_mb']:,.0f} | "
            f"{m['base_rss_mb']:,.0f} | {diffs} |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run (few texts, one repeat)")
    parser.add_argument("--sections", default="a,b,c,d,e", help="comma list of a, b, c, d, e (default all)")
    parser.add_argument(
        "--passages", type=int, default=None, help="corpus passages of (a), (b), (d), (e) (default 2,000)"
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads, both sides")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per trivec side (best is kept)")
    parser.add_argument("--reference-repeats", type=int, default=1, help="timed runs per FlagEmbedding side")
    parser.add_argument(
        "--no-bf16",
        action="store_true",
        help="skip the bf16 trivec rows (what dtype auto gives on AMX / AVX512-BF16 CPUs)",
    )
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX backend rows (fp32, int8)")
    parser.add_argument(
        "--mem-cap-gb",
        type=float,
        default=None,
        help="address space a side may add while encoding (default: half the available memory, ≤ 12 GB); "
        "past it an allocation fails inside the process (FlagEmbedding's probe then shrinks its batch)",
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the table (markdown) here")
    args = parser.parse_args()
    sections = {s.strip() for s in args.sections.split(",") if s.strip()}
    quick = args.quick
    n_passages = args.passages or (128 if quick else 2000)
    n_long = 4 if quick else 100
    warm = 16 if quick else 64
    repeats = args.repeats or (1 if quick else 3)
    mem_cap = args.mem_cap_gb or min(12.0, 0.5 * _available_gb())
    load_before = _load()

    import torch
    import transformers

    reference = reference_python(log=log)
    out_dir = CACHE / ("run-quick" if quick else "run")
    out_dir.mkdir(parents=True, exist_ok=True)
    log(f"torch {torch.__version__}, transformers {transformers.__version__}, {args.threads} threads")

    from transformers import AutoTokenizer

    from trivec.models.checkpoint import minilm_path

    passages = corpus_passages(n_passages)
    passages_file = out_dir / "passages.json"
    passages_file.write_text(json.dumps(passages), encoding="utf-8")
    from trivec.models.casing import fold_capitals

    folded_file = out_dir / "passages-folded.json"  # (d), (e): what m3-small reads (fold_capitals)
    folded_file.write_text(json.dumps([fold_capitals(t) for t in passages]), encoding="utf-8")
    m3_shape = Shape(layers=6, hidden=384, heads=6, intermediate=1536)
    long_shape = Shape(layers=1, hidden=384, heads=6, intermediate=1536)
    minilm_shape = Shape(layers=6, hidden=384, heads=12, intermediate=1536)
    small_shape = Shape(
        layers=12, hidden=384, heads=12, intermediate=1536
    )  # m3-small (multilingual-e5-small)

    plan: list[Run] = []
    if "a" in sections:
        a = Section(
            "a",
            "all-MiniLM-L6-v2 dense, corpus passages, max_length 512",
            str(minilm_path()),
            "flag_model",
            passages_file,
            ("dense",),
            512,
            minilm_shape,
            pooling="mean",
        )
        warm = 64
        plan += [
            Run(
                a,
                "FlagEmbedding",
                "FlagModel fp32, batch 256",
                {"warmup": warm, "repeats": args.reference_repeats},
            ),
            Run(a, "trivec", "fp32, default budget", {"warmup": warm, "repeats": repeats}),
        ]
        if not args.no_bf16:
            plan.append(
                Run(a, "trivec", BF16_LABEL, {"warmup": warm, "repeats": repeats, "dtype": "bfloat16"})
            )
        if not args.no_onnx:
            plan += onnx_runs(a, onnx_export_dir(minilm_path()), {"warmup": warm, "repeats": repeats})
    if "b" in sections or "c" in sections:
        m3_dir = build_m3_checkpoint(CACHE / "m3-xlmr-6x384", m3_shape)
    if "b" in sections:
        b = Section(
            "b",
            "M3 layout (XLM-R 6×384, vocab 250k) dense+sparse+colbert, corpus passages, max_length 8192",
            str(m3_dir),
            "m3",
            passages_file,
            ("dense", "sparse", "colbert"),
            8192,
            m3_shape,
        )
        warm = 64
        plan += [
            Run(
                b,
                "FlagEmbedding",
                "BGEM3FlagModel fp32, batch 256",
                {"warmup": warm, "repeats": args.reference_repeats},
            ),
            Run(b, "trivec", "fp32, default budget", {"warmup": warm, "repeats": repeats}),
        ]
        if not args.no_bf16:
            plan.append(
                Run(b, "trivec", BF16_LABEL, {"warmup": warm, "repeats": repeats, "dtype": "bfloat16"})
            )
        if not args.no_onnx:
            plan += onnx_runs(b, onnx_export_dir(m3_dir), {"warmup": warm, "repeats": repeats})
    if "d" in sections or "e" in sections:
        from trivec.models.m3_small import m3_small_path

        small_dir = m3_small_path()
        small_onnx = None if args.no_onnx else onnx_export_dir(small_dir)
    for key, outputs in (("d", ("dense",)), ("e", ("dense", "sparse", "colbert"))):
        if key not in sections:
            continue
        section = Section(
            key,
            f"m3-small (XLM-R 12×384, mean pooling, vocab 250k) {'+'.join(outputs)}, corpus passages "
            "(capitals folded), max_length 512",
            str(small_dir),
            "m3",
            folded_file,
            outputs,
            512,
            small_shape,
            pooling="mean",
        )
        job = {"warmup": 64, "repeats": repeats}
        plan += [
            Run(
                section,
                "FlagEmbedding",
                "BGEM3FlagModel fp32, batch 256",
                {"warmup": 64, "repeats": args.reference_repeats},
            ),
            Run(section, "trivec", "fp32, default budget", dict(job)),
        ]
        if not args.no_bf16:
            plan.append(Run(section, "trivec", BF16_LABEL, {**job, "dtype": "bfloat16"}))
        if small_onnx is not None:
            plan += onnx_runs(section, small_onnx, dict(job))
    if "c" in sections:
        long_dir = build_m3_checkpoint(CACHE / "m3-xlmr-1x384", long_shape)
        tokenizer = AutoTokenizer.from_pretrained(long_dir)
        docs = long_texts(tokenizer, n_long)
        docs_file = out_dir / "long.json"
        docs_file.write_text(json.dumps(docs), encoding="utf-8")
        c = Section(
            "c",
            f"{n_long} texts of ~8,000 tokens, M3 layout (XLM-R 1×384) dense+sparse, max_length 8192",
            str(long_dir),
            "m3",
            docs_file,
            ("dense", "sparse"),
            8192,
            long_shape,
        )
        capped = {"warmup": 0, "repeats": 1, "mem_cap_gb": mem_cap}
        plan += [
            Run(c, "FlagEmbedding", "batch 256 (its default)", dict(capped)),
            Run(c, "trivec", "fp32, default budget", dict(capped)),
            Run(c, "trivec", "batch_tokens 262,144", {**capped, "batch_tokens": 262144}),
        ]

    matmul = {"float32": matmul_gflops(args.threads, "float32")}
    if not args.no_bf16:
        matmul["bfloat16"] = matmul_gflops(args.threads, "bfloat16")
    log("matmul GFLOP/s: " + ", ".join(f"{k} {v:.0f}" for k, v in matmul.items()))

    for index, run in enumerate(plan):
        python = reference if run.side == "FlagEmbedding" else Path(sys.executable)
        run_side(run, python, args.threads, out_dir, index)

    for run in plan:
        if run.side == "FlagEmbedding":
            continue
        ref = next((r for r in plan if r.section is run.section and r.side == "FlagEmbedding"), None)
        if ref and ref.metrics.get("times") and run.metrics.get("times"):
            run.diff = compare_outputs(ref.metrics["outputs_file"], run.metrics["outputs_file"])

    table = render_table(plan, matmul)
    notes = [
        "",
        cpu_description(),
        f"torch {torch.__version__}, transformers {transformers.__version__} (FlagEmbedding side: {_reference_transformers()}), FlagEmbedding 1.4.2, "
        f"{args.threads} threads on both sides; {os.cpu_count()} CPUs; load average at start {load_before}, at end {_load()}",
        "plain torch matmul (square, best of 1024/2048/4096): "
        + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in matmul.items()),
        "tokens/s = real (unpadded) tokens / best wall time of encode(); GFLOP/s counts the encoder's matmul "
        "+ attention FLOPs over the real tokens; encode peak RSS = highest RSS of that side's process while "
        "encoding (model and texts included); RSS after load = the same process before the timed encode.",
    ]
    for key in ("a", "b", "c", "d", "e"):
        section = next((r.section for r in plan if r.section.key == key), None)
        if section is not None:
            notes.append(f"({key}) {section.title}")
    c_ref = next((r for r in plan if r.section.key == "c" and r.side == "FlagEmbedding"), None)
    if c_ref and c_ref.metrics.get("batch_sizes"):
        sizes = c_ref.metrics["batch_sizes"]
        notes.append(
            f"(c) FlagEmbedding padded batches of sizes {sizes} (its probe retries with 3/4 of the batch "
            f"after a failed allocation; each side may add at most {mem_cap:.1f} GB of address space)"
        )
    for run in plan:
        if run.section.key == "c" and run.side == "trivec" and run.metrics.get("batch_sizes"):
            sizes = run.metrics["batch_sizes"]
            notes.append(
                f"(c) trivec {run.label}: batch_tokens {run.metrics['batch_tokens']:,} → {len(sizes)} batches "
                f"of at most {max(sizes)} texts"
            )
    text = table + "\n" + "\n".join(notes)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    (out_dir / "results.json").write_text(
        json.dumps(
            {
                "matmul": matmul,
                "runs": [
                    {
                        "section": r.section.key,
                        "side": r.side,
                        "label": r.label,
                        "job": r.job,
                        "diff": r.diff,
                        **{k: v for k, v in r.metrics.items() if k != "lengths"},
                    }
                    for r in plan
                ],
            },
            indent=1,
        ),
        encoding="utf-8",
    )


def _available_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return 8.0


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


if __name__ == "__main__":
    main()
