//! The `fork` path: the only one that can run a user's pre-exec hook.
//!
//! # Safety
//!
//! The forked child runs [`child::child_main`] under its contract (see `spawn::child`), plus the
//! user's hooks, whose contract the user accepted when adding them with `unsafe`. Every signal
//! is blocked in the parent around the fork, and the child resets every caught handler before
//! the hooks run: a handler of the parent's (a self-pipe writer, say) never runs in the child.
#![allow(unsafe_code)]

use std::os::fd::AsRawFd;
use std::sync::Once;

use super::child;
use super::prepare::{self, FdPlan, Prepared};
use super::report::{self, Report};
use super::request::Request;
use super::{child_plan, finish, Started};
use crate::error::{SpawnError, Step};
use crate::sys;
use crate::sys::signal::SignalBlockGuard;

pub(super) fn spawn(
    req: &mut Request,
    prep: &Prepared,
    fds: &FdPlan,
) -> Result<Started, SpawnError> {
    let (err_read, err_write) =
        sys::fd::pipe_cloexec().map_err(|e| SpawnError::new(Step::Pipe, e))?;
    let err_write = prepare::above_std_streams(err_write)?;
    // The hooks are called through a raw pointer: the plan borrows the rest of the command.
    let hooks: *mut [super::request::Hook] = req.hooks.as_mut_slice();
    let report = Report::Pipe(err_write.as_raw_fd());
    if !req.hooks.is_empty() {
        install_panic_guard();
    }
    let guard = SignalBlockGuard::block_all();
    // As on the vfork path: the child starts with everything blocked, resets every caught
    // handler before any hook runs, then sets its mask (the one asked for, or this thread's).
    let mask = prep.mask.unwrap_or(*guard.old_mask());
    let plan = child_plan(req, prep, fds, report, Some(&mask), true);
    // SAFETY: fork has no memory-safety preconditions; the child only runs child_main.
    let (pid, pidfd) = unsafe { sys::pidfd::fork_with_pidfd(!hooks.is_empty()) };
    let err = (pid == -1).then(std::io::Error::last_os_error);
    if pid == 0 {
        // SAFETY: in the forked child, the hooks are our private copy; child_main never
        // returns (so the guard's copy is never dropped there).
        unsafe { child::child_main(&plan, &mut *hooks) }
    }
    drop(guard);
    drop(err_write);
    if let Some(e) = err {
        return Err(SpawnError::new(Step::Spawn, e));
    }
    let report = report::read_report(&err_read);
    drop(err_read);
    finish(req, prep, report, pid, pidfd)
}

/// Wraps the process's panic hook, once, in one that first checks whether it runs in a forked
/// child that is running a user's pre-exec hook: there it reports [`Step::PreExecHook`] and
/// exits (see [`child::exit_if_panicking_in_hook`]); anywhere else it calls the hook it wraps.
///
/// Installed in the parent, not in the child: replacing the hook takes the hook's write lock,
/// which a thread of the parent that was running a panic hook at the fork holds for ever in the
/// child's copy; a panic only takes it for reading, which a reader's copy does not block. (So
/// the first spawn with a hook waits for panic hooks running in other threads at that moment to
/// finish.)
///
/// What is left: a panic hook the program sets after its first spawn with a pre-exec hook
/// replaces this one (the child then runs that hook; if it returns, the unwinding is caught and
/// reported all the same); a formatted panic message (`panic!("{x}")`) is formatted, so
/// allocated, before any hook runs — glibc's `fork` leaves the allocator usable in the child; and
/// a spawn from a thread that is itself panicking cannot install it.
fn install_panic_guard() {
    static INSTALL: Once = Once::new();
    if std::thread::panicking() {
        // take_hook and set_hook would panic again, and abort.
        return;
    }
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            child::exit_if_panicking_in_hook();
            previous(info)
        }));
    });
}
