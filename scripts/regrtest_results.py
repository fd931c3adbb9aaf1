"""Running part of CPython's own test suite through regrtest and comparing two runs of it.

Shared by the conformance scripts: each runs a suite once on stock CPython and once with the
popen module installed, and reports every test that passes on stock but not on popen.
"""

import os
import subprocess
import xml.etree.ElementTree as ET


def run_regrtest(python, workdir, name, test_args, extra_env=None, verbose=False):
    """Runs `python -m test ... TEST_ARGS` in `workdir` with JUnit output.

    Returns (exit code, junit path, log path).
    """
    xml_path = os.path.join(workdir, name + ".xml")
    log_path = os.path.join(workdir, name + ".log")
    env = dict(os.environ)
    env.update(extra_env or {})
    cmd = [python, "-m", "test", "--timeout", "600", "--junit-xml", xml_path, *test_args]
    if verbose:
        print("$", " ".join(cmd), flush=True)
    with open(log_path, "w") as log:
        # A scratch cwd: the tests write temporary files (os_helper.TESTFN) where they run.
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir)
    return proc.returncode, xml_path, log_path


def run_for_outcomes(python, workdir, name, label, test_args, extra_env=None, verbose=False):
    """Runs regrtest as `run_regrtest` does and reads its outcomes.

    Returns (outcomes, exit code, log path), or None after printing why when the run left no
    test results (`label` names the run in that message).
    """
    code, xml_path, log = run_regrtest(python, workdir, name, test_args, extra_env, verbose)
    result = outcomes(xml_path)
    if not result:
        print("the %s produced no results (exit %d):\n%s" % (label, code, tail(log)))
        return None
    return result, code, log


def sitecustomize_pythonpath(workdir, source):
    """Writes `source` as `sitecustomize.py` in a new directory of `workdir` and returns the
    PYTHONPATH that puts that directory first (so every Python process started with it runs
    the hook)."""
    hook = os.path.join(workdir, "hook")
    os.mkdir(hook)
    with open(os.path.join(hook, "sitecustomize.py"), "w") as f:
        f.write(source)
    inherited = os.environ.get("PYTHONPATH")
    return hook + (os.pathsep + inherited if inherited else "")


def outcomes(xml_path):
    """{test id: "passed" | "failed" | "skipped"} from regrtest's JUnit XML, or None."""
    if not os.path.exists(xml_path):
        return None
    result = {}
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        tags = {child.tag for child in case}
        if tags & {"failure", "error"}:
            result[case.get("name")] = "failed"
        elif "skipped" in tags:
            result[case.get("name")] = "skipped"
        else:
            result[case.get("name")] = "passed"
    return result


def counts(result):
    """(passed, failed, skipped)."""
    return tuple(sum(1 for v in result.values() if v == k)
                 for k in ("passed", "failed", "skipped"))


def summary(result):
    """The closing line: `N passed, N failed, N skipped`."""
    return "%d passed, %d failed, %d skipped" % counts(result)


def regressions(stock, ours, excluded=()):
    """Lines naming each test that passes on stock (or, without a stock run, any test) but
    fails, is skipped, or did not run on popen. Tests matching an `excluded` pattern are
    not expected to run."""
    problems = []
    for name, outcome in sorted(ours.items()):
        if outcome == "failed" and (stock is None or stock.get(name) == "passed"):
            problems.append("REGRESSION (fails on popen, passes on stock): %s" % name)
        elif outcome == "skipped" and stock is not None and stock.get(name) == "passed":
            problems.append("REGRESSION (passes on stock, skipped on popen): %s" % name)
    for name, outcome in sorted((stock or {}).items()):
        if (outcome == "passed" and name not in ours
                and not any(p in name for p in excluded)):
            problems.append("REGRESSION (passes on stock, did not run on popen): %s" % name)
    return problems


def tail(path, lines=60):
    """The last lines of a log."""
    with open(path, errors="replace") as f:
        return "".join(f.readlines()[-lines:])
