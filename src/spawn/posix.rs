//! The `posix_spawn` path, built on the public [`crate::posix_spawn`] layer.
//!
//! `posix_spawn` reports a failing file action and a failing exec the same way (an errno), so
//! the step is recovered afterwards: a working directory that cannot be entered makes it a
//! chdir failure, otherwise it is an exec failure of that candidate, and the next candidate is
//! tried as `execve` over the list would.

use std::ffi::CStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::OnceLock;

use super::prepare::{FdPlan, Prepared};
use super::request::Request;
use super::{step_error, Started};
use crate::error::{SpawnError, Step};
use crate::posix_spawn::{self, FileActions, SpawnAttr};
use crate::sys::signal::SigSet;

pub(super) fn spawn(req: &Request, prep: &Prepared, fds: &FdPlan) -> Result<Started, SpawnError> {
    let setup = |e| SpawnError::new(Step::Spawn, e);
    let plain = fds.sources.iter().all(Option::is_none)
        && prep.pass_fds.is_empty()
        && prep.cwd.is_none()
        && req.close_fds;
    let built;
    let actions = match plain.then(close_fds_only).flatten() {
        Some(shared) => shared,
        None => {
            built = file_actions(req, prep, fds).map_err(setup)?;
            &built
        }
    };
    let mut attr = SpawnAttr::new().map_err(setup)?;
    if req.new_session {
        attr.setsid().map_err(setup)?;
    }
    if let Some(pgid) = req.process_group {
        attr.setpgroup(pgid).map_err(setup)?;
    }
    if req.restore_signals {
        let defaults = SigSet::from_signals([libc::SIGPIPE, libc::SIGXFSZ]).map_err(setup)?;
        attr.setsigdef(&defaults).map_err(setup)?;
    }
    if let Some(mask) = &prep.mask {
        attr.setsigmask(mask).map_err(setup)?;
    }

    let envp = prep.envp.as_ptr();
    let mut saved = 0;
    let mut last = libc::ENOENT;
    let mut tried = false;
    for path in &prep.candidates {
        // With one candidate, trying it is the check; with several, skip the missing ones.
        if prep.candidates.len() > 1 && surely_missing(path, prep.cwd.is_some()) {
            continue;
        }
        tried = true;
        // SAFETY: argv and envp are NULL-terminated arrays of C strings that `prep` keeps alive
        // during the call.
        #[allow(unsafe_code)]
        let result =
            unsafe { posix_spawn::spawn_raw(path, prep.argv.as_ptr(), envp, actions, &attr) };
        let errno = match result {
            Ok(pid) => {
                // The pidfd is opened by the caller.
                return Ok(Started::new(pid, None));
            }
            Err(e) => e.raw_os_error().unwrap_or(libc::EINVAL),
        };
        if let Some(step) = setup_step_at_fault(req, prep, errno) {
            return Err(step_error(prep, step, errno));
        }
        last = errno;
        if saved == 0 && errno != libc::ENOENT && errno != libc::ENOTDIR {
            saved = errno;
        }
    }
    if !tried {
        // No child was started, but one would have failed to enter its working directory
        // before trying any path: report that, as the other spawn paths do.
        if let Some(errno) = cwd_error(prep) {
            return Err(step_error(prep, Step::Chdir, errno));
        }
    }
    Err(step_error(
        prep,
        Step::Exec,
        if saved != 0 { saved } else { last },
    ))
}

/// The child's steps before exec: the standard streams, `pass_fds`, the working directory and
/// the closing of every other descriptor.
fn file_actions(req: &Request, prep: &Prepared, fds: &FdPlan) -> std::io::Result<FileActions> {
    let mut actions = FileActions::new()?;
    for &fd in &prep.pass_fds {
        // dup2(fd, fd) clears close-on-exec.
        actions.dup2(fd, fd)?;
    }
    for (target, src) in fds.sources.iter().enumerate() {
        if let Some(src) = *src {
            actions.dup2(src, target as i32)?;
        }
    }
    if let Some(cwd) = &prep.cwd {
        actions.chdir(cwd)?;
    }
    if req.close_fds {
        actions.closefrom(3)?;
    }
    Ok(actions)
}

/// The file actions of the most common spawn — standard streams inherited, no `pass_fds`, no
/// working directory, `close_fds` on — built once and shared: `posix_spawn` only reads them,
/// and building them costs an allocation and, in glibc, a `getrlimit` call per spawn (to
/// check the descriptor given to `addclosefrom_np`).
fn close_fds_only() -> Option<&'static FileActions> {
    static SHARED: OnceLock<Option<FileActions>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            let mut actions = FileActions::new().ok()?;
            actions.closefrom(3).ok()?;
            Some(actions)
        })
        .as_ref()
}

/// The errno `chdir` to the command's working directory would fail with, judged from the
/// parent; `None` if there is no working directory or it looks enterable.
fn cwd_error(prep: &Prepared) -> Option<i32> {
    let cwd = prep.cwd.as_ref()?;
    match std::fs::metadata(std::ffi::OsStr::from_bytes(cwd.to_bytes())) {
        Err(e) => Some(e.raw_os_error().unwrap_or(libc::ENOENT)),
        Ok(m) if !m.is_dir() => Some(libc::ENOTDIR),
        Ok(_) => {
            #[allow(unsafe_code)]
            // SAFETY: access only reads the NUL-terminated path.
            let ok = unsafe { libc::access(cwd.as_ptr(), libc::X_OK) } == 0;
            (!ok).then(|| {
                std::io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(libc::EACCES)
            })
        }
    }
}

/// Whether `path` certainly does not exist, so trying it would only cost a process. A relative
/// path with a working directory set is resolved by the child, so it is always tried.
fn surely_missing(path: &CStr, relative_to_child_cwd: bool) -> bool {
    if relative_to_child_cwd && !path.to_bytes().starts_with(b"/") {
        return false;
    }
    match std::fs::symlink_metadata(std::ffi::OsStr::from_bytes(path.to_bytes())) {
        Ok(_) => false,
        Err(e) => matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)),
    }
}

/// Which setup step, rather than the exec, caused `errno`, judged from the parent.
fn setup_step_at_fault(req: &Request, prep: &Prepared, errno: i32) -> Option<Step> {
    // `clone` fails with EAGAIN at RLIMIT_NPROC or the thread limit. `execve` gives it only to
    // a process that changed its uid while over RLIMIT_NPROC, which this child never does.
    if errno == libc::EAGAIN {
        return Some(Step::Spawn);
    }
    if cwd_error(prep).is_some() {
        return Some(Step::Chdir);
    }
    if errno == libc::EPERM && req.process_group.is_some_and(|g| g != 0) {
        return Some(Step::Setpgid);
    }
    if errno == libc::EBADF {
        // Checked before the spawn, but another thread may have closed one since.
        return super::prepare::closed_descriptor(req, &prep.pass_fds).map(|(step, _)| step);
    }
    None
}
