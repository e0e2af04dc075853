"""The glibc compatibility step: real wheels, real ELF files, real imports."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pipeline import wheel_compat
from tests.conftest import ROOT

CONSTRAINTS = ROOT / "constraints.txt"
PUBLISHED_CACHE = ROOT / ".cache" / "wheelhouse" / "published"


def glibc_version() -> tuple[int, int]:
    major, minor = os.confstr("CS_GNU_LIBC_VERSION").split()[1].split(".")[:2]
    return int(major), int(minor)


def test_needed_exactly_below_glibc_2_39():
    assert wheel_compat.host_supports() == (glibc_version() >= (2, 39))


def test_version_needs_parser_matches_readelf():
    so = Path(__import__("_ssl").__file__)  # any real shared object of this host
    needs = wheel_compat.version_needs(so.read_bytes())
    out = subprocess.run(["readelf", "-V", "--wide", str(so)], capture_output=True, text=True, check=True).stdout
    readelf_names = {line.split("Name:")[1].split()[0] for line in out.splitlines()
                     if "Name:" in line and "Flags:" in line}
    assert needs and {n.version for n in needs} == readelf_names


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Patch the real published wheels into a fresh wheelhouse (forced, so it runs on any host)."""
    house = tmp_path_factory.mktemp("wheelhouse")
    if PUBLISHED_CACHE.is_dir():  # reuse what set-up already downloaded from the index
        shutil.copytree(PUBLISHED_CACHE, house / "published")
    wheels = wheel_compat.prepare(house, CONSTRAINTS, force=True)
    return house, wheels


def _extract_so(wheel: Path, dest: Path) -> list[Path]:
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if n.endswith(".so")]
        zf.extractall(dest, members=names)
    return [dest / n for n in names]


def test_patched_wheels_drop_new_symbol_versions(prepared, tmp_path):
    _house, wheels = prepared
    assert sorted(w.name.split("-")[0] for w in wheels) == ["ml_metadata", "tensorflow_data_validation"]
    for wheel in wheels:
        assert wheel.name.endswith("-linux_x86_64.whl")
        for so in _extract_so(wheel, tmp_path / wheel.stem):
            needs = wheel_compat.version_needs(so.read_bytes())
            new = [n for n in needs if n.version in wheel_compat.NEW_VERSIONS]
            assert new, f"{so.name} should still list the new versions, as weak"
            assert all(n.weak for n in new), [(n.version, n.flags) for n in new]
            assert not wheel_compat.undefined_symbols(so) & wheel_compat.SYMBOL_RETARGETS.keys()
        marker = wheel_compat._read_marker(wheel)
        assert marker and marker["patched"], "the wheel records what was patched"


def test_prepare_is_idempotent(prepared, caplog):
    house, wheels = prepared
    before = {w: hashlib.sha256(w.read_bytes()).hexdigest() for w in wheels}
    mtimes = {w: w.stat().st_mtime_ns for w in wheels}
    caplog.set_level("INFO", logger="wheel_compat")
    again = wheel_compat.prepare(house, CONSTRAINTS, force=True)
    assert again == wheels
    assert {w: hashlib.sha256(w.read_bytes()).hexdigest() for w in again} == before
    assert {w: w.stat().st_mtime_ns for w in again} == mtimes
    assert caplog.text.count("already prepared") == 2


def test_noop_where_not_needed(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(wheel_compat, "host_supports", lambda *_: True)
    caplog.set_level("INFO", logger="wheel_compat")
    assert wheel_compat.prepare(tmp_path / "house", CONSTRAINTS) == []
    assert not (tmp_path / "house").exists()
    assert "no compatibility step needed" in caplog.text


def test_installed_libraries_import_and_match_the_host():
    wheel_compat.verify()  # raises with the import error if either fails to load
    import importlib.metadata as md

    for dist in ("ml-metadata", "tensorflow-data-validation"):
        files = md.distribution(dist).files or []
        patched = any(f.name == wheel_compat.MARKER for f in files)
        assert patched == (not wheel_compat.host_supports()), dist


def test_cli_prepare_twice_reports_and_succeeds(prepared):
    house, _ = prepared
    cmd = [sys.executable, str(ROOT / "pipeline" / "wheel_compat.py"), "prepare", "--wheelhouse", str(house),
           "--constraints", str(CONSTRAINTS), "--force"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "already prepared" in proc.stderr


def test_missing_pin_is_a_clear_error(tmp_path):
    constraints = tmp_path / "c.txt"
    constraints.write_text("tfx==1.21.0\n")
    with pytest.raises(wheel_compat.CompatError, match="no 'ml-metadata==<version>' pin"):
        wheel_compat.prepare(tmp_path / "house", constraints, force=True)
