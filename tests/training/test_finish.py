from pathlib import Path

import pytest

from trivec.training.finish import close_processes, staged_output


def test_files_move_into_place_only_when_the_block_completes(tmp_path: Path) -> None:
    out = tmp_path / "model"
    (out).mkdir()
    (out / "config.json").write_text("old")
    with pytest.raises(RuntimeError), staged_output(out) as staging:
        (staging / "config.json").write_text("half")
        raise RuntimeError("disk full")
    assert (out / "config.json").read_text() == "old"
    assert [p.name for p in out.iterdir()] == ["config.json"]  # no staging folder left behind
    with staged_output(out) as staging:
        (staging / "config.json").write_text("new")
        (staging / "2_Normalize").mkdir()
        (staging / "sub").mkdir()
        (staging / "sub" / "w.bin").write_bytes(b"x")
    assert (out / "config.json").read_text() == "new"
    assert (out / "2_Normalize").is_dir() and (out / "sub" / "w.bin").read_bytes() == b"x"
    assert sorted(p.name for p in out.iterdir()) == ["2_Normalize", "config.json", "sub"]


def test_closing_outside_a_distributed_run_does_nothing() -> None:
    close_processes()
