"""scripts/setup.sh reinstalls only when something it depends on changed (issue #20, item 9): every run of
`scripts/test.sh` or `scripts/demo.sh` used to reinstall trivec (a minute of pip and its output)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def fake_checkout(tmp_path: Path) -> Path:
    """scripts/setup.sh and pyproject.toml in a copy whose .venv's python runs this interpreter but records
    `python -m pip …` calls in pip.log instead of running them (src is this checkout's: trivec is there)."""
    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "setup.sh", root / "scripts" / "setup.sh")
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    (root / "src").symlink_to(REPO / "src")
    bin_dir = root / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "activate").write_text("", encoding="utf-8")
    python = bin_dir / "python"
    python.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then echo "$@" >> "{root / "pip.log"}"; exit 0; fi\n'
        f'exec "{sys.executable}" "$@"\n',
        encoding="utf-8",
    )
    python.chmod(0o755)
    return root


def setup(root: Path) -> list[str]:
    """Run setup.sh; the pip calls it made."""
    log = root / "pip.log"
    log.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run(
        ["bash", "scripts/setup.sh"], cwd=root, capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []


def test_setup_installs_once_and_again_only_after_a_change(tmp_path: Path) -> None:
    root = fake_checkout(tmp_path)
    first = setup(root)
    assert any("install -q -e .[dev]" in call for call in first), first
    assert setup(root) == []  # nothing changed: nothing reinstalled
    with (root / "pyproject.toml").open("a", encoding="utf-8") as handle:
        handle.write("\n# a dependency changed\n")
    assert any("install -q -e .[dev]" in call for call in setup(root))
    (root / ".venv" / ".trivec-setup").write_text("stale\n", encoding="utf-8")
    assert any("install -q -e .[dev]" in call for call in setup(root))


def test_the_license_is_an_spdx_string() -> None:
    """`project.license` as a table made setuptools print a deprecation banner on every install."""
    import tomllib

    data = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert data["project"]["license"] == "MIT"
    assert any(r.startswith("setuptools>=77") for r in data["build-system"]["requires"])
