//! The call itself, and the parent-side checks that explain a failure.
//!
//! # Safety
//!
//! `unsafe` here calls `posix_spawn`/`posix_spawnp` with pointer arrays whose validity the
//! caller promises, and calls `faccessat` on a C string.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::attr::SpawnAttr;
use super::ext::check;
use super::file_actions::FileActions;

/// Calls `posix_spawn`, returning the pid. (`posix_spawnp` is never called: its search reads
/// `PATH` in the child; see `posix_spawn::spawnp`.)
///
/// # Safety
///
/// `argv` and `envp` must be NULL-terminated arrays of pointers to NUL-terminated strings that
/// stay valid for the call.
pub(crate) unsafe fn spawn_raw(
    path: &CStr,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    actions: &FileActions,
    attr: &SpawnAttr,
) -> io::Result<libc::pid_t> {
    let mut pid = 0;
    // SAFETY: per the caller's promise on argv/envp; actions and attr are initialised objects
    // that outlive the call.
    check(unsafe {
        libc::posix_spawn(
            &mut pid,
            path.as_ptr(),
            actions.as_ptr(),
            attr.as_ptr(),
            argv as _,
            envp as _,
        )
    })?;
    Ok(pid)
}

/// Whether `path` names a regular file this process may execute (with its effective ids, as
/// exec checks).
pub(crate) fn is_executable_file(path: &Path) -> bool {
    may_search_or_execute(path) && std::fs::metadata(path).is_ok_and(|m| m.is_file())
}

/// Whether `path` names a directory this process may enter.
pub(crate) fn is_enterable_dir(path: &Path) -> bool {
    may_search_or_execute(path) && std::fs::metadata(path).is_ok_and(|m| m.is_dir())
}

/// `faccessat(path, X_OK, AT_EACCESS)`: execute (or, for a directory, search) permission with
/// the effective ids.
fn may_search_or_execute(path: &Path) -> bool {
    let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: faccessat only reads the NUL-terminated path.
    unsafe {
        libc::faccessat(
            libc::AT_FDCWD,
            c_path.as_ptr(),
            libc::X_OK,
            libc::AT_EACCESS,
        ) == 0
    }
}
