//! The `fork` path: the only one that can run a user's pre-exec hook.
//!
//! # Safety
//!
//! The forked child runs [`child::child_main`] under its contract (see `spawn::child`), plus the
//! user's hooks, whose contract the user accepted when adding them with `unsafe`.
#![allow(unsafe_code)]

use std::os::fd::AsRawFd;

use super::child;
use super::prepare::{self, FdPlan, Prepared};
use super::report::{self, Report};
use super::{child_plan, finish, Started};
use crate::command::Command;
use crate::error::{SpawnError, Step};
use crate::sys;

pub(super) fn spawn(
    cmd: &mut Command,
    prep: &Prepared,
    fds: &FdPlan,
) -> Result<Started, SpawnError> {
    let (err_read, err_write) =
        sys::fd::pipe_cloexec().map_err(|e| SpawnError::new(Step::Pipe, e))?;
    let err_write = prepare::above_std_streams(err_write)?;
    // The hooks are called through a raw pointer: the plan borrows the rest of the command.
    let hooks: *mut [crate::command::Hook] = cmd.hooks.as_mut_slice();
    let report = Report::Pipe(err_write.as_raw_fd());
    let plan = child_plan(cmd, prep, fds, report, prep.mask.as_ref(), false);
    // SAFETY: fork has no memory-safety preconditions; the child only runs child_main.
    let (pid, pidfd) = unsafe { sys::pidfd::fork_with_pidfd(!hooks.is_empty()) };
    if pid == 0 {
        // SAFETY: in the forked child, the hooks are our private copy; child_main never
        // returns.
        unsafe { child::child_main(&plan, &mut *hooks) }
    }
    drop(err_write);
    if pid == -1 {
        return Err(SpawnError::new(
            Step::Spawn,
            std::io::Error::last_os_error(),
        ));
    }
    let report = report::read_report(&err_read);
    drop(err_read);
    finish(cmd, prep, report, pid, pidfd)
}
