//! `Command::exec`: the spawn's steps run in the calling process, which then becomes the
//! program (std's `CommandExt::exec`).
//!
//! # Safety
//!
//! The steps are the child's own (`child::run_steps_and_exec`, with `in_place` set), run on a
//! plan this module builds exactly as a spawn does. Nothing here shares memory with a child or
//! runs after a fork: the only `unsafe` is the call into those steps, whose contract a plan
//! built by `prepare` and kept alive across the call satisfies, and reading and restoring
//! signal dispositions.
#![allow(unsafe_code)]

use std::convert::Infallible;

use super::child::{self, ChildPlan};
use super::prepare;
use super::report::Report;
use super::request::{Hook, Request};
use super::{child_plan, step_error};
use crate::error::SpawnError;
use crate::stdio::StdioKind;

/// Runs the steps of a spawn of `req` in this process and execs its program; returns only on
/// a failure, naming the step.
pub(crate) fn exec(req: &mut Request) -> SpawnError {
    match exec_or_fail(req) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

fn exec_or_fail(req: &mut Request) -> Result<Infallible, SpawnError> {
    let prep = super::prepare_audited(req)?;
    if [&req.stdin, &req.stdout, &req.stderr]
        .iter()
        .any(|s| matches!(s.0, StdioKind::Pipe))
    {
        return Err(SpawnError::invalid(
            "exec cannot pipe a standard stream: the process that would hold the other end is \
             the one being replaced",
        ));
    }
    let fds = prepare::plan_fds(req)?;
    // The hooks are called through a raw pointer: the plan borrows the rest of the request.
    let hooks: *mut [Hook] = req.hooks.as_mut_slice();
    let plan = ChildPlan {
        in_place: true,
        unshare_fds_below: None,
        // The signal is tied to this process's parent, as it would be after a fork.
        // SAFETY: getppid cannot fail.
        pdeathsig: req
            .parent_death_signal
            .map(|s| (s, unsafe { libc::getppid() })),
        ..child_plan(req, &prep, &fds, Report::Caller, prep.mask.as_ref(), false)
    };
    let saved = SavedSignals::save();
    // SAFETY: the plan borrows `prep` and `fds`, alive until this returns; the hooks are the
    // request's own, called in this process (`in_place`), which the caller accepted with
    // `pre_exec`. On success this never returns.
    let (step, errno) = unsafe { child::run_steps_and_exec(&plan, &mut *hooks) };
    saved.restore();
    Err(step_error(&prep, step, errno))
}

/// The dispositions of the signals `restore_signals` resets, and this thread's mask: put back
/// when the exec fails, so that a Rust program that goes on is not killed by its next write to
/// a closed pipe.
struct SavedSignals {
    actions: [(libc::c_int, libc::sigaction); 2],
    mask: libc::sigset_t,
}

impl SavedSignals {
    fn save() -> SavedSignals {
        // SAFETY: sigaction and pthread_sigmask only write the structs we own.
        unsafe {
            let mut saved = SavedSignals {
                actions: [
                    (libc::SIGPIPE, std::mem::zeroed()),
                    (libc::SIGXFSZ, std::mem::zeroed()),
                ],
                mask: std::mem::zeroed(),
            };
            for (sig, action) in &mut saved.actions {
                libc::sigaction(*sig, std::ptr::null(), action);
            }
            libc::pthread_sigmask(libc::SIG_SETMASK, std::ptr::null(), &mut saved.mask);
            saved
        }
    }

    fn restore(&self) {
        // SAFETY: puts back what `save` read.
        unsafe {
            for (sig, action) in &self.actions {
                libc::sigaction(*sig, action, std::ptr::null_mut());
            }
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.mask, std::ptr::null_mut());
        }
    }
}
