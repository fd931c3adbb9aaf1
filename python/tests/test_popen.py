"""Tests of the popen module: install/uninstall, the error-pipe mapping, argument checks.

Run with `python3 -m pytest python/tests` once the module is installed
(`python3 -m pip install ./python`).
"""

import errno
import gc
import os
import stat
import subprocess
import sys
import tempfile

import _posixsubprocess
import pytest

import popen

CPYTHON_FORK_EXEC = _posixsubprocess.fork_exec
SPAWN_PATHS = [None, "posix_spawn", "vfork", "fork"]


@pytest.fixture(autouse=True)
def restore():
    """Every test starts and ends with CPython's subprocess and the automatic spawn path."""
    popen.uninstall()
    yield
    popen.uninstall()
    popen.set_spawn_path(None)


@pytest.fixture(params=SPAWN_PATHS, ids=lambda p: p or "auto")
def installed(request):
    """subprocess on popen, with each spawn path preferred in turn."""
    popen.install()
    popen.set_spawn_path(request.param)
    return request.param


# --- install / uninstall -------------------------------------------------------------------


def test_install_replaces_both_entry_points():
    assert subprocess._fork_exec is CPYTHON_FORK_EXEC
    popen.install()
    assert popen.installed()
    assert subprocess._fork_exec is popen.fork_exec
    assert _posixsubprocess.fork_exec is popen.fork_exec


def test_uninstall_restores_cpython():
    popen.install()
    popen.uninstall()
    assert not popen.installed()
    assert subprocess._fork_exec is CPYTHON_FORK_EXEC
    assert _posixsubprocess.fork_exec is CPYTHON_FORK_EXEC


def test_install_twice_then_uninstall_restores_cpython():
    popen.install()
    popen.install()
    popen.uninstall()
    assert subprocess._fork_exec is CPYTHON_FORK_EXEC
    assert _posixsubprocess.fork_exec is CPYTHON_FORK_EXEC


def test_uninstall_without_install_does_nothing():
    popen.uninstall()
    assert subprocess._fork_exec is CPYTHON_FORK_EXEC


def test_call_count_counts_spawns_only_when_installed():
    before = popen.call_count()
    subprocess.run(["true"], check=True)
    assert popen.call_count() == before
    popen.install()
    subprocess.run(["true"], check=True)
    subprocess.run(["true"], check=True, cwd="/")
    assert popen.call_count() == before + 2


def test_set_spawn_path_rejects_unknown_names():
    with pytest.raises(ValueError):
        popen.set_spawn_path("teleport")


# --- children that start -------------------------------------------------------------------


def test_output_env_cwd_and_umask(installed):
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            ["sh", "-c", 'echo "$FRUIT"; pwd; umask'],
            env={"FRUIT": "apple", "PATH": os.environ["PATH"]},
            cwd=tmp,
            umask=0o027,
            capture_output=True,
            check=True,
        ).stdout.decode().split()
        assert out == ["apple", os.path.realpath(tmp), "0027"]


def test_stdin_and_stderr_to_stdout(installed):
    proc = subprocess.run(
        ["sh", "-c", "cat; echo err >&2"],
        input=b"in\n",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        check=True,
    )
    assert proc.stdout == b"in\nerr\n"


def test_pass_fds_and_close_fds(installed):
    r, w = os.pipe()
    leaked_r, leaked_w = os.pipe()
    os.set_inheritable(leaked_w, True)
    try:
        code = "import os; os.write(%d, b'kept'); os.fstat(%d)" % (w, leaked_w)
        proc = subprocess.run([sys.executable, "-c", code], pass_fds=[w],
                              stderr=subprocess.PIPE)
        os.close(w)
        assert os.read(r, 100) == b"kept"
        assert proc.returncode == 1 and b"Bad file descriptor" in proc.stderr
    finally:
        for fd in (r, leaked_r, leaked_w):
            os.close(fd)


def test_new_session_and_process_group(installed):
    code = "import os; print(os.getsid(0) == os.getpid(), os.getpgid(0) == os.getpid())"
    out = subprocess.run([sys.executable, "-c", code], start_new_session=True,
                         capture_output=True, check=True).stdout
    assert out == b"True True\n"
    out = subprocess.run([sys.executable, "-c", code], process_group=0,
                         capture_output=True, check=True).stdout
    assert out == b"False True\n"


def test_preexec_fn_runs_in_the_child_and_gc_state_is_kept(installed):
    for enabled in (True, False):
        (gc.enable if enabled else gc.disable)()
        try:
            out = subprocess.run(
                [sys.executable, "-c", "import os; print(os.environ['FROM_HOOK'])"],
                preexec_fn=lambda: os.putenv("FROM_HOOK", "yes"),
                capture_output=True,
                check=True,
            ).stdout
            assert out == b"yes\n"
            assert gc.isenabled() == enabled
        finally:
            gc.enable()


# --- the error mapping, through subprocess ---------------------------------------------------


def test_exec_failure_names_the_program(installed):
    with pytest.raises(FileNotFoundError) as info:
        subprocess.Popen(["surely-no-such-program-here", "x"])
    assert info.value.errno == errno.ENOENT
    assert info.value.filename == "surely-no-such-program-here"
    assert info.value.strerror == os.strerror(errno.ENOENT)


def test_exec_permission_denied(installed):
    with tempfile.NamedTemporaryFile(suffix=".sh") as f:
        os.chmod(f.name, stat.S_IRUSR)
        with pytest.raises(PermissionError) as info:
            subprocess.Popen([f.name])
        assert info.value.errno == errno.EACCES
        assert info.value.filename == f.name


def test_chdir_failure_names_the_directory(installed):
    missing = "/surely/not/a/directory"
    with pytest.raises(FileNotFoundError) as info:
        subprocess.Popen(["true"], cwd=missing)
    assert info.value.filename == missing
    # Even when the program would not be found either: the child fails at chdir first.
    with pytest.raises(FileNotFoundError) as info:
        subprocess.Popen(["surely-no-such-program-here"], cwd=missing)
    assert info.value.filename == missing


def test_chdir_into_a_file(installed):
    with tempfile.NamedTemporaryFile() as f:
        with pytest.raises(NotADirectoryError) as info:
            subprocess.Popen(["true"], cwd=f.name)
        assert info.value.filename == f.name


def test_preexec_fn_raising_becomes_subprocess_error(installed):
    def hook():
        raise ValueError("not in the parent")

    with pytest.raises(subprocess.SubprocessError) as info:
        subprocess.Popen(["true"], preexec_fn=hook)
    assert str(info.value) == "Exception occurred in preexec_fn."
    assert type(info.value) is subprocess.SubprocessError


def test_failed_spawns_leave_no_descriptor_behind(installed):
    def count():
        return len(os.listdir("/proc/self/fd"))

    before = count()
    for _ in range(20):
        with pytest.raises(FileNotFoundError):
            subprocess.Popen(["surely-no-such-program-here"], stdout=subprocess.PIPE)
        with pytest.raises(FileNotFoundError):
            subprocess.Popen(["true"], cwd="/surely/not/a/directory", stdin=subprocess.PIPE)
    assert count() == before


# --- the error-pipe records, through fork_exec directly --------------------------------------


def fork_exec_record(argv, exe, cwd=None, preexec_fn=None, close_fds=True):
    """Calls popen.fork_exec as subprocess.py does; returns (pid, bytes in the error pipe)."""
    errpipe_read, errpipe_write = os.pipe()
    try:
        pid = popen.fork_exec(
            argv, [exe], close_fds, (errpipe_write,), cwd, None,
            -1, -1, -1, -1, -1, -1, errpipe_read, errpipe_write,
            True, False, -1, None, None, None, -1, preexec_fn, True)
    finally:
        os.close(errpipe_write)
    data = b""
    while chunk := os.read(errpipe_read, 50000):
        data += chunk
    os.close(errpipe_read)
    return pid, data


def assert_failed_child_left_to_reap(pid, path):
    if path == "posix_spawn":
        # A failed posix_spawn leaves no child: the pid returned is no child of ours.
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, 0)
    else:
        # The failed child is left for subprocess.py to reap, as with CPython's fork_exec.
        assert os.waitpid(pid, 0) == (pid, 127 << 8)


def test_record_for_a_child_that_execs(installed):
    pid, data = fork_exec_record([b"true"], b"/bin/true")
    assert data == b""
    assert os.waitpid(pid, 0) == (pid, 0)


def test_record_for_an_exec_failure(installed):
    pid, data = fork_exec_record([b"x"], b"/surely/no/such/program")
    assert data == b"OSError:%x:" % errno.ENOENT
    assert_failed_child_left_to_reap(pid, installed)


def test_record_for_a_chdir_failure(installed):
    pid, data = fork_exec_record([b"true"], b"/bin/true", cwd="/surely/not/a/directory")
    assert data == b"OSError:%x:noexec" % errno.ENOENT
    assert_failed_child_left_to_reap(pid, installed)


def test_record_for_a_raising_preexec_fn(installed):
    pid, data = fork_exec_record([b"true"], b"/bin/true", preexec_fn=lambda: 1 / 0)
    assert data == b"SubprocessError:0:Exception occurred in preexec_fn."
    # A preexec_fn always takes the fork path, which has a failed child to reap.
    assert os.waitpid(pid, 0) == (pid, 127 << 8)


def test_record_for_a_bad_stdin_descriptor():
    errpipe_read, errpipe_write = os.pipe()
    bad = os.open(os.devnull, os.O_RDONLY)
    os.close(bad)
    popen.fork_exec([b"true"], [b"/bin/true"], True, (errpipe_write,), None, None,
                    bad, -1, -1, -1, -1, -1, errpipe_read, errpipe_write,
                    True, False, -1, None, None, None, -1, None, True)
    os.close(errpipe_write)
    assert os.read(errpipe_read, 100) == b"OSError:%x:noexec" % errno.EBADF
    os.close(errpipe_read)


# --- argument checks: the same exceptions as CPython's fork_exec -----------------------------


def good_args():
    return [[b"true"], [b"/bin/true"], True, (), None, None,
            -1, -1, -1, -1, -1, -1, 3, 4,
            True, False, -1, None, None, None, -1, None, True]


class BadBool:
    def __bool__(self):
        raise ZeroDivisionError("no truth here")


BAD_ARGUMENTS = {
    "too few": lambda a: a.pop(),
    "too many": lambda a: a.append(None),
    "pass_fds not a tuple": lambda a: a.__setitem__(3, [5]),
    "fd is a str": lambda a: a.__setitem__(6, "0"),
    "fd is a float": lambda a: a.__setitem__(7, 1.0),
    "fd above INT_MAX": lambda a: a.__setitem__(8, 2**31),
    "fd below INT_MIN": lambda a: a.__setitem__(9, -2**31 - 1),
    "fd beyond a C long": lambda a: a.__setitem__(10, 2**64),
    "pgid above INT_MAX": lambda a: a.__setitem__(16, 2**31),
    "umask beyond a C long": lambda a: a.__setitem__(20, -2**70),
    "truth raises": lambda a: a.__setitem__(2, BadBool()),
    "errpipe_write below 3": lambda a: a.__setitem__(13, 2),
    "pass_fds negative": lambda a: a.__setitem__(3, (-1, 4)),
    "pass_fds unsorted": lambda a: a.__setitem__(3, (5, 4)),
    "pass_fds duplicate": lambda a: a.__setitem__(3, (4, 4)),
    "pass_fds not int": lambda a: a.__setitem__(3, ("4",)),
    "pass_fds too big": lambda a: a.__setitem__(3, (2**63,)),
    "executable_list None": lambda a: a.__setitem__(1, None),
    "executable_list of str": lambda a: a.__setitem__(1, ["/bin/true"]),
    "executable with NUL": lambda a: a.__setitem__(1, [b"/bin/tr\0ue"]),
    "argv not a sequence": lambda a: a.__setitem__(0, 5),
    "argv item an int": lambda a: a.__setitem__(0, [5]),
    "argv item with NUL": lambda a: a.__setitem__(0, ["a\0b"]),
    "env of str": lambda a: a.__setitem__(5, ["A=b"]),
    "env with NUL": lambda a: a.__setitem__(5, [b"A=\0"]),
    "env not a sequence": lambda a: a.__setitem__(5, 7),
    "cwd an int": lambda a: a.__setitem__(4, 5),
    "cwd with NUL": lambda a: a.__setitem__(4, "/tm\0p"),
    "groups a tuple": lambda a: a.__setitem__(18, (0,)),
    "groups of str": lambda a: a.__setitem__(18, ["0"]),
    "group too big": lambda a: a.__setitem__(18, [2**64]),
    "group negative": lambda a: a.__setitem__(18, [-2]),
    "too many groups": lambda a: a.__setitem__(18, [0] * 70000),
    "gid 2**64": lambda a: a.__setitem__(17, 2**64),
    "gid 2**32": lambda a: a.__setitem__(17, 2**32),
    "gid negative": lambda a: a.__setitem__(17, -2),
    "gid a str": lambda a: a.__setitem__(17, "0"),
    "uid 2**64": lambda a: a.__setitem__(19, 2**64),
    "uid a float": lambda a: a.__setitem__(19, 0.0),
    "first error wins": lambda a: (a.__setitem__(1, 5), a.__setitem__(0, 5)),
    "errpipe checked before pass_fds": lambda a: (a.__setitem__(3, (5, 4)),
                                                  a.__setitem__(13, 2)),
}


def outcome(function, args):
    try:
        function(*args)
    except BaseException as e:  # noqa: B036 - the exception is the result
        return type(e), str(e)
    return None


@pytest.mark.parametrize("case", sorted(BAD_ARGUMENTS))
def test_bad_arguments_raise_as_in_cpython(case):
    args = good_args()
    BAD_ARGUMENTS[case](args)
    expected = outcome(CPYTHON_FORK_EXEC, args)
    assert expected is not None, "CPython accepted the arguments"
    assert outcome(popen.fork_exec, args) == expected


def test_keyword_arguments_are_refused():
    with pytest.raises(TypeError, match="takes no keyword arguments"):
        popen.fork_exec(*good_args(), close_fds=True)


def test_gc_is_reenabled_after_a_bad_call_with_preexec_fn():
    gc.enable()
    args = good_args()
    args[21] = lambda: None
    args[4] = 123  # cwd: TypeError after gc was disabled
    with pytest.raises(TypeError):
        popen.fork_exec(*args)
    assert gc.isenabled()


def test_a_popen_that_failed_to_start_gets_a_returncode(installed):
    if installed == "posix_spawn":
        pytest.skip("a failed posix_spawn leaves no child to take a returncode from")
    # subprocess.py reaps the failed child itself; no "still running" ResourceWarning follows.
    import gc
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(FileNotFoundError):
            subprocess.Popen(["/surely/no/such/program"])
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
