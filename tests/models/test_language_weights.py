"""A model's fusion weights per language (`fusion_weights_by_language` in its trivec_config.json): read and
checked with the model, saved with it, and used wherever a call names the queries' language and gives no
weights — `Embedder.score`, index search, the CLI and every evaluation task in one language."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.models.test_model_settings import write_settings, write_task
from trivec import CheckpointError, Embedder, M3Model
from trivec.errors import InputError
from trivec.models.weights import DEFAULT_WEIGHTS, FusionDefaults, check_language_weights

MODEL = {"dense": 0.25, "sparse": 0.25, "colbert": 0.5}
INDONESIAN = {"dense": 0.8, "sparse": 0.05, "colbert": 0.15}
PASSAGES = [
    "boundary layer transition on a flat plate",
    "heat transfer in supersonic flow",
    "the layer of air over a wing",
]


def hybrid(scores: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """The weighted sum the hybrid `colbert+sparse+dense` is (every weight set here sums to 1)."""
    return sum(scores[m] * weights[m] for m in weights)


def test_codes_are_normalised_and_bad_entries_named() -> None:
    assert check_language_weights({"ID": INDONESIAN}) == {"id": INDONESIAN}
    assert check_language_weights({"zh-CN": {"dense": 1}}) == {
        "zh": {"dense": 1.0, "sparse": 0.0, "colbert": 0.0}
    }
    for value, message in [
        ([INDONESIAN], "expected a mapping of language codes"),
        ({"indonesia": INDONESIAN}, "unknown language code 'indonesia'"),
        ({"id": INDONESIAN, "ind": MODEL}, "language 'id' is given twice ('ind')"),
        ({"id": [0.8, 0.05, 0.15]}, "id: expected an object"),
        ({"id": {"dense": -1}}, "id: weights must be finite and ≥ 0"),
        ({"id": {"lexical": 1}}, "id: unknown score mode"),
        ({"id": {"dense": 0}}, "id: every weight is 0"),
    ]:
        with pytest.raises(ValueError) as caught:
            check_language_weights(value)
        assert message in str(caught.value)


def test_defaults_for_a_language() -> None:
    defaults = FusionDefaults(MODEL, "auto", None, {"id": INDONESIAN})
    assert defaults.for_language(None) is defaults
    assert defaults.for_language("ID").weights == INDONESIAN
    assert defaults.for_language("id-ID").method == "auto"
    assert defaults.for_language("fr").weights == MODEL  # no weights of its own: the model's
    with pytest.raises(InputError, match="language: unknown language code 'bahasa'"):
        defaults.for_language("bahasa")
    assert defaults.describe()["weights_by_language"] == {"id": INDONESIAN}


def test_the_setting_round_trips_and_bad_values_name_the_file(tiny_copy: Path, tmp_path: Path) -> None:
    write_settings(tiny_copy, {"fusion_weights": MODEL, "fusion_weights_by_language": {"ID": INDONESIAN}})
    model = M3Model.from_pretrained(tiny_copy)
    assert model.fusion_weights_by_language == {"id": INDONESIAN}
    model.save_pretrained(tmp_path / "saved")
    saved = json.loads((tmp_path / "saved" / "trivec_config.json").read_text(encoding="utf-8"))
    assert saved["fusion_weights_by_language"] == {"id": INDONESIAN}
    assert M3Model.from_pretrained(tmp_path / "saved").fusion_weights_by_language == {"id": INDONESIAN}
    write_settings(tiny_copy, {})
    plain = M3Model.from_pretrained(tiny_copy).save_pretrained(tmp_path / "plain")
    assert "fusion_weights_by_language" not in json.loads((plain / "trivec_config.json").read_text("utf-8"))
    write_settings(tiny_copy, {"fusion_weights_by_language": {"id": {"dense": 0}}})
    with pytest.raises(CheckpointError, match=r"trivec_config\.json: fusion_weights_by_language: id: every"):
        M3Model.from_pretrained(tiny_copy)


def test_score_search_and_eval_use_the_languages_weights(tiny_copy: Path, tmp_path: Path) -> None:
    from trivec.evaluation.runner import evaluate
    from trivec.retrieval import Index

    write_settings(tiny_copy, {"fusion_weights": MODEL, "fusion_weights_by_language": {"id": INDONESIAN}})
    embedder = Embedder.from_pretrained(tiny_copy, device="cpu")
    scores = embedder.score("boundary layer", PASSAGES, language="id")
    np.testing.assert_allclose(scores["colbert+sparse+dense"], hybrid(scores, INDONESIAN), rtol=1e-5)
    for other in (None, "fr"):
        plain = embedder.score("boundary layer", PASSAGES, language=other)["colbert+sparse+dense"]
        np.testing.assert_allclose(plain, hybrid(scores, MODEL), rtol=1e-5)
    given = embedder.score_pairs([("boundary layer", PASSAGES[0])], weights=DEFAULT_WEIGHTS, language="id")
    np.testing.assert_allclose(given["colbert+sparse+dense"], hybrid(given, DEFAULT_WEIGHTS), rtol=1e-5)
    with pytest.raises(InputError, match="unknown language code 'xx'"):
        embedder.score("boundary layer", PASSAGES, language="xx")

    with Index.create(tmp_path / "ix", model=embedder) as index:
        index.add([{"id": i, "text": t} for i, t in zip("abc", PASSAGES, strict=True)])

        def ranked(**kwargs: object) -> list[tuple[str, float]]:
            return [(hit.id, hit.score) for hit in index.search("boundary layer", top_k=3, **kwargs)[0]]

        assert ranked(language="id") == ranked(weights=INDONESIAN) != ranked()
        assert ranked(language="fr") == ranked() == ranked(weights=MODEL)
        assert ranked(language="id", weights=MODEL) == ranked()

    task = write_task(tmp_path / "task", PASSAGES)
    (task.parent / "tasks.tsv").write_text("folder\ttype\tlanguages\ntask\tretrieval\tid\n", encoding="utf-8")
    result = evaluate(embedder, [task], modes="all", progress=False, report=False)[0]
    assert result["settings"]["weights"] == INDONESIAN
    given_result = evaluate(embedder, [task], modes="all", weights=MODEL, progress=False, report=False)[0]
    assert given_result["settings"]["weights"] == MODEL


def test_the_cli_takes_the_language_and_refuses_an_unknown_one(tiny_copy: Path, tmp_path: Path) -> None:
    from trivec.cli import app

    write_settings(tiny_copy, {"fusion_weights": MODEL, "fusion_weights_by_language": {"id": INDONESIAN}})
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"query": "boundary layer", "passage": PASSAGES[0]}) + "\n", encoding="utf-8")
    runner = CliRunner()

    def score(*extra: str) -> dict[str, float]:
        result = runner.invoke(app, ["score", "--pairs", str(pairs), "--model", str(tiny_copy), *extra])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout.strip().splitlines()[-1])

    indonesian = score("--language", "ID")
    assert indonesian["colbert+sparse+dense"] == pytest.approx(
        sum(indonesian[m] * w for m, w in INDONESIAN.items()), abs=2e-6
    )
    assert score()["colbert+sparse+dense"] == pytest.approx(
        sum(indonesian[m] * w for m, w in MODEL.items()), abs=2e-6
    )
    refused = runner.invoke(
        app, ["score", "--pairs", str(pairs), "--model", str(tiny_copy), "--language", "jp"]
    )
    assert refused.exit_code != 0 and "--language: unknown language code 'jp'" in refused.output
    assert "did you mean ja" in refused.output
