"""The type stubs shipped in the package (`popen/__init__.pyi`, `py.typed`) match the module and
let a type checker check its callers. Skipped where mypy is not installed."""

import os
import subprocess
import sys
import textwrap

import pytest

import popen

mypy = pytest.importorskip("mypy")
PACKAGE = os.path.dirname(popen.__file__)


def test_the_package_ships_stubs_and_the_py_typed_marker():
    assert os.path.exists(os.path.join(PACKAGE, "__init__.pyi"))
    assert os.path.exists(os.path.join(PACKAGE, "py.typed"))


def test_stubs_match_the_runtime_module(tmp_path):
    # The extension module inside the package is an implementation detail with no stub.
    allow = tmp_path / "allow.txt"
    allow.write_text("popen.popen\n")
    r = subprocess.run([sys.executable, "-m", "mypy.stubtest", "popen", "--allowlist",
                        str(allow)], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_checks_callers_against_the_stubs(tmp_path):
    good = tmp_path / "good.py"
    good.write_text(textwrap.dedent("""
        import popen
        popen.install(fork_exec_only=True)
        names: frozenset[str] = popen.installed()
        calls: int = popen.call_counts()["communicate"]
        popen.set_spawn_path("vfork")
        popen.uninstall()
    """))
    bad = tmp_path / "bad.py"
    bad.write_text(textwrap.dedent("""
        import popen
        popen.install(fork_exec_only="yes")
        popen.set_spawn_path("spawn")
        n: str = popen.call_count()
    """))
    run = lambda f: subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                                    "--cache-dir", os.devnull, str(f)], capture_output=True,
                                   text=True, cwd=tmp_path)
    ok = run(good)
    assert ok.returncode == 0, ok.stdout
    wrong = run(bad)
    assert wrong.returncode == 1
    assert wrong.stdout.count("error:") == 3, wrong.stdout
