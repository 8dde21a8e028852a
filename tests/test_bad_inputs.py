"""Bad input, table-driven, as a new user would give it: to the command line, the Python API, the HTTP server
and the index files. Every case must end in one clear error — one line naming the problem (and the file,
line or option) with exit code 2 on the command line, an `InputError`/`TrivecError` in Python, a 4xx JSON
error over HTTP — with no traceback, no 500, and nothing written or changed on disk.

Hypothesis fuzzing of the JSONL readers and of the server's request bodies is in test_fuzz_inputs.py; the
index-file corruption cases are in tests/retrieval/test_integrity.py.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.conftest import DATA, TINY_M3
from trivec import Embedder, InputError, TrivecError
from trivec.cli import app
from trivec.retrieval import Index, read_corpus

TINY = str(TINY_M3)


# ---------------------------------------------------------------------- fixtures and helpers
@pytest.fixture(scope="module")
def built_index(tmp_path_factory: pytest.TempPathFactory, tiny: Embedder) -> Path:
    """A small embedded index (tiny-m3, 20 Cranfield abstracts), copied before a case may touch it."""
    path = tmp_path_factory.mktemp("bad-inputs") / "ix"
    docs = read_corpus(DATA / "cranfield" / "corpus.jsonl")[:20]
    with Index.create(path, model=tiny, max_length=64) as index:
        index.add(docs)
    return path


def tree(root: Path) -> dict[str, str]:
    """Every file below `root` with a digest of its bytes (directories as entries too)."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_dir():
            out[rel + "/"] = "dir"
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@dataclass
class CliCase:
    """`args` may use {tmp} (the case's directory), {model} (tiny-m3) and {ix} (a copy of a built index);
    `files` are written into {tmp} first (str: UTF-8 text, bytes: as they are)."""

    id: str
    args: list[str]
    message: str
    files: dict[str, str | bytes] = field(default_factory=dict)


def case(id: str, args: str | list[str], message: str, **files: str | bytes) -> CliCase:
    return CliCase(id, args.split() if isinstance(args, str) else args, message, dict(files))


CORPUS = '{"id": 1, "text": "a wing stalls"}\n{"id": 2, "text": "boundary layers"}\n'
SURROGATE_LINE = '{"text": "fine"}\n{"text": "bad \\ud800 text"}\n'

CLI_CASES = [
    # --- lone surrogates (issue #20, defect 3): one line naming file and line, never a traceback
    case(
        "d3-encode-jsonl-surrogate",
        "encode -m {model} -i {tmp}/in.jsonl -o {tmp}/out.jsonl",
        "in.jsonl:2: field 'text' contains a lone surrogate \\ud800",
        **{"in.jsonl": SURROGATE_LINE},
    ),
    case(
        "d3-encode-txt-encoded-surrogate",
        "encode -m {model} -i {tmp}/in.txt -o {tmp}/out.jsonl",
        "in.txt:2: not UTF-8 text (byte 1 of the line",
        **{"in.txt": b"ok\n\xed\xa0\x80\n"},
    ),
    case(
        "d3-encode-prompt-surrogate",
        ["encode", "-m", "{model}", "-i", "{tmp}/in.txt", "-o", "{tmp}/out.jsonl", "--prompt", "q\udcff: "],
        "the prompt contains a lone surrogate \\udcff",
        **{"in.txt": "hello\n"},
    ),
    case(
        "d3-score-surrogate",
        "score -m {model} -p {tmp}/pairs.jsonl",
        "pairs.jsonl:1: field 'passage' contains a lone surrogate \\udfff",
        **{"pairs.jsonl": '{"query": "q", "passage": "p \\udfff"}\n'},
    ),
    case(
        "d3-search-argument-surrogate",
        ["search", "--index", "{ix}", "wing \udcff stall"],
        "contains a lone surrogate \\udcff",
    ),
    case(
        "d3-search-queries-surrogate",
        "search --index {ix} --queries {tmp}/q.jsonl",
        "q.jsonl:2: field 'text' contains a lone surrogate \\ud800",
        **{"q.jsonl": SURROGATE_LINE},
    ),
    case(
        "d3-build-text-surrogate",
        "index build -m {model} --corpus {tmp}/c.jsonl --index {tmp}/new",
        "c.jsonl:2: field 'text' contains a lone surrogate \\ud800",
        **{"c.jsonl": '{"id": 1, "text": "a"}\n{"id": 2, "text": "\\ud800"}\n'},
    ),
    case(
        "d3-build-metadata-surrogate",
        "index build -m {model} --corpus {tmp}/c.jsonl --index {tmp}/new",
        "c.jsonl:1: field 'tags[1]' contains a lone surrogate \\udc00",
        **{"c.jsonl": '{"id": 1, "text": "a", "tags": ["x", "\\udc00"]}\n'},
    ),
    case(
        "d3-add-id-surrogate",
        "index add --index {ix} --corpus {tmp}/c.jsonl",
        "c.jsonl:1: field 'id' contains a lone surrogate \\udbff",
        **{"c.jsonl": '{"id": "x\\udbff", "text": "a"}\n'},
    ),
    # --- options checked before anything is created or loaded (defect 5); a model path that does not exist
    #     shows the order: were the model loaded first, the error would be about it
    *[
        case(
            f"d5-build-{name}",
            f"index build -m {{tmp}}/no-model --corpus {{tmp}}/c.jsonl --index {{tmp}}/new {opts}",
            msg,
            **{"c.jsonl": CORPUS},
        )
        for name, opts, msg in [
            (
                "overlap-equal",
                "--chunk-tokens 16 --chunk-overlap 16",
                "--chunk-overlap must be less than --chunk-tokens (16), got 16",
            ),
            (
                "overlap-without-chunks",
                "--chunk-overlap 8",
                "--chunk-overlap applies to chunking: give --chunk-tokens too",
            ),
            (
                "overlap-negative",
                "--chunk-tokens 16 --chunk-overlap -1",
                "--chunk-overlap must be an integer ≥ 0, got -1",
            ),
            ("chunk-tokens-0", "--chunk-tokens 0", "--chunk-tokens must be a positive integer, got 0"),
            ("max-length-1", "--max-length 1", "--max-length must be an integer ≥ 2, got 1"),
            ("ann-threshold-0", "--ann-threshold 0", "--ann-threshold must be a positive integer, got 0"),
            ("colbert-dim-0", "--colbert-dim 0", "--colbert-dim must be a positive integer, got 0"),
            (
                "colbert-dtype",
                "--colbert-dtype bfloat16",
                "--colbert-dtype must be float16, float32, int8, int4, binary, residual1 or residual2, got bfloat16",
            ),
            (
                "dense-index",
                "--dense-index annoy",
                "--dense-index must be auto, flat, hnsw or ivf, got annoy",
            ),
            (
                "dense-quantization",
                "--dense-quantization int4",
                "--dense-quantization must be none, int8 or binary, got int4",
            ),
            (
                "dense-oversampling",
                "--dense-quantization binary --dense-oversampling 0.5",
                "--dense-oversampling must be a number ≥ 1, got 0.5",
            ),
            (
                "dense-oversampling-without-quantization",
                "--dense-oversampling 4",
                "--dense-oversampling applies to quantised dense vectors: give --dense-quantization too",
            ),
            (
                "dense-quantization-with-hnsw",
                "--dense-quantization int8 --dense-index hnsw",
                "--dense-quantization int8 applies to the flat first stage, not to --dense-index hnsw",
            ),
            ("backend", "--backend faiss", "--backend must be embedded or qdrant, got faiss"),
            ("url-without-qdrant", "--url http://x:6333", "--url and --collection apply to --backend qdrant"),
        ]
    ],
    case(
        "d5-build-max-length-over-model",
        "index build -m {model} --corpus {tmp}/c.jsonl --index {tmp}/new --max-length 100000",
        "--max-length 100000 exceeds the model's limit",
        **{"c.jsonl": '{"id": 1, "text": "a"}\n'},
    ),
    case(
        "d5-build-colbert-dim-over-model",
        "index build -m {model} --corpus {tmp}/c.jsonl --index {tmp}/new --colbert-dim 64",
        "--colbert-dim must be between 1 and 63",
        **{"c.jsonl": '{"id": 1, "text": "a"}\n'},
    ),
    case(
        "d5-build-over-an-index-without-overwrite",
        "index build -m {tmp}/no-model --corpus {tmp}/c.jsonl --index {ix}",
        "is an index already (--overwrite replaces it)",
        **{"c.jsonl": '{"id": 1, "text": "a"}\n'},
    ),
    case(
        "d5-build-into-a-non-empty-folder",
        "index build -m {tmp}/no-model --corpus {tmp}/c.jsonl --index {tmp}",
        "is not empty and not an index",
        **{"c.jsonl": '{"id": 1, "text": "a"}\n'},
    ),
    case(
        "d5-encode-output-is-a-directory",
        "encode -m {tmp}/no-model -i {tmp}/in.txt -o {tmp}",
        "is a directory; the output must be a file path",
        **{"in.txt": "hello\n"},
    ),
    case(
        "d5-encode-output-directory-missing",
        "encode -m {tmp}/no-model -i {tmp}/in.txt -o {tmp}/no/out.jsonl",
        "does not exist",
        **{"in.txt": "hello\n"},
    ),
    case(
        "d5-encode-batch-tokens-0",
        "encode -m {tmp}/no-model -i {tmp}/in.txt -o {tmp}/out.jsonl --batch-tokens 0",
        "--batch-tokens must be a positive integer, got 0",
        **{"in.txt": "hello\n"},
    ),
    case(
        "d5-encode-max-length-1",
        "encode -m {tmp}/no-model -i {tmp}/in.txt -o {tmp}/out.jsonl --max-length 1",
        "--max-length must be an integer ≥ 2, got 1",
        **{"in.txt": "hello\n"},
    ),
    # --- wording (defect 8): the command line's own terms
    case(
        "d8-add-duplicate-id",
        "index add --index {ix} --corpus {tmp}/c.jsonl",
        "1 document id(s) already in the index: '1' (--upsert replaces them)",
        **{"c.jsonl": '{"id": 1, "text": "again"}\n'},
    ),
    case(
        "d8-delete-unknown-id",
        "index delete --index {ix} nope",
        "unknown document id(s): 'nope' (--missing-ok ignores them)",
    ),
    case(
        "d5-search-candidates-0",
        "search --index {ix} wing --candidates 0",
        "--candidates must be a positive integer, got 0",
    ),
    case(
        "d5-search-top-k-0", "search --index {ix} wing --top-k 0", "--top-k must be a positive integer, got 0"
    ),
    case("d5-search-mode", "search --index {ix} wing --mode fuzzy", "unknown search mode 'fuzzy'"),
    # an empty query would match on its prompt alone: confident hits for nothing asked
    case("d5-search-empty-query", ["search", "--index", "{ix}", "  "], "query 1 is empty"),
    case(
        "d5-search-empty-jsonl-query",
        "search --index {ix} --queries {tmp}/q.jsonl",
        "query 2 is empty",
        **{"q.jsonl": '{"text": "wing"}\n{"text": " "}\n'},
    ),
    *[
        case(f"d5-serve-{name}", f"serve -m {{tmp}}/no-model {opts}", msg)
        for name, opts, msg in [
            ("port-70000", "--port 70000", "--port must be between 0 and 65535, got 70000"),
            ("port-negative", "--port -1", "--port must be between 0 and 65535, got -1"),
            ("batch-tokens-0", "--batch-tokens 0", "--batch-tokens must be a positive integer, got 0"),
            ("max-texts-0", "--max-texts 0", "--max-texts must be a positive integer, got 0"),
            ("max-tokens-1", "--max-tokens 1", "--max-tokens must be an integer ≥ 2, got 1"),
            ("max-body-bytes-0", "--max-body-bytes 0", "--max-body-bytes must be a positive integer, got 0"),
            (
                "queue-below-max-texts",
                "--queue-size 10 --max-texts 20",
                "--queue-size (10) must be at least --max-texts (20)",
            ),
            (
                "max-wait-negative",
                "--max-wait-ms -1",
                "--max-wait-ms must be between 0 and 60000 ms, got -1.0",
            ),
            ("threads-0", "--threads 0", "--threads must be a positive integer, got 0"),
            ("dtype", "--dtype int4", "--dtype must be auto, float32, bfloat16 or float16, got 'int4'"),
            ("log-level", "--log-level loud", "--log-level must be one of"),
            ("graceful-negative", "--graceful-timeout -5", "--graceful-timeout must be ≥ 0 seconds"),
            ("index-missing", "--index {tmp}/nothing", "--index {tmp}/nothing: no such directory"),
        ]
    ],
]


def run_cli(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("bad", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_cli_bad_input_is_one_line_exit_2_nothing_written(
    bad: CliCase, tmp_path: Path, built_index: Path
) -> None:
    for name, content in bad.files.items():
        target = tmp_path / name
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
    ix = tmp_path / "ix"
    if any("{ix}" in a for a in bad.args):
        shutil.copytree(built_index, ix)
    args = [a.format(tmp=tmp_path, model=TINY, ix=ix) for a in bad.args]
    before = tree(tmp_path)
    code, stdout, stderr = run_cli(args)
    assert code == 2, (code, stdout, stderr)
    errors = [line for line in stderr.splitlines() if line.startswith("trivec: error:")]
    assert len(errors) == 1, stderr
    assert bad.message.format(tmp=tmp_path) in errors[0], errors[0]
    assert "Traceback" not in stderr + stdout
    assert tree(tmp_path) == before  # nothing written, nothing changed, nothing left behind


# ---------------------------------------------------------------------- the Python API
@dataclass
class ApiCase:
    id: str
    call: Callable[[Embedder], Any]
    message: str
    error: type[Exception] = InputError


API_CASES = [
    ApiCase("d3-encode-surrogate", lambda e: e.encode(["ok", "x\ud800"]), "text at position 1 contains"),
    ApiCase("d3-encode-one-surrogate", lambda e: e.encode("\udfff"), "text at position 0 contains"),
    ApiCase("d3-encode-prompt-surrogate", lambda e: e.encode(["ok"], prompt="\ud800"), "the prompt contains"),
    ApiCase("d3-score-query-surrogate", lambda e: e.score("\ud800", ["p"]), "the query contains"),
    ApiCase("d3-score-passage-surrogate", lambda e: e.score("q", ["p", "\ud800"]), "passage at position 1"),
    ApiCase(
        "d3-score-pairs-surrogate", lambda e: e.score_pairs([("q", "p"), ("q\udc80", "p")]), "query of pair 1"
    ),
]


INDEX_API_CASES = [
    ApiCase(
        "d8-add-duplicate",
        lambda ix: ix.add([{"id": "1", "text": "x"}]),
        "already in the index: '1' (update() replaces them)",
    ),
    ApiCase(
        "d8-update-unknown",
        lambda ix: ix.update([{"id": "zz", "text": "x"}]),
        "(add() adds new documents; update(..., upsert=True) adds or replaces)",
    ),
    ApiCase(
        "d8-delete-unknown",
        lambda ix: ix.delete(["zz"]),
        "unknown document id(s): 'zz' (missing_ok=True ignores them)",
    ),
    ApiCase("d5-top-k-0", lambda ix: ix.search("wing", top_k=0), "top_k must be a positive integer, got 0"),
    ApiCase(
        "d5-candidates-0",
        lambda ix: ix.search("wing", candidates=0),
        "candidates must be a positive integer, got 0",
    ),
    ApiCase(
        "d5-candidates-float",
        lambda ix: ix.search("wing", candidates=2.5),
        "candidates must be a positive integer, got 2.5",
    ),
    ApiCase(
        "d5-weights-negative",
        lambda ix: ix.search("wing", weights=[1, -1, 0]),
        "weights must be finite and ≥ 0",
    ),
    ApiCase("d5-fusion", lambda ix: ix.search("wing", fusion="max"), "unknown fusion 'max'"),
    ApiCase("d5-empty-query", lambda ix: ix.search(["wing", "\t "]), "query 2 is empty"),
    ApiCase("d5-query-not-text", lambda ix: ix.search(["wing", 3]), "query 2: expected a string, got int"),
    ApiCase("empty-add", lambda ix: ix.add([]), "no documents to add"),
    ApiCase("bad-document", lambda ix: ix.add([{"text": "no id"}]), "missing field 'id'"),
    ApiCase("bad-document-type", lambda ix: ix.add(["just text"]), "expected a Document or a dict"),
    ApiCase("empty-delete", lambda ix: ix.delete([]), "no document ids to delete"),
]


@pytest.mark.parametrize("bad", INDEX_API_CASES, ids=[c.id for c in INDEX_API_CASES])
def test_index_api_bad_input_raises_a_clear_error_and_changes_nothing(
    bad: ApiCase, tmp_path: Path, built_index: Path, tiny: Embedder
) -> None:
    shutil.copytree(built_index, tmp_path / "ix")
    before = tree(tmp_path / "ix")
    with Index.open(tmp_path / "ix", model=tiny) as index, pytest.raises(bad.error) as raised:
        bad.call(index)
    assert bad.message in str(raised.value) and "--" not in str(raised.value), str(raised.value)
    assert tree(tmp_path / "ix") == before


@pytest.mark.parametrize("bad", API_CASES, ids=[c.id for c in API_CASES])
def test_api_bad_input_raises_a_clear_error(bad: ApiCase, tiny: Embedder) -> None:
    with pytest.raises(bad.error) as raised:
        bad.call(tiny)
    assert isinstance(raised.value, TrivecError)
    assert bad.message in str(raised.value) and "\n" not in str(raised.value)


def test_index_add_with_a_surrogate_changes_nothing(
    tmp_path: Path, built_index: Path, tiny: Embedder
) -> None:
    shutil.copytree(built_index, tmp_path / "ix")
    before = tree(tmp_path / "ix")
    with Index.open(tmp_path / "ix", model=tiny) as index, pytest.raises(InputError, match="field 'title'"):
        index.add([{"id": "new", "text": "fine", "title": "bad \ud800"}])
    assert tree(tmp_path / "ix") == before
    assert json.loads((tmp_path / "ix" / "MANIFEST.json").read_text(encoding="utf-8"))["format"]


# ---------------------------------------------------------------------- the HTTP server
@dataclass
class HttpCase:
    """`body`: bytes sent as they are (JSON content type), or an object sent as JSON."""

    id: str
    path: str
    body: Any
    status: int
    message: str
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)


SURROGATE_BODIES = {
    "/v1/embeddings": b'{"input": ["fine", "bad \\ud800"]}',
    "/encode": b'{"texts": "x\\udfff", "sparse": true}',
    "/score": b'{"query": "q", "passages": ["\\udc00"]}',
    "/search": b'{"query": "wing \\ud800 stall"}',
}

HTTP_CASES = [
    # --- lone surrogates (defect 3): 422 naming the problem, never a 500
    *[
        HttpCase(f"d3-surrogate{path.replace('/', '-')}", path, body, 422, "lone surrogate")
        for path, body in SURROGATE_BODIES.items()
    ],
    HttpCase("d3-encoded-surrogate-bytes", "/v1/embeddings", b'{"input": "\xed\xa0\x80"}', 422, "not UTF-8"),
    HttpCase("d3-score-pairs-surrogate", "/score", b'{"pairs": [["q", "\\ud800"]]}', 422, "lone surrogate"),
    # --- a text past the character limit is refused before it is tokenised (defect 2)
    HttpCase("d2-huge-text-encode", "/encode", {"texts": ["ab " * 100_000]}, 413, "300,000 characters"),
    HttpCase(
        "d2-huge-query-search", "/search", {"query": "ab " * 100_000}, 413, "query[0] has 300,000 characters"
    ),
    HttpCase(
        "d2-huge-passage-score",
        "/score",
        {"query": "q", "passages": ["x", "ab " * 100_000]},
        413,
        "passage[1]",
    ),
    # --- other bad bodies: 4xx, never a 500
    HttpCase("body-not-json", "/v1/embeddings", b"{not json", 422, "not valid JSON"),
    HttpCase("body-not-utf8", "/encode", b'{"texts": ["\xff\xfe"]}', 422, "not UTF-8"),
    HttpCase("body-array", "/encode", b"[1, 2]", 422, "JSON object"),
    HttpCase(
        "nan-weight",
        "/score",
        b'{"query": "q", "passages": ["p"], "weights": [NaN, 1, 1]}',
        422,
        "not valid JSON",
    ),
    HttpCase("token-ids", "/v1/embeddings", {"input": [[1, 2, 3]]}, 422, "token ids"),
    HttpCase("empty-input", "/v1/embeddings", {"input": []}, 422, "must not be empty"),
    HttpCase(
        "dimensions-too-large", "/v1/embeddings", {"input": "x", "dimensions": 100_000}, 422, "dimensions"
    ),
    HttpCase("no-output", "/encode", {"texts": ["x"], "dense": False}, 422, "at least one output"),
    HttpCase("unknown-field", "/encode", {"texts": ["x"], "bogus": 1}, 422, "bogus"),
    HttpCase("max-length-over-limit", "/encode", {"texts": ["x"], "max_length": 100_000}, 422, "max_length"),
    HttpCase(
        "score-both-forms", "/score", {"pairs": [["q", "p"]], "query": "q", "passages": ["p"]}, 422, "either"
    ),
    HttpCase("search-top-k-0", "/search", {"query": "wing", "top_k": 0}, 422, "top_k"),
    HttpCase("search-bad-mode", "/search", {"query": "wing", "mode": "fuzzy"}, 422, "mode"),
    HttpCase("search-empty-query", "/search", {"query": ""}, 422, "query 1 is empty"),
    HttpCase("search-zero-weights", "/search", {"query": "wing", "weights": [0, 0, 0]}, 422, "is 0"),
    HttpCase(
        "unknown-prompt", "/encode", {"texts": ["x"], "prompt_name": "nope"}, 422, "unknown prompt name"
    ),
    HttpCase("unknown-path", "/v2/nothing", {"x": 1}, 404, "no such endpoint"),
    HttpCase("wrong-method", "/encode", None, 405, "not allowed", method="GET"),
]


@pytest.fixture(scope="module")
def server(built_index: Path, tiny: Embedder) -> Any:
    from trivec.serving import ServerConfig, ServerThread, create_app
    from trivec.serving.search import IndexSearcher

    app = create_app(tiny, ServerConfig(model="tiny"), IndexSearcher.open(built_index, tiny))
    with ServerThread(app) as running:
        yield running


@pytest.mark.parametrize("bad", HTTP_CASES, ids=[c.id for c in HTTP_CASES])
def test_http_bad_input_is_a_4xx_json_error(bad: HttpCase, server: Any) -> None:
    import httpx

    headers = {"content-type": "application/json", **bad.headers}
    content = bad.body if isinstance(bad.body, bytes) or bad.body is None else json.dumps(bad.body).encode()
    response = httpx.request(bad.method, server.url + bad.path, content=content, headers=headers, timeout=60)
    assert response.status_code == bad.status, response.text
    error = response.json()["error"]
    assert error["code"] == bad.status and bad.message in error["message"], error
    assert httpx.get(server.url + "/health", timeout=10).status_code == 200


@pytest.mark.parametrize("over_an_index", [False, True])
def test_a_build_that_fails_half_way_leaves_nothing(
    tmp_path: Path, built_index: Path, monkeypatch: pytest.MonkeyPatch, over_an_index: bool
) -> None:
    """A failure after the corpus was read and the model loaded (a full disk while the segment is written)
    leaves no directory behind — before, an empty index that refused a rebuild without --overwrite — and
    with --overwrite the index it was to replace stays as it was."""
    from trivec.retrieval import segment_writer

    def full_disk(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(segment_writer.SegmentWriter, "finish", full_disk)
    (tmp_path / "c.jsonl").write_text(CORPUS, encoding="utf-8")
    target = tmp_path / "out" / "ix"
    if over_an_index:
        shutil.copytree(built_index, target)
    before = tree(tmp_path)
    args = ["index", "build", "-m", TINY, "--corpus", str(tmp_path / "c.jsonl"), "--index", str(target)]
    code, _, stderr = run_cli([*args, "--overwrite"] if over_an_index else args)
    assert code == 2 and stderr.strip().splitlines()[-1].endswith("No space left on device"), stderr
    assert tree(tmp_path) == before
    monkeypatch.undo()
    code, _, stderr = run_cli([*args, "--overwrite"] if over_an_index else args)  # and a retry just works
    assert code == 0, stderr
    with Index.open(target) as index:
        assert sorted(index.doc_ids()) == ["1", "2"]


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_output_files_follow_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    import os

    (tmp_path / "in.txt").write_text("hello\n", encoding="utf-8")
    old = os.umask(umask)
    try:
        code, _, stderr = run_cli(
            ["encode", "-m", TINY, "-i", str(tmp_path / "in.txt"), "-o", str(tmp_path / "o.jsonl")]
        )
    finally:
        os.umask(old)
    assert code == 0, stderr
    assert (tmp_path / "o.jsonl").stat().st_mode & 0o777 == mode
    (tmp_path / "o.jsonl").chmod(0o640)  # an existing file keeps its mode, as with `>`
    assert (
        run_cli(["encode", "-m", TINY, "-i", str(tmp_path / "in.txt"), "-o", str(tmp_path / "o.jsonl")])[0]
        == 0
    )
    assert (tmp_path / "o.jsonl").stat().st_mode & 0o777 == 0o640
