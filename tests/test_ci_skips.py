"""Under CI=true a missing MariaDB or Chromium fails the run instead of skipping its tests:
tests/conftest.py turns those skips into failures and `make system-deps` exits non-zero when it
cannot install them. Without CI both stay friendly (a skip, a note). Fast: a pytest subprocess on
a tiny test file with this conftest as its plugin, and make with the packages' paths overridden."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tests.conftest import ROOT, on_ci, skip_hides_missing_system_dependency

SAMPLE = '''
import pytest

def test_browser():
    pytest.skip("/usr/bin/chromium is not installed (`make system-deps` installs Debian's chromium as root)")

@pytest.mark.skipif(True, reason="no MySQL-compatible server: mariadb-server is not installed")
def test_mysql():
    pass

def test_unrelated_skip():
    pytest.skip("node is not installed")

def test_passes():
    pass
'''


def _run_sample(tmp_path: Path, ci: str | None) -> tuple[int, dict[str, str]]:
    """(exit code, {test name: passed|failed|error|skipped}) of pytest on SAMPLE with
    tests/conftest.py as a plugin (its JUnit XML report read back)."""
    tmp_path.mkdir(parents=True)
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {k: v for k, v in os.environ.items() if k != "CI"} | ({"CI": ci} if ci is not None else {})
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    report = tmp_path / "report.xml"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider", "-q",
                           str(tmp_path / "test_sample.py"), "--rootdir", str(tmp_path),
                           "-c", str(tmp_path / "pytest.ini"), f"--junitxml={report}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    outcomes = {}
    for case in ElementTree.parse(report).iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        outcomes[case.get("name")] = kinds[0] if kinds else "passed"
    return proc.returncode, outcomes


def test_ci_detection_and_which_skip_reasons_count():
    # The hook's two decisions, on their own.
    assert on_ci({"CI": "true"}) and on_ci({"CI": "1"}) and not on_ci({}) and not on_ci({"CI": "false"})
    assert skip_hides_missing_system_dependency("/usr/bin/chromium is not installed")
    assert skip_hides_missing_system_dependency("no MySQL-compatible server: mariadb-server is not installed")
    assert not skip_hides_missing_system_dependency("node is not installed")


def test_missing_chromium_or_mariadb_fails_under_ci_and_skips_otherwise(tmp_path):
    # Under CI=true the chromium skip and the mariadb skipif turn into failures (exit code 1); an
    # unrelated skip stays a skip. Without CI every one of them is a skip and the run passes.
    code, outcomes = _run_sample(tmp_path / "ci", "true")
    assert code == 1, outcomes
    assert outcomes["test_browser"] == "failure" and outcomes["test_mysql"] in ("failure", "error"), outcomes
    assert outcomes["test_unrelated_skip"] == "skipped" and outcomes["test_passes"] == "passed", outcomes
    code, outcomes = _run_sample(tmp_path / "local", None)
    assert code == 0, outcomes
    assert [outcomes[n] for n in ("test_browser", "test_mysql", "test_unrelated_skip")] == ["skipped"] * 3, outcomes


MISSING = ["MARIADBD=/nonexistent/mariadbd", "CHROMIUM=/nonexistent/chromium", "APT_GET=false"]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_system_deps_fails_under_ci_when_it_cannot_install():
    # A machine without mariadbd and chromium where installing fails (apt-get replaced by `false`).
    def make(*args: str) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k != "CI"}
        return subprocess.run(["make", "-s", "system-deps", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=120)

    ci = make("CI=true", *MISSING)
    assert ci.returncode != 0 and "not installed: mariadb-server chromium" in ci.stderr, ci.stdout + ci.stderr
    local = make(*MISSING)
    assert local.returncode == 0, local.stdout + local.stderr
    assert "MySQL metadata test will be skipped" in local.stdout and "browser test will be skipped" in local.stdout
    only_chromium = make("CI=true", *MISSING[1:], "MARIADBD=/bin/sh")  # any executable stands in for mariadbd
    assert only_chromium.returncode != 0 and "not installed: chromium" in only_chromium.stderr, only_chromium.stderr
