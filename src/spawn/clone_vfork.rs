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
//! can run in the child before the child has reset them. A child made with `CLONE_FILES` (see
//! [`spawn`]) shares the parent's descriptor table too, until its first step replaces it with a
//! copy of its own: before that it touches no descriptor.
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::os::fd::{FromRawFd, OwnedFd};

use super::child::{self, ChildPlan};
use super::prepare::{FdPlan, Prepared};
use super::report::{Report, SharedReport};
use super::request::Request;
use super::{child_plan, finish, strategy, Started};
use crate::error::{SpawnError, Step};
use crate::sys::signal::SignalBlockGuard;

/// The child's stack. It only runs `child_main`, a few frames of plain system calls.
const STACK_SIZE: usize = 64 * 1024;

/// A stack for a vfork-style child: `STACK_SIZE` bytes mapped for it alone, with an
/// inaccessible guard page right below (the stack grows down), so that an overflow faults
/// instead of writing silently over other memory of the parent's.
///
/// # Drop behavior
///
/// Unmaps the stack and its guard page. Only dropped in the parent, once no child runs on it.
struct ChildStack {
    /// The start of the mapping: the guard page.
    base: *mut libc::c_void,
    /// The guard page plus the stack.
    len: usize,
}

impl ChildStack {
    fn new() -> std::io::Result<ChildStack> {
        // SAFETY: sysconf only reads a configuration value.
        let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
            n if n > 0 => n as usize,
            _ => 4096,
        };
        let len = page + STACK_SIZE.next_multiple_of(page);
        // SAFETY: a fresh private anonymous mapping; no existing memory is touched.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let stack = ChildStack { base, len };
        // SAFETY: the first page of the mapping made just above, which nothing uses yet.
        if unsafe { libc::mprotect(base, page, libc::PROT_NONE) } == -1 {
            // `stack` unmaps the whole mapping when dropped.
            return Err(std::io::Error::last_os_error());
        }
        Ok(stack)
    }

    /// One past the highest byte: where the child's stack pointer starts (page-aligned).
    fn top(&self) -> *mut libc::c_void {
        // SAFETY: one past the end of the mapping.
        unsafe { self.base.cast::<u8>().add(self.len) }.cast()
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours, and no child runs on it any more (see `with_child_stack`).
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// Runs `f` with a child stack: this thread's own, mapped on its first vfork-style spawn and
/// kept (only a child of this thread runs on it, while this thread is suspended) until the
/// thread exits, or a fresh one where that is unavailable (a spawn during the thread's
/// teardown), unmapped after `f`. Not in the caller's frame: a thread with a small stack can
/// spawn too.
///
/// # Errors
///
/// The error of `mmap` or `mprotect` if no stack could be mapped.
fn with_child_stack<R>(f: impl FnOnce(&ChildStack) -> R) -> std::io::Result<R> {
    thread_local! {
        static STACK: RefCell<Option<ChildStack>> = const { RefCell::new(None) };
    }
    let mut f = Some(f);
    let ran = STACK.try_with(|cell| -> Option<std::io::Result<R>> {
        let mut slot = cell.try_borrow_mut().ok()?;
        if slot.is_none() {
            match ChildStack::new() {
                Ok(stack) => *slot = Some(stack),
                Err(e) => return Some(Err(e)),
            }
        }
        let stack = slot.as_ref()?;
        f.take().map(|f| Ok(f(stack)))
    });
    match (ran, f) {
        (Ok(Some(result)), _) => result,
        (_, Some(f)) => Ok(f(&ChildStack::new()?)),
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
    req: &Request,
    prep: &Prepared,
    fds: &FdPlan,
    with_pidfd: bool,
) -> Result<Started, SpawnError> {
    // With `close_fds`, the child keeps only the descriptors its steps name: it is made sharing
    // this process's descriptor table and copies just the low part it needs, so that the cost
    // of a spawn does not grow with the number of descriptors this process holds (`clone`
    // would copy the whole table, and `exec` close most of it again). Only once a child was
    // seen sharing memory: an emulator that runs these children as forks (valgrind) may stop
    // the program at a `clone` that asks for more sharing.
    let share_fds = req.close_fds && strategy::may_share_fd_table();
    match start(req, prep, fds, with_pidfd, share_fds)? {
        Attempt::Done(started) => started,
        Attempt::CouldNotUnshare => {
            // A sandbox refused the child both ways of leaving the shared table: this process's
            // children copy it from now on, as `clone` does, starting with this one.
            strategy::mark_fd_table_sharing_refused();
            match start(req, prep, fds, with_pidfd, false)? {
                Attempt::Done(started) => started,
                Attempt::CouldNotUnshare => unreachable!("a child that shares no table"),
            }
        }
    }
}

/// What one attempt at starting the child gave.
enum Attempt {
    /// The child exec'd, or the spawn failed as `finish` reports it.
    Done(Result<Started, SpawnError>),
    /// The child, made sharing the descriptor table, could not take a copy of its own; it
    /// exited and was reaped.
    CouldNotUnshare,
}

/// Makes the child, sharing this process's descriptor table when `share_fds`.
fn start(
    req: &Request,
    prep: &Prepared,
    fds: &FdPlan,
    with_pidfd: bool,
    share_fds: bool,
) -> Result<Attempt, SpawnError> {
    let report = SharedReport::default();
    let guard = SignalBlockGuard::block_all();
    // The child starts with everything blocked, so it always sets its mask: the one asked for,
    // or the one this thread had before the guard ("inherit").
    let mask = prep.mask.unwrap_or(*guard.old_mask());
    let mut plan = child_plan(req, prep, fds, Report::Shared(&report), Some(&mask), true);
    plan.unshare_fds_below = share_fds.then(|| fds_used_below(&plan)).flatten();
    let arg = &plan as *const ChildPlan<'_> as *mut libc::c_void;
    // CLONE_PIDFD: the handle holds a pidfd from the child's birth, so no later wait or signal
    // can reach a recycled pid even if the child is reaped elsewhere (SIGCHLD ignored). The
    // kernel makes it close-on-exec: a child another thread starts meanwhile drops it at exec.
    let pidfd_flag = if with_pidfd { libc::CLONE_PIDFD } else { 0 };
    let files_flag = if plan.unshare_fds_below.is_some() {
        libc::CLONE_FILES
    } else {
        0
    };
    let flags = libc::CLONE_VM | libc::CLONE_VFORK | files_flag | pidfd_flag | libc::SIGCHLD;
    let mut pidfd: libc::c_int = -1;
    let pidfd_out = &mut pidfd as *mut libc::c_int;
    let pid = with_child_stack(|stack| {
        let stack_top = stack.top();
        // SAFETY: child_entry follows the child contract; the stack and plan outlive the
        // child's use of them (CLONE_VFORK suspends this thread until exec or exit). With
        // CLONE_PIDFD the kernel writes the pidfd to the parent_tid argument, `pidfd_out`.
        unsafe { libc::clone(child_entry, stack_top, flags, arg, pidfd_out) }
    })
    .map_err(|e| SpawnError::new(Step::Spawn, e))?;
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
        strategy::mark_vm_not_shared();
        return Ok(Attempt::Done(finish(req, prep, Ok(None), pid, pidfd)));
    }
    strategy::mark_vm_shared();
    // The child has exec'd or exited (CLONE_VFORK): its report, if any, is in place. The only
    // step a child reports as `Spawn` is leaving the shared descriptor table.
    let reported = report.get();
    if files_flag != 0 && matches!(reported, Some((Step::Spawn, _))) {
        super::reap_failed(pid, pidfd);
        return Ok(Attempt::CouldNotUnshare);
    }
    Ok(Attempt::Done(finish(req, prep, Ok(reported), pid, pidfd)))
}

/// One above the highest descriptor the child's steps use (at least 3: the standard streams
/// stay as inherited when not redirected); `None` if that is past the largest descriptor
/// number (the step that names it fails: the child then copies the whole table, as `clone`
/// would).
fn fds_used_below(plan: &ChildPlan<'_>) -> Option<libc::c_uint> {
    let used = plan
        .fds
        .iter()
        .chain(plan.extra_fds.iter().map(|(src, _)| src))
        .chain(plan.pass_fds)
        .chain(plan.keep_fds)
        .chain(plan.close)
        .chain(plan.report.fd().as_ref())
        .copied()
        .max()
        .unwrap_or(-1);
    used.max(2).checked_add(1).map(|n| n as libc::c_uint)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lowest byte of this thread's child stack, and one past its highest.
    fn stack_bounds() -> (usize, usize) {
        with_child_stack(|stack| (stack.top() as usize - STACK_SIZE, stack.top() as usize)).unwrap()
    }

    /// The `/proc/self/maps` line of the mapping that holds `addr`: (start, end, permissions).
    fn mapping_of(addr: usize) -> Option<(usize, usize, String)> {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        maps.lines().find_map(|line| {
            let mut fields = line.split_whitespace();
            let (start, end) = fields.next()?.split_once('-')?;
            let start = usize::from_str_radix(start, 16).ok()?;
            let end = usize::from_str_radix(end, 16).ok()?;
            let perms = fields.next()?;
            (start..end)
                .contains(&addr)
                .then(|| (start, end, perms.to_string()))
        })
    }

    #[test]
    fn the_child_stack_has_an_inaccessible_guard_page_right_below_it() {
        let (lowest, top) = stack_bounds();
        let (start, end, perms) = mapping_of(lowest).expect("the stack is mapped");
        assert!(start <= lowest && top <= end, "{start:#x}-{end:#x}");
        assert_eq!(perms, "rw-p");
        let (_, guard_end, guard_perms) = mapping_of(lowest - 1).expect("a guard page");
        assert_eq!((guard_end, guard_perms.as_str()), (lowest, "---p"));
        // The same stack on the next call: one per thread.
        assert_eq!(stack_bounds(), (lowest, top));
    }

    /// Deep enough to run far past the 64 KiB stack.
    fn recurse(depth: usize) -> usize {
        let frame = std::hint::black_box([depth as u8; 1024]);
        if depth == 0 {
            return 0;
        }
        recurse(depth - 1) + frame[depth % 1024] as usize
    }

    extern "C" fn overflow(_: *mut libc::c_void) -> libc::c_int {
        let n = recurse(1 << 20);
        // SAFETY: _exit is async-signal-safe and does not return.
        unsafe { libc::_exit((n & 1) as libc::c_int) }
    }

    #[test]
    fn a_child_that_overflows_its_stack_dies_of_sigsegv() {
        let flags = libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD;
        let pid = with_child_stack(|stack| {
            // SAFETY: the child only recurses on its own stack and exits; this thread is
            // suspended until then.
            unsafe { libc::clone(overflow, stack.top(), flags, std::ptr::null_mut()) }
        })
        .unwrap();
        assert!(pid > 0, "{}", std::io::Error::last_os_error());
        let mut status = 0;
        // SAFETY: waits for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(
            libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSEGV,
            "status {status:#x}"
        );
    }
}
