//! The C library's `posix_spawn` extensions, looked up at run time.
//!
//! # Safety
//!
//! `unsafe` here only looks symbols up with `dlsym` and reads the C library's version string;
//! a found symbol is cast to the signature its C library documents.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::io;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

/// An extension of the C library's `posix_spawn` that may be missing at run time.
///
/// Every method that needs one refuses with an [`io::ErrorKind::Unsupported`] error where the
/// running C library lacks it; nothing is silently skipped.
///
/// # Examples
///
/// ```
/// use popen::posix_spawn::{Extension, FileActions};
///
/// let mut actions = FileActions::new()?;
/// match actions.chdir(c"/tmp") {
///     Ok(()) => assert!(Extension::AddChdir.is_available()),
///     Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::Unsupported),
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Extension {
    /// `posix_spawn_file_actions_addchdir_np` (glibc ≥ 2.29).
    AddChdir,
    /// `posix_spawn_file_actions_addfchdir_np` (glibc ≥ 2.29).
    AddFchdir,
    /// `posix_spawn_file_actions_addclosefrom_np` (glibc ≥ 2.34).
    AddClosefrom,
    /// `POSIX_SPAWN_SETSID` (glibc ≥ 2.26).
    SetSid,
    /// `posix_spawn` reports exec failures to the caller, and `adddup2(fd, fd)` clears
    /// close-on-exec (glibc ≥ 2.29; musl).
    ReportsExecErrors,
}

impl Extension {
    /// Every extension.
    pub const ALL: [Extension; 5] = [
        Extension::AddChdir,
        Extension::AddFchdir,
        Extension::AddClosefrom,
        Extension::SetSid,
        Extension::ReportsExecErrors,
    ];

    /// The C name of the extension.
    ///
    /// # Examples
    ///
    /// ```
    /// use popen::posix_spawn::Extension;
    ///
    /// assert_eq!(Extension::SetSid.name(), "POSIX_SPAWN_SETSID");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Extension::AddChdir => "posix_spawn_file_actions_addchdir_np",
            Extension::AddFchdir => "posix_spawn_file_actions_addfchdir_np",
            Extension::AddClosefrom => "posix_spawn_file_actions_addclosefrom_np",
            Extension::SetSid => "POSIX_SPAWN_SETSID",
            Extension::ReportsExecErrors => "exec error reporting",
        }
    }

    /// Whether the running C library has it.
    ///
    /// # Examples
    ///
    /// ```
    /// use popen::posix_spawn::Extension;
    ///
    /// for ext in Extension::ALL {
    ///     println!("{}: {}", ext.name(), ext.is_available());
    /// }
    /// ```
    pub fn is_available(self) -> bool {
        if HIDDEN.load(Ordering::Relaxed) & self.bit() != 0 {
            return false;
        }
        let f = functions();
        match self {
            Extension::AddChdir => f.addchdir.is_some(),
            Extension::AddFchdir => f.addfchdir.is_some(),
            Extension::AddClosefrom => f.addclosefrom.is_some(),
            Extension::SetSid => f.libc_at_least(2, 26),
            Extension::ReportsExecErrors => f.libc_at_least(2, 29),
        }
    }

    /// Makes this process behave as if the C library lacked (`true`) or had again (`false`)
    /// this extension: for tests of the refusals and of the fallbacks, on a C library that has
    /// everything. Process-wide. Reached through
    /// [`testing::simulate_missing_extension`](crate::testing::simulate_missing_extension).
    pub(crate) fn simulate_missing(self, missing: bool) {
        if missing {
            HIDDEN.fetch_or(self.bit(), Ordering::Relaxed);
        } else {
            HIDDEN.fetch_and(!self.bit(), Ordering::Relaxed);
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// The error for a missing extension.
    pub(super) fn unsupported(self) -> io::Error {
        io::Error::new(
            io::ErrorKind::Unsupported,
            format!("{} is not supported here by the C library", self.name()),
        )
    }

    /// The extension's function, or the refusal.
    pub(super) fn function<F: Copy>(
        self,
        f: impl FnOnce(&Functions) -> Option<F>,
    ) -> io::Result<F> {
        if !self.is_available() {
            return Err(self.unsupported());
        }
        f(functions()).ok_or_else(|| self.unsupported())
    }
}

static HIDDEN: AtomicU8 = AtomicU8::new(0);

pub(super) type AddChdirFn =
    unsafe extern "C" fn(*mut libc::posix_spawn_file_actions_t, *const libc::c_char) -> libc::c_int;
pub(super) type AddFdFn =
    unsafe extern "C" fn(*mut libc::posix_spawn_file_actions_t, libc::c_int) -> libc::c_int;

pub(super) struct Functions {
    pub(super) addchdir: Option<AddChdirFn>,
    pub(super) addfchdir: Option<AddFdFn>,
    pub(super) addclosefrom: Option<AddFdFn>,
    /// (major, minor) of glibc; musl and others report `None`.
    glibc: Option<(u32, u32)>,
}

impl Functions {
    fn libc_at_least(&self, major: u32, minor: u32) -> bool {
        match self.glibc {
            Some(v) => v >= (major, minor),
            None => cfg!(target_env = "musl"),
        }
    }
}

fn functions() -> &'static Functions {
    static F: OnceLock<Functions> = OnceLock::new();
    F.get_or_init(|| {
        fn sym(name: &CStr) -> *mut libc::c_void {
            // SAFETY: dlsym with RTLD_DEFAULT only looks a name up.
            unsafe { libc::dlsym(std::ptr::null_mut(), name.as_ptr()) }
        }
        let addchdir = sym(c"posix_spawn_file_actions_addchdir_np");
        let addfchdir = sym(c"posix_spawn_file_actions_addfchdir_np");
        let addclosefrom = sym(c"posix_spawn_file_actions_addclosefrom_np");
        // SAFETY: each non-null symbol is the C function of that name, whose signature the
        // C library documents and the types above spell out.
        unsafe {
            Functions {
                addchdir: (!addchdir.is_null())
                    .then(|| std::mem::transmute::<_, AddChdirFn>(addchdir)),
                addfchdir: (!addfchdir.is_null())
                    .then(|| std::mem::transmute::<_, AddFdFn>(addfchdir)),
                addclosefrom: (!addclosefrom.is_null())
                    .then(|| std::mem::transmute::<_, AddFdFn>(addclosefrom)),
                glibc: glibc_version(),
            }
        }
    })
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn glibc_version() -> Option<(u32, u32)> {
    // SAFETY: gnu_get_libc_version returns a static NUL-terminated string.
    let v = unsafe { CStr::from_ptr(libc::gnu_get_libc_version()) }
        .to_str()
        .ok()?;
    let mut parts = v.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn glibc_version() -> Option<(u32, u32)> {
    None
}

/// Turns the C library's returned error number into a `Result`.
pub(super) fn check(ret: libc::c_int) -> io::Result<()> {
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(ret))
    }
}
