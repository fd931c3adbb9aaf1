"""popen.posix_spawn and popen.posix_spawnp against CPython's own os.posix_spawn/posix_spawnp.

Every case calls CPython's function and ours with the same arguments and expects the same
outcome: the same exception type, message and filename, the same warnings, or a child that
exits the same way. CPython's own behavioural tests (test_posix TestPosixSpawn and
TestPosixSpawnP) run on our functions in scripts/cpython_posix_spawn_conformance.py.

Run with `python3 -m pytest python/tests` once the module is installed.
"""

import os
import posix
import signal
import stat
import sys
import warnings

import pytest

import popen

CPYTHON = {"posix_spawn": posix.posix_spawn, "posix_spawnp": posix.posix_spawnp}
OURS = {"posix_spawn": popen.posix_spawn, "posix_spawnp": popen.posix_spawnp}
assert CPYTHON["posix_spawn"] is not OURS["posix_spawn"], "imported while installed"

TRUE = "/bin/true"
ENV = dict(os.environ)
NSIG = signal.NSIG


@pytest.fixture(autouse=True)
def restore():
    popen.uninstall()
    yield
    popen.uninstall()


class PathLike:
    def __init__(self, value):
        self.value = value

    def __fspath__(self):
        return self.value


class RaisingPathLike:
    def __fspath__(self):
        raise RuntimeError("no path today")


class Mapping:
    """Not a dict: keys() and values() as methods."""

    def __init__(self, d):
        self.d = d

    def __getitem__(self, k):
        return self.d[k]

    def __len__(self):
        return len(self.d)

    def keys(self):
        return list(self.d.keys())

    def values(self):
        return list(self.d.values())


class ListSubclass(list):
    pass


class TupleSubclass(tuple):
    pass


def outcome(func, args, kwargs):
    """What one call did: ("exit", status) for a child, ("raise", type, message, filename)
    for an exception; plus the warnings it issued."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            pid = func(*args, **kwargs)
        except BaseException as e:  # noqa: B902 - every exception is part of the contract
            result = ("raise", type(e), str(e), getattr(e, "filename", None))
        else:
            assert isinstance(pid, int)
            _, status = os.waitpid(pid, 0)
            result = ("exit", status)
    return result, [(w.category, str(w.message)) for w in caught]


def same_as_cpython(name, *args, **kwargs):
    expected = outcome(CPYTHON[name], args, kwargs)
    got = outcome(OURS[name], args, kwargs)
    assert got == expected
    return got[0]


def o(*actions):
    return {"file_actions": list(actions)}


OPEN, CLOSE, DUP2 = os.POSIX_SPAWN_OPEN, os.POSIX_SPAWN_CLOSE, os.POSIX_SPAWN_DUP2

# (id, args, kwargs). The program is /bin/true unless the case is about the program.
CASES = [
    # Argument Clinic's unpacking.
    ("no-args", (), {}),
    ("one-arg", (TRUE,), {}),
    ("two-args", (TRUE, ["true"]), {}),
    ("four-args", (TRUE, ["true"], ENV, ()), {}),
    ("eleven-args", (TRUE, ["true"], ENV), dict(a=1, b=2, c=3, d=4, e=5, f=6, g=7, h=8)),
    ("eleven-keywords", (), {k: 1 for k in "abcdefghijk"}),
    ("unknown-keyword", (TRUE, ["true"], ENV), {"foo": 1}),
    ("positional-as-keyword", (TRUE, ["true"], ENV), {"path": TRUE}),
    ("all-keywords", (), {"path": TRUE, "argv": ["true"], "env": ENV}),
    ("two-plus-keyword", (TRUE, ["true"]), {"env": ENV}),
    # path_t.
    ("path-int", (5, ["true"], ENV), {}),
    ("path-none", (None, ["true"], ENV), {}),
    ("path-str-nul", ("/bin/tr\0ue", ["true"], ENV), {}),
    ("path-bytes-nul", (b"/bin/tr\0ue", ["true"], ENV), {}),
    ("path-bytes", (b"/bin/true", ["true"], ENV), {}),
    ("path-bytearray", (bytearray(b"/bin/true"), ["true"], ENV), {}),
    ("path-pathlike", (PathLike(TRUE), ["true"], ENV), {}),
    ("path-pathlike-bytes", (PathLike(b"/no/such"), ["true"], ENV), {}),
    ("path-pathlike-int", (PathLike(5), ["true"], ENV), {}),
    ("path-pathlike-raises", (RaisingPathLike(), ["true"], ENV), {}),
    ("path-surrogate", ("/no/such\udcff", ["true"], ENV), {}),
    ("path-unencodable", ("/no/such\ud800", ["true"], ENV), {}),
    # argv.
    ("argv-str", (TRUE, "true", ENV), {}),
    ("argv-none", (TRUE, None, ENV), {}),
    ("argv-empty", (TRUE, [], ENV), {}),
    ("argv-empty-tuple", (TRUE, (), ENV), {}),
    ("argv-first-empty", (TRUE, [""], ENV), {}),
    ("argv-first-empty-bytes", (TRUE, [b"", "x"], ENV), {}),
    ("argv-int-item", (TRUE, ["true", 5], ENV), {}),
    ("argv-nul-item", (TRUE, ["true", "a\0b"], ENV), {}),
    ("argv-mixed", (TRUE, ("true", b"x", PathLike("y")), ENV), {}),
    ("argv-list-subclass", (TRUE, ListSubclass(["true"]), ENV), {}),
    ("argv-checked-before-env", (TRUE, [], 5), {}),
    # env.
    ("env-none", (TRUE, ["true"], None), {}),
    ("env-int", (TRUE, ["true"], 5), {}),
    ("env-list", (TRUE, ["true"], []), {}),
    ("env-equals-in-name", (TRUE, ["true"], {"a=b": "c"}), {}),
    ("env-empty-name", (TRUE, ["true"], {"": "c"}), {}),
    ("env-leading-equals", (TRUE, ["true"], {"=a": "c"}), {}),
    ("env-nul-value", (TRUE, ["true"], {b"A": b"b\0"}), {}),
    ("env-nul-name", (TRUE, ["true"], {"A\0": "b"}), {}),
    ("env-int-value", (TRUE, ["true"], {"A": 1}), {}),
    ("env-bytes", (TRUE, ["true"], {b"A": b"b"}), {}),
    ("env-mapping", (TRUE, ["true"], Mapping({"A": "b"})), {}),
    ("env-checked-after-argv", (TRUE, [""], {"": 1}), {}),
    # file_actions.
    ("fa-none", (TRUE, ["true"], ENV), {"file_actions": None}),
    ("fa-empty", (TRUE, ["true"], ENV), {"file_actions": ()}),
    ("fa-int", (TRUE, ["true"], ENV), {"file_actions": 5}),
    ("fa-str", (TRUE, ["true"], ENV), {"file_actions": "ab"}),
    ("fa-none-item", (TRUE, ["true"], ENV), o(None)),
    ("fa-empty-tuple", (TRUE, ["true"], ENV), o(())),
    ("fa-list-item", (TRUE, ["true"], ENV), o([CLOSE, 0])),
    ("fa-none-tag", (TRUE, ["true"], ENV), o((None,))),
    ("fa-float-tag", (TRUE, ["true"], ENV), o((1.0, 3))),
    ("fa-unknown-tag", (TRUE, ["true"], ENV), o((12345,))),
    ("fa-huge-tag", (TRUE, ["true"], ENV), o((2**70, 3))),
    ("fa-close-short", (TRUE, ["true"], ENV), o((CLOSE,))),
    ("fa-close-long", (TRUE, ["true"], ENV), o((CLOSE, 1, 2))),
    ("fa-close-none", (TRUE, ["true"], ENV), o((CLOSE, None))),
    ("fa-close-float", (TRUE, ["true"], ENV), o((CLOSE, 1.0))),
    ("fa-close-huge", (TRUE, ["true"], ENV), o((CLOSE, 2**40))),
    ("fa-close-small", (TRUE, ["true"], ENV), o((CLOSE, -(2**40)))),
    ("fa-close-negative", (TRUE, ["true"], ENV), o((CLOSE, -1))),
    ("fa-close-unopened", (TRUE, ["true"], ENV), o((CLOSE, 77))),
    ("fa-close-subclass", (TRUE, ["true"], ENV), o(TupleSubclass((CLOSE, 0)))),
    ("fa-dup2", (TRUE, ["true"], ENV), o((DUP2, 1, 4))),
    ("fa-dup2-short", (TRUE, ["true"], ENV), o((DUP2, 1))),
    ("fa-dup2-bad-target", (TRUE, ["true"], ENV), o((DUP2, 1, 99999999))),
    ("fa-dup2-unopened", (TRUE, ["true"], ENV), o((DUP2, 77, 5))),
    ("fa-open", (TRUE, ["true"], ENV), o((OPEN, 3, __file__, os.O_RDONLY, 0))),
    ("fa-open-short", (TRUE, ["true"], ENV), o((OPEN, 3, "/x"))),
    ("fa-open-str-mode", (TRUE, ["true"], ENV), o((OPEN, 3, "/x", os.O_RDONLY, "s"))),
    ("fa-open-float-mode", (TRUE, ["true"], ENV), o((OPEN, 3, "/x", os.O_RDONLY, 1.0))),
    ("fa-open-huge-mode", (TRUE, ["true"], ENV), o((OPEN, 3, __file__, os.O_RDONLY, 2**70))),
    ("fa-open-negative-mode", (TRUE, ["true"], ENV), o((OPEN, 3, __file__, os.O_RDONLY, -1))),
    ("fa-open-none-path", (TRUE, ["true"], ENV), o((OPEN, 3, None, os.O_RDONLY, 0))),
    ("fa-open-nul-path", (TRUE, ["true"], ENV), o((OPEN, 3, __file__ + "\0", os.O_RDONLY, 0))),
    ("fa-open-pathlike", (TRUE, ["true"], ENV), o((OPEN, 3, PathLike(__file__), 0, 0))),
    ("fa-open-missing", (TRUE, ["true"], ENV), o((OPEN, 3, "/no/such/file", os.O_RDONLY, 0))),
    ("fa-open-bad-fd", (TRUE, ["true"], ENV), o((OPEN, -1, __file__, os.O_RDONLY, 0))),
    ("fa-open-float-flags", (TRUE, ["true"], ENV), o((OPEN, 3, __file__, 0.0, 0))),
    ("fa-error-order", (TRUE, ["true"], ENV), o((CLOSE, -1), (CLOSE, None))),
    ("fa-before-flags", (TRUE, ["true"], ENV), dict(o((CLOSE, None)), setpgroup="x")),
    ("fa-multiple", (TRUE, ["true"], ENV),
     o((OPEN, 3, __file__, os.O_RDONLY, 0), (CLOSE, 0), (DUP2, 1, 4))),
    # setpgroup, resetids, setsid.
    ("pgroup-zero", (TRUE, ["true"], ENV), {"setpgroup": 0}),
    ("pgroup-own", (TRUE, ["true"], ENV), {"setpgroup": os.getpgrp()}),
    ("pgroup-other-session", (TRUE, ["true"], ENV), {"setpgroup": 1}),
    ("pgroup-none", (TRUE, ["true"], ENV), {"setpgroup": None}),
    ("pgroup-str", (TRUE, ["true"], ENV), {"setpgroup": "023"}),
    ("pgroup-huge", (TRUE, ["true"], ENV), {"setpgroup": 2**40}),
    ("pgroup-truncated", (TRUE, ["true"], ENV), {"setpgroup": 2**32 + 1}),
    ("pgroup-huger", (TRUE, ["true"], ENV), {"setpgroup": 2**70}),
    ("pgroup-float", (TRUE, ["true"], ENV), {"setpgroup": 1.5}),
    ("resetids", (TRUE, ["true"], ENV), {"resetids": True}),
    ("resetids-none", (TRUE, ["true"], ENV), {"resetids": None}),
    ("resetids-str", (TRUE, ["true"], ENV), {"resetids": ""}),
    ("resetids-float", (TRUE, ["true"], ENV), {"resetids": 1.5}),
    ("resetids-huge", (TRUE, ["true"], ENV), {"resetids": 2**40}),
    ("resetids-before-path", (5, 5, 5), {"resetids": None}),
    ("resetids-before-argv", (TRUE, 5, ENV), {"resetids": None}),
    ("setsid", (TRUE, ["true"], ENV), {"setsid": 1}),
    ("setsid-none", (TRUE, ["true"], ENV), {"setsid": None}),
    ("setsid-huge", (TRUE, ["true"], ENV), {"setsid": 2**40}),
    ("setsid-and-setpgroup", (TRUE, ["true"], ENV), {"setsid": True, "setpgroup": 0}),
    # setsigmask, setsigdef.
    ("sigmask", (TRUE, ["true"], ENV), {"setsigmask": [signal.SIGUSR1]}),
    ("sigmask-empty", (TRUE, ["true"], ENV), {"setsigmask": ()}),
    ("sigmask-all", (TRUE, ["true"], ENV), {"setsigmask": range(1, NSIG)}),
    ("sigmask-int", (TRUE, ["true"], ENV), {"setsigmask": 34}),
    ("sigmask-none", (TRUE, ["true"], ENV), {"setsigmask": None}),
    ("sigmask-str-item", (TRUE, ["true"], ENV), {"setsigmask": ["j"]}),
    ("sigmask-nsig", (TRUE, ["true"], ENV), {"setsigmask": [NSIG, NSIG + 1]}),
    ("sigmask-zero", (TRUE, ["true"], ENV), {"setsigmask": [0]}),
    ("sigmask-negative", (TRUE, ["true"], ENV), {"setsigmask": [-1]}),
    ("sigmask-huge", (TRUE, ["true"], ENV), {"setsigmask": [2**70]}),
    ("sigmask-reserved", (TRUE, ["true"], ENV), {"setsigmask": [32, 33]}),
    ("sigdef", (TRUE, ["true"], ENV), {"setsigdef": [signal.SIGUSR1, signal.SIGPIPE]}),
    ("sigdef-int", (TRUE, ["true"], ENV), {"setsigdef": 34}),
    ("sigdef-str-item", (TRUE, ["true"], ENV), {"setsigdef": ["j"]}),
    ("sigdef-nsig", (TRUE, ["true"], ENV), {"setsigdef": [NSIG]}),
    ("sigmask-before-sigdef", (TRUE, ["true"], ENV), {"setsigmask": [0], "setsigdef": 3}),
    # scheduler.
    ("sched-param-only", (TRUE, ["true"], ENV), {"scheduler": (None, os.sched_param(0))}),
    ("sched-policy", (TRUE, ["true"], ENV),
     {"scheduler": (os.SCHED_OTHER, os.sched_param(0))}),
    ("sched-bad-priority", (TRUE, ["true"], ENV), {"scheduler": (None, os.sched_param(5))}),
    ("sched-batch", (TRUE, ["true"], ENV), {"scheduler": (os.SCHED_BATCH, os.sched_param(0))}),
    ("sched-none", (TRUE, ["true"], ENV), {"scheduler": None}),
    ("sched-int", (TRUE, ["true"], ENV), {"scheduler": 5}),
    ("sched-short", (TRUE, ["true"], ENV), {"scheduler": (1,)}),
    ("sched-not-param", (TRUE, ["true"], ENV), {"scheduler": (1, 2)}),
    ("sched-str-policy", (TRUE, ["true"], ENV), {"scheduler": ("a", os.sched_param(0))}),
    ("sched-str-policy-bad-param", (TRUE, ["true"], ENV), {"scheduler": ("a", 5)}),
    ("sched-huge-policy", (TRUE, ["true"], ENV),
     {"scheduler": (2**40, os.sched_param(0))}),
    ("sched-str-priority", (TRUE, ["true"], ENV), {"scheduler": (None, os.sched_param("x"))}),
    ("sched-big-priority", (TRUE, ["true"], ENV), {"scheduler": (None, os.sched_param(2**40))}),
    ("sched-huge-priority", (TRUE, ["true"], ENV),
     {"scheduler": (None, os.sched_param(2**70))}),
    # The spawn itself.
    ("ok", (TRUE, ["true"], ENV), {}),
    ("exit-status", ("/bin/sh", ["sh", "-c", "exit 7"], ENV), {}),
    ("missing-program", ("/no/such/program", ["x"], ENV), {}),
    ("directory-program", ("/", ["x"], ENV), {}),
    ("not-executable", (__file__, ["x"], ENV), {}),
    ("relative-missing", ("no-such-program", ["x"], ENV), {}),
]


@pytest.mark.parametrize("name", ["posix_spawn", "posix_spawnp"])
@pytest.mark.parametrize("args,kwargs", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_same_outcome_as_cpython(name, args, kwargs):
    same_as_cpython(name, *args, **kwargs)


@pytest.mark.parametrize("name", ["posix_spawn", "posix_spawnp"])
def test_file_actions_may_be_any_iterable(name):
    def actions():
        return {"file_actions": ((CLOSE, fd) for fd in (0, 77))}

    expected = outcome(CPYTHON[name], (TRUE, ["true"], ENV), actions())
    assert outcome(OURS[name], (TRUE, ["true"], ENV), actions()) == expected


def test_spawnp_searches_this_process_path_not_envs(tmp_path, monkeypatch):
    program = tmp_path / "popen-spawnp-probe"
    program.write_text("#!/bin/sh\nexit 3\n")
    program.chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", "%s:%s" % (tmp_path, os.environ["PATH"]))
    env = {"PATH": "/nowhere"}
    assert same_as_cpython("posix_spawnp", program.name, [program.name], env) == (
        "exit", 3 << 8)
    result = same_as_cpython("posix_spawn", program.name, [program.name], env)
    assert result[:2] == ("raise", FileNotFoundError)


def test_signature_is_cpythons():
    def normalized(f):
        return " ".join(f.__text_signature__.split())

    for name in OURS:
        assert normalized(OURS[name]) == normalized(CPYTHON[name])


def test_file_action_tags_are_cpythons():
    for tag in ("POSIX_SPAWN_OPEN", "POSIX_SPAWN_CLOSE", "POSIX_SPAWN_DUP2"):
        assert getattr(popen, tag) == getattr(os, tag)


def test_install_replaces_os_and_posix_and_uninstall_restores():
    popen.install()
    for module in (os, posix):
        assert module.posix_spawn is popen.posix_spawn
        assert module.posix_spawnp is popen.posix_spawnp
    popen.install()
    popen.uninstall()
    for module in (os, posix):
        assert module.posix_spawn is CPYTHON["posix_spawn"]
        assert module.posix_spawnp is CPYTHON["posix_spawnp"]


def test_calls_are_counted():
    before = popen.posix_spawn_call_count()
    popen.install()
    pid = os.posix_spawn(TRUE, ["true"], ENV)
    os.waitpid(pid, 0)
    with pytest.raises(TypeError):
        os.posix_spawnp()
    assert popen.posix_spawn_call_count() == before + 2


def test_subprocess_posix_spawn_path_uses_ours(monkeypatch):
    import subprocess

    if not subprocess._USE_POSIX_SPAWN:
        pytest.skip("subprocess does not use posix_spawn here")
    popen.install()
    before = popen.posix_spawn_call_count()
    # close_fds=False and no other option: subprocess takes its os.posix_spawn path.
    out = subprocess.run([sys.executable, "-c", "print(42)"], close_fds=False,
                         stdout=subprocess.PIPE)
    assert out.stdout == b"42\n"
    assert popen.posix_spawn_call_count() > before


def test_the_child_is_the_callers_to_reap():
    pid = popen.posix_spawn("/bin/sh", ["sh", "-c", "exit 5"], ENV)
    assert os.waitpid(pid, 0) == (pid, 5 << 8)
