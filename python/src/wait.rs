//! `Popen._wait` (POSIX) on a pidfd: the thread sleeps in `poll(2)` on the child's pidfd with
//! the GIL released and wakes when the child exits — not in CPython's sleeps of up to 50 ms
//! when a timeout is given.
//!
//! The child is reaped as CPython reaps it: under `Popen._waitpid_lock`, through `Popen`'s own
//! `_try_wait` (so a child reaped behind `Popen`'s back, with SIGCHLD ignored, gives returncode
//! 0) and `_handle_exitstatus`, after checking `returncode` under the lock (another thread may
//! have reaped it). Unlike CPython, the lock is not held while the thread sleeps: `poll()` and
//! `wait()` in other threads go on meanwhile, and whoever reaps first sets `returncode` under
//! the lock. The pidfd is opened under the lock right after `waitpid(WNOHANG)` found the child
//! not yet reaped, so it is the child's and not a recycled pid's.
//!
//! A signal that interrupts the sleep returns to the interpreter so its handlers run
//! (`PyErr_CheckSignals`); an exception they raise (KeyboardInterrupt) propagates, and
//! `Popen.wait`'s courtesy wait (`_sigint_wait_secs`) is CPython's, around this function. The
//! sleep is cut in slices of at most a second for a signal delivered to another thread.
//!
//! Where the kernel has no `pidfd_open` (before Linux 5.3, or refused by a seccomp filter) or
//! it fails, CPython's `_wait` does the job.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::IntoPyDict;

use crate::communicate::SIGNAL_SLICE;

pub(crate) static CALLS: AtomicU64 = AtomicU64::new(0);

/// `pidfd_open(2)`: a descriptor (close-on-exec, as every pidfd) that becomes readable when the
/// process exits.
fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes two integers and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor, owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// How one sleep on the pidfd ended.
enum Slept {
    /// The child exited (or the descriptor reports an error: reaping tells).
    Exited,
    /// The slice or the deadline passed.
    Elapsed,
    /// A signal interrupted the sleep.
    Signal,
}

/// Sleeps until the pidfd is readable, `until` passes, or a signal arrives.
fn sleep_on(pidfd: &OwnedFd, until: Instant) -> io::Result<Slept> {
    let mut fds = [libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    let left = until.saturating_duration_since(Instant::now());
    // Rounded up, so that the wake-up never comes before `until` (which would spin).
    let ms = left
        .as_nanos()
        .div_ceil(1_000_000)
        .min(libc::c_int::MAX as u128) as libc::c_int;
    // SAFETY: `fds` is one valid pollfd that lives across the call.
    match unsafe { libc::poll(fds.as_mut_ptr(), 1, ms) } {
        -1 => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(Slept::Signal)
            } else {
                Err(e)
            }
        }
        0 => Ok(Slept::Elapsed),
        _ => Ok(Slept::Exited),
    }
}

/// `_wait(self, timeout)` on a pidfd.
#[pyfunction]
#[pyo3(name = "_engine_wait", signature = (popen, timeout))]
pub(crate) fn wait<'py>(
    popen: &Bound<'py, PyAny>,
    timeout: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = popen.py();
    let returncode = popen.getattr("returncode")?;
    if !returncode.is_none() {
        return Ok(returncode);
    }
    let secs: Option<f64> = timeout.extract()?;
    // A timeout too large for the clock, infinite or NaN waits as long as no timeout does
    // (as CPython's loop does: it never finds such a time remaining to be <= 0).
    let deadline = secs
        .filter(|s| !s.is_nan())
        .and_then(|s| Instant::now().checked_add(Duration::try_from_secs_f64(s.max(0.0)).ok()?));
    CALLS.fetch_add(1, Ordering::Relaxed);
    let pid: libc::pid_t = popen.getattr("pid")?.extract()?;
    let lock = popen.getattr("_waitpid_lock")?;
    let wnohang = py.import("os")?.getattr("WNOHANG")?;
    let mut pidfd: Option<OwnedFd> = None;
    loop {
        // Reap, or learn that the child runs, under the lock, as CPython does.
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let acquired = match left {
            // Another thread holding the lock is reaping (or, in CPython's own _wait, blocked
            // reaping): waiting for the lock is waiting for the child.
            None => lock.call_method1("acquire", (true,))?,
            Some(l) if l.is_zero() => lock.call_method1("acquire", (false,))?,
            Some(l) => lock.call_method1("acquire", (true, l.as_secs_f64()))?,
        };
        if acquired.is_truthy()? {
            let reaped = (|| -> PyResult<Option<Bound<'py, PyAny>>> {
                let returncode = popen.getattr("returncode")?;
                if !returncode.is_none() {
                    return Ok(Some(returncode));
                }
                let (got, sts): (libc::pid_t, Bound<'py, PyAny>) =
                    popen.call_method1("_try_wait", (&wnohang,))?.extract()?;
                if got == pid {
                    popen.call_method1("_handle_exitstatus", (sts,))?;
                    return Ok(Some(popen.getattr("returncode")?));
                }
                if pidfd.is_none() {
                    // Any failure (no pidfd_open, descriptor table full, the child reaped
                    // behind our back since waitpid looked) leaves the job to CPython's wait.
                    pidfd = pidfd_open(pid).ok();
                }
                Ok(None)
            })();
            lock.call_method0("release")?;
            if let Some(returncode) = reaped? {
                return Ok(returncode);
            }
            if pidfd.is_none() {
                // No pidfd: CPython's own wait, with the timeout as given (only the wait for
                // the lock, if another thread held it, has passed).
                return crate::accelerate::stock(py, "_wait")?
                    .call((popen,), Some(&[("timeout", timeout)].into_py_dict(py)?));
            }
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            let expired = py.import("subprocess")?.getattr("TimeoutExpired")?;
            return Err(PyErr::from_value(
                expired.call1((popen.getattr("args")?, timeout))?,
            ));
        }
        if let Some(fd) = &pidfd {
            let slice = now + SIGNAL_SLICE;
            let until = deadline.map_or(slice, |d| d.min(slice));
            match py.detach(|| sleep_on(fd, until))? {
                Slept::Exited => {}
                Slept::Elapsed | Slept::Signal => py.check_signals()?,
            }
        }
    }
}
