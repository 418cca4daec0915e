"""Shared fixtures: the repository root and the `vic` binary the Python package is compared with."""

import os
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _binary():
    """`$VIC_BIN`, else the newest of target/{release,debug}/vic, else `vic` on the PATH."""
    if os.environ.get("VIC_BIN"):
        return os.environ["VIC_BIN"]
    built = [ROOT / "target" / p / "vic" for p in ("release", "debug")]
    built = [b for b in built if b.exists()]
    if built:
        return str(max(built, key=lambda b: b.stat().st_mtime))
    return shutil.which("vic")


@pytest.fixture(scope="session")
def root():
    return ROOT


@pytest.fixture(scope="session")
def vic_bin():
    b = _binary()
    if b is None:
        pytest.skip("no vic binary: build it with `cargo build --release` or set VIC_BIN")
    return b


@pytest.fixture(scope="session")
def run_vic(vic_bin):
    def run(*args, cwd=ROOT):
        p = subprocess.run([vic_bin, *map(str, args)], cwd=cwd, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        return p.stdout

    return run
