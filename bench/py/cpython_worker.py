#!/usr/bin/env python3
"""CPython's subprocess, measured with the same loops as the Rust worker of popen-bench.

Started by the benchmark as `python3 cpython_worker.py --rss-mib N`. It allocates and touches
N MiB (so the process that spawns has that resident size), prints one JSON line
`{"ready": ...}`, then answers one JSON request per line on stdin with one JSON reply per line
on stdout, until `{"op": "quit"}` or end of input. The replies carry the raw numbers; the
benchmark computes every statistic.

Each request names its variant: `cpython` runs on stock CPython, `cpython-popen` (its twin)
with the popen module installed (`popen.install()`: children started by the engine,
`Popen._communicate` and `Popen._wait` on the engine's loop and a pidfd), the same code either
way. The twin fails where the popen module is not importable.
"""

import json
import os
import resource
import subprocess
import sys
import threading
import time

try:
    import popen
except ImportError:
    popen = None

MIB = 1 << 20


def monotonic_ns():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def rusage():
    r = resource.getrusage(resource.RUSAGE_SELF)
    cpu_ns = int((r.ru_utime + r.ru_stime) * 1e9)
    return cpu_ns, r.ru_nvcsw + r.ru_nivcsw


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def spawn_once(full):
    if full:
        # close_fds is on by default; the new session also makes a new process group.
        p = subprocess.run(["/bin/true"], cwd="/tmp", start_new_session=True)
    else:
        p = subprocess.run(["/bin/true"])
    if p.returncode != 0:
        raise RuntimeError("/bin/true exited with %d" % p.returncode)


def hold_fds(n):
    """n open descriptors (of /dev/null, close-on-exec), within the limit main() raised."""
    null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    try:
        return [os.dup(null) for _ in range(n)]
    finally:
        os.close(null)


def spawn_batch(req):
    held = hold_fds(req.get("hold_fds", 0) if req["opts"] == "fds" else 0)
    try:
        return _spawn_batch(req)
    finally:
        for fd in held:
            os.close(fd)


def _spawn_batch(req):
    full = req["opts"] == "full"
    secs = req["secs"]
    min_iters = req["min_iters"]
    threads = req["threads"]
    counts = [0] * threads
    errors = []

    def loop(i, deadline):
        try:
            n = 0
            while n < min_iters or monotonic_ns() < deadline:
                spawn_once(full)
                n += 1
            counts[i] = n
        except Exception as e:  # reported to the benchmark, which fails the variant
            errors.append(repr(e))

    cpu0, _ = rusage()
    start = monotonic_ns()
    deadline = start + int(secs * 1e9)
    if threads == 1:
        loop(0, deadline)
    else:
        ts = [threading.Thread(target=loop, args=(i, deadline)) for i in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    elapsed = (monotonic_ns() - start) / 1e9
    cpu1, _ = rusage()
    if errors:
        raise RuntimeError(errors[0])
    return {
        "count": sum(counts),
        "secs": elapsed,
        "cpu_ns": cpu1 - cpu0,
        "path": "engine (popen.fork_exec)" if popen and popen.installed()
        else "vfork (_posixsubprocess)",
    }


def _cpu_ns(who):
    ru = resource.getrusage(who)
    return int((ru.ru_utime + ru.ru_stime) * 1e9)


def _timed(fn):
    # Wall seconds, this process's CPU (every thread) and its reaped children's CPU.
    cpu0, child0 = _cpu_ns(resource.RUSAGE_SELF), _cpu_ns(resource.RUSAGE_CHILDREN)
    start = monotonic_ns()
    out = fn()
    elapsed = (monotonic_ns() - start) / 1e9
    cpu1, child1 = _cpu_ns(resource.RUSAGE_SELF), _cpu_ns(resource.RUSAGE_CHILDREN)
    return out, {"secs": elapsed, "cpu_ns": cpu1 - cpu0, "child_cpu_ns": child1 - child0}


def capture(req):
    # capture_output: stdout and stderr piped, as programs capture (CPython's communicate
    # loop; with stdout alone, run() reads it with one read() to end of file).
    p, reply = _timed(lambda: subprocess.run(["/bin/cat", req["file"]], capture_output=True))
    if p.returncode != 0 or len(p.stdout) != req["bytes"]:
        raise RuntimeError("cat returned %d with %d bytes" % (p.returncode, len(p.stdout)))
    reply["bytes"] = len(p.stdout)
    return reply


_duplex_data = {}


def duplex(req):
    n = req["bytes"]
    data = _duplex_data.get(n)
    if data is None:
        data = os.urandom(n)
        _duplex_data.clear()
        _duplex_data[n] = data
    p, reply = _timed(lambda: subprocess.run(["/bin/cat"], input=data, stdout=subprocess.PIPE))
    if p.returncode != 0 or len(p.stdout) != n:
        raise RuntimeError("cat returned %d with %d bytes" % (p.returncode, len(p.stdout)))
    reply["bytes"] = n
    return reply


def wait_reaction(req):
    stamp = req["stamp"]
    try:
        os.unlink(stamp)
    except FileNotFoundError:
        pass
    p = subprocess.Popen([req["fixture"], str(req["sleep_ms"]), stamp])
    cpu0, sw0 = rusage()
    p.wait(timeout=10)
    t1 = monotonic_ns()
    cpu1, sw1 = rusage()
    if p.returncode != 0:
        raise RuntimeError("fixture exited with %d" % p.returncode)
    with open(stamp) as f:
        t0 = int(f.read())
    return {"latency_ns": t1 - t0, "cpu_ns": cpu1 - cpu0, "wakeups": sw1 - sw0}


def many(req):
    n = req["n"]
    start = monotonic_ns()
    procs = [subprocess.Popen(["/bin/sleep", req["sleep"]]) for _ in range(n)]
    spawned = monotonic_ns()
    for p in procs:
        if p.wait() != 0:
            raise RuntimeError("sleep exited with %d" % p.returncode)
    end = monotonic_ns()
    return {"spawn_secs": (spawned - start) / 1e9, "secs": (end - start) / 1e9}


OPS = {
    "spawn": spawn_batch,
    "capture": capture,
    "duplex": duplex,
    "wait": wait_reaction,
    "many": many,
}


def select_variant(variant):
    """Stock CPython for `cpython`, popen installed for `cpython-popen`."""
    if variant == "cpython-popen":
        if popen is None:
            raise RuntimeError("the popen module is not importable by %s" % sys.executable)
        popen.install()
    elif popen is not None:
        popen.uninstall()


def main():
    rss_mib = 0
    if len(sys.argv) == 3 and sys.argv[1] == "--rss-mib":
        rss_mib = int(sys.argv[2])
    # The protocol keeps private copies of stdin/stdout (not inherited by children); the
    # children get /dev/null instead.
    proto_in = os.fdopen(os.dup(0), "r")
    proto_out = os.fdopen(os.dup(1), "w")
    null = os.open("/dev/null", os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    ballast = bytearray(b"\x01") * (rss_mib * MIB) if rss_mib else b""
    ready = {
        "ready": True,
        "rss_kib": rss_kib(),
        "version": "CPython " + sys.version.split()[0],
        "popen": popen.__version__ if popen else None,
        "ballast": len(ballast),
    }
    proto_out.write(json.dumps(ready) + "\n")
    proto_out.flush()
    for line in proto_in:
        req = json.loads(line)
        if req["op"] == "quit":
            break
        try:
            select_variant(req.get("variant", "cpython"))
            reply = OPS[req["op"]](req)
        except Exception as e:
            reply = {"error": "%s: %r" % (type(e).__name__, e)}
        proto_out.write(json.dumps(reply) + "\n")
        proto_out.flush()


if __name__ == "__main__":
    main()
