//! What an `execve` needs, built in the parent, and what its failures mean: NULL-terminated
//! arrays of C strings, the environment block, the paths a program is tried at, and why an
//! `ENOENT` may name a file that exists. Shared by the `posix_spawn` layer and the engine.

pub(crate) mod env;
pub(crate) mod interpreter;

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;

/// A NULL-terminated array of pointers into owned C strings.
pub(crate) struct CStringArray {
    /// What `ptrs` points into: only kept alive.
    _strings: Vec<CString>,
    ptrs: Vec<*const libc::c_char>,
}

// SAFETY: the pointers point into `strings`, which the array owns and never mutates.
#[allow(unsafe_code)]
unsafe impl Send for CStringArray {}
// SAFETY: as above; shared access only reads.
#[allow(unsafe_code)]
unsafe impl Sync for CStringArray {}

impl CStringArray {
    pub(crate) fn new(strings: Vec<CString>) -> CStringArray {
        let mut ptrs = Vec::with_capacity(strings.len() + 1);
        ptrs.extend(strings.iter().map(|s| s.as_ptr()));
        ptrs.push(std::ptr::null());
        CStringArray {
            _strings: strings,
            ptrs,
        }
    }

    pub(crate) fn as_ptr(&self) -> *const *const libc::c_char {
        self.ptrs.as_ptr()
    }
}

/// The paths to try for `program`, as CPython builds `executable_list`: the program itself if
/// it has a `/`, else each `PATH` directory joined with it (`/bin:/usr/bin` without a `PATH`).
/// `program` holds no NUL byte; a `PATH` entry that does cannot name a file and is skipped.
pub(crate) fn exec_candidates(program: &OsStr, path: Option<&OsStr>) -> Vec<CString> {
    let program = program.as_bytes();
    // One allocation per path, sized for the terminating NUL, so `CString::new` neither grows
    // nor shrinks it.
    let joined = |dir: &[u8]| {
        let slash = !dir.is_empty() && !dir.ends_with(b"/");
        let mut p = Vec::with_capacity(dir.len() + usize::from(slash) + program.len() + 1);
        p.extend_from_slice(dir);
        if slash {
            p.push(b'/');
        }
        p.extend_from_slice(program);
        CString::new(p).ok()
    };
    if program.contains(&b'/') {
        return joined(b"").into_iter().collect();
    }
    let path = path.map(OsStr::as_bytes).unwrap_or(b"/bin:/usr/bin");
    path.split(|&b| b == b':').filter_map(joined).collect()
}
