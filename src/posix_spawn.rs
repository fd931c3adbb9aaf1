//! `posix_spawn(3)` and `posix_spawnp(3)` as a safe API: file actions and attributes as owned
//! Rust values, the glibc extensions looked up at run time (and refused, never skipped, where
//! missing), and the child returned as its pid and pidfd ([`Spawned`]). This layer knows
//! nothing of the handle or the audit hooks: [`Popen::posix_spawn`](crate::Popen::posix_spawn)
//! makes the same call through them and returns the handle
//! [`Command::spawn`](crate::Command::spawn) returns.
//!
//! [`spawn`] and [`spawnp`] are what CPython's `os.posix_spawn` and `os.posix_spawnp` call;
//! the engine's own `posix_spawn` path is built on the same [`FileActions`], [`SpawnAttr`] and
//! call.
//!
//! | C | here |
//! | --- | --- |
//! | `posix_spawn_file_actions_addopen`, `addclose`, `adddup2` | [`FileActions::open`], [`close`](FileActions::close), [`dup2`](FileActions::dup2) |
//! | `posix_spawn_file_actions_addchdir_np`, `addfchdir_np`, `addclosefrom_np` | [`FileActions::chdir`], [`fchdir`](FileActions::fchdir), [`closefrom`](FileActions::closefrom) |
//! | `POSIX_SPAWN_SETPGROUP`, `RESETIDS`, `SETSID` | [`SpawnAttr::setpgroup`], [`resetids`](SpawnAttr::resetids), [`setsid`](SpawnAttr::setsid) |
//! | `POSIX_SPAWN_SETSIGMASK`, `SETSIGDEF` | [`SpawnAttr::setsigmask`], [`setsigdef`](SpawnAttr::setsigdef) |
//! | `POSIX_SPAWN_SETSCHEDULER`, `SETSCHEDPARAM` | [`SpawnAttr::scheduler`], [`schedparam`](SpawnAttr::schedparam) |
//!
//! # Examples
//!
//! ```
//! use popen::posix_spawn::{FileActions, SpawnAttr};
//! use popen::SigSet;
//!
//! let mut actions = FileActions::new()?;
//! actions.open(0, c"/dev/null", libc::O_RDONLY, 0)?;
//! let mut attr = SpawnAttr::new()?;
//! attr.setpgroup(0)?;
//! attr.setsigmask(&SigSet::empty())?;
//! let mut child = popen::Popen::posix_spawnp("sh", &["sh", "-c", "exit 3"], None, &actions, &attr)?;
//! assert_eq!(child.wait()?.code(), Some(3));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod attr;
mod ext;
mod file_actions;
mod raw;

use std::ffi::{CString, OsStr};
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub use attr::SpawnAttr;
pub use ext::Extension;
pub use file_actions::{FileAction, FileActions};
pub(crate) use raw::spawn_raw;

use crate::error::{SpawnError, Step};
use crate::exec::env::EnvBlock;
use crate::exec::interpreter::explain_enoent;
use crate::exec::{exec_candidates, CStringArray};
use crate::sys;

/// Starts `path` with `posix_spawn`: `argv` (`argv[0]` first), and `env` as `NAME=value`
/// entries (`None`: a snapshot of this process's environment, taken before the child exists,
/// so a thread changing it meanwhile cannot hand the child a half-changed one), after `actions`
/// and with `attr`. `path` is not searched for in `PATH`; a relative path is resolved from the
/// child's working directory.
///
/// The child is returned as a [`Spawned`]: its pid, with a pidfd where the kernel has them;
/// its standard streams are whatever `actions` made of this process's. This layer is below the
/// handle and the audit hooks: [`Popen::posix_spawn`](crate::Popen::posix_spawn) is the same
/// call, seen by the audit hooks, returning a [`Popen`](crate::Popen) that waits and reaps.
///
/// # Errors
///
/// - [`Step::Prepare`] (`InvalidInput`): `argv` is empty, or a string holds a NUL byte.
/// - [`Step::Exec`], naming `path`: the program cannot be run (missing, not executable, not
///   a regular file, or a format the kernel refuses). The errno is the exec's.
/// - [`Step::Chdir`], naming the directory: a [`chdir`](FileActions::chdir) action's
///   directory cannot be entered.
/// - [`Step::Spawn`], naming `path`: another file action, an attribute, or the creation of the
///   process failed, with that errno.
///
/// `posix_spawn` reports all of these as one errno, so the step is judged afterwards from the
/// parent: the program and the directories are checked as the child would have seen them.
/// Where the C library does not report exec failures ([`Extension::ReportsExecErrors`]: glibc
/// before 2.29), a failed exec shows instead as a child that exits with status 127.
///
/// # Examples
///
/// ```
/// use popen::posix_spawn::{self, FileActions, SpawnAttr};
/// use popen::Step;
///
/// let (actions, attr) = (FileActions::new()?, SpawnAttr::new()?);
/// let child = posix_spawn::spawn("/bin/sh", &["sh", "-c", "exit $X"], Some(&["X=4"][..]), &actions, &attr)?;
/// let mut status = 0;
/// // SAFETY: waits for our own child, whose pid is not reaped yet.
/// assert_eq!(unsafe { libc::waitpid(child.pid(), &mut status, 0) }, child.pid());
/// assert_eq!(libc::WEXITSTATUS(status), 4);
///
/// let err = posix_spawn::spawn("/no/such/program", &["x"], None, &actions, &attr).unwrap_err();
/// assert_eq!((err.step(), err.raw_os_error()), (Step::Exec, Some(libc::ENOENT)));
/// assert_eq!(err.path(), Some("/no/such/program".as_ref()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn spawn<S: AsRef<OsStr>>(
    path: impl AsRef<OsStr>,
    argv: &[S],
    env: Option<&[S]>,
    actions: &FileActions,
    attr: &SpawnAttr,
) -> Result<Spawned, SpawnError> {
    start(path.as_ref(), argv, env, actions, attr, false)
}

/// Starts `file` as `posix_spawnp` does: like [`spawn`], but a name without a slash is
/// searched for in the directories of this process's `PATH` (`/bin:/usr/bin` where it is
/// unset), not in the `PATH` of `env`. The search runs in this process, not in the child (the
/// C library's would read `PATH` there, racing with a thread that changes the environment),
/// trying each directory with `posix_spawn`.
///
/// # Errors
///
/// As [`spawn`]; [`Step::Exec`] when no directory of `PATH` has a runnable `file`.
///
/// # Examples
///
/// ```
/// use popen::posix_spawn::{self, FileActions, SpawnAttr};
///
/// let (actions, attr) = (FileActions::new()?, SpawnAttr::new()?);
/// let mut child = popen::Popen::posix_spawnp("true", &["true"], None, &actions, &attr)?;
/// assert!(child.wait()?.success());
///
/// let err = posix_spawn::spawnp("surely-no-such-program", &["x"], None, &actions, &attr);
/// assert_eq!(err.unwrap_err().step(), popen::Step::Exec);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn spawnp<S: AsRef<OsStr>>(
    file: impl AsRef<OsStr>,
    argv: &[S],
    env: Option<&[S]>,
    actions: &FileActions,
    attr: &SpawnAttr,
) -> Result<Spawned, SpawnError> {
    start(file.as_ref(), argv, env, actions, attr, true)
}

fn cstring(what: &str, s: &OsStr) -> Result<CString, SpawnError> {
    CString::new(s.as_bytes())
        .map_err(|_| SpawnError::invalid(format!("{what} contains a NUL byte: {s:?}")))
}

fn cstring_array<S: AsRef<OsStr>>(what: &str, items: &[S]) -> Result<CStringArray, SpawnError> {
    let strings = items
        .iter()
        .enumerate()
        .map(|(i, s)| cstring(&format!("{what} {i}"), s.as_ref()))
        .collect::<Result<_, _>>()?;
    Ok(CStringArray::new(strings))
}

fn start<S: AsRef<OsStr>>(
    program: &OsStr,
    argv: &[S],
    env: Option<&[S]>,
    actions: &FileActions,
    attr: &SpawnAttr,
    search: bool,
) -> Result<Spawned, SpawnError> {
    if argv.is_empty() {
        return Err(SpawnError::invalid("the argument list is empty"));
    }
    let c_program = cstring("program", program)?;
    let c_argv = cstring_array("argument", argv)?;
    let c_env = env
        .map(|e| {
            EnvBlock::from_entries(e).map_err(|i| {
                let entry = e[i].as_ref();
                SpawnError::invalid(format!(
                    "environment entry {i} contains a NUL byte: {entry:?}"
                ))
            })
        })
        .transpose()?;
    // Without an environment of the caller's, the child gets a snapshot of this process's,
    // taken under the standard library's environment lock: the C library's `environ`, read
    // by the child itself, may be half-changed by another thread's `std::env::set_var`.
    let inherited;
    let envp = match &c_env {
        Some(e) => e.as_ptr(),
        None => {
            inherited = EnvBlock::snapshot();
            inherited.as_ptr()
        }
    };
    // SAFETY: argv and envp are NULL-terminated arrays of C strings that `c_argv` and `c_env`
    // (or `inherited`) keep alive during the call.
    #[allow(unsafe_code)]
    let result = unsafe {
        if search && !program.is_empty() && !program.as_bytes().contains(&b'/') {
            spawn_in_path(program, c_argv.as_ptr(), envp, actions, attr)
        } else {
            // posix_spawnp with a slash (or nothing) in the name is posix_spawn.
            spawn_raw(&c_program, c_argv.as_ptr(), envp, actions, attr)
        }
    };
    let pid = result.map_err(|e| failure(program, search, actions, e))?;
    // The C library's posix_spawn makes no pidfd: open one now, checking that the child is
    // still ours (where SIGCHLD is ignored it may have exited and been reaped already).
    Ok(match sys::pidfd::pidfd_open_child(pid) {
        Ok(pidfd) => Spawned {
            pid,
            pidfd,
            reaped_elsewhere: false,
        },
        Err(e) => Spawned {
            pid,
            pidfd: None,
            reaped_elsewhere: e.raw_os_error() == Some(libc::ESRCH),
        },
    })
}

/// A child started by [`spawn`] or [`spawnp`]: its pid, and a pidfd where the kernel has them.
/// Nothing waits for it: the caller reaps it (or spawns through
/// [`Popen::posix_spawn`](crate::Popen::posix_spawn), whose handle does).
#[derive(Debug)]
pub struct Spawned {
    pid: libc::pid_t,
    pidfd: Option<OwnedFd>,
    reaped_elsewhere: bool,
}

impl Spawned {
    /// The child's process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The child's pidfd (close-on-exec), where the kernel has pidfds and the descriptor table
    /// had room.
    pub fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        self.pidfd.as_ref().map(|fd| fd.as_fd())
    }

    /// Whether the child was seen gone (reaped by the kernel, SIGCHLD being ignored) before
    /// its pidfd could be opened: its status is lost.
    pub fn reaped_elsewhere(&self) -> bool {
        self.reaped_elsewhere
    }

    /// The pid, the pidfd and whether the child was seen gone.
    pub(crate) fn into_parts(self) -> (libc::pid_t, Option<OwnedFd>, bool) {
        (self.pid, self.pidfd, self.reaped_elsewhere)
    }
}

/// `posix_spawnp`'s search of `PATH`, done in the parent: the C library's reads `PATH` with
/// `getenv` in the child, which shares this process's memory while another thread may be
/// changing the environment. Each directory of this process's `PATH` (`/bin:/usr/bin` where it
/// is unset) is tried in order, as the C library's `execvpe` does: after `EACCES` or a "not
/// there" error the search goes on, any other error ends it, and the error of a search that
/// found nothing is `EACCES` if one was seen, else the last one.
///
/// # Safety
///
/// As [`spawn_raw`]: `argv` and `envp` are NULL-terminated arrays of C strings that stay valid
/// for the call.
#[allow(unsafe_code)]
unsafe fn spawn_in_path(
    program: &OsStr,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    actions: &FileActions,
    attr: &SpawnAttr,
) -> io::Result<libc::pid_t> {
    // Read under the standard library's environment lock.
    let path = std::env::var_os("PATH");
    let candidates = exec_candidates(program, path.as_deref());
    let several = candidates.len() > 1;
    let mut denied = false;
    let mut last = libc::ENOENT;
    for candidate in &candidates {
        // Trying a path costs a process: skip the ones that surely are not there. A relative
        // one is resolved in the child, after the file actions, so it is always tried.
        let bytes = candidate.to_bytes();
        if several
            && bytes.starts_with(b"/")
            && std::fs::symlink_metadata(OsStr::from_bytes(bytes)).is_err()
        {
            continue;
        }
        // SAFETY: per this function's contract.
        match unsafe { spawn_raw(candidate, argv, envp, actions, attr) } {
            Ok(pid) => return Ok(pid),
            Err(e) => match e.raw_os_error() {
                Some(
                    errno @ (libc::EACCES
                    | libc::ENOENT
                    | libc::ENOTDIR
                    | libc::ESTALE
                    | libc::ENODEV
                    | libc::ETIMEDOUT),
                ) => {
                    denied |= errno == libc::EACCES;
                    last = errno;
                }
                _ => return Err(e),
            },
        }
    }
    Err(io::Error::from_raw_os_error(if denied {
        libc::EACCES
    } else {
        last
    }))
}

/// The typed error for a failed `posix_spawn`, its step judged from the parent.
fn failure(program: &OsStr, search: bool, actions: &FileActions, error: io::Error) -> SpawnError {
    let Some(errno) = error.raw_os_error() else {
        return SpawnError::new(Step::Spawn, error).with_path(program);
    };
    let cwd = match ChildView::after(actions.actions()) {
        Ok(view) => view.cwd,
        Err(dir) => {
            let err = SpawnError::from_errno(Step::Chdir, errno);
            return match dir {
                Some(dir) => err.with_path(dir),
                None => err,
            };
        }
    };
    // Errors no file action or attribute produces.
    let exec_only = matches!(errno, libc::ENOEXEC | libc::E2BIG | libc::ELIBBAD);
    let step = if exec_only || !runnable(program, search, cwd.as_deref()) {
        Step::Exec
    } else {
        Step::Spawn
    };
    let err = SpawnError::from_errno(step, errno).with_path(program);
    if step != Step::Exec || errno != libc::ENOENT {
        return err;
    }
    let path = (search && !program.as_bytes().contains(&b'/'))
        .then(|| std::env::var_os("PATH"))
        .map(|p| p.unwrap_or_else(|| "/bin:/usr/bin".into()));
    let candidates = exec_candidates(program, path.as_deref());
    match explain_enoent(&candidates, cwd.as_deref().map(Path::as_os_str)) {
        Some(missing) => err.with_missing_interpreter(missing),
        None => err,
    }
}

/// The child's working directory and descriptors as the parent can name them, after the file
/// actions.
struct ChildView {
    /// `None`: this process's working directory.
    cwd: Option<PathBuf>,
    /// Child descriptors that actions pointed elsewhere than this process's same number
    /// (`None`: closed).
    fds: Vec<(RawFd, Option<PathBuf>)>,
    /// The lowest descriptor of a closefrom action, above which the rest are closed.
    closed_from: Option<RawFd>,
}

impl ChildView {
    /// Follows the actions; `Err` names the directory of a chdir action that would fail
    /// (`None` for an fchdir).
    fn after(actions: &[FileAction]) -> Result<ChildView, Option<PathBuf>> {
        let mut view = ChildView {
            cwd: None,
            fds: Vec::new(),
            closed_from: None,
        };
        for action in actions {
            match action {
                FileAction::Open { fd, path, .. } => {
                    let p = view.resolve(Path::new(OsStr::from_bytes(path.to_bytes())));
                    view.set_fd(*fd, Some(p));
                }
                FileAction::Dup2(from, to) => {
                    let p = view.fd_path(*from);
                    view.set_fd(*to, p);
                }
                FileAction::Close(fd) => view.set_fd(*fd, None),
                FileAction::Closefrom(low) => {
                    view.fds.retain(|(fd, _)| fd < low);
                    view.closed_from = Some(view.closed_from.map_or(*low, |c| c.min(*low)));
                }
                FileAction::Chdir(dir) => {
                    let dir = Path::new(OsStr::from_bytes(dir.to_bytes()));
                    let resolved = view.resolve(dir);
                    if !raw::is_enterable_dir(&resolved) {
                        return Err(Some(dir.to_owned()));
                    }
                    view.cwd = Some(resolved);
                }
                FileAction::Fchdir(fd) => match view.fd_path(*fd) {
                    Some(dir) if raw::is_enterable_dir(&dir) => view.cwd = Some(dir),
                    _ => return Err(None),
                },
            }
        }
        Ok(view)
    }

    fn resolve(&self, path: &Path) -> PathBuf {
        match &self.cwd {
            Some(cwd) => cwd.join(path),
            None => path.to_owned(),
        }
    }

    fn set_fd(&mut self, fd: RawFd, path: Option<PathBuf>) {
        self.fds.retain(|(f, _)| *f != fd);
        self.fds.push((fd, path));
    }

    /// A path to what the child's `fd` refers to, if it is open.
    fn fd_path(&self, fd: RawFd) -> Option<PathBuf> {
        if let Some((_, p)) = self.fds.iter().find(|(f, _)| *f == fd) {
            return p.clone();
        }
        if self.closed_from.is_some_and(|low| fd >= low) {
            return None;
        }
        Some(PathBuf::from(format!("/proc/self/fd/{fd}")))
    }
}

/// Whether the program would run as the child sees it: found (in `PATH` for a search), a
/// regular executable file, and, for a `#!` script, with a runnable interpreter.
fn runnable(program: &OsStr, search: bool, cwd: Option<&Path>) -> bool {
    let resolve = |p: &Path| cwd.map_or_else(|| p.to_owned(), |c| c.join(p));
    let runs = |p: &Path| {
        let p = resolve(p);
        raw::is_executable_file(&p) && interpreter_runs(&p)
    };
    if !search || program.as_bytes().contains(&b'/') {
        return runs(Path::new(program));
    }
    if program.is_empty() {
        return false;
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/bin:/usr/bin".into());
    path.as_bytes().split(|&b| b == b':').any(|dir| {
        let dir = if dir.is_empty() { b"." } else { dir };
        runs(&Path::new(OsStr::from_bytes(dir)).join(program))
    })
}

/// For a `#!` script, whether its interpreter is a runnable file; true for anything else.
fn interpreter_runs(script: &Path) -> bool {
    let mut head = [0u8; 256];
    let n = std::fs::File::open(script)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    let Some(line) = head[..n].strip_prefix(b"#!") else {
        return true;
    };
    let line = line.split(|&b| b == b'\n').next().unwrap_or(line);
    match line
        .split(|&b| b == b' ' || b == b'\t')
        .find(|w| !w.is_empty())
    {
        Some(interp) => raw::is_executable_file(Path::new(OsStr::from_bytes(interp))),
        None => false,
    }
}
