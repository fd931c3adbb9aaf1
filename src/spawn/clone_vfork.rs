//! The vfork-style path: `clone(CLONE_VM | CLONE_VFORK)` on a stack borrowed from the parent's
//! frame. A failing child reports through a [`SharedReport`] in that frame too: no
//! error pipe.
//!
//! # Safety
//!
//! The child shares the parent's memory and runs [`child::child_main`] under its contract (see
//! `spawn::child`). The parent thread is suspended by `CLONE_VFORK` until the child execs or
//! exits, so the child may use a stack array that lives in this function's frame, and may read
//! the plan the parent built. Every signal is blocked in the parent around the clone, so no
//! handler of the parent can run in the child before the child has reset them.
#![allow(unsafe_code)]

use std::mem::MaybeUninit;

use super::child::{self, ChildPlan};
use super::prepare::{FdPlan, Prepared};
use super::report::{Report, SharedReport};
use super::{child_plan, finish, Started};
use crate::command::Command;
use crate::error::{SpawnError, Step};
use crate::sys::signal::SignalBlockGuard;

/// The child's stack. It only runs `child_main`, a few frames of plain system calls.
const STACK_SIZE: usize = 64 * 1024;

#[repr(C, align(16))]
struct Stack([MaybeUninit<u8>; STACK_SIZE]);

extern "C" fn child_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `ChildPlan` the parent passed to clone; it outlives the child's use
    // of it because the parent is suspended until exec or exit. child_main never returns.
    unsafe { child::child_main(&*(arg as *const ChildPlan<'_>), &mut []) }
}

pub(super) fn spawn(cmd: &Command, prep: &Prepared, fds: &FdPlan) -> Result<Started, SpawnError> {
    let report = SharedReport::default();
    let guard = SignalBlockGuard::block_all();
    // The child starts with everything blocked, so it always sets its mask: the one asked for,
    // or the one this thread had before the guard ("inherit").
    let mask = prep.mask.unwrap_or(*guard.old_mask());
    let plan = child_plan(cmd, prep, fds, Report::Shared(&report), Some(&mask), true);
    let mut stack = Stack([MaybeUninit::uninit(); STACK_SIZE]);
    // SAFETY: one past the end of the array, 16-byte aligned: the stack grows down from here.
    let stack_top = unsafe { stack.0.as_mut_ptr().add(STACK_SIZE) }.cast::<libc::c_void>();
    let arg = &plan as *const ChildPlan<'_> as *mut libc::c_void;

    // No CLONE_PIDFD: as on the other paths the handle opens a pidfd when it first needs one.
    // A pidfd made here would be inherited (if only until exec) by every child started while
    // this one runs, and closed by each of them.
    let flags = libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD;
    // SAFETY: child_entry follows the child contract; the stack and plan outlive the child's
    // use of them (CLONE_VFORK).
    let pid = unsafe { libc::clone(child_entry, stack_top, flags, arg) };
    let err = (pid == -1).then(std::io::Error::last_os_error);
    drop(guard);
    if let Some(e) = err {
        return Err(SpawnError::new(Step::Spawn, e));
    }
    // The child has exec'd or exited (CLONE_VFORK): its report, if any, is in place.
    finish(cmd, prep, Ok(report.get()), pid)
}
