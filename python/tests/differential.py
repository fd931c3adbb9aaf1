"""Differential runs: one call made against CPython's function and against popen's, each in a
fresh interpreter, compared by outcome class.

A call is described by Python source (`setup`) that runs in the fresh interpreter and defines
`args` (and optionally `kwargs`). It may use the helpers of `PRELUDE` (pipes, a closed
descriptor, objects whose `__len__`/`__getitem__`/`__bool__` lie or raise, the reporter child).
The runner then calls the function, runs the setup's `after()` if it defines one, and reports
as JSON:

- `result`: `["returned"]` or `["raised", type name, message]`;
- `record`: what the child wrote into the error pipe (when the setup made one);
- `status`: how the child ended (`exit N`, `signal N`), or `none` when there is no child;
- `fds`: the caller's descriptor table right after the call (number, kind, close-on-exec);
- `child`: what the reporter child saw (its descriptors, environment, argv), if it ran.

A run that dies or prints no report is a `crash`; one that outlives the timeout a `hang`.
"""

import json
import os
import subprocess
import sys
import tempfile

PRELUDE = r'''
import os, sys, json, signal

def pipe():
    r, w = os.pipe()
    OPENED.extend((r, w))
    return r, w

def inheritable_pipe():
    r, w = pipe()
    os.set_inheritable(r, True)
    os.set_inheritable(w, True)
    return r, w

def closed_fd():
    fd = os.open(os.devnull, os.O_RDONLY)
    os.close(fd)
    return fd

class LyingList(list):
    """A list whose __len__ says `n` (an int, or an exception to raise)."""
    def __init__(self, items, n):
        super().__init__(items)
        self.n = n
    def __len__(self):
        if isinstance(self.n, BaseException):
            raise self.n
        return self.n

class LyingDict(dict):
    def __init__(self, items, n):
        super().__init__(items)
        self.n = n
    def __len__(self):
        if isinstance(self.n, BaseException):
            raise self.n
        return self.n

class GetItemList(list):
    """A list whose __getitem__ serves `items` instead of its own contents."""
    def __init__(self, own, items):
        super().__init__(own)
        self.items = items
    def __getitem__(self, i):
        return self.items[i]
    def __len__(self):
        return len(self.items)

class BadBool:
    def __bool__(self):
        raise ZeroDivisionError("no truth here")

class Index:
    def __init__(self, v):
        self.v = v
    def __index__(self):
        return self.v

OPENED = []
REPORT = os.environ["DIFF_REPORT"]
REPORTER = [sys.executable.encode(), b"-S", b"-c", (
    "import os, json; "
    "fds = sorted(int(f) for f in os.listdir('/proc/self/fd')); "
    "fds = [f for f in fds if os.path.exists('/proc/self/fd/%%d' %% f)]; "
    "env = [repr(e) for e in open('/proc/self/environ', 'rb').read().split(bytes(1)) "
    "if not e.startswith(b'DIFF_')]; "
    "open(%r, 'w').write(json.dumps({'fds': fds, 'environ': env}))" % REPORT).encode()]
EXE = [sys.executable.encode()]
'''

RUNNER = r'''
import os, sys, json, stat
impl, name, setup = sys.argv[1], sys.argv[2], sys.argv[3]
import popen, _posixsubprocess
if impl == "popen":
    popen.set_spawn_path(os.environ.get("DIFF_SPAWN_PATH") or None)
    func = {"fork_exec": popen.fork_exec, "posix_spawn": popen.posix_spawn,
            "posix_spawnp": popen.posix_spawnp}[name]
else:
    func = {"fork_exec": _posixsubprocess.fork_exec, "posix_spawn": os.posix_spawn,
            "posix_spawnp": os.posix_spawnp}[name]
ns = {}
exec(PRELUDE, ns)
exec(setup, ns)

def kind(fd):
    try:
        mode = os.fstat(fd).st_mode
        target = os.readlink("/proc/self/fd/%d" % fd)
    except OSError:
        return None
    if stat.S_ISFIFO(mode):
        target = "pipe"
    elif target.startswith("socket:"):
        target = "socket"
    elif target.startswith("anon_inode:"):
        target = target.split("[")[0]
    return [target, os.get_inheritable(fd)]

def fd_table():
    fds = sorted(int(f) for f in os.listdir("/proc/self/fd"))
    table = {}
    for fd in fds:
        k = kind(fd)
        if k is not None:
            table[str(fd)] = k
    return table

out = {}
pid = None
try:
    pid = func(*ns["args"], **ns.get("kwargs", {}))
    out["result"] = ["returned"]
except BaseException as e:
    out["result"] = ["raised", type(e).__name__, str(e)]
    e = None
out["fds"] = fd_table()
if "after" in ns:
    ns["after"]()
errpipe = ns.get("errpipe")
if errpipe is not None:
    os.close(errpipe[1])
    data = b""
    while chunk := os.read(errpipe[0], 50000):
        data += chunk
    out["record"] = data.decode("latin-1")
if isinstance(pid, int):
    try:
        _, status = os.waitpid(pid, 0)
        if os.WIFEXITED(status):
            out["status"] = "exit %d" % os.WEXITSTATUS(status)
        else:
            out["status"] = "signal %d" % os.WTERMSIG(status)
    except ChildProcessError:
        out["status"] = "none"
    except OSError as e:
        out["status"] = "waitpid %s" % type(e).__name__
try:
    with open(os.environ["DIFF_REPORT"]) as f:
        out["child"] = json.load(f)
except (OSError, ValueError):
    pass
sys.stdout.flush()
os.write(1, ("\nREPORT " + json.dumps(out)).encode())
'''

# The interpreter that runs the calls: the one running the tests.
PYTHON = sys.executable


def run(impl, name, setup, timeout=20, spawn_path=None):
    """Runs one call in a fresh interpreter; returns its report (a dict) or a crash/hang.
    `spawn_path` is the engine path popen prefers (`popen.set_spawn_path`)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "child.json")
        env = dict(os.environ, DIFF_REPORT=report, DIFF_SPAWN_PATH=spawn_path or "")
        code = "PRELUDE = %r\n" % PRELUDE + RUNNER
        try:
            proc = subprocess.run(
                [PYTHON, "-c", code, impl, name, setup],
                capture_output=True, env=env, timeout=timeout, cwd=tmp)
        except subprocess.TimeoutExpired:
            return {"result": ["hang"]}
        stdout = proc.stdout.decode("latin-1")
        if proc.returncode != 0 or "\nREPORT " not in stdout:
            return {"result": ["crash", proc.returncode],
                    "stderr": proc.stderr.decode("latin-1")[-2000:]}
        return json.loads(stdout.rsplit("\nREPORT ", 1)[1])


def normalize(report):
    """The outcome class: what must be the same for CPython and popen.

    A child that failed before exec exits with 255 in CPython and 127 in popen, and where popen
    refuses a call in the parent there is no child at all: when the error pipe holds a record,
    only the record is compared.
    """
    out = dict(report)
    out.pop("stderr", None)
    if out.get("record"):
        out.pop("status", None)
    elif out.get("status") in ("exit 127", "exit 255"):
        # The record can be lost (errpipe_write closed or not a pipe's write end); no program
        # these tests run exits with either status itself.
        out["status"] = "failed before exec"
    return out


def compare(name, setup, timeout=20, spawn_path=None):
    """Runs `setup` against both; returns (cpython's, popen's) normalized reports."""
    expected = normalize(run("cpython", name, setup, timeout))
    actual = normalize(run("popen", name, setup, timeout, spawn_path))
    if spawn_path == "posix_spawn" and actual.get("status") == "none":
        # A failed posix_spawn leaves no child to reap (a known difference, see the README).
        actual["status"] = "failed before exec"
    return expected, actual


def assert_same(name, setup, timeout=20, spawn_path=None):
    expected, actual = compare(name, setup, timeout, spawn_path)
    assert expected["result"][0] != "crash", "the setup itself fails: %s" % expected
    diff = {k: (expected.get(k), actual.get(k)) for k in sorted(set(expected) | set(actual))
            if expected.get(k) != actual.get(k)}
    assert actual == expected, "\nsetup:\n%s\ndifferences (cpython, popen): %s" % (setup, diff)
    return expected


def fork_exec_setup(pre=None, **overrides):
    """Setup source for a fork_exec call like subprocess.py's, with some arguments replaced by
    source expressions. The error pipe is made and read by the runner."""
    defaults = {
        "args": "REPORTER",
        "executable_list": "EXE",
        "close_fds": "True",
        "pass_fds": "(errpipe[1],)",
        "cwd": "None",
        "env": "None",
        "p2cread": "-1", "p2cwrite": "-1", "c2pread": "-1", "c2pwrite": "-1",
        "errread": "-1", "errwrite": "-1",
        "errpipe_read": "errpipe[0]", "errpipe_write": "errpipe[1]",
        "restore_signals": "True", "call_setsid": "False", "pgid_to_set": "-1",
        "gid": "None", "extra_groups": "None", "uid": "None", "child_umask": "-1",
        "preexec_fn": "None", "allow_vfork": "True",
    }
    unknown = set(overrides) - set(defaults)
    assert not unknown, unknown
    defaults.update(overrides)
    lines = ["errpipe = pipe()"]
    if pre:
        lines.append(pre)
    lines.append("args = [" + ", ".join(defaults.values()) + "]")
    return "\n".join(lines)
