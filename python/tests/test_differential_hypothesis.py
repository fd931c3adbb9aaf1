"""Property-based differential test: generated argument sets for fork_exec, posix_spawn and
posix_spawnp (wrong types, huge and negative ints, NUL bytes, malformed file actions, lying
`__len__`/`__getitem__`/`__bool__`, closed and huge descriptors, ...), each run against
CPython's function and popen's in a fresh interpreter, must end in the same outcome class (see
`differential.py`).

The seed is fixed. POPEN_HYPOTHESIS_EXAMPLES sets how many argument sets each function gets
(default 120: about a minute for the three on two cores); for a longer run:

    POPEN_HYPOTHESIS_EXAMPLES=2000 target/py-venv/bin/python -m pytest python/tests/test_differential_hypothesis.py

and POPEN_HYPOTHESIS_SEED=<int> explores other argument sets.
"""

import os

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from differential import assert_same

EXAMPLES = int(os.environ.get("POPEN_HYPOTHESIS_EXAMPLES", "120"))
SEED = int(os.environ.get("POPEN_HYPOTHESIS_SEED", "20261130"))

SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)

# Each value is Python source evaluated in the fresh interpreter (helpers: differential.PRELUDE).
LENGTHS = ["0", "1", "5", "-1", "2**40", "sys.maxsize", "2**63", "ZeroDivisionError('len')",
           "'3'"]


def lying(kind, items):
    return st.sampled_from(LENGTHS).map(lambda n: "%s(%s, %s)" % (kind, items, n))


# Descriptors: the usual -1, the standard streams, the runner's pipes (`p` close-on-exec, `q`
# inheritable), closed and huge numbers, wrong types.
FDS = st.one_of(
    st.just("-1"),
    st.sampled_from(["-1", "0", "1", "2", "p[0]", "p[1]", "q[0]", "q[1]", "errpipe[0]",
                     "errpipe[1]"]),
    st.sampled_from(["closed_fd()", "-2", "-7", "2**31", "-2**31-1", "2**64", "None", "1.5",
                     "'0'", "Index(1)", "True"]),
)

INTS_AS_BOOL = st.sampled_from(["True", "False", "0", "1", "None", "2**100", "-2**100",
                                "BadBool()", "Index(1)", "1.0", "'x'"])
TRUTH = st.sampled_from(["True", "False", "0", "None", "BadBool()", "[]", "'x'"])

ARGV = st.one_of(
    st.just("REPORTER"),
    st.sampled_from(["None", "[]", "()", "[b'x']", "['a\\0b']", "[1]", "5", "b'abc'",
                     "iter(REPORTER)", "{b'x': 1}", "GetItemList(REPORTER, [b'x'])",
                     "tuple(REPORTER)"]),
    lying("LyingList", "REPORTER"),
    lying("LyingDict", "{b'x': 1}"),
)
EXECUTABLES = st.one_of(
    st.just("EXE"),
    st.sampled_from(["()", "[]", "[b'']", "[b'', EXE[0]]", "[b'/no/such', EXE[0]]",
                     "[b'/']", "[b'/no/such']", "None", "['/bin/true']", "[b'a\\0']", "5",
                     "(EXE[0],)", "GetItemList(EXE, [b'/no/such'])", "[bytearray(EXE[0])]"]),
    lying("LyingList", "EXE"),
    lying("LyingDict", "{}"),
)
PASS_FDS = st.sampled_from([
    "(errpipe[1],)", "(errpipe[1],)", "()", "None", "[3]", "(-1,)",
    "(errpipe[1], errpipe[1])", "(2**40,)", "(2**31,)", "tuple(sorted((closed_fd(), errpipe[1])))",
    "tuple(sorted((q[1], errpipe[1])))", "tuple(sorted((p[0], errpipe[1])))", "(0, 1, 2)",
    "('3',)", "(True,)", "tuple(sorted((errpipe[0], errpipe[1])))",
])
CWD = st.sampled_from(["None", "None", "'/'", "'/no/such/dir'", "b'/tmp'", "5", "'a\\0'",
                       "os.devnull", "pathlib.Path('/')"])
ENV = st.one_of(
    st.just("None"),
    st.sampled_from(["[]", "[b'']", "[b'A=1', b'A=2']", "[b'NOEQ']", "[b'=x', b'B==c']",
                     "['A=1']", "[b'A=\\0']", "5", "(b'A=1',)", "{b'A=1': 0}",
                     "[bytearray(b'A=1')]"]),
    lying("LyingList", "[b'A=1']"),
)
IDS = st.sampled_from(["None", "None", "None", "0", "-1", "2**32", "-2", "'0'", "1.5",
                       "Index(0)", "2**64"])
GROUPS = st.sampled_from(["None", "None", "None", "[]", "[0]", "(0,)", "['0']", "[-2]",
                          "[2**32]", "GetItemList([0], ['x'])", "GetItemList([0], [0, 0])",
                          "LyingList([0], 2**40)", "LyingList([0], ZeroDivisionError())",
                          "LyingList([0], 3)", "[0] * 70000"])
UMASK = st.sampled_from(["-1", "-1", "0o22", "0", "2**40", "None", "-5", "'0'"])
PGID = st.sampled_from(["-1", "-1", "0", "1", "2**31", "None", "-5", "1.0"])
PREEXEC = st.sampled_from(["None", "None", "None", "lambda: None", "lambda: 1/0", "5"])


# fork_exec's arguments as subprocess.py passes them, and what each may become instead.
FORK_EXEC_ARGS = [
    ("REPORTER", ARGV),
    ("EXE", EXECUTABLES),
    ("True", TRUTH),
    ("(errpipe[1],)", PASS_FDS),
    ("None", CWD),
    ("None", ENV),
    ("-1", st.one_of(st.sampled_from(["p[0]", "q[0]", "0"]), FDS)),  # p2cread
    ("-1", st.one_of(st.sampled_from(["p[1]", "q[1]"]), FDS)),  # p2cwrite
    ("-1", st.one_of(st.sampled_from(["p[0]", "q[0]"]), FDS)),  # c2pread
    ("-1", st.one_of(st.sampled_from(["p[1]", "q[1]", "1"]), FDS)),  # c2pwrite
    ("-1", st.one_of(st.sampled_from(["p[0]", "q[0]"]), FDS)),  # errread
    ("-1", st.one_of(st.sampled_from(["p[1]", "q[1]", "2"]), FDS)),  # errwrite
    ("errpipe[0]", FDS),
    ("errpipe[1]", FDS),
    ("True", INTS_AS_BOOL),
    ("False", INTS_AS_BOOL),
    ("-1", PGID),
    ("None", IDS),
    ("None", GROUPS),
    ("None", IDS),
    ("-1", UMASK),
    ("None", PREEXEC),
    ("True", TRUTH),
]


@st.composite
def fork_exec_setups(draw):
    """A call like subprocess.py's with one to five arguments replaced (pipes as standard
    streams are common, so several descriptor arguments are often replaced together)."""
    args = [usual for usual, _ in FORK_EXEC_ARGS]
    changed = draw(st.lists(st.integers(0, len(args) - 1), min_size=1, max_size=5, unique=True))
    for i in changed:
        args[i] = draw(FORK_EXEC_ARGS[i][1])
    count = draw(st.sampled_from([23] * 30 + [22, 24, 0]))
    args = (args + ["None"])[:count]
    setup = "\n".join([
        "import pathlib",
        "errpipe = pipe()",
        "p = pipe()",
        "q = inheritable_pipe()",
        "args = [%s]" % ", ".join(args),
    ])
    # The engine path popen prefers, where it can honour the call.
    return setup, draw(st.sampled_from([None, "posix_spawn", "vfork", "fork"]))


SPAWN_ARGV = st.one_of(
    st.sampled_from(["['x', '-c', '']", "[a.decode() for a in REPORTER]",
                     "('x', '-c', 'import sys; sys.exit(3)')"]),
    st.sampled_from(["[]", "['']", "'x'", "None", "['x', 5]", "['a\\0']", "(b'x', '-c', '')",
                     "GetItemList(['x'], ['x', '-c', ''])", "GetItemList(['x'], [5])",
                     "iter(['x'])"]),
    lying("LyingList", "['x', '-c', '']"),
)
SPAWN_ENV = st.one_of(
    st.sampled_from(["{}", "{'A': 'b'}", "dict(os.environ)"]),
    st.sampled_from(["{'': 'x'}", "{'A=B': 'c'}", "{'=A': 'c'}", "{'A': 'b\\0'}", "[]", "None",
                     "{5: 'x'}", "{'A': 5}", "{b'A': b'b'}", "[('A', 'b')]"]),
    lying("LyingDict", "{'A': 'b'}"),
)
FILE_ACTIONS = st.sampled_from([
    "[]", "None", "()", "[(POSIX_SPAWN_CLOSE, 0)]", "[(POSIX_SPAWN_DUP2, 1, 2)]",
    "[(POSIX_SPAWN_OPEN, 1, '/dev/null', os.O_WRONLY, 0)]", "[(POSIX_SPAWN_CLOSE,)]", "[()]",
    "[(99, 1)]", "5", "[(POSIX_SPAWN_CLOSE, closed_fd())]", "[(POSIX_SPAWN_DUP2, closed_fd(), 1)]",
    "[(POSIX_SPAWN_OPEN, 3, '/no/such/file', os.O_RDONLY, 0)]", "[(POSIX_SPAWN_CLOSE, 2**40)]",
    "[(POSIX_SPAWN_OPEN, 1, 'a\\0', 0, 0)]", "[(POSIX_SPAWN_OPEN, 1, '/dev/null', 0, 2**70)]",
    "[[POSIX_SPAWN_CLOSE, 0]]", "[(POSIX_SPAWN_DUP2, q[1], 1)]",
])
KEYWORDS = {
    "file_actions": FILE_ACTIONS,
    "setpgroup": st.sampled_from(["0", "None", "2**40", "-1", "'0'"]),
    "resetids": st.sampled_from(["True", "False", "None", "2**100", "BadBool()"]),
    "setsid": st.sampled_from(["True", "False", "None", "2**100", "1.0"]),
    "setsigmask": st.sampled_from(["[]", "[0]", "[signal.SIGUSR1]", "5", "[2**70]", "['x']"]),
    "setsigdef": st.sampled_from(["[]", "[signal.SIGPIPE]", "[0]", "None", "[65]"]),
    "scheduler": st.sampled_from(["None", "5", "(None, os.sched_param(0))", "(1,)",
                                  "(os.SCHED_OTHER, os.sched_param(0))", "(None, 5)"]),
    "bogus": st.just("1"),
}


SPAWN_PATH = st.sampled_from(["EXE[0].decode()", "'true'", "b''", "None", "'/no/such'", "'a\\0'",
                              "5", "pathlib.Path(EXE[0].decode())", "bytearray(EXE[0])", "'/'"])


@st.composite
def posix_spawn_setups(draw):
    """A valid call with some of path, argv and env replaced and up to three keywords."""
    path, argv, env = "EXE[0]", "[a.decode() for a in REPORTER]", "dict(os.environ)"
    replaced = draw(st.lists(st.sampled_from("pae"), max_size=2, unique=True))
    if "p" in replaced:
        path = draw(SPAWN_PATH)
    if "a" in replaced:
        argv = draw(SPAWN_ARGV)
    if "e" in replaced:
        env = draw(SPAWN_ENV)
    names = sorted(k for k in KEYWORDS if k != "bogus")
    chosen = draw(st.lists(st.sampled_from(names), max_size=3, unique=True))
    if draw(st.sampled_from([False] * 15 + [True])):
        chosen.append("bogus")
    kwargs = ["%r: %s" % (k, draw(KEYWORDS[k])) for k in chosen]
    return "\n".join([
        "import pathlib",
        "from os import POSIX_SPAWN_OPEN, POSIX_SPAWN_CLOSE, POSIX_SPAWN_DUP2",
        "q = inheritable_pipe()",
        "args = [%s, %s, %s]" % (path, argv, env),
        "kwargs = {%s}" % ", ".join(kwargs),
    ])


@seed(SEED)
@SETTINGS
@given(fork_exec_setups())
def test_fork_exec_ends_as_cpythons(setup_and_path):
    setup, path = setup_and_path
    assert_same("fork_exec", setup, spawn_path=path)


@seed(SEED)
@SETTINGS
@given(posix_spawn_setups())
def test_posix_spawn_ends_as_cpythons(setup):
    assert_same("posix_spawn", setup)


@seed(SEED)
@SETTINGS
@given(posix_spawn_setups())
def test_posix_spawnp_ends_as_cpythons(setup):
    assert_same("posix_spawnp", setup)
