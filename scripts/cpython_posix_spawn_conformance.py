#!/usr/bin/env python3
"""Runs CPython's own posix_spawn tests with os.posix_spawn/posix_spawnp on the popen engine.

The installed CPython's stock `test_posix` classes `TestPosixSpawn` and `TestPosixSpawnP` run
twice through its regression-test driver (`python -m test`): once as shipped, then with
`popen.install()` done first in the test process (and in the Python children that honour
`PYTHONPATH`), through a `sitecustomize` hook in a temporary directory. `install()` puts
`popen.posix_spawn`/`posix_spawnp` in place of `os.`/`posix.posix_spawn` and `posix_spawnp`
before `test_posix` is imported, so the tests' `spawn_func` is ours. The test process writes
how many times our functions ran; it must be more than zero.

The last line printed is `N passed, N failed, N skipped` for the run on popen. The exit status
is non-zero if a test that passes on stock CPython does not pass on popen, if a stock test is
missing from the run, if the drop-ins were not called, or if a run produced no results.

Usage: scripts/cpython_posix_spawn_conformance.py [--python PYTHON] [--no-stock] [--keep] [-v]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

from regrtest_results import (regressions, run_for_outcomes, sitecustomize_pythonpath,
                              summary, tail)

TEST = "test_posix"
CLASSES = ("TestPosixSpawn", "TestPosixSpawnP")
TEST_ARGS = [TEST] + [arg for cls in CLASSES for arg in ("-m", cls)]

SITECUSTOMIZE = '''\
# Written by scripts/cpython_posix_spawn_conformance.py: os.posix_spawn and os.posix_spawnp
# on the popen engine in every Python process started with this directory on PYTHONPATH.
import os as _os

if _os.environ.get("POPEN_POSIX_SPAWN_CONFORMANCE") == "1":
    import popen as _popen

    _popen.install()
    # Only the test process reports: the variable is removed before any child starts.
    _report = _os.environ.pop("POPEN_POSIX_SPAWN_CONFORMANCE_REPORT", None)
    if _report:
        import atexit as _atexit
        import posix as _posix

        def _write_report(path=_report):
            ours = _posix.posix_spawn is _popen.posix_spawn
            with open(path, "w") as f:
                f.write("%d %d\\n" % (_popen.posix_spawn_call_count(), int(ours)))

        _atexit.register(_write_report)
'''


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable,
                        help="the CPython whose test_posix runs (default: this one)")
    parser.add_argument("--no-stock", action="store_true",
                        help="skip the stock run; then every failure counts")
    parser.add_argument("--keep", action="store_true", help="keep the logs and XML files")
    parser.add_argument("-v", "--verbose", action="store_true")
    opts = parser.parse_args()

    check = subprocess.run([opts.python, "-c", "import popen; popen.posix_spawn"],
                           capture_output=True, text=True)
    if check.returncode != 0:
        print("popen.posix_spawn is not importable by %s:\n%s" % (opts.python, check.stderr))
        return 2

    workdir = tempfile.mkdtemp(prefix="popen-posix-spawn-conformance-")
    ok = False
    try:
        pythonpath = sitecustomize_pythonpath(workdir, SITECUSTOMIZE)
        report = os.path.join(workdir, "report.txt")

        stock = None
        if not opts.no_stock:
            run = run_for_outcomes(opts.python, workdir, "stock", "stock run", TEST_ARGS,
                                   verbose=opts.verbose)
            if run is None:
                return 1
            stock = run[0]
            print("stock CPython: " + summary(stock), flush=True)

        env = {
            "PYTHONPATH": pythonpath,
            "POPEN_POSIX_SPAWN_CONFORMANCE": "1",
            "POPEN_POSIX_SPAWN_CONFORMANCE_REPORT": report,
        }
        run = run_for_outcomes(opts.python, workdir, "popen", "run on popen", TEST_ARGS, env,
                               opts.verbose)
        if run is None:
            return 1
        ours, code, log = run

        try:
            with open(report) as f:
                calls, installed = (int(x) for x in f.read().split())
        except (OSError, ValueError):
            calls, installed = 0, 0
        print("popen.posix_spawn/posix_spawnp calls in the test process: %d "
              "(still in place of posix.posix_spawn at exit: %s)" % (calls, bool(installed)))
        problems = []
        if calls <= 0:
            problems.append("the test process never called popen.posix_spawn/posix_spawnp")

        problems += regressions(stock, ours)
        for line in problems:
            print(line)
        if problems:
            print("--- end of the popen run's log (%s):\n%s" % (log, tail(log)))
        ok = not problems

        print(summary(ours))
        return 0 if ok else 1
    finally:
        if opts.keep or not ok:
            print("logs kept in %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
