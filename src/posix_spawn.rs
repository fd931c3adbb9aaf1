//! A safe layer over `posix_spawn(3)`: file actions and attributes as owned Rust values, the
//! glibc extensions looked up at run time, and errors that say which step failed.
//!
//! The engine's own `posix_spawn` path is built on these types.
//!
//! # Safety
//!
//! This module uses `unsafe` to call the C library. Each wrapper owns its C object (initialised
//! in `new`, destroyed in `Drop`) and every C string it hands to the C library, so the pointers
//! stay valid until the spawn.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::fmt;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;
use std::sync::OnceLock;

use crate::sys::signal::SigSet;

/// An extension of the C library's `posix_spawn` that may be missing at run time.
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
    /// The C name of the extension.
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
    pub fn is_available(self) -> bool {
        let f = functions();
        match self {
            Extension::AddChdir => f.addchdir.is_some(),
            Extension::AddFchdir => f.addfchdir.is_some(),
            Extension::AddClosefrom => f.addclosefrom.is_some(),
            Extension::SetSid => f.libc_at_least(2, 26),
            Extension::ReportsExecErrors => f.libc_at_least(2, 29),
        }
    }

    fn unsupported(self) -> io::Error {
        io::Error::new(
            io::ErrorKind::Unsupported,
            format!("{} is not supported here by the C library", self.name()),
        )
    }
}

type AddChdirFn =
    unsafe extern "C" fn(*mut libc::posix_spawn_file_actions_t, *const libc::c_char) -> libc::c_int;
type AddFdFn =
    unsafe extern "C" fn(*mut libc::posix_spawn_file_actions_t, libc::c_int) -> libc::c_int;

struct Functions {
    addchdir: Option<AddChdirFn>,
    addfchdir: Option<AddFdFn>,
    addclosefrom: Option<AddFdFn>,
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

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(ret))
    }
}

/// What one file action does, kept so a failure can be explained.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileAction {
    /// `open(path, flags, mode)` onto `fd`.
    Open {
        /// Target descriptor.
        fd: RawFd,
        /// Path opened.
        path: CString,
        /// `open` flags.
        flags: i32,
        /// Mode for a created file.
        mode: u32,
    },
    /// `close(fd)`.
    Close(RawFd),
    /// `dup2(from, to)`.
    Dup2(RawFd, RawFd),
    /// `chdir(path)`.
    Chdir(CString),
    /// `fchdir(fd)`.
    Fchdir(RawFd),
    /// Close every descriptor from `fd` up.
    Closefrom(RawFd),
}

/// `posix_spawn_file_actions_t`: steps the child performs, in order, before exec.
///
/// # Examples
///
/// ```
/// use popen::posix_spawn::FileActions;
///
/// let mut actions = FileActions::new()?;
/// actions.open(1, c"/dev/null", libc::O_WRONLY, 0)?;
/// actions.close(0)?;
/// assert_eq!(actions.actions().len(), 2);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct FileActions {
    raw: Box<MaybeUninit<libc::posix_spawn_file_actions_t>>,
    actions: Vec<FileAction>,
}

// SAFETY: the C object is only touched through &mut self or, at spawn, through &self while no
// other mutation can happen; it holds no thread-affine state.
unsafe impl Send for FileActions {}
// SAFETY: as above; &self methods only read.
unsafe impl Sync for FileActions {}

impl FileActions {
    /// An empty list of actions.
    ///
    /// # Errors
    ///
    /// `ENOMEM` from `posix_spawn_file_actions_init`.
    pub fn new() -> io::Result<FileActions> {
        let mut raw = Box::new(MaybeUninit::uninit());
        // SAFETY: init initialises the object behind the pointer.
        check(unsafe { libc::posix_spawn_file_actions_init(raw.as_mut_ptr()) })?;
        Ok(FileActions {
            raw,
            actions: Vec::new(),
        })
    }

    fn ptr(&mut self) -> *mut libc::posix_spawn_file_actions_t {
        self.raw.as_mut_ptr()
    }

    pub(crate) fn as_ptr(&self) -> *const libc::posix_spawn_file_actions_t {
        self.raw.as_ptr()
    }

    /// The actions added so far, in order.
    pub fn actions(&self) -> &[FileAction] {
        &self.actions
    }

    /// Opens `path` onto descriptor `fd` in the child.
    ///
    /// # Errors
    ///
    /// `EBADF` for a negative `fd`; `ENOMEM`.
    pub fn open(&mut self, fd: RawFd, path: &CStr, flags: i32, mode: u32) -> io::Result<()> {
        let path = path.to_owned();
        // SAFETY: the object is initialised; glibc copies `path`.
        check(unsafe {
            libc::posix_spawn_file_actions_addopen(
                self.ptr(),
                fd,
                path.as_ptr(),
                flags,
                mode as libc::mode_t,
            )
        })?;
        self.actions.push(FileAction::Open {
            fd,
            path,
            flags,
            mode,
        });
        Ok(())
    }

    /// Closes `fd` in the child.
    ///
    /// # Errors
    ///
    /// `EBADF` for a negative `fd`; `ENOMEM`.
    pub fn close(&mut self, fd: RawFd) -> io::Result<()> {
        // SAFETY: the object is initialised.
        check(unsafe { libc::posix_spawn_file_actions_addclose(self.ptr(), fd) })?;
        self.actions.push(FileAction::Close(fd));
        Ok(())
    }

    /// Duplicates `from` onto `to` in the child. With `from == to` it clears close-on-exec.
    ///
    /// # Errors
    ///
    /// `EBADF` for a negative descriptor; `ENOMEM`.
    pub fn dup2(&mut self, from: RawFd, to: RawFd) -> io::Result<()> {
        // SAFETY: the object is initialised.
        check(unsafe { libc::posix_spawn_file_actions_adddup2(self.ptr(), from, to) })?;
        self.actions.push(FileAction::Dup2(from, to));
        Ok(())
    }

    /// Changes directory in the child.
    ///
    /// # Errors
    ///
    /// `Unsupported` where the C library lacks `posix_spawn_file_actions_addchdir_np`; `ENOMEM`.
    pub fn chdir(&mut self, path: &CStr) -> io::Result<()> {
        let f = functions()
            .addchdir
            .ok_or_else(|| Extension::AddChdir.unsupported())?;
        let path = path.to_owned();
        // SAFETY: `f` is addchdir_np; the object is initialised; glibc copies `path`.
        check(unsafe { f(self.ptr(), path.as_ptr()) })?;
        self.actions.push(FileAction::Chdir(path));
        Ok(())
    }

    /// Changes directory to the directory open on `fd` in the child.
    ///
    /// # Errors
    ///
    /// `Unsupported` where the C library lacks `posix_spawn_file_actions_addfchdir_np`.
    pub fn fchdir(&mut self, fd: RawFd) -> io::Result<()> {
        let f = functions()
            .addfchdir
            .ok_or_else(|| Extension::AddFchdir.unsupported())?;
        // SAFETY: `f` is addfchdir_np; the object is initialised.
        check(unsafe { f(self.ptr(), fd) })?;
        self.actions.push(FileAction::Fchdir(fd));
        Ok(())
    }

    /// Closes every descriptor from `fd` up in the child.
    ///
    /// # Errors
    ///
    /// `Unsupported` where the C library lacks `posix_spawn_file_actions_addclosefrom_np`.
    pub fn closefrom(&mut self, fd: RawFd) -> io::Result<()> {
        let f = functions()
            .addclosefrom
            .ok_or_else(|| Extension::AddClosefrom.unsupported())?;
        // SAFETY: `f` is addclosefrom_np; the object is initialised.
        check(unsafe { f(self.ptr(), fd) })?;
        self.actions.push(FileAction::Closefrom(fd));
        Ok(())
    }
}

impl Drop for FileActions {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, destroyed once.
        unsafe { libc::posix_spawn_file_actions_destroy(self.raw.as_mut_ptr()) };
    }
}

impl fmt::Debug for FileActions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.actions).finish()
    }
}

/// `posix_spawnattr_t`: process attributes of the child.
///
/// # Examples
///
/// ```
/// use popen::posix_spawn::SpawnAttr;
/// use popen::SigSet;
///
/// let mut attr = SpawnAttr::new()?;
/// attr.setpgroup(0)?;
/// attr.setsigmask(&SigSet::empty())?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct SpawnAttr {
    raw: Box<MaybeUninit<libc::posix_spawnattr_t>>,
    flags: libc::c_short,
}

// SAFETY: see FileActions.
unsafe impl Send for SpawnAttr {}
// SAFETY: see FileActions.
unsafe impl Sync for SpawnAttr {}

impl SpawnAttr {
    /// Attributes with no flag set.
    ///
    /// # Errors
    ///
    /// `ENOMEM` from `posix_spawnattr_init`.
    pub fn new() -> io::Result<SpawnAttr> {
        let mut raw = Box::new(MaybeUninit::uninit());
        // SAFETY: init initialises the object behind the pointer.
        check(unsafe { libc::posix_spawnattr_init(raw.as_mut_ptr()) })?;
        Ok(SpawnAttr { raw, flags: 0 })
    }

    fn ptr(&mut self) -> *mut libc::posix_spawnattr_t {
        self.raw.as_mut_ptr()
    }

    pub(crate) fn as_ptr(&self) -> *const libc::posix_spawnattr_t {
        self.raw.as_ptr()
    }

    fn add_flag(&mut self, flag: libc::c_int) -> io::Result<()> {
        self.flags |= flag as libc::c_short;
        let flags = self.flags;
        // SAFETY: the object is initialised.
        check(unsafe { libc::posix_spawnattr_setflags(self.ptr(), flags) })
    }

    /// The `POSIX_SPAWN_*` flags set so far.
    pub fn flags(&self) -> i16 {
        self.flags
    }

    /// Puts the child in process group `pgid` (0: a new group led by the child).
    ///
    /// # Errors
    ///
    /// `EINVAL` from the C library.
    pub fn setpgroup(&mut self, pgid: libc::pid_t) -> io::Result<()> {
        // SAFETY: the object is initialised.
        check(unsafe { libc::posix_spawnattr_setpgroup(self.ptr(), pgid) })?;
        self.add_flag(libc::POSIX_SPAWN_SETPGROUP)
    }

    /// Resets the effective user and group ids to the real ones.
    ///
    /// # Errors
    ///
    /// `EINVAL` from the C library.
    pub fn resetids(&mut self) -> io::Result<()> {
        self.add_flag(libc::POSIX_SPAWN_RESETIDS)
    }

    /// Starts the child in a new session.
    ///
    /// # Errors
    ///
    /// `Unsupported` where the C library lacks `POSIX_SPAWN_SETSID`.
    pub fn setsid(&mut self) -> io::Result<()> {
        if !Extension::SetSid.is_available() {
            return Err(Extension::SetSid.unsupported());
        }
        #[cfg(target_os = "linux")]
        return self.add_flag(libc::POSIX_SPAWN_SETSID as libc::c_int);
        #[cfg(not(target_os = "linux"))]
        Err(Extension::SetSid.unsupported())
    }

    /// The child's signal mask.
    ///
    /// # Errors
    ///
    /// `EINVAL` from the C library.
    pub fn setsigmask(&mut self, mask: &SigSet) -> io::Result<()> {
        // SAFETY: the object and the set are initialised.
        check(unsafe { libc::posix_spawnattr_setsigmask(self.ptr(), mask.as_raw()) })?;
        self.add_flag(libc::POSIX_SPAWN_SETSIGMASK)
    }

    /// Signals whose disposition is reset to the default in the child.
    ///
    /// # Errors
    ///
    /// `EINVAL` from the C library.
    pub fn setsigdef(&mut self, signals: &SigSet) -> io::Result<()> {
        // SAFETY: the object and the set are initialised.
        check(unsafe { libc::posix_spawnattr_setsigdefault(self.ptr(), signals.as_raw()) })?;
        self.add_flag(libc::POSIX_SPAWN_SETSIGDEF)
    }

    /// The child's scheduling policy (`SCHED_*`) and priority.
    ///
    /// # Errors
    ///
    /// `EINVAL` from the C library.
    pub fn scheduler(&mut self, policy: i32, priority: i32) -> io::Result<()> {
        let param = libc::sched_param {
            sched_priority: priority,
        };
        // SAFETY: the object is initialised; `param` is read during the call.
        unsafe {
            check(libc::posix_spawnattr_setschedpolicy(self.ptr(), policy))?;
            check(libc::posix_spawnattr_setschedparam(self.ptr(), &param))?;
        }
        self.add_flag(libc::POSIX_SPAWN_SETSCHEDULER)
    }
}

impl Drop for SpawnAttr {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, destroyed once.
        unsafe { libc::posix_spawnattr_destroy(self.raw.as_mut_ptr()) };
    }
}

impl fmt::Debug for SpawnAttr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpawnAttr")
            .field("flags", &format_args!("{:#x}", self.flags))
            .finish()
    }
}

/// Calls `posix_spawn` (or `posix_spawnp` with `search`), returning the pid.
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
    search: bool,
) -> io::Result<libc::pid_t> {
    let mut pid = 0;
    let f = if search {
        libc::posix_spawnp
    } else {
        libc::posix_spawn
    };
    // SAFETY: per the caller's promise on argv/envp; actions and attr are initialised objects
    // that outlive the call.
    check(unsafe {
        f(
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

/// The environment of this process, as `posix_spawn` wants it.
pub(crate) fn environ() -> *const *const libc::c_char {
    extern "C" {
        static environ: *const *const libc::c_char;
    }
    // SAFETY: reading the pointer value of the C library's environ.
    unsafe { environ }
}
