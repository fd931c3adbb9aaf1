//! The code that runs in the child, between `clone`/`fork` and `exec`.
//!
//! # Safety — the child contract
//!
//! Everything in this module may run in a child that shares the parent's memory
//! (`clone(CLONE_VM | CLONE_VFORK)`) or in a forked copy of a multi-threaded parent. So, until
//! `execve` succeeds or `_exit` is called:
//!
//! - only async-signal-safe functions are called: no `malloc`/`free`, no locks, no stdio, no
//!   `Drop` of anything that frees memory, no panic (no indexing that can fail, no `unwrap`);
//! - glibc wrappers that take locks or signal the other threads (`setuid`, `setgid`,
//!   `setgroups`, `setrlimit`) are not used: the raw system calls are;
//! - nothing returns into the parent's frames: [`child_main`] ends in `execve` or `_exit`;
//! - every byte the child reads was prepared by the parent in [`ChildPlan`] and is only read.
//!
//! Every function here is an `unsafe fn` whose safety section points back to this contract. The
//! only exception to "no user code" is the pre-exec hook, which runs only in a forked child (or
//! in place, see below) and whose own contract the caller accepted with `unsafe`.
//!
//! The same steps also run *in place*, in the calling process, for `Command::exec`
//! ([`run_steps_and_exec`] with `in_place` set): there the contract is kept too (it costs
//! nothing), and three steps change so that the other threads of the process are not broken
//! while it lasts or if the exec fails: no signal handler is reset (exec resets caught ones),
//! `close_fds` marks descriptors close-on-exec instead of closing them under the other threads
//! (the exec closes them), and credentials are changed with the C library's wrappers, which
//! change them for every thread (a raw system call changes one thread's only).
#![allow(unsafe_code)]

use std::ffi::{c_char, CString};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};

use super::request::Hook;
use crate::error::Step;
use crate::spawn::report::{self, Report};
use crate::sys::signal::{self, SigSet};

extern "C" {
    /// The C library's environment, which `setenv`/`putenv` in a user hook change. Written
    /// only in a forked child's private copy.
    static mut environ: *mut *mut c_char;
}

/// Plain data the child reads. Built by the parent; borrowed by the child.
pub(crate) struct ChildPlan<'a> {
    pub(crate) argv: *const *const c_char,
    /// The whole environment, built by the parent (never the parent's `environ`, which another
    /// thread may be changing).
    pub(crate) envp: *const *const c_char,
    /// The environment is inherited and a forked child runs user hooks, which may change it
    /// (CPython's `preexec_fn` can): `environ` is pointed at `envp` before the hooks, and the
    /// exec takes `environ` as they leave it. Never set for a child that shares the parent's
    /// memory (hooks run only in a forked one).
    pub(crate) env_after_hooks: bool,
    pub(crate) candidates: &'a [CString],
    pub(crate) cwd: Option<&'a CString>,
    /// Source for each of fds 0–2 (-1: leave). Each source here and in `extra_fds` is equal
    /// to its own target or is no target at all (see `FdPlan`).
    pub(crate) fds: [RawFd; 3],
    /// (source, target) for the numbers chosen with `pass_fd_as`, targets ≥ 3.
    pub(crate) extra_fds: &'a [(RawFd, RawFd)],
    pub(crate) pass_fds: &'a [RawFd],
    /// Every descriptor ≥ 3 that `close_fds` keeps, ascending (the error pipe aside).
    pub(crate) keep_fds: &'a [RawFd],
    /// Descriptors the command closes before the standard streams are set up.
    pub(crate) close: &'a [RawFd],
    pub(crate) close_fds: bool,
    /// Where a failure is reported.
    pub(crate) report: Report<'a>,
    pub(crate) umask: Option<libc::mode_t>,
    /// Reset every caught signal to its default before any hook runs (both paths do: no handler
    /// of the parent's may run in the child).
    pub(crate) reset_handlers: bool,
    pub(crate) restore_signals: bool,
    /// The final mask; `None` keeps the one the child started with.
    pub(crate) mask: Option<&'a SigSet>,
    pub(crate) setsid: bool,
    pub(crate) pgid: Option<libc::pid_t>,
    pub(crate) rlimits: &'a [(libc::c_int, libc::rlimit64)],
    pub(crate) groups: Option<&'a [libc::gid_t]>,
    pub(crate) gid: Option<libc::gid_t>,
    pub(crate) uid: Option<libc::uid_t>,
    /// The parent-death signal and the pid of the parent when the child was made.
    pub(crate) pdeathsig: Option<(libc::c_int, libc::pid_t)>,
    /// The steps run in the calling process (`Command::exec`), not in a new child.
    pub(crate) in_place: bool,
    /// The child was made sharing the parent's descriptor table (`CLONE_FILES`): its first
    /// step takes a copy of its own holding only the descriptors below this number (see
    /// [`unshare_fd_table`]).
    pub(crate) unshare_fds_below: Option<libc::c_uint>,
}

/// Reads the thread's errno.
///
/// # Safety
///
/// See the module's child contract; reading errno is async-signal-safe.
unsafe fn errno() -> i32 {
    // SAFETY: __errno_location always returns a valid pointer for the calling thread.
    unsafe { *libc::__errno_location() }
}

/// Reports `step` with `errno` (see `spawn::report`) and exits with status 127.
///
/// # Safety
///
/// See the module's child contract.
unsafe fn fail_with(report: Report<'_>, step: Step, errno: i32) -> ! {
    match report {
        Report::Pipe(fd) => {
            let record = report::encode(step, errno);
            // SAFETY: `record` is a plain byte array; write(2) is async-signal-safe.
            unsafe { libc::write(fd, record.as_ptr().cast(), record.len()) };
        }
        // Two atomic stores into the suspended parent's frame: plain memory writes.
        Report::Shared(shared) => shared.set(step, errno),
        // In place the failure is returned, never reported here.
        Report::Caller => {}
    }
    // SAFETY: _exit(2) is async-signal-safe and does not return.
    unsafe { libc::_exit(127) }
}

/// The child's entry: runs the setup steps and execs; on a failure, reports the step and
/// exits.
///
/// # Safety
///
/// See the module's child contract. `plan`'s pointers must be valid (the parent keeps them
/// alive until the child has exec'd or exited). `hooks` must be empty unless this is a forked
/// child.
pub(crate) unsafe fn child_main(plan: &ChildPlan<'_>, hooks: &mut [Hook]) -> ! {
    // Tell a parent that shares our memory that it does (see `SharedReport`).
    if let Report::Shared(shared) = plan.report {
        shared.mark_started();
    }
    if let Some(first) = plan.unshare_fds_below {
        // SAFETY: the caller keeps the contract.
        if let Err(errno) = unsafe { unshare_fd_table(first) } {
            // The one failure reported as `Spawn`: the parent then starts the child again
            // without sharing its table (see `clone_vfork`).
            // SAFETY: the report is shared memory: no descriptor is touched.
            unsafe { fail_with(plan.report, Step::Spawn, errno) }
        }
    }
    // SAFETY: the caller keeps the contract.
    let (step, errno) = unsafe { run_steps_and_exec(plan, hooks) };
    // SAFETY: writes a fixed record and exits.
    unsafe { fail_with(plan.report, step, errno) }
}

/// Gives a child made with `CLONE_FILES` a descriptor table of its own, holding only the
/// descriptors below `first` (the parent computed it above every descriptor the steps use),
/// as `close_fds` would leave it: `close_range(first, ~0, CLOSE_RANGE_UNSHARE)` copies just
/// those (Linux ≥ 5.9). Where that is refused, `unshare(CLONE_FILES)` copies the whole table,
/// and `close_fds` closes the rest later, as without `CLONE_FILES`.
///
/// Until this returns the table is the parent's: nothing else may touch a descriptor.
///
/// # Safety
///
/// See the module's child contract.
unsafe fn unshare_fd_table(first: libc::c_uint) -> Result<(), i32> {
    // Linux's CLOSE_RANGE_UNSHARE (include/uapi/linux/close_range.h).
    const CLOSE_RANGE_UNSHARE: libc::c_uint = 1 << 1;
    // SAFETY: both calls only replace this child's reference to the shared table with a copy.
    unsafe {
        if libc::syscall(
            libc::SYS_close_range,
            first,
            libc::c_uint::MAX,
            CLOSE_RANGE_UNSHARE,
        ) == 0
        {
            return Ok(());
        }
        if libc::unshare(libc::CLONE_FILES) == 0 {
            return Ok(());
        }
        Err(errno())
    }
}

/// Runs the setup steps in CPython's order, then tries each candidate path with `execve`.
/// Returns only on a failure: the step and its errno.
///
/// # Safety
///
/// See the module's child contract. `plan`'s pointers must be valid until the exec.
/// `hooks` must be empty unless this is a forked child or `plan.in_place`.
pub(crate) unsafe fn run_steps_and_exec(plan: &ChildPlan<'_>, hooks: &mut [Hook]) -> (Step, i32) {
    // The step that failed, with the errno of the call that just failed.
    macro_rules! bail {
        // Always used inside the unsafe body below, right after the failing call.
        ($step:expr) => {
            return ($step, errno())
        };
    }
    // SAFETY (whole body): each call below is an async-signal-safe system call on plain data
    // prepared by the parent, per the module contract.
    unsafe {
        // 1. Passed descriptors survive exec.
        for &fd in plan.pass_fds {
            if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                bail!(Step::PassFds);
            }
        }
        // 1b. Descriptors the command closes (CPython: the parent's pipe ends). One that is
        //     ours (the error pipe, a stream source) was not open when the command named it.
        for &fd in plan.close {
            if plan.report.fd() == Some(fd)
                || plan.fds.contains(&fd)
                || plan.extra_fds.iter().any(|&(src, _)| src == fd)
            {
                return (Step::PassFds, libc::EBADF);
            }
            if libc::close(fd) == -1 {
                bail!(Step::PassFds);
            }
        }
        // 2. Standard streams, then the chosen numbers. Each source is its own target or no
        //    target at all (see `FdPlan`), so no dup2 overwrites a source still to be used.
        for (target, &src) in plan.fds.iter().enumerate() {
            if src >= 0 && !place_fd(src, target as RawFd) {
                bail!(Step::Dup2);
            }
        }
        for &(src, target) in plan.extra_fds {
            if !place_fd(src, target) {
                bail!(Step::PassFds);
            }
        }
        // 3. Working directory.
        if let Some(cwd) = plan.cwd {
            if libc::chdir(cwd.as_ptr()) == -1 {
                bail!(Step::Chdir);
            }
        }
        // 4. umask (cannot fail).
        if let Some(mask) = plan.umask {
            libc::umask(mask);
        }
        // 5. Signals: no handler of the parent may run here; then the child's own mask.
        if plan.reset_handlers && !plan.in_place {
            // A hook may unblock a signal the final mask blocks: then reset every handler.
            reset_signal_handlers(if hooks.is_empty() { plan.mask } else { None });
        }
        if plan.restore_signals {
            for sig in [libc::SIGPIPE, libc::SIGXFSZ] {
                if libc::signal(sig, libc::SIG_DFL) == libc::SIG_ERR {
                    bail!(Step::Signals);
                }
            }
        }
        if let Some(mask) = plan.mask {
            // The raw system call: the mask exactly as planned (for "inherit", the parent's own,
            // bit for bit), where `pthread_sigmask` would unblock the C library's signals.
            if let Err(e) =
                signal::rt_sigprocmask(libc::SIG_SETMASK, mask.as_raw(), std::ptr::null_mut())
            {
                return (Step::Signals, e);
            }
        }
        // 6. Session and process group.
        if plan.setsid && libc::setsid() == -1 {
            bail!(Step::Setsid);
        }
        if let Some(pgid) = plan.pgid {
            if libc::setpgid(0, pgid) == -1 {
                bail!(Step::Setpgid);
            }
        }
        // 7. Resource limits (raw prlimit64: the glibc wrapper is not promised to be lock-free).
        for (resource, limit) in plan.rlimits {
            let ret = libc::syscall(
                libc::SYS_prlimit64,
                0,
                *resource,
                limit as *const libc::rlimit64,
                std::ptr::null_mut::<libc::rlimit64>(),
            );
            if ret == -1 {
                bail!(Step::Rlimit);
            }
        }
        // 8. Credentials, in the order that keeps the privilege to set the next one. Raw system
        //    calls: glibc's wrappers signal every thread of the (shared) parent.
        //    In place, the wrappers are what is wanted: every thread of the process changes.
        if let Some(groups) = plan.groups {
            let ret = if plan.in_place {
                libc::setgroups(groups.len(), groups.as_ptr())
            } else {
                libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) as libc::c_int
            };
            if ret == -1 {
                bail!(Step::Setgroups);
            }
        }
        if let Some(gid) = plan.gid {
            let ret = if plan.in_place {
                libc::setregid(gid, gid)
            } else {
                libc::syscall(libc::SYS_setregid, gid, gid) as libc::c_int
            };
            if ret == -1 {
                bail!(Step::Setgid);
            }
        }
        if let Some(uid) = plan.uid {
            let ret = if plan.in_place {
                libc::setreuid(uid, uid)
            } else {
                libc::syscall(libc::SYS_setreuid, uid, uid) as libc::c_int
            };
            if ret == -1 {
                bail!(Step::Setuid);
            }
        }
        // 9. Parent-death signal, after the credentials (changing them clears it). If the
        //    parent died before this point the signal would never come: send it now.
        #[cfg(target_os = "linux")]
        if let Some((sig, parent)) = plan.pdeathsig {
            if libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) == -1 {
                bail!(Step::ParentDeathSignal);
            }
            if libc::syscall(libc::SYS_getppid) as libc::pid_t != parent {
                libc::syscall(libc::SYS_kill, libc::syscall(libc::SYS_getpid), sig);
            }
        }
        // 10. User hooks (forked child only), on the parent's consistent snapshot of the
        //     environment, which they may change.
        if plan.env_after_hooks && !hooks.is_empty() {
            // A pointer store into this forked child's own copy of `environ`; the array it
            // points to stays alive (the parent keeps `envp`, and this copy of it, until
            // exec).
            environ = plan.envp.cast_mut().cast();
        }
        for hook in hooks.iter_mut() {
            if let Err(errno) = run_hook(plan, hook) {
                return (Step::PreExecHook, errno);
            }
        }
        // 11. Close every other descriptor: after the hooks, which may have opened some.
        if plan.close_fds {
            close_fds_except(plan);
        }
        // 12. Exec, trying each candidate. Report the first error that is not "not there",
        //     else the last one.
        let envp = if plan.env_after_hooks && !hooks.is_empty() {
            environ.cast_const().cast()
        } else {
            plan.envp
        };
        let mut saved = 0;
        let mut last = libc::ENOENT;
        for path in plan.candidates {
            libc::execve(path.as_ptr(), plan.argv, envp);
            last = errno();
            if saved == 0 && last != libc::ENOENT && last != libc::ENOTDIR {
                saved = last;
            }
        }
        (Step::Exec, if saved != 0 { saved } else { last })
    }
}

/// Makes `target` a copy of `src` that survives exec; false (errno set) if that failed.
///
/// # Safety
///
/// See the module's child contract.
unsafe fn place_fd(src: RawFd, target: RawFd) -> bool {
    // SAFETY: fcntl and dup2 on descriptor numbers are async-signal-safe.
    let ret = unsafe {
        if src == target {
            // dup2(fd, fd) would keep close-on-exec: clear it explicitly.
            libc::fcntl(src, libc::F_SETFD, 0)
        } else {
            libc::dup2(src, target)
        }
    };
    ret != -1
}

/// The error pipe of a forked child while it runs the user's hooks; -1 everywhere else. Only a
/// forked child's private copy of this static is ever written (hooks never run in a child that
/// shares our memory), so the parent's stays -1.
static HOOK_REPORT_FD: AtomicI32 = AtomicI32::new(-1);

/// Called first by the panic hook the fork path installs (see `spawn::fork`): in a forked child
/// running a user's hook, reports [`Step::PreExecHook`] and exits, so that no other panic hook
/// runs there — the default one takes a lock that another thread of the parent may have held at
/// the fork (the child's copy then stays locked for ever, and the parent waits for the child's
/// report for ever), and allocates. Anywhere else it returns at once.
pub(crate) fn exit_if_panicking_in_hook() {
    let fd = HOOK_REPORT_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: only a forked child running a hook sets the descriptor: writing the record
        // to its error pipe and exiting is what it does on any failure.
        unsafe { fail_with(Report::Pipe(fd), Step::PreExecHook, 0) }
    }
}

/// Runs one user hook; an error or a panic comes back as the errno to report with
/// [`Step::PreExecHook`] (0 when there is none).
///
/// # Safety
///
/// See the module's child contract; only called in a forked child or in place.
unsafe fn run_hook(plan: &ChildPlan<'_>, hook: &mut Hook) -> Result<(), i32> {
    if let Report::Pipe(fd) = plan.report {
        HOOK_REPORT_FD.store(fd, Ordering::Relaxed);
    }
    // A panic ends the child in the panic hook (see `exit_if_panicking_in_hook`); if another
    // panic hook replaced the fork path's after it was installed and returns, the unwinding
    // stops here.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(hook));
    let errno = match result {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(e)) if plan.in_place => return Err(e.raw_os_error().unwrap_or(0)),
        Ok(Err(e)) => {
            let errno = e.raw_os_error().unwrap_or(0);
            // Freeing a custom error's box is not async-signal-safe: leak it, we exit now.
            std::mem::forget(e);
            errno
        }
        Err(payload) => {
            std::mem::forget(payload);
            0
        }
    };
    Err(errno)
}

/// Sets every caught signal to its default disposition, skipping signals that stay blocked
/// (they cannot be delivered before exec, which resets them anyway). Ignored signals stay
/// ignored.
///
/// The C library's internal signals (glibc's SIGCANCEL and SIGSETXID, 32 and 33) are covered
/// too. `sigaction` refuses them (EINVAL) — so no user code can have set them through it: their
/// handler is the library's own, which exec would reset to the default, and so does the raw
/// system call here. Left in place, a SIGSETXID sent to a shared-memory child would run the
/// library's handler, which changes the credentials and counts down the parent's own
/// `setuid`-in-progress state.
///
/// # Safety
///
/// See the module's child contract.
unsafe fn reset_signal_handlers(mask: Option<&SigSet>) {
    for sig in 1..signal::max_signal() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        if mask.is_some_and(|m| m.contains(sig)) {
            continue;
        }
        // SAFETY: sigaction only reads and writes the structs on our stack.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) == -1 {
                if errno() == libc::EINVAL {
                    signal::rt_sigaction_default(sig);
                }
                continue;
            }
            if old.sa_sigaction == libc::SIG_DFL || old.sa_sigaction == libc::SIG_IGN {
                continue;
            }
            let mut new: libc::sigaction = std::mem::zeroed();
            new.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &new, std::ptr::null_mut());
        }
    }
}

/// Closes every descriptor ≥ 3 except the kept ones (passed, or at a chosen number) and the
/// error pipe, if there is one. In place, marks them close-on-exec instead: closing a
/// descriptor another thread still uses would let its number be reused under that thread.
///
/// # Safety
///
/// See the module's child contract.
unsafe fn close_fds_except(plan: &ChildPlan<'_>) {
    let cloexec_only = plan.in_place;
    // The kept descriptors, ascending: the (sorted) keep_fds merged with the error pipe.
    let errpipe = plan.report.fd();
    let mut low: libc::c_uint = 3;
    let mut pass = plan
        .keep_fds
        .iter()
        .copied()
        .filter(|&fd| fd >= 3)
        .peekable();
    let mut errpipe_left = errpipe;
    loop {
        let keep = match (pass.peek().copied(), errpipe_left) {
            (Some(p), Some(e)) if e < p => {
                errpipe_left = None;
                e
            }
            (Some(p), _) => {
                pass.next();
                p
            }
            (None, Some(e)) => {
                errpipe_left = None;
                e
            }
            (None, None) => break,
        };
        let keep = keep as libc::c_uint;
        if keep > low {
            // SAFETY: see the module contract.
            if unsafe { !close_range(low, keep - 1, cloexec_only) } {
                // SAFETY: see the module contract.
                unsafe { close_fds_slow(errpipe, low, keep - 1, cloexec_only) };
            }
        }
        low = low.max(keep + 1);
    }
    // SAFETY: see the module contract.
    if unsafe { !close_range(low, libc::c_uint::MAX, cloexec_only) } {
        // SAFETY: see the module contract.
        unsafe { close_fds_slow(errpipe, low, libc::c_uint::MAX, cloexec_only) };
    }
}

/// `close_range(first, last, 0)`, or with `CLOSE_RANGE_CLOEXEC` when `cloexec_only`; false if
/// the kernel lacks it (or, before Linux 5.11, the flag).
///
/// # Safety
///
/// See the module's child contract.
unsafe fn close_range(first: libc::c_uint, last: libc::c_uint, cloexec_only: bool) -> bool {
    #[cfg(target_os = "linux")]
    {
        // Linux's CLOSE_RANGE_CLOEXEC (include/uapi/linux/close_range.h).
        const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
        let flags = if cloexec_only { CLOSE_RANGE_CLOEXEC } else { 0 };
        // SAFETY: close_range only touches our descriptor table.
        unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) == 0 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (first, last, cloexec_only);
        false
    }
}

/// Closes the descriptors in `first..=last` but `keep` one by one, up to the descriptor limit.
///
/// # Safety
///
/// See the module's child contract.
unsafe fn close_fds_slow(
    keep: Option<RawFd>,
    first: libc::c_uint,
    last: libc::c_uint,
    cloexec_only: bool,
) {
    let mut limit: libc::rlimit64 = libc::rlimit64 {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit64 with a null new limit only writes `limit`.
    let ok = unsafe {
        libc::syscall(
            libc::SYS_prlimit64,
            0,
            libc::RLIMIT_NOFILE,
            std::ptr::null::<libc::rlimit64>(),
            &mut limit as *mut libc::rlimit64,
        )
    } == 0;
    let max = if ok {
        limit.rlim_cur.min(1 << 20) as libc::c_uint
    } else {
        1 << 16
    };
    let end = last.min(max.saturating_sub(1));
    let mut fd = first;
    while fd <= end {
        if Some(fd as RawFd) != keep {
            // SAFETY: closing a descriptor number, or setting its flags, open or not, is
            // async-signal-safe.
            unsafe {
                if cloexec_only {
                    libc::fcntl(fd as RawFd, libc::F_SETFD, libc::FD_CLOEXEC);
                } else {
                    libc::close(fd as RawFd);
                }
            }
        }
        fd += 1;
    }
}
