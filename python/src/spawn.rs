//! One `fork_exec` call on the engine: the checked [`Request`] becomes a `popen::Command`, the
//! engine starts the child, and a failure in the child becomes the error-pipe record that
//! `subprocess.py` reads.
//!
//! The error pipe protocol (`ExceptionName:hexerrno:message`) is CPython's: the engine returns a
//! typed [`SpawnError`] for a child that could not exec; this module writes the matching record
//! into `errpipe_write` from the parent and returns the pid of that child, which the engine
//! left unreaped ([`engine::testing::keep_failed_child`]) so that `subprocess.py` reaps it and gets its
//! status, as with CPython's own `fork_exec`. Where no such child exists (a failed
//! `posix_spawn`, a descriptor refused before spawning) it returns a pid that is not a child
//! of this process, so `waitpid` gets `ChildProcessError`, which `subprocess.py` ignores.
#![allow(unsafe_code)]

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use engine::{Command, SignalMask, SpawnError, SpawnPath, Stdio, Step};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;

use crate::args::Request;
use crate::fds;

/// The message CPython's child reports when `preexec_fn` raised.
const PREEXEC_FAILED: &[u8] = b"SubprocessError:0:Exception occurred in preexec_fn.";

/// Starts the child described by `req` and returns its pid.
///
/// # Errors
///
/// Failures in the parent (no process could be made, a pipe could not be created) raise
/// `OSError`, as CPython's `fork_exec` does. A failure in the child does not raise: it is
/// reported through `errpipe_write`.
pub(crate) fn fork_exec(py: Python<'_>, req: Request) -> PyResult<i32> {
    let steps = fds::cpython_fd_steps(&req);
    // CPython's child reports through errpipe_write, unless it closed it as a parent end.
    let errpipe = if steps.errpipe_open {
        req.errpipe_write
    } else {
        -1
    };
    let built = if steps.fail {
        Ok(fds::failing_command(&req))
    } else {
        command(&req)
    };
    let mut cmd = match built {
        Ok(cmd) => cmd,
        Err(record) => return Ok(report(errpipe, &record)),
    };
    let result = match &req.preexec_fn {
        // No Python code runs in the child: the interpreter is not needed while the engine
        // works, and it picks its fastest path. On Linux that is the vfork-style child (as in
        // CPython), which, unlike posix_spawn, leaves a failed child for subprocess.py to reap,
        // so its Popen gets a returncode.
        None => py.detach(move || cmd.spawn().map(engine::Popen::detach)),
        Some(preexec_fn) => spawn_with_preexec(&mut cmd, preexec_fn.clone_ref(py)),
    };
    match result {
        Ok(pid) => Ok(pid),
        Err(err) => match child_record(&err, req.executable_list.is_empty()) {
            Some(record) => {
                // CPython's child closes every descriptor not kept, the error pipe included,
                // after preexec_fn and before exec: an exec failure is then never reported.
                let closed_before = req.close_fds
                    && !req.fds_to_keep.contains(&req.errpipe_write)
                    && matches!(err.step(), Step::CloseFds | Step::Exec);
                let no_child = report(if closed_before { -1 } else { errpipe }, &record);
                Ok(err.pid().unwrap_or(no_child))
            }
            None => Err(parent_error(py, &err)),
        },
    }
}

/// The engine command for `req`. A standard-stream descriptor that cannot be used is a failure
/// CPython's child would report (its `dup2` fails before any user code): that record comes
/// back as the error.
fn command(req: &Request) -> Result<Command, Vec<u8>> {
    let argv: Vec<OsString> = match &req.argv {
        Some(argv) if !argv.is_empty() => argv.clone(),
        // execv with an empty argv: Linux starts the program with argv[0] = "".
        _ => vec![OsString::new()],
    };
    let mut cmd = Command::from_argv(&argv);
    if let Some(first) = req.executable_list.first() {
        // Only names the program in engine errors; the list below is what is executed.
        cmd.executable(first);
    }
    cmd.executable_list(&req.executable_list);
    for fd in fds::close_in_child(req) {
        cmd.close_in_child(fd);
    }
    cmd.close_fds(req.close_fds);
    // subprocess.py reaps a child that failed, after reading its error record.
    engine::testing::keep_failed_child(&mut cmd, true);
    for &fd in &req.fds_to_keep {
        // errpipe_write is kept open for the child by CPython, but stays close-on-exec: the
        // engine's child reports failures its own way, so it is simply not passed.
        if fd != req.errpipe_write {
            // SAFETY: the caller (subprocess.py) keeps every descriptor of fds_to_keep open
            // until fork_exec returns.
            unsafe { cmd.pass_raw_fd(fd) };
        }
    }
    if let Some(cwd) = &req.cwd {
        cmd.cwd(cwd);
    }
    if let Some(env) = &req.env {
        // Byte for byte, as CPython passes the list to execve.
        cmd.environ(env.iter().map(|e| OsStr::from_bytes(e)));
    }
    if req.p2cread != -1 {
        cmd.stdin(borrowed_stdio(req.p2cread)?);
    }
    if req.c2pwrite != -1 {
        cmd.stdout(borrowed_stdio(req.c2pwrite)?);
    }
    if req.errwrite != -1 {
        cmd.stderr(borrowed_stdio(req.errwrite)?);
    }
    cmd.restore_signals(req.restore_signals);
    // fork() leaves the child with the mask of the calling thread; so does CPython's vfork
    // path, which restores it in the child.
    cmd.signal_mask(SignalMask::Inherit);
    if req.call_setsid {
        cmd.start_new_session(true);
    }
    if req.pgid >= 0 {
        if req.call_setsid {
            setpgid_after_setsid(&mut cmd, req.pgid);
        } else {
            cmd.process_group(req.pgid);
        }
    }
    if let Some(groups) = &req.extra_groups {
        cmd.extra_groups(groups.iter().copied());
    }
    if let Some(gid) = req.gid {
        cmd.gid(gid);
    }
    if let Some(uid) = req.uid {
        // CPython calls setgroups only when extra_groups is given.
        cmd.uid(uid).keep_supplementary_groups(true);
    }
    if req.umask >= 0 {
        cmd.umask(req.umask as u32);
    }
    if !req.allow_vfork {
        // subprocess._USE_VFORK = False asks for fork() whatever the options.
        cmd.spawn_path(SpawnPath::Fork);
    }
    Ok(cmd)
}

/// CPython's child calls `setpgid` after `setsid`, where it always fails with `EPERM` (a session
/// leader cannot change its process group); the engine refuses that combination before any
/// process exists. A hook makes the call in the child, after the steps that could fail before
/// it, so the child fails as CPython's does (a credential step the engine runs first can only
/// fail with the same `EPERM`). The hook takes the engine's fork path.
fn setpgid_after_setsid(cmd: &mut Command, pgid: i32) {
    let hook = move || {
        // SAFETY: setpgid is async-signal-safe and changes only this process's group.
        if unsafe { libc::setpgid(0, pgid) } == -1 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    // SAFETY: the hook makes one async-signal-safe system call and touches nothing shared.
    unsafe { cmd.pre_exec(hook) };
}

/// The engine's stdio for a descriptor the caller owns (a close-on-exec duplicate is taken).
fn borrowed_stdio(fd: RawFd) -> Result<Stdio, Vec<u8>> {
    // SAFETY: F_GETFD only reads the descriptor's flags; it fails with EBADF if it is closed.
    if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(os_error_record(libc::EBADF, true));
    }
    // SAFETY: `fd` is open (checked above) and the caller keeps it open until fork_exec
    // returns; the engine duplicates it at once.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    Stdio::borrowed(fd).map_err(|e| os_error_record(e.raw_os_error().unwrap_or(0), true))
}

/// Spawns with `preexec_fn` run in the child, through the engine's fork path, with the
/// interpreter's fork protocol: `PyOS_BeforeFork` before, `PyOS_AfterFork_Parent` after in the
/// parent, `PyOS_AfterFork_Child` in the child before the callable runs. The caller holds the
/// GIL throughout (the forked child must inherit it) and has disabled the garbage collector.
fn spawn_with_preexec(cmd: &mut Command, preexec_fn: Py<PyAny>) -> Result<i32, SpawnError> {
    let hook = move || -> io::Result<()> {
        // SAFETY: this runs in the forked child, on the thread that called fork_exec, which
        // held the GIL when it forked; PyOS_AfterFork_Child makes the interpreter usable in
        // the child (as CPython's own fork_exec does before calling preexec_fn).
        unsafe { ffi::PyOS_AfterFork_Child() };
        // SAFETY: as above, this thread holds the GIL in the child.
        let py = unsafe { Python::assume_attached() };
        match preexec_fn.bind(py).call0() {
            Ok(_) => Ok(()),
            // CPython reports no detail (formatting the exception could deadlock): errno 0.
            Err(_) => Err(io::Error::from_raw_os_error(0)),
        }
    };
    // SAFETY: the hook runs Python code in a forked child, which is what preexec_fn means and
    // what CPython does; the interpreter is re-initialised for the child first.
    unsafe { cmd.pre_exec(hook) };
    // SAFETY: called with the GIL held, paired with PyOS_AfterFork_Parent below.
    unsafe { ffi::PyOS_BeforeFork() };
    let result = cmd.spawn().map(engine::Popen::detach);
    // SAFETY: pairs the PyOS_BeforeFork above, in the parent, with the GIL held.
    unsafe { ffi::PyOS_AfterFork_Parent() };
    result
}

/// The error-pipe record for a failure in the child; `None` for a failure in the parent.
/// With no executable to try, CPython's child leaves its exec loop with errno 0, which it
/// reports as a `SubprocessError` with no message.
fn child_record(err: &SpawnError, no_executable: bool) -> Option<Vec<u8>> {
    let errno = err.raw_os_error().unwrap_or(0);
    match err.step() {
        Step::Prepare | Step::Audit | Step::Pipe | Step::PipeSize | Step::Open | Step::Spawn => {
            None
        }
        // A Python preexec_fn reports errno 0; the module's own hook (setpgid_after_setsid)
        // the errno of the system call it makes, before user code.
        Step::PreExecHook if errno != 0 => Some(os_error_record(errno, true)),
        Step::PreExecHook => Some(PREEXEC_FAILED.to_vec()),
        Step::Exec if no_executable => Some(b"SubprocessError:0:".to_vec()),
        step => Some(os_error_record(errno, step.is_before_user_code())),
    }
}

/// `OSError:<hex errno>:` — with `noexec` when the failure came before any user code, which
/// makes subprocess.py name `cwd` as the file (its only such step is chdir).
fn os_error_record(errno: i32, noexec: bool) -> Vec<u8> {
    format!("OSError:{errno:x}:{}", if noexec { "noexec" } else { "" }).into_bytes()
}

/// Writes `record` into the error pipe and returns the pid to report when no failed child is
/// left to reap: this process's own, which is never its own child, so `waitpid` on it fails
/// with `ECHILD` at once.
/// A negative `errpipe_write` writes nothing: the record is lost, as CPython's is.
fn report(errpipe_write: RawFd, record: &[u8]) -> i32 {
    let mut left = if errpipe_write < 0 { &[][..] } else { record };
    while !left.is_empty() {
        // SAFETY: writes from a live buffer into a descriptor number the caller owns.
        let n = unsafe { libc::write(errpipe_write, left.as_ptr().cast(), left.len()) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        left = &left[n as usize..];
    }
    std::process::id() as i32
}

/// The exception for a failure in the parent: `OSError(errno, strerror)` (so the subclass
/// matches the errno, as with `PyErr_SetFromErrno`), or `ValueError` for input the engine
/// refused.
fn parent_error(py: Python<'_>, err: &SpawnError) -> PyErr {
    match err.raw_os_error() {
        Some(errno) => {
            let msg = py
                .import("os")
                .and_then(|os| os.getattr("strerror")?.call1((errno,))?.extract::<String>())
                .unwrap_or_else(|_| err.to_string());
            PyOSError::new_err((errno, msg))
        }
        None if err.step() == Step::Prepare => PyValueError::new_err(err.to_string()),
        None => PyOSError::new_err(err.to_string()),
    }
}
