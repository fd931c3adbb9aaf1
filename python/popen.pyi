"""CPython's subprocess on the popen engine (type stubs of the `popen` extension module)."""

import os
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, Optional, Tuple, Union

_Path = Union[str, bytes, os.PathLike[str], os.PathLike[bytes]]

__version__: str
__all__ = [
    "POSIX_SPAWN_CLOSE",
    "POSIX_SPAWN_DUP2",
    "POSIX_SPAWN_OPEN",
    "__version__",
    "_engine_communicate",
    "_engine_wait",
    "call_count",
    "call_counts",
    "fork_exec",
    "install",
    "installed",
    "posix_spawn",
    "posix_spawn_call_count",
    "posix_spawnp",
    "set_spawn_path",
    "uninstall",
]

POSIX_SPAWN_OPEN: int
POSIX_SPAWN_CLOSE: int
POSIX_SPAWN_DUP2: int

def fork_exec(
    args: Optional[Sequence[Union[str, bytes, os.PathLike[str], os.PathLike[bytes]]]],
    executable_list: Sequence[bytes],
    close_fds: bool,
    pass_fds: Tuple[int, ...],
    cwd: Optional[_Path],
    env: Optional[Sequence[bytes]],
    p2cread: int,
    p2cwrite: int,
    c2pread: int,
    c2pwrite: int,
    errread: int,
    errwrite: int,
    errpipe_read: int,
    errpipe_write: int,
    restore_signals: bool,
    call_setsid: bool,
    pgid_to_set: int,
    gid: Optional[int],
    extra_groups: Optional[Sequence[int]],
    uid: Optional[int],
    child_umask: int,
    preexec_fn: Optional[Callable[[], object]],
    allow_vfork: bool,
    /,
) -> int:
    """Start a child as CPython 3.11's _posixsubprocess.fork_exec does, on the popen engine;
    returns its pid."""

def install(fork_exec_only: bool = False) -> None:
    """Put subprocess on the popen engine: fork_exec and os.posix_spawn(p), and unless
    fork_exec_only, Popen._communicate and Popen._wait."""

def uninstall() -> None:
    """Restore everything install() replaced."""

def installed() -> frozenset[Literal["fork_exec", "posix_spawn", "communicate", "wait"]]:
    """The names of the replacements in place; empty when none is."""

def call_count() -> int:
    """How many times popen.fork_exec has run in this process."""

def call_counts() -> dict[Literal["fork_exec", "posix_spawn", "communicate", "wait"], int]:
    """How many times each replacement has run in this process."""

def posix_spawn_call_count() -> int:
    """How many times popen.posix_spawn and popen.posix_spawnp have run in this process."""

def set_spawn_path(path: Optional[Literal["posix_spawn", "vfork", "fork"]]) -> None:
    """Prefer one of the engine's spawn paths for later fork_exec calls (None: automatic)."""

def posix_spawn(
    path: _Path,
    argv: Union[Sequence[_Path], Tuple[_Path, ...]],
    env: Mapping[Union[str, bytes], Union[str, bytes]],
    /,
    *,
    file_actions: Optional[Iterable[Tuple[Any, ...]]] = ...,
    setpgroup: Optional[int] = ...,
    resetids: bool = ...,
    setsid: bool = ...,
    setsigmask: Iterable[int] = ...,
    setsigdef: Iterable[int] = ...,
    scheduler: Optional[Tuple[Any, os.sched_param]] = ...,
) -> int:
    """os.posix_spawn on the engine's posix_spawn layer; returns the child's pid."""

def posix_spawnp(
    path: _Path,
    argv: Union[Sequence[_Path], Tuple[_Path, ...]],
    env: Mapping[Union[str, bytes], Union[str, bytes]],
    /,
    *,
    file_actions: Optional[Iterable[Tuple[Any, ...]]] = ...,
    setpgroup: Optional[int] = ...,
    resetids: bool = ...,
    setsid: bool = ...,
    setsigmask: Iterable[int] = ...,
    setsigdef: Iterable[int] = ...,
    scheduler: Optional[Tuple[Any, os.sched_param]] = ...,
) -> int:
    """os.posix_spawnp (PATH searched in the parent) on the engine's posix_spawn layer."""

def _engine_communicate(
    popen: subprocess.Popen[Any], input: Any, endtime: Optional[float],
    orig_timeout: Optional[float],
) -> Tuple[Any, Any]: ...
def _engine_wait(popen: subprocess.Popen[Any], timeout: Optional[float]) -> int: ...
