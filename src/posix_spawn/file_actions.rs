//! `posix_spawn_file_actions_t` as an owned value.
//!
//! # Safety
//!
//! `unsafe` here calls the C library on the object this module owns: initialised in `new`,
//! destroyed once in `Drop`, mutated only through `&mut self`. The C library copies every path
//! it is given, and this module keeps its own copy too, so no pointer outlives its string.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::fmt;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;

use super::ext::{check, Extension};

/// What one file action does, kept so the list can be inspected and a failure explained.
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
/// A failing step makes the spawn fail with that step's errno; no child is left behind.
///
/// # Examples
///
/// ```
/// use popen::posix_spawn::{FileAction, FileActions};
///
/// let mut actions = FileActions::new()?;
/// actions.open(1, c"/dev/null", libc::O_WRONLY, 0)?;
/// actions.close(0)?;
/// assert_eq!(actions.actions().len(), 2);
/// assert_eq!(actions.actions()[1], FileAction::Close(0));
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
    ///
    /// # Examples
    ///
    /// ```
    /// let actions = popen::posix_spawn::FileActions::new()?;
    /// assert!(actions.actions().is_empty());
    /// # Ok::<(), std::io::Error>(())
    /// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// use popen::posix_spawn::{FileAction, FileActions};
    ///
    /// let mut actions = FileActions::new()?;
    /// actions.dup2(5, 1)?;
    /// assert_eq!(actions.actions(), [FileAction::Dup2(5, 1)]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn actions(&self) -> &[FileAction] {
        &self.actions
    }

    /// Opens `path` with `flags` (and `mode`, for a created file) onto descriptor `fd` in the
    /// child. A relative path is resolved from the child's working directory at that point.
    ///
    /// # Errors
    ///
    /// `EBADF` for a negative `fd`; `ENOMEM`.
    ///
    /// # Examples
    ///
    /// ```
    /// use popen::posix_spawn::{FileActions, SpawnAttr};
    ///
    /// let out = std::env::temp_dir().join(format!("popen-open-doc-{}", std::process::id()));
    /// let path = std::ffi::CString::new(out.to_str().unwrap())?;
    /// let mut actions = FileActions::new()?;
    /// actions.open(1, &path, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC, 0o600)?;
    /// let child = popen::Popen::posix_spawnp("echo", &["echo", "hi"], None, &actions, &SpawnAttr::new()?)?;
    /// assert!(child.wait()?.success());
    /// assert_eq!(std::fs::read_to_string(&out)?, "hi\n");
    /// std::fs::remove_file(out)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(&mut self, fd: RawFd, path: &CStr, flags: i32, mode: u32) -> io::Result<()> {
        let path = path.to_owned();
        // SAFETY: the object is initialised; the C library copies `path`.
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

    /// Closes `fd` in the child. Closing a descriptor that is not open fails the spawn with
    /// `EBADF` on some C libraries; current glibc ignores it, as POSIX now allows.
    ///
    /// # Errors
    ///
    /// `EBADF` for a negative `fd`; `ENOMEM`.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut actions = popen::posix_spawn::FileActions::new()?;
    /// actions.close(0)?;
    /// assert_eq!(actions.close(-1).unwrap_err().raw_os_error(), Some(libc::EBADF));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn close(&mut self, fd: RawFd) -> io::Result<()> {
        // SAFETY: the object is initialised.
        check(unsafe { libc::posix_spawn_file_actions_addclose(self.ptr(), fd) })?;
        self.actions.push(FileAction::Close(fd));
        Ok(())
    }

    /// Duplicates `from` onto `to` in the child. With `from == to` it clears close-on-exec, so
    /// a descriptor of the parent is passed on (where [`Extension::ReportsExecErrors`] holds).
    ///
    /// # Errors
    ///
    /// `EBADF` for a negative descriptor; `ENOMEM`.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut actions = popen::posix_spawn::FileActions::new()?;
    /// actions.dup2(1, 2)?; // the child's stderr goes where its stdout goes
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn dup2(&mut self, from: RawFd, to: RawFd) -> io::Result<()> {
        // SAFETY: the object is initialised.
        check(unsafe { libc::posix_spawn_file_actions_adddup2(self.ptr(), from, to) })?;
        self.actions.push(FileAction::Dup2(from, to));
        Ok(())
    }

    /// Changes directory in the child; later relative paths (of `open` actions and of the
    /// program) are resolved from there.
    ///
    /// # Errors
    ///
    /// `Unsupported` where the C library lacks `posix_spawn_file_actions_addchdir_np`
    /// ([`Extension::AddChdir`]); `ENOMEM`.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut actions = popen::posix_spawn::FileActions::new()?;
    /// actions.chdir(c"/")?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn chdir(&mut self, path: &CStr) -> io::Result<()> {
        let f = Extension::AddChdir.function(|f| f.addchdir)?;
        let path = path.to_owned();
        // SAFETY: `f` is addchdir_np; the object is initialised; the C library copies `path`.
        check(unsafe { f(self.ptr(), path.as_ptr()) })?;
        self.actions.push(FileAction::Chdir(path));
        Ok(())
    }

    /// Changes directory, in the child, to the directory open on `fd` there.
    ///
    /// # Errors
    ///
    /// `Unsupported` where the C library lacks `posix_spawn_file_actions_addfchdir_np`
    /// ([`Extension::AddFchdir`]); `ENOMEM`. A descriptor that is not an open directory in
    /// the child fails the spawn.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::fd::AsRawFd;
    ///
    /// let dir = std::fs::File::open("/")?;
    /// let mut actions = popen::posix_spawn::FileActions::new()?;
    /// actions.fchdir(dir.as_raw_fd())?; // `dir` must stay open until the spawn
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn fchdir(&mut self, fd: RawFd) -> io::Result<()> {
        let f = Extension::AddFchdir.function(|f| f.addfchdir)?;
        // SAFETY: `f` is addfchdir_np; the object is initialised.
        check(unsafe { f(self.ptr(), fd) })?;
        self.actions.push(FileAction::Fchdir(fd));
        Ok(())
    }

    /// Closes every descriptor from `fd` up in the child.
    ///
    /// # Errors
    ///
    /// `Unsupported` where the C library lacks `posix_spawn_file_actions_addclosefrom_np`
    /// ([`Extension::AddClosefrom`]); `EBADF` for a negative `fd`; `ENOMEM`.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut actions = popen::posix_spawn::FileActions::new()?;
    /// actions.closefrom(3)?; // the child inherits nothing but 0, 1 and 2
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn closefrom(&mut self, fd: RawFd) -> io::Result<()> {
        let f = Extension::AddClosefrom.function(|f| f.addclosefrom)?;
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
