"""The ``solvent demo`` command's arguments, through the real command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from solvent.demo import WINNERS


def solvent(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "solvent", *args], capture_output=True,
                          text=True, timeout=300, check=False, cwd=cwd)


def test_the_demo_writes_the_file_it_is_given_whatever_its_name(tmp_path: Path) -> None:
    """``--path`` went into a URL unescaped: ``a#b.db`` deleted ``a#b.db`` and wrote the
    journal to ``a`` (the rest was a URL fragment); ``c%3Fd.db`` wrote ``c?d.db``."""
    for name in ("a#b.db", "c%3Fd.db"):
        (tmp_path / name).write_bytes(b"an earlier run")
        result = solvent("demo", "--customers", str(WINNERS + 20), "--path", name,
                         cwd=tmp_path)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr
        assert (tmp_path / name).read_bytes()[:16] == b"SQLite format 3\x00"
    assert not (tmp_path / "a").exists() and not (tmp_path / "c?d.db").exists()
    url = "sqlite:///" + str(tmp_path / "a%23b.db")
    verified = solvent("verify", url, cwd=tmp_path)
    assert verified.returncode == 0 and verified.stdout.startswith("OK"), verified.stderr


@pytest.mark.parametrize("path", ["", ".", "sub"])
def test_the_demo_refuses_a_path_that_is_not_a_file(tmp_path: Path, path: str) -> None:
    (tmp_path / "sub").mkdir()
    result = solvent("demo", "--path", path, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "must name a file" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
