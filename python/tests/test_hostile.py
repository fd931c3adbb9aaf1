"""Odd and hostile arguments: popen's fork_exec, posix_spawn and posix_spawnp end each call
as CPython's do (the same exception, the same child, the same error record, the same caller's
descriptor table), each call made in a fresh interpreter (see `differential.py`)."""

import pytest

from differential import assert_same, fork_exec_setup as fe

# (id, function, setup source)
CASES = [
    # A length that Python code reports is never trusted with an allocation.
    ("exelist-len-2**40", "fork_exec", fe(executable_list="LyingList([], 2**40)")),
    ("exelist-len-maxsize", "fork_exec", fe(executable_list="LyingList([], sys.maxsize)")),
    ("exelist-len-5-of-1", "fork_exec", fe(executable_list="LyingList(EXE, 5)")),
    ("exelist-len-raises", "fork_exec",
     fe(executable_list="LyingList(EXE, ZeroDivisionError('len'))")),
    ("exelist-len-negative", "fork_exec", fe(executable_list="LyingList(EXE, -1)")),
    ("exelist-dict-2**40", "fork_exec", fe(executable_list="LyingDict({}, 2**40)")),
    ("env-len-2**40", "fork_exec", fe(env="LyingList([], 2**40)")),
    ("env-dict-maxsize", "fork_exec", fe(env="LyingDict({}, sys.maxsize)")),
    ("argv-len-2**40", "fork_exec", fe(args="LyingList(REPORTER, 2**40)")),
    ("argv-dict-2**40", "fork_exec", fe(args="LyingDict({b'x': 1}, 2**40)")),
    ("groups-len-2**40", "fork_exec", fe(extra_groups="LyingList([], 2**40)")),
    ("groups-len-raises", "fork_exec", fe(extra_groups="LyingList([], KeyError('g'))")),
    ("spawn-argv-len-2**40", "posix_spawn",
     "args = [EXE[0], LyingList(['x', '-c', ''], 2**40), {}]"),
    ("spawn-argv-len-maxsize", "posix_spawn",
     "args = [EXE[0], LyingList(['x', '-c', ''], sys.maxsize), {}]"),
    ("spawn-env-len-2**40", "posix_spawn",
     "args = [EXE[0], ['x', '-c', ''], LyingDict({'A': 'b'}, 2**40)]"),
    ("spawn-env-len-maxsize", "posix_spawnp",
     "args = [EXE[0], ['x', '-c', ''], LyingDict({'A': 'b'}, sys.maxsize)]"),
    ("spawn-env-len-3-of-1", "posix_spawn",
     "args = [EXE[0], ['x', '-c', ''], LyingDict({'A': 'b'}, 3)]"),
    # restore_signals and call_setsid are C ints, not truth values.
    ("restore-signals-none", "fork_exec", fe(restore_signals="None")),
    ("restore-signals-2**100", "fork_exec", fe(restore_signals="2**100")),
    ("restore-signals-badbool", "fork_exec", fe(restore_signals="BadBool()")),
    ("restore-signals-index", "fork_exec", fe(restore_signals="Index(0)")),
    ("restore-signals-float", "fork_exec", fe(restore_signals="1.0")),
    ("call-setsid-none", "fork_exec", fe(call_setsid="None")),
    ("call-setsid-2**100", "fork_exec", fe(call_setsid="-2**100")),
    ("call-setsid-str", "fork_exec", fe(call_setsid="'yes'")),
    # Sequences read through the sequence protocol where CPython does.
    ("groups-getitem-str", "fork_exec", fe(extra_groups="GetItemList([0], ['x'])")),
    ("groups-getitem-bad-gid", "fork_exec", fe(extra_groups="GetItemList([0], [-5])")),
    ("groups-getitem-raises", "fork_exec",
     fe(extra_groups="GetItemList([0, 1], [0])", pre="GetItemList.__len__ = lambda s: 2")),
    ("argv-grows-while-converted", "fork_exec",
     fe(pre="class Grow:\n    def __fspath__(self):\n        L.append(b'x')\n        return b'x'\n"
            "L = [Grow(), b'y']", args="L")),
    ("pass-fds-tuple-subclass-lies", "fork_exec",
     fe(pre="class T(tuple):\n    def __len__(self): return 10**9\n"
            "    def __getitem__(self, i): return -1",
        pass_fds="T((errpipe[1],))")),
    ("spawnp-argv-len-raises", "posix_spawnp",
     "args = ['true', LyingList(['true'], ZeroDivisionError('len')), {}]"),
    ("spawnp-argv-len-zero", "posix_spawnp", "args = ['true', LyingList(['true'], 0), {}]"),
    ("spawnp-argv-len-negative", "posix_spawnp",
     "args = ['true', LyingList(['true'], -3), {}]"),
    ("spawn-argv-getitem", "posix_spawn",
     "args = [EXE[0], GetItemList(['x'], ['x', '-c', 'import sys; sys.exit(3)']), {}]"),
    ("spawn-argv-getitem-int", "posix_spawn", "args = [EXE[0], GetItemList(['x'], [5]), {}]"),
    # An empty executable list: the child reaches the end of it with errno 0.
    ("exelist-empty-tuple", "fork_exec", fe(executable_list="()")),
    ("exelist-empty-list", "fork_exec", fe(executable_list="[]")),
    # Empty and odd entries reach the child byte for byte.
    ("exelist-empty-path", "fork_exec", fe(executable_list="[b'']")),
    ("exelist-empty-then-exe", "fork_exec", fe(executable_list="[b'', EXE[0]]")),
    ("env-empty-entry", "fork_exec", fe(env="[b'']")),
    ("env-odd-entries", "fork_exec",
     fe(env="[b'NOEQUALS', b'A=1', b'A=2', b'=x', b'', b'B==c', b'\\xff=\\xfe']")),
    ("argv-empty", "fork_exec", fe(args="[]")),
    ("argv-none", "fork_exec", fe(args="None")),
    # The parent's pipe ends are closed in the child, and must be open.
    ("inheritable-p2cwrite", "fork_exec",
     fe(pre="r, w = inheritable_pipe()", p2cread="r", p2cwrite="w", close_fds="False")),
    # The symptom: a child that holds the write end of its own stdin never sees EOF.
    ("cat-sees-eof", "fork_exec",
     fe(pre="r, w = inheritable_pipe()\nafter = lambda: os.close(w)", args="[b'cat']",
        executable_list="[b'/bin/cat']", p2cread="r", p2cwrite="w", close_fds="False")),
    ("inheritable-c2pread", "fork_exec",
     fe(pre="r, w = inheritable_pipe()", c2pread="r", c2pwrite="w", close_fds="False")),
    ("inheritable-errread", "fork_exec",
     fe(pre="r, w = inheritable_pipe()", errread="r", errwrite="w", close_fds="False")),
    ("inheritable-errpipe-read", "fork_exec",
     fe(pre="os.set_inheritable(errpipe[0], True)", close_fds="False")),
    ("c2pread-is-stdout", "fork_exec", fe(c2pread="1", close_fds="False")),
    ("p2cwrite-is-stdin", "fork_exec", fe(p2cwrite="0", close_fds="False")),
    ("p2cwrite-passed", "fork_exec",
     fe(pre="r, w = pipe()", p2cread="r", p2cwrite="w", pass_fds="tuple(sorted((w, errpipe[1])))")),
    ("p2cwrite-closed", "fork_exec", fe(p2cwrite="closed_fd()")),
    ("c2pread-closed", "fork_exec", fe(c2pread="closed_fd()")),
    ("errread-closed", "fork_exec", fe(errread="closed_fd()")),
    ("errpipe-read-none", "fork_exec", fe(errpipe_read="-1")),
    ("errpipe-read-closed", "fork_exec", fe(errpipe_read="closed_fd()")),
    ("p2cwrite-negative", "fork_exec", fe(p2cwrite="-7")),
    ("parent-end-is-child-end", "fork_exec",
     fe(pre="r, w = pipe()", p2cread="r", c2pread="r")),
    ("parent-ends-the-same", "fork_exec",
     fe(pre="r, w = pipe()", p2cwrite="w", c2pread="w")),
    ("c2pwrite-0-after-p2cwrite-0", "fork_exec",
     fe(p2cwrite="0", c2pwrite="0", close_fds="False")),
    ("pass-fd-closed", "fork_exec", fe(pass_fds="tuple(sorted((closed_fd(), errpipe[1])))")),
    ("stdin-closed", "fork_exec", fe(p2cread="closed_fd()")),
    ("stdout-negative", "fork_exec", fe(c2pwrite="-9")),
    ("bad-cwd-and-closed-end", "fork_exec", fe(cwd="'/no/such/dir'", p2cwrite="closed_fd()")),
    # errpipe_write as a parent end: closed by CPython's child, whose later record is lost.
    ("errpipe-write-closed-then-exec-fails", "fork_exec",
     fe(errpipe_read="errpipe[1]", executable_list="[b'/no/such']")),
    ("errpipe-write-closed-after-a-failure", "fork_exec",
     fe(errpipe_read="errpipe[1]", p2cwrite="closed_fd()")),
    ("errpipe-write-is-p2cwrite", "fork_exec", fe(p2cwrite="errpipe[1]", cwd="'/no/such'")),
    # A failure after setsid names its step on every path.
    ("setsid-then-pgid-0", "fork_exec", fe(call_setsid="True", pgid_to_set="0")),
    # errpipe_write not kept: CPython's child closes it with the others before exec.
    ("errpipe-write-not-kept-exec-fails", "fork_exec",
     fe(pass_fds="()", executable_list="[b'/no/such']")),
    ("errpipe-write-not-kept-no-executable", "fork_exec",
     fe(pass_fds="()", executable_list="()")),
    ("errpipe-write-not-kept-chdir-fails", "fork_exec",
     fe(pass_fds="()", cwd="'/no/such/dir'")),
    ("errpipe-write-not-kept-preexec-fails", "fork_exec",
     fe(pass_fds="()", preexec_fn="lambda: 1/0")),
    # Type names in messages as CPython writes them.
    ("pass-fds-none", "fork_exec", fe(pass_fds="None")),
    ("pass-fds-list", "fork_exec", fe(pass_fds="[errpipe[1]]")),
    ("pass-fds-ordereddict", "fork_exec",
     fe(pre="import collections", pass_fds="collections.OrderedDict()")),
    ("uid-none-type", "fork_exec", fe(uid="1.5")),
    ("gid-ordereddict", "fork_exec", fe(pre="import collections", gid="collections.deque()")),
]


@pytest.mark.parametrize("name,setup", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_same_outcome_as_cpython(name, setup):
    assert_same(name, setup, timeout=10)


# fork_exec again with each engine path preferred where it can honour the call.
@pytest.mark.parametrize("path", ["posix_spawn", "vfork", "fork"])
@pytest.mark.parametrize("setup", [c[2] for c in CASES if c[1] == "fork_exec"],
                         ids=[c[0] for c in CASES if c[1] == "fork_exec"])
def test_same_outcome_as_cpython_on_each_path(setup, path):
    assert_same("fork_exec", setup, timeout=10, spawn_path=path)
