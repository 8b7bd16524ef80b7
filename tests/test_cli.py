"""The ``solvent`` command line through the real process: the demo's arguments, and
what a closed output does to each command's exit code."""

from __future__ import annotations

import resource
import signal
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
        for _run in range(2):  # the second run replaces the first's ledger
            result = solvent("demo", "--customers", str(WINNERS + 20), "--path", name,
                             cwd=tmp_path)
            assert result.returncode == 0, result.stdout[-2000:] + result.stderr
            assert (tmp_path / name).read_bytes()[:16] == b"SQLite format 3\x00"
    assert not (tmp_path / "a").exists() and not (tmp_path / "c?d.db").exists()
    url = "sqlite:///" + str(tmp_path / "a%23b.db")
    verified = solvent("verify", url, cwd=tmp_path)
    assert verified.returncode == 0 and verified.stdout.startswith("OK"), verified.stderr


def test_the_demo_replaces_only_a_ledger_it_made(tmp_path: Path) -> None:
    """``--path`` named any file and the demo deleted it: a real ledger, say."""
    import solvent as lib

    (tmp_path / "notes.db").write_bytes(b"not a ledger")
    with lib.Ledger.open(f"sqlite:///{tmp_path / 'books.db'}") as led:
        led.register_asset("BTC", decimals=8)
    kept = {name: (tmp_path / name).read_bytes() for name in ("notes.db", "books.db")}
    for name in kept:
        result = solvent("demo", "--customers", str(WINNERS + 20), "--path", name,
                         cwd=tmp_path)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "holds something the demo did not make" in result.stderr, result.stderr
        assert len(result.stderr.splitlines()) == 1
        assert (tmp_path / name).read_bytes() == kept[name]


@pytest.mark.parametrize("path", ["", ".", "sub"])
def test_the_demo_refuses_a_path_that_is_not_a_file(tmp_path: Path, path: str) -> None:
    (tmp_path / "sub").mkdir()
    result = solvent("demo", "--path", path, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "must name a file" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("path", ["no-such-dir/demo.db", "postgresql://postgres@127.0.0.1/x"])
def test_the_demo_refuses_a_path_it_cannot_make_in_one_line(tmp_path: Path, path: str) -> None:
    """A ``--path`` in a directory that does not exist (or a URL, which the demo takes
    as a file name) was a traceback with exit 1, TAMPERED's code."""
    result = solvent("demo", "--path", path, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("solvent demo: cannot make the demo's ledger"), result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1


def test_a_store_that_fails_mid_demo_stops_it_with_one_line_and_exit_2(tmp_path: Path) -> None:
    """A disk that fills during the demo (here a file-size limit, the signal it sends
    ignored, so SQLite sees an I/O error) was a ``StoreError`` traceback with exit 1,
    TAMPERED's code. What the demo committed before the failure still verifies."""
    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))

    result = subprocess.run(
        [sys.executable, "-m", "solvent", "demo", "--customers", str(WINNERS + 20), "--path",
         "full.db"], capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path,
        preexec_fn=small_disk)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr
    assert result.stderr.startswith("solvent demo: the store failed"), result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1
    verified = solvent("verify", "sqlite:///" + str(tmp_path / "full.db"), cwd=tmp_path)
    assert verified.returncode == 0 and verified.stdout.startswith("OK"), verified.stderr


def test_a_reader_that_stops_early_does_not_change_a_verdict(tmp_path: Path) -> None:
    """``solvent verify URL | head -1`` (the reader gone after one line) ended in a
    ``BrokenPipeError`` traceback and exit 1, which reads as TAMPERED under ``set -o
    pipefail``. A verdict's exit code stands now; a document not read to its end (a
    proof) is exit 2."""
    made = solvent("demo", "--customers", str(WINNERS + 20), "--path", "d.db", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    url = "sqlite:///" + str(tmp_path / "d.db")
    for args, code in ((["verify", url], 0),
                       (["proof", "publish", url, "--asset", "BTC"], 2)):
        proc = subprocess.Popen([sys.executable, "-m", "solvent", *args], cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # the reader goes away before the first line
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=300) == code, (args, err)
        assert "Traceback" not in err and "Exception ignored" not in err, err
