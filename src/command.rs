//! The builder: a description of the child to start. Configuration only — nothing here makes
//! a system call; [`Command::spawn`] does the work.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use crate::error::SpawnError;
use crate::popen::Popen;
use crate::rlimit::Resource;
use crate::spawn::{self, PathChoice, SpawnPath};
use crate::stdio::Stdio;
use crate::sys::signal::SigSet;

/// The signal mask the child starts with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SignalMask {
    /// No signal blocked (the default): a mask blocked in some parent thread does not leak into
    /// the child.
    #[default]
    Empty,
    /// The mask of the thread that spawns, as `fork` would leave it (CPython's `fork_exec`).
    Inherit,
    /// Exactly this set.
    Set(SigSet),
}

pub(crate) type Hook = Box<dyn FnMut() -> io::Result<()> + Send + Sync>;

pub(crate) enum PassFd {
    Owned(OwnedFd),
    Raw(RawFd),
}

impl PassFd {
    pub(crate) fn raw(&self) -> RawFd {
        match self {
            PassFd::Owned(fd) => fd.as_raw_fd(),
            PassFd::Raw(fd) => *fd,
        }
    }
}

/// A description of a child process: program, arguments, environment, redirections and every
/// other option of CPython's `subprocess.Popen` on POSIX.
///
/// Options that CPython turns on by default are on here too: `close_fds` and
/// `restore_signals`.
///
/// # Examples
///
/// ```
/// use popen::{Command, Stdio};
/// use std::io::Read;
///
/// let mut child = Command::new("echo")
///     .arg("hello")
///     .stdout(Stdio::piped())
///     .spawn()?;
/// let mut out = String::new();
/// child.stdout.take().unwrap().read_to_string(&mut out)?;
/// assert!(child.wait()?.success());
/// assert_eq!(out, "hello\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Command {
    pub(crate) argv: Vec<OsString>,
    pub(crate) executable: Option<OsString>,
    pub(crate) executable_list: Option<Vec<OsString>>,
    pub(crate) cwd: Option<OsString>,
    pub(crate) env_clear: bool,
    pub(crate) env: Vec<(OsString, Option<OsString>)>,
    /// Set by [`Command::environ`]: the whole environment, entry by entry.
    pub(crate) environ: Option<Vec<OsString>>,
    pub(crate) stdin: Stdio,
    pub(crate) stdout: Stdio,
    pub(crate) stderr: Stdio,
    pub(crate) close_fds: bool,
    pub(crate) pass_fds: Vec<PassFd>,
    pub(crate) close_in_child: Vec<RawFd>,
    pub(crate) restore_signals: bool,
    pub(crate) signal_mask: SignalMask,
    pub(crate) new_session: bool,
    pub(crate) process_group: Option<i32>,
    pub(crate) uid: Option<u32>,
    pub(crate) gid: Option<u32>,
    pub(crate) extra_groups: Option<Vec<u32>>,
    pub(crate) umask: Option<u32>,
    pub(crate) pipe_size: Option<usize>,
    pub(crate) hooks: Vec<Hook>,
    pub(crate) rlimits: Vec<(Resource, u64, u64)>,
    pub(crate) parent_death_signal: Option<i32>,
    pub(crate) spawn_path: Option<SpawnPath>,
    pub(crate) keep_failed_child: bool,
}

impl Command {
    /// A command that runs `program` (looked up in `PATH` when it has no `/`) with `program` as
    /// its `argv[0]`.
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command::from_argv_unchecked(vec![program.as_ref().to_owned()])
    }

    /// A command that runs `cmd` through `/bin/sh -c` (CPython's `shell=True`).
    ///
    /// ```
    /// let status = popen::Command::shell("test 2 -gt 1").spawn()?.wait()?;
    /// assert!(status.success());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shell(cmd: impl AsRef<OsStr>) -> Command {
        Command::from_argv_unchecked(vec!["/bin/sh".into(), "-c".into(), cmd.as_ref().to_owned()])
    }

    /// A command from a whole argument vector, `argv[0]` first. An empty vector is accepted
    /// here and refused by [`spawn`](Self::spawn), before anything is created.
    pub fn from_argv<I, S>(argv: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Command::from_argv_unchecked(argv.into_iter().map(|a| a.as_ref().to_owned()).collect())
    }

    fn from_argv_unchecked(argv: Vec<OsString>) -> Command {
        Command {
            argv,
            executable: None,
            executable_list: None,
            cwd: None,
            env_clear: false,
            env: Vec::new(),
            environ: None,
            stdin: Stdio::inherit(),
            stdout: Stdio::inherit(),
            stderr: Stdio::inherit(),
            close_fds: true,
            pass_fds: Vec::new(),
            close_in_child: Vec::new(),
            restore_signals: true,
            signal_mask: SignalMask::Empty,
            new_session: false,
            process_group: None,
            uid: None,
            gid: None,
            extra_groups: None,
            umask: None,
            pipe_size: None,
            hooks: Vec::new(),
            rlimits: Vec::new(),
            parent_death_signal: None,
            spawn_path: None,
            keep_failed_child: false,
        }
    }

    /// Appends an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.argv.push(arg.as_ref().to_owned());
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.argv
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// The file to execute, when it differs from `argv[0]` (CPython's `executable`). Without a
    /// `/` it is looked up in `PATH`.
    ///
    /// ```
    /// use popen::{Command, Stdio};
    /// use std::io::Read;
    ///
    /// let mut child = Command::from_argv(["renamed", "-c", "echo $0"])
    ///     .executable("/bin/sh")
    ///     .stdout(Stdio::piped())
    ///     .spawn()?;
    /// let mut out = String::new();
    /// child.stdout.take().unwrap().read_to_string(&mut out)?;
    /// child.wait()?;
    /// assert_eq!(out, "renamed\n");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn executable(&mut self, path: impl AsRef<OsStr>) -> &mut Command {
        self.executable = Some(path.as_ref().to_owned());
        self
    }

    /// The exact list of paths to try with `execve`, in order, instead of a `PATH` search
    /// (CPython's `executable_list`). The first error that is not `ENOENT`/`ENOTDIR` is the one
    /// reported, else the last.
    pub fn executable_list<I, S>(&mut self, paths: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.executable_list = Some(paths.into_iter().map(|p| p.as_ref().to_owned()).collect());
        self
    }

    /// The child's working directory. A relative program path is resolved from it.
    pub fn cwd(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.cwd = Some(dir.as_ref().as_os_str().to_owned());
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Command {
        self.set_env(key.as_ref(), Some(value.as_ref().to_owned()));
        self
    }

    /// Sets several environment variables.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (k, v) in vars {
            self.env(k, v);
        }
        self
    }

    /// Removes an environment variable from the child's environment.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.set_env(key.as_ref(), None);
        self
    }

    /// Starts the child with an empty environment, plus what [`env`](Self::env) adds afterwards.
    pub fn env_clear(&mut self) -> &mut Command {
        self.env_clear = true;
        self.env.clear();
        self
    }

    /// Sets the child's whole environment to `entries`, each passed to `execve` byte for byte
    /// and in this order: duplicates, entries without `=` and empty entries included (CPython's
    /// `fork_exec` passes its `env` list so). It replaces the parent's environment and anything
    /// [`env`](Self::env), [`env_remove`](Self::env_remove) or [`env_clear`](Self::env_clear)
    /// set; a program without `/` is searched in the first `PATH=` entry.
    ///
    /// ```
    /// let mut cmd = popen::Command::new("/usr/bin/env");
    /// cmd.environ(["A=1", "A=2", "NO_EQUALS_SIGN"]);
    /// assert_eq!(popen::check_output(&mut cmd)?, b"A=1\nA=2\nNO_EQUALS_SIGN\n");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn environ<I, S>(&mut self, entries: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.environ = Some(entries.into_iter().map(|e| e.as_ref().to_owned()).collect());
        self
    }

    fn set_env(&mut self, key: &OsStr, value: Option<OsString>) {
        match self.env.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.env.push((key.to_owned(), value)),
        }
    }

    /// The child's stdin.
    pub fn stdin(&mut self, stdio: impl Into<Stdio>) -> &mut Command {
        self.stdin = stdio.into();
        self
    }

    /// The child's stdout.
    pub fn stdout(&mut self, stdio: impl Into<Stdio>) -> &mut Command {
        self.stdout = stdio.into();
        self
    }

    /// The child's stderr.
    pub fn stderr(&mut self, stdio: impl Into<Stdio>) -> &mut Command {
        self.stderr = stdio.into();
        self
    }

    /// Whether to close every descriptor ≥ 3 in the child, except the passed ones (default
    /// `true`, as in CPython). With it off, descriptors without close-on-exec leak into the child.
    pub fn close_fds(&mut self, on: bool) -> &mut Command {
        self.close_fds = on;
        self
    }

    /// Keeps `fd` open in the child at the same number (CPython's `pass_fds`). The command owns
    /// the descriptor and keeps it open for every later spawn.
    pub fn pass_fd(&mut self, fd: impl Into<OwnedFd>) -> &mut Command {
        self.pass_fds.push(PassFd::Owned(fd.into()));
        self
    }

    /// Keeps the descriptor numbered `fd` open in the child, without taking ownership of it.
    ///
    /// # Safety
    ///
    /// `fd` must stay open, and keep referring to the same file, until the last spawn of this
    /// command has returned.
    #[allow(unsafe_code)]
    pub unsafe fn pass_raw_fd(&mut self, fd: RawFd) -> &mut Command {
        self.pass_fds.push(PassFd::Raw(fd));
        self
    }

    /// Closes the descriptor numbered `fd` in the child, before the standard streams are set up
    /// (CPython's child closes the parent's ends of its pipes so). For a descriptor without
    /// close-on-exec, which the child would otherwise keep. A descriptor that is not open makes
    /// the child fail with `EBADF` at [`Step::PassFds`](crate::Step::PassFds), as CPython's
    /// does. The `posix_spawn` path cannot express it.
    pub fn close_in_child(&mut self, fd: RawFd) -> &mut Command {
        self.close_in_child.push(fd);
        self
    }

    /// Whether to give SIGPIPE and SIGXFSZ their default disposition in the child (default
    /// `true`, as in CPython; Rust programs ignore SIGPIPE).
    pub fn restore_signals(&mut self, on: bool) -> &mut Command {
        self.restore_signals = on;
        self
    }

    /// The child's initial signal mask (default: empty).
    pub fn signal_mask(&mut self, mask: SignalMask) -> &mut Command {
        self.signal_mask = mask;
        self
    }

    /// Starts the child in a new session (`setsid`), which also makes it a process-group leader.
    pub fn start_new_session(&mut self, on: bool) -> &mut Command {
        self.new_session = on;
        self
    }

    /// Puts the child in process group `pgid` (`setpgid(0, pgid)`); `0` makes a new group led
    /// by the child. A negative value is refused by [`spawn`](Self::spawn).
    pub fn process_group(&mut self, pgid: i32) -> &mut Command {
        self.process_group = Some(pgid);
        self
    }

    /// Runs the child as user `uid` (`setreuid`).
    pub fn uid(&mut self, uid: u32) -> &mut Command {
        self.uid = Some(uid);
        self
    }

    /// Runs the child with group `gid` (`setregid`).
    pub fn gid(&mut self, gid: u32) -> &mut Command {
        self.gid = Some(gid);
        self
    }

    /// Sets the child's supplementary groups (`setgroups`; an empty list clears them).
    pub fn extra_groups(&mut self, groups: impl IntoIterator<Item = u32>) -> &mut Command {
        self.extra_groups = Some(groups.into_iter().collect());
        self
    }

    /// Sets the child's umask.
    pub fn umask(&mut self, mask: u32) -> &mut Command {
        self.umask = Some(mask);
        self
    }

    /// Asks for pipe buffers of `bytes` for the pipes made for the child (`F_SETPIPE_SZ`, CPython's
    /// `pipesize`). Larger pipes mean fewer wake-ups when moving much data.
    pub fn pipe_size(&mut self, bytes: usize) -> &mut Command {
        self.pipe_size = Some(bytes);
        self
    }

    /// Sets a resource limit for the child (`setrlimit`), without a pre-exec hook, so the fast
    /// vfork-style path is kept.
    pub fn rlimit(&mut self, resource: Resource, soft: u64, hard: u64) -> &mut Command {
        self.rlimits.retain(|(r, _, _)| *r != resource);
        self.rlimits.push((resource, soft, hard));
        self
    }

    /// Sends `signal` to the child when the thread that spawned it exits (Linux
    /// `PR_SET_PDEATHSIG`). If the parent is already gone when the child sets it up, the child
    /// gets the signal at once instead of never.
    pub fn parent_death_signal(&mut self, signal: i32) -> &mut Command {
        self.parent_death_signal = Some(signal);
        self
    }

    /// Runs `hook` in the child after every other setup step and before descriptors are closed
    /// and the program is executed. Several hooks run in the order they were added. An error
    /// from a hook aborts the spawn with [`Step::PreExecHook`](crate::Step::PreExecHook). A hook
    /// forces the `fork` path.
    ///
    /// # Safety
    ///
    /// The hook runs in a forked copy of a possibly multi-threaded process: it may only call
    /// async-signal-safe functions (no allocation, no locks), and must not panic.
    #[allow(unsafe_code)]
    pub unsafe fn pre_exec<F>(&mut self, hook: F) -> &mut Command
    where
        F: FnMut() -> io::Result<()> + Send + Sync + 'static,
    {
        self.hooks.push(Box::new(hook));
        self
    }

    /// Forces one spawn path instead of the automatic choice. [`spawn`](Self::spawn) then fails
    /// with `Unsupported` if that path cannot honour every option.
    pub fn spawn_path(&mut self, path: SpawnPath) -> &mut Command {
        self.spawn_path = Some(path);
        self
    }

    /// Leaves a child that failed before exec unreaped, for a caller that reaps it itself (as
    /// CPython's `subprocess.py` does): [`SpawnError::pid`] then names it, and the caller must
    /// wait for it. Only the vfork and fork paths have such a child; a failed `posix_spawn`
    /// leaves none behind.
    pub fn keep_failed_child(&mut self, on: bool) -> &mut Command {
        self.keep_failed_child = on;
        self
    }

    /// Which spawn path [`spawn`](Self::spawn) would take, and why each path tried before it
    /// (in [`SpawnPath::ALL`] order) was not taken.
    ///
    /// ```
    /// use popen::{Command, SpawnPath};
    ///
    /// let mut cmd = Command::new("true");
    /// cmd.umask(0o077);
    /// assert_eq!(cmd.choose_path().path(), SpawnPath::CloneVfork);
    /// // Forced onto posix_spawn, the umask cannot be honoured: spawn() would refuse.
    /// cmd.spawn_path(SpawnPath::PosixSpawn);
    /// assert_eq!(cmd.choose_path().impossible(), Some("a umask is set"));
    /// ```
    pub fn choose_path(&self) -> PathChoice {
        spawn::strategy::choose(self)
    }

    /// The program and arguments, `argv[0]` first.
    pub fn get_argv(&self) -> &[OsString] {
        &self.argv
    }

    /// Starts the child.
    ///
    /// # Errors
    ///
    /// A [`SpawnError`] naming the step that failed. Bad input (an empty argv, a NUL byte, a
    /// negative process group, too many groups) is refused before any descriptor or process is
    /// created; a failure in the child is reported after the child has been reaped and every
    /// descriptor made for it closed.
    pub fn spawn(&mut self) -> Result<Popen, SpawnError> {
        spawn::spawn(self)
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command")
            .field("argv", &self.argv)
            .field("executable", &self.executable)
            .field("cwd", &self.cwd)
            .field("stdin", &self.stdin)
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .field("close_fds", &self.close_fds)
            .finish_non_exhaustive()
    }
}
