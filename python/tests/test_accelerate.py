"""Popen._communicate and Popen._wait on the engine: each behaviour is run twice in the same
test, once on stock CPython and once with `popen.install()`, and the two results must be equal;
the call counts prove that the installed run went through popen's replacements.
"""

import array
import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import popen

STOCK_COMMUNICATE = subprocess.Popen._communicate
STOCK_WAIT = subprocess.Popen._wait
PY = sys.executable


@pytest.fixture(autouse=True)
def restore():
    popen.uninstall()
    yield
    popen.uninstall()


def both(scenario, *, uses=("communicate",)):
    """Runs `scenario()` on stock CPython, then installed; returns (stock, ours) after checking
    that every replacement named in `uses` ran in the installed run (and none in the stock)."""
    popen.uninstall()
    before = popen.call_counts()
    stock = scenario()
    mid = popen.call_counts()
    popen.install()
    try:
        ours = scenario()
    finally:
        popen.uninstall()
    after = popen.call_counts()
    for name in ("communicate", "wait"):
        assert mid[name] == before[name], "%s ran on popen while uninstalled" % name
    for name in uses:
        assert after[name] > mid[name], "the installed run never called popen's %s" % name
    return stock, ours


def sh(script, **kw):
    return subprocess.Popen(["sh", "-c", script], **kw)


# --- install / uninstall ---------------------------------------------------------------------


def test_install_replaces_communicate_and_wait_and_uninstall_restores_them():
    assert popen.installed() == frozenset()
    popen.install()
    assert popen.installed() == {"fork_exec", "posix_spawn", "communicate", "wait"}
    assert subprocess.Popen._communicate is not STOCK_COMMUNICATE
    assert subprocess.Popen._wait is not STOCK_WAIT
    popen.install()  # again: nothing changes
    assert popen.installed() == {"fork_exec", "posix_spawn", "communicate", "wait"}
    popen.uninstall()
    assert subprocess.Popen._communicate is STOCK_COMMUNICATE
    assert subprocess.Popen._wait is STOCK_WAIT
    assert not popen.installed()


def test_fork_exec_only_keeps_cpythons_communicate_and_wait():
    popen.install(fork_exec_only=True)
    assert popen.installed() == {"fork_exec", "posix_spawn"}
    assert subprocess.Popen._communicate is STOCK_COMMUNICATE
    popen.install()
    popen.install(fork_exec_only=True)  # narrows a full install back
    assert subprocess.Popen._wait is STOCK_WAIT
    assert popen.installed() == {"fork_exec", "posix_spawn"}


# --- communicate -----------------------------------------------------------------------------


def test_capture_both_streams_and_status():
    def scenario():
        r = subprocess.run(["sh", "-c", "echo out; echo err >&2; exit 3"], capture_output=True)
        return r.stdout, r.stderr, r.returncode

    stock, ours = both(scenario)
    assert stock == ours == (b"out\n", b"err\n", 3)


def test_large_data_both_ways_every_byte_in_order():
    data = os.urandom(3 << 20) + bytes(range(256)) * 4096

    def scenario():
        r = subprocess.run(["cat"], input=data, capture_output=True)
        return r.stdout == data, len(r.stdout), r.stderr

    stock, ours = both(scenario)
    assert stock == ours == (True, len(data), b"")


def test_floods_on_stderr_while_stdin_is_fed_do_not_deadlock():
    script = "head -c 3000000 /dev/zero >&2; cat"

    def scenario():
        r = subprocess.run(["sh", "-c", script], input=b"x" * 2_000_000, capture_output=True,
                           timeout=60)
        return len(r.stdout), len(r.stderr)

    stock, ours = both(scenario)
    assert stock == ours == (2_000_000, 3_000_000)


def test_timeout_carries_the_output_so_far_and_resuming_loses_and_repeats_nothing():
    def scenario():
        p = sh("echo one; echo e1 >&2; sleep 1; echo two; echo e2 >&2",
               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        with p:
            try:
                p.communicate(timeout=0.4)
            except subprocess.TimeoutExpired as e:
                first = (e.output, e.stderr, e.timeout)
            else:
                first = None
            # Blocking mode is given back while the child runs on.
            blocking = os.get_blocking(p.stdout.fileno())
            return first, blocking, p.communicate(timeout=30), p.returncode

    stock, ours = both(scenario)
    assert stock == ours == ((b"one\n", b"e1\n", 0.4), True, (b"one\ntwo\n", b"e1\ne2\n"), 0)


def test_a_timeout_after_megabytes_resumes_without_loss_or_repeat():
    # Several MiB on both streams before and after the timeout: the output crosses many
    # growths of the buffers it is read into, on both sides of the timeout.
    script = (
        "head -c 3145728 /dev/zero | tr '\\0' a; head -c 2097152 /dev/zero | tr '\\0' b >&2; "
        "sleep 2; head -c 5242880 /dev/zero | tr '\\0' c; printf end >&2"
    )

    def scenario():
        p = sh(script, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        with p:
            try:
                p.communicate(timeout=1.0)
            except subprocess.TimeoutExpired as e:
                first = (e.output, e.stderr)
            else:
                first = None
            return first, p.communicate(timeout=30), p.returncode

    stock, ours = both(scenario)
    a, b, c = b"a" * (3 << 20), b"b" * (2 << 20), b"c" * (5 << 20)
    assert stock == ours == ((a, b), (a + c, b + b"end"), 0)


def test_timeout_before_any_output_carries_none():
    def scenario():
        p = sh("sleep 0.5; echo late", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        with p:
            try:
                p.communicate(timeout=0.1)
            except subprocess.TimeoutExpired as e:
                first = (e.output, e.stderr)
            return first, p.communicate()

    stock, ours = both(scenario)
    assert stock == ours == ((None, None), (b"late\n", b""))


def test_timeout_after_end_of_file_on_a_silent_stream_carries_empty_bytes():
    def scenario():
        p = sh("exec 2>&-; echo x; sleep 0.6", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        with p:
            try:
                p.communicate(timeout=0.3)
            except subprocess.TimeoutExpired as e:
                first = (e.output, e.stderr)
            return first, p.communicate()

    stock, ours = both(scenario)
    assert stock == ours == ((b"x\n", b""), (b"x\n", b""))


def test_resume_after_timeout_with_input_already_written():
    data = b"abc" * 3000

    def scenario():
        p = sh("sleep 0.5; cat", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        with p:
            try:
                p.communicate(data, timeout=0.1)
            except subprocess.TimeoutExpired as e:
                first = e.output
            with pytest.raises(ValueError):
                p.communicate(b"more")
            out, _ = p.communicate()
            return first, out == data

    stock, ours = both(scenario)
    assert stock == ours == (None, True)


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview", "array"])
def test_input_of_any_buffer_type(kind):
    raw = bytes(range(256)) * 64
    make = {
        "bytes": lambda: raw,
        "bytearray": lambda: bytearray(raw),
        "memoryview": lambda: memoryview(raw)[16:],
        "array": lambda: array.array("B", raw),
    }[kind]

    def scenario():
        return subprocess.run(["cat"], input=make(), capture_output=True).stdout

    stock, ours = both(scenario, uses=())
    assert stock == ours


@pytest.mark.parametrize("opts", [
    {"text": True},
    {"universal_newlines": True},
    {"encoding": "latin-1"},
    {"encoding": "utf-8", "errors": "replace"},
    {"encoding": "utf-16"},
])
def test_text_mode_encodings_and_errors(opts):
    script = r"printf 'caf\303\251\r\nline\rlast\377\n'; printf 'e\r\n' >&2; cat"

    def scenario():
        try:
            r = subprocess.run(["sh", "-c", script], input="in\u00e9\n", capture_output=True,
                               **opts)
            return r.stdout, r.stderr
        except Exception as e:  # the same exception is expected from both
            return type(e).__name__, str(e)

    stock, ours = both(scenario)
    assert stock == ours


def test_broken_pipe_on_stdin_is_swallowed():
    def scenario():
        r = subprocess.run(["sh", "-c", "exec 0<&-; echo done"], input=b"x" * (4 << 20),
                           capture_output=True)
        return r.stdout, r.returncode

    stock, ours = both(scenario)
    assert stock == ours == (b"done\n", 0)


def test_a_second_communicate_returns_the_same_output_again():
    def scenario():
        p = sh("echo out; echo err >&2", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
               text=True)
        return p.communicate(), p.communicate(), p.communicate(timeout=1)

    stock, ours = both(scenario)
    assert stock == ours == (("out\n", "err\n"),) * 3


def test_input_without_a_stdin_pipe_is_ignored():
    def scenario():
        p = subprocess.Popen(["echo", "hi"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return p.communicate(b"ignored")

    stock, ours = both(scenario)
    assert stock == ours == (b"hi\n", b"")


def test_a_stream_closed_by_the_caller_is_not_read():
    def scenario():
        p = sh("echo err >&2; sleep 0.1; echo out", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        p.stdout.close()
        return p.communicate(timeout=10)

    stock, ours = both(scenario)
    assert stock == ours == (b"", b"err\n")


def test_pipes_grow_to_1_mib_unless_the_caller_set_pipesize():
    get_size = getattr(fcntl, "F_GETPIPE_SZ", 1032)

    def sizes(**kw):
        p = sh("sleep 0.4", stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
        with p:
            try:
                p.communicate(timeout=0.05)
            except subprocess.TimeoutExpired:
                pass
            return fcntl.fcntl(p.stdout.fileno(), get_size)

    default = both(lambda: sizes())
    assert default[0] == 65536
    assert default[1] == 1 << 20
    chosen = both(lambda: sizes(pipesize=131072))
    assert chosen == (131072, 131072)


def test_resume_of_a_communication_cpython_began():
    def scenario():
        p = sh("echo one; sleep 0.6; echo two", stdout=subprocess.PIPE)
        with p:
            try:
                p.communicate(timeout=0.2)
            except subprocess.TimeoutExpired:
                pass
            popen.install()
            return p.communicate()

    popen.uninstall()
    assert scenario() == (b"one\ntwo\n", None)
    popen.uninstall()


def test_resume_by_cpython_of_a_communication_popen_began():
    popen.install()
    p = sh("echo one; echo e >&2; sleep 0.6; echo two", stdout=subprocess.PIPE,
           stderr=subprocess.PIPE)
    with p:
        with pytest.raises(subprocess.TimeoutExpired):
            p.communicate(timeout=0.3)
        popen.uninstall()
        assert p.communicate() == (b"one\ntwo\n", b"e\n")


# --- wait ------------------------------------------------------------------------------------


def test_wait_with_timeout_and_status():
    def scenario():
        p = sh("sleep 0.3; exit 7")
        try:
            p.wait(timeout=0.05)
        except subprocess.TimeoutExpired as e:
            first = (e.timeout, e.cmd)
        return first, p.wait(timeout=10), p.wait(), p.returncode

    stock, ours = both(scenario, uses=("wait",))
    assert stock == ours == ((0.05, ["sh", "-c", "sleep 0.3; exit 7"]), 7, 7, 7)


def test_wait_timeout_zero_and_a_killed_child():
    def scenario():
        p = subprocess.Popen(["sleep", "10"])
        with pytest.raises(subprocess.TimeoutExpired):
            p.wait(timeout=0)
        p.kill()
        return p.wait()

    stock, ours = both(scenario, uses=("wait",))
    assert stock == ours == -signal.SIGKILL


def test_an_infinite_huge_or_nan_timeout():
    """wait() waits for the exit; communicate() raises what CPython's selector raises."""
    def scenario():
        results = []
        for t in (float("inf"), float("nan"), 1e300, 1e7, 2e6, 1e6):
            p = subprocess.Popen(["sleep", "0.1"])
            results.append(p.wait(timeout=t))
            q = sh("sleep 0.1; echo x", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                results.append(q.communicate(timeout=t))
            except Exception as e:
                results.append(repr(e))
                q.kill()
                q.communicate()
        return results

    stock, ours = both(scenario, uses=("wait", "communicate"))
    assert stock == ours


def test_wait_returns_promptly_after_the_exit():
    def scenario():
        p = subprocess.Popen(["sleep", "0.2"])
        p.wait(timeout=10)
        return p.returncode

    popen.install()
    p = subprocess.Popen(["sleep", "0.2"])
    start = time.monotonic()
    p.wait(timeout=10)
    assert time.monotonic() - start < 5  # does not hang
    stock, ours = both(scenario, uses=("wait",))
    assert stock == ours == 0


def test_threads_waiting_and_polling_at_once_agree():
    def scenario():
        p = sh("sleep 0.3; exit 5")
        seen = []
        errors = []

        def waiter():
            try:
                seen.append(p.wait(timeout=20))
            except Exception as e:
                errors.append(e)

        def poller():
            try:
                while p.poll() is None:
                    time.sleep(0.01)
                seen.append(p.returncode)
            except Exception as e:
                errors.append(e)

        threads = [threading.Thread(target=f) for f in [waiter] * 4 + [poller] * 2]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sorted(seen), errors, p.returncode

    stock, ours = both(scenario, uses=("wait",))
    assert stock == ours == ([5] * 6, [], 5)


CHILD_PROLOGUE = textwrap.dedent("""
    import os, signal, subprocess, sys, time
    if sys.argv[1] == "installed":
        import popen
        popen.install()
""")


def run_in_child(body, mode):
    """Runs `body` in a fresh interpreter (process-wide state changes stay there)."""
    r = subprocess.run([PY, "-c", CHILD_PROLOGUE + textwrap.dedent(body), mode],
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout, r.stderr


def both_in_children(body):
    stock = run_in_child(body, "stock")
    ours = run_in_child(body, "installed")
    return stock, ours


def test_sigchld_ignored_gives_returncode_0():
    body = """
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)
        p = subprocess.Popen(["sh", "-c", "sleep 0.2; exit 3"])
        a = p.wait(timeout=10)
        q = subprocess.Popen(["sh", "-c", "exit 4"])
        time.sleep(0.3)
        b = q.wait()
        r = subprocess.run(["sh", "-c", "echo x; exit 5"], capture_output=True)
        import popen
        print(a, b, r.returncode, r.stdout, popen.call_counts()["wait"] > 0)
    """
    stock, ours = both_in_children(body)
    assert stock[:2] == (0, "0 0 0 b'x\\n' False\n"), stock
    assert ours[:2] == (0, "0 0 0 b'x\\n' True\n"), ours


def test_python_signal_handlers_run_promptly_during_wait_and_communicate():
    body = """
        seen = []
        signal.signal(signal.SIGALRM, lambda *a: seen.append(time.monotonic()))
        for how in ("wait", "communicate"):
            p = subprocess.Popen(["sleep", "1.5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            start = time.monotonic()
            signal.setitimer(signal.ITIMER_REAL, 0.2)
            p.wait() if how == "wait" else p.communicate()
            end = time.monotonic()
            # The handler ran while the call blocked, not after.
            print(how, len(seen) == 1 and seen[0] - start < 0.7 and seen[0] < end - 0.5)
            seen.clear()
    """
    stock, ours = both_in_children(body)
    assert stock[:2] == (0, "wait True\ncommunicate True\n"), stock
    assert ours[:2] == (0, "wait True\ncommunicate True\n"), ours


def test_keyboard_interrupt_during_wait_and_communicate():
    body = """
        for how in ("wait", "communicate", "run"):
            signal.setitimer(signal.ITIMER_REAL, 0.2)
            signal.signal(signal.SIGALRM, lambda *a: signal.raise_signal(signal.SIGINT))
            start = time.monotonic()
            try:
                if how == "run":
                    subprocess.run(["sleep", "5"], capture_output=True)
                else:
                    p = subprocess.Popen(["sleep", "5"], stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE)
                    p.wait() if how == "wait" else p.communicate()
            except KeyboardInterrupt:
                took = time.monotonic() - start
                # Raised promptly, after the courtesy wait of at most 0.25 s.
                res = "KeyboardInterrupt %s" % (took < 2,)
                if how != "run":
                    res += " %s %s" % (p._sigint_wait_secs, p.returncode)
                    p.kill()
                    p.wait()
                print(how, res)
    """
    stock, ours = both_in_children(body)
    # The courtesy wait is used up (_sigint_wait_secs 0); the child, which got no SIGINT, runs.
    expected = ("wait KeyboardInterrupt True 0 None\n"
                "communicate KeyboardInterrupt True 0 None\n"
                "run KeyboardInterrupt True\n")
    assert stock[:2] == (0, expected), stock
    assert ours[:2] == (0, expected), ours
