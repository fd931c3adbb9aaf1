#!/usr/bin/env python3
"""Runs CPython's own test_subprocess (or another test) with subprocess on the popen engine.

The installed CPython's stock `test_subprocess` runs through its regression-test driver
(`python -m test`): once as shipped, then once per mode with the `popen` module installed in the
test process and in every Python child that the tests start without `-I`/`-E`, through a
`sitecustomize` hook in a temporary directory put on `PYTHONPATH`:

- `fork_exec`: `popen.install(fork_exec_only=True)`, which replaces `subprocess._fork_exec`,
  `_posixsubprocess.fork_exec` and `os.posix_spawn(p)`;
- `full`: `popen.install()`, which also replaces `Popen._communicate` and `Popen._wait`.

The test process writes how many times each replacement ran (`popen.call_counts()`): in
`test_subprocess`, each one a mode installs must have run. `--test NAME` runs another test
(`test_asyncio.test_subprocess`: the asyncio subprocess tests must be unchanged).

The last line printed is `N passed, N failed, N skipped` for the last run on popen. The exit
status is non-zero if a test that passes on stock CPython does not pass on popen, if a
replacement was not used, or if a run did not complete.

Usage: scripts/cpython_conformance.py [--python PYTHON] [--no-stock] [--spawn-path PATH]
                                      [--test NAME] [--mode fork_exec|full ...] [--keep] [-v]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

from regrtest_results import (regressions, run_for_outcomes, sitecustomize_pythonpath,
                              summary, tail)

TEST = "test_subprocess"

# Tests left out of the run on popen, each with the reason: only tests that inspect CPython
# internals no replacement of fork_exec could satisfy. Patterns as accepted by
# `python -m test --ignore`. Target: empty.
EXCLUDED = {}

# The modes of a run on popen: which replacements must have run in the test process.
MODES = {
    "fork_exec": ("fork_exec",),
    "full": ("fork_exec", "communicate", "wait"),
}

SITECUSTOMIZE = '''\
# Written by scripts/cpython_conformance.py: puts subprocess on the popen engine in every
# Python process started with this directory on PYTHONPATH.
import os as _os

if _os.environ.get("POPEN_CONFORMANCE") == "1":
    import popen as _popen

    _popen.install(fork_exec_only=_os.environ.get("POPEN_CONFORMANCE_MODE") == "fork_exec")
    if _os.environ.get("POPEN_SPAWN_PATH"):
        _popen.set_spawn_path(_os.environ["POPEN_SPAWN_PATH"])
    # Only the test process itself reports: the variable is removed before any child starts.
    _report = _os.environ.pop("POPEN_CONFORMANCE_REPORT", None)
    if _report:
        import atexit as _atexit

        def _write_report(path=_report):
            import json as _json

            with open(path, "w") as f:
                _json.dump({"calls": _popen.call_counts(),
                            "installed": sorted(_popen.installed())}, f)

        _atexit.register(_write_report)

# Run the sitecustomize this one shadows, if there is one.
import importlib.machinery as _machinery
import importlib.util as _util
import sys as _sys

_here = _os.path.dirname(_os.path.abspath(__file__))
_spec = _machinery.PathFinder.find_spec(
    "sitecustomize", [p for p in _sys.path if _os.path.abspath(p or ".") != _here])
if _spec is not None and _spec.loader is not None:
    _spec.loader.exec_module(_util.module_from_spec(_spec))
'''


def run_mode(opts, workdir, pythonpath, stock, mode):
    """One run on popen in `mode`; (outcomes, ok), or None when the run left no results."""
    report = os.path.join(workdir, "report-%s.json" % mode)
    env = {
        "PYTHONPATH": pythonpath,
        "POPEN_CONFORMANCE": "1",
        "POPEN_CONFORMANCE_MODE": mode,
        "POPEN_CONFORMANCE_REPORT": report,
    }
    if opts.spawn_path:
        env["POPEN_SPAWN_PATH"] = opts.spawn_path
    ignore = []
    for pattern in EXCLUDED:
        ignore += ["--ignore", pattern]
    run = run_for_outcomes(opts.python, workdir, "popen-" + mode, "run on popen (%s)" % mode,
                           [*ignore, opts.test], env, opts.verbose)
    if run is None:
        return None
    ours, code, log = run
    ok = True
    try:
        with open(report) as f:
            got = json.load(f)
        calls, installed = got["calls"], got["installed"]
    except (OSError, ValueError, KeyError):
        calls, installed = {}, []
    print("mode %s: calls in the test process: %s (still installed at exit: %s)"
          % (mode, ", ".join("%s %d" % kv for kv in sorted(calls.items())) or "none",
             ", ".join(installed) or "nothing"))
    for name in MODES[mode] if opts.test == TEST else ():
        if calls.get(name, 0) <= 0:
            print("FAIL: mode %s: the test process never called popen's %s" % (mode, name))
            ok = False
    if mode == "fork_exec" and (calls.get("communicate") or calls.get("wait")):
        print("FAIL: mode fork_exec: communicate or wait ran on popen")
        ok = False

    for pattern, reason in EXCLUDED.items():
        print("excluded: %s: %s" % (pattern, reason))
    problems = regressions(stock, ours, EXCLUDED)
    for line in problems:
        print(line)
    if problems:
        ok = False
        print("--- end of the popen run's log (%s):\n%s" % (log, tail(log)))
    elif code != 0 and stock is None:
        ok = False
        print("regrtest exited with %d:\n%s" % (code, tail(log)))
    print("mode %s: %s" % (mode, summary(ours)), flush=True)
    return ours, ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable,
                        help="the CPython whose test_subprocess runs (default: this one)")
    parser.add_argument("--no-stock", action="store_true",
                        help="skip the stock run; then every failure counts")
    parser.add_argument("--spawn-path", choices=("posix_spawn", "vfork", "fork"),
                        help="prefer this engine spawn path (default: the engine's choice)")
    parser.add_argument("--test", default=TEST,
                        help="the regrtest test (or test.module) to run (default: %(default)s)")
    parser.add_argument("--mode", action="append", choices=sorted(MODES),
                        help="what popen.install() replaces in a run (repeatable; default: "
                             "fork_exec, then full)")
    parser.add_argument("--keep", action="store_true", help="keep the logs and XML files")
    parser.add_argument("-v", "--verbose", action="store_true")
    opts = parser.parse_args()

    check = subprocess.run([opts.python, "-c", "import popen, _posixsubprocess"],
                           capture_output=True, text=True)
    if check.returncode != 0:
        print("popen is not importable by %s:\n%s" % (opts.python, check.stderr))
        return 2

    workdir = tempfile.mkdtemp(prefix="popen-conformance-")
    ok = True
    try:
        pythonpath = sitecustomize_pythonpath(workdir, SITECUSTOMIZE)

        stock = None
        if not opts.no_stock:
            run = run_for_outcomes(opts.python, workdir, "stock", "stock run", [opts.test],
                                   verbose=opts.verbose)
            if run is None:
                return 1
            stock = run[0]
            print("stock CPython: " + summary(stock), flush=True)

        ours = None
        for mode in opts.mode or ["fork_exec", "full"]:
            result = run_mode(opts, workdir, pythonpath, stock, mode)
            if result is None:
                return 1
            ours, mode_ok = result
            ok = ok and mode_ok
        print(summary(ours))
        return 0 if ok else 1
    finally:
        if opts.keep or not ok:
            print("logs kept in %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
