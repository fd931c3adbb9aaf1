//! The vfork-style path: `clone(CLONE_VM | CLONE_VFORK)` on a stack the spawning thread keeps
//! for its children. A failing child reports through a [`SharedReport`] in the parent's frame:
//! no error pipe.
//!
//! # Safety
//!
//! The child shares the parent's memory and runs [`child::child_main`] under its contract (see
//! `spawn::child`). The parent thread is suspended by `CLONE_VFORK` until the child execs or
//! exits, so the child may use this thread's child stack, and may read the plan the parent
//! built. Every signal is blocked in the parent around the clone, so no handler of the parent
//! can run in the child before the child has reset them.
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::os::fd::{FromRawFd, OwnedFd};

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

fn new_stack() -> Box<Stack> {
    // SAFETY: a `Stack` is an array of `MaybeUninit` bytes: uninitialised memory is a valid one.
    unsafe { Box::<Stack>::new_uninit().assume_init() }
}

/// Runs `f` with a child stack: this thread's own, allocated on its first vfork-style spawn and
/// kept (only a child of this thread runs on it, while this thread is suspended), or a fresh one
/// where that is unavailable (a spawn during the thread's teardown). Not in the caller's frame:
/// a thread with a small stack can spawn too.
fn with_child_stack<R>(f: impl FnOnce(&mut Stack) -> R) -> R {
    thread_local! {
        static STACK: RefCell<Option<Box<Stack>>> = const { RefCell::new(None) };
    }
    let mut f = Some(f);
    let ran = STACK.try_with(|cell| {
        let mut slot = cell.try_borrow_mut().ok()?;
        let stack = slot.get_or_insert_with(new_stack);
        f.take().map(|f| f(stack))
    });
    match (ran, f) {
        (Ok(Some(result)), _) => result,
        (_, Some(f)) => f(&mut new_stack()),
        (_, None) => unreachable!("the closure ran but returned nothing"),
    }
}

extern "C" fn child_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `ChildPlan` the parent passed to clone; it outlives the child's use
    // of it because the parent is suspended until exec or exit. child_main never returns.
    unsafe { child::child_main(&*(arg as *const ChildPlan<'_>), &mut []) }
}

/// Starts the child; with `with_pidfd`, its pidfd is made with it (`CLONE_PIDFD`).
pub(super) fn spawn(
    cmd: &Command,
    prep: &Prepared,
    fds: &FdPlan,
    with_pidfd: bool,
) -> Result<Started, SpawnError> {
    let report = SharedReport::default();
    let guard = SignalBlockGuard::block_all();
    // The child starts with everything blocked, so it always sets its mask: the one asked for,
    // or the one this thread had before the guard ("inherit").
    let mask = prep.mask.unwrap_or(*guard.old_mask());
    let plan = child_plan(cmd, prep, fds, Report::Shared(&report), Some(&mask), true);
    let arg = &plan as *const ChildPlan<'_> as *mut libc::c_void;
    // CLONE_PIDFD: the handle holds a pidfd from the child's birth, so no later wait or signal
    // can reach a recycled pid even if the child is reaped elsewhere (SIGCHLD ignored). The
    // kernel makes it close-on-exec: a child another thread starts meanwhile drops it at exec.
    let pidfd_flag = if with_pidfd { libc::CLONE_PIDFD } else { 0 };
    let flags = libc::CLONE_VM | libc::CLONE_VFORK | pidfd_flag | libc::SIGCHLD;
    let mut pidfd: libc::c_int = -1;
    let pidfd_out = &mut pidfd as *mut libc::c_int;
    let pid = with_child_stack(|stack| {
        // SAFETY: one past the end of the array, 16-byte aligned: the stack grows down from
        // here.
        let stack_top = unsafe { stack.0.as_mut_ptr().add(STACK_SIZE) }.cast::<libc::c_void>();
        // SAFETY: child_entry follows the child contract; the stack and plan outlive the
        // child's use of them (CLONE_VFORK suspends this thread until exec or exit). With
        // CLONE_PIDFD the kernel writes the pidfd to the parent_tid argument, `pidfd_out`.
        unsafe { libc::clone(child_entry, stack_top, flags, arg, pidfd_out) }
    });
    // SAFETY: the kernel made this descriptor for the child; nobody else owns it. (A kernel
    // without CLONE_PIDFD leaves -1: the handle then opens one itself.)
    let pidfd = (pid > 0 && pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) });
    let err = (pid == -1).then(std::io::Error::last_os_error);
    drop(guard);
    if let Some(e) = err {
        return Err(SpawnError::new(Step::Spawn, e));
    }
    if !report.is_shared() {
        // The child ran in memory of its own: whether it exec'd cannot be told (a failure will
        // show as exit status 127, as with the C library's posix_spawn here). Later spawns of
        // this process take the fork path, whose pipe works anyway.
        super::strategy::mark_vm_not_shared();
        return finish(cmd, prep, Ok(None), pid, pidfd);
    }
    // The child has exec'd or exited (CLONE_VFORK): its report, if any, is in place.
    finish(cmd, prep, Ok(report.get()), pid, pidfd)
}
