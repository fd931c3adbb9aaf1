//! The builder: a description of the child to start. Configuration only — nothing here makes
//! a system call; [`Command::spawn`] does the work.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::path::Path;

use crate::error::SpawnError;
use crate::popen::Popen;
use crate::rlimit::Resource;
use crate::spawn::{self, PassFd, PathChoice, Request, SignalMask, SpawnPath};
use crate::stdio::Stdio;

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
    /// Everything the engine needs, filled by the methods below.
    pub(crate) req: Request,
    /// Whether stdin, stdout, stderr were set by the caller, rather than left at their
    /// default: [`output`](Command::output) only fills in the ones left.
    pub(crate) stdio_set: [bool; 3],
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
            req: Request::new(argv),
            stdio_set: [false; 3],
        }
    }

    /// Appends an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.req.argv.push(arg.as_ref().to_owned());
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.req
            .argv
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
        self.req.executable = Some(path.as_ref().to_owned());
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
        self.req.executable_list = Some(paths.into_iter().map(|p| p.as_ref().to_owned()).collect());
        self
    }

    /// The child's working directory. A relative program path is resolved from it.
    pub fn cwd(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.req.cwd = Some(dir.as_ref().as_os_str().to_owned());
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
        self.req.env_clear = true;
        self.req.env.clear();
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
        self.req.environ = Some(entries.into_iter().map(|e| e.as_ref().to_owned()).collect());
        self
    }

    fn set_env(&mut self, key: &OsStr, value: Option<OsString>) {
        match self.req.env.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.req.env.push((key.to_owned(), value)),
        }
    }

    /// The child's stdin.
    pub fn stdin(&mut self, stdio: impl Into<Stdio>) -> &mut Command {
        self.req.stdin = stdio.into();
        self.stdio_set[0] = true;
        self
    }

    /// The child's stdout.
    pub fn stdout(&mut self, stdio: impl Into<Stdio>) -> &mut Command {
        self.req.stdout = stdio.into();
        self.stdio_set[1] = true;
        self
    }

    /// The child's stderr.
    pub fn stderr(&mut self, stdio: impl Into<Stdio>) -> &mut Command {
        self.req.stderr = stdio.into();
        self.stdio_set[2] = true;
        self
    }

    /// Whether to close every descriptor ≥ 3 in the child, except the passed ones (default
    /// `true`, as in CPython). With it off, descriptors without close-on-exec leak into the child.
    ///
    /// With it on, a child on the vfork path never copies the descriptors it would close, so a
    /// spawn costs the same in a process holding thousands of descriptors as in one holding
    /// none; with it off, every spawn copies the whole descriptor table (as `fork` does).
    pub fn close_fds(&mut self, on: bool) -> &mut Command {
        self.req.close_fds = on;
        self
    }

    /// Keeps `fd` open in the child at the same number (CPython's `pass_fds`). The command owns
    /// the descriptor and keeps it open for every later spawn.
    pub fn pass_fd(&mut self, fd: impl Into<OwnedFd>) -> &mut Command {
        self.req.pass_fds.push(PassFd::Owned(fd.into()));
        self
    }

    /// Gives the child `fd` at descriptor number `target` (≥ 3), as a shell's `7<&fd` does.
    /// The command owns `fd` and keeps it for every later spawn. `target` stays open in the
    /// child whatever [`close_fds`](Self::close_fds) says; the child's copy is not
    /// close-on-exec. For fds 0–2, use [`stdin`](Self::stdin), [`stdout`](Self::stdout) and
    /// [`stderr`](Self::stderr).
    ///
    /// Any arrangement is honoured, on every spawn path: a source that sits on another
    /// target's number (or on 0–2) is moved out of the way in the parent before the child
    /// starts, so no `dup2` overwrites a source still to be used — two descriptors swapped
    /// with `pass_fd_as(a, b)` and `pass_fd_as(b, a)` arrive swapped. On the
    /// [`posix_spawn`](crate::SpawnPath::PosixSpawn) path they are `dup2` file actions, and
    /// with `close_fds` on, every other descriptor below the highest chosen number is closed by
    /// a file action of its own: there, numbers above 1024 make the automatic choice take
    /// another path (and a forced `posix_spawn` fail with `Unsupported`).
    ///
    /// # Errors
    ///
    /// [`spawn`](Self::spawn) refuses, before any process exists, a `target` below 3, two
    /// descriptors given one `target`, and a `target` also given to [`pass_fd`](Self::pass_fd)
    /// (all with [`Step::Prepare`](crate::Step::Prepare)).
    ///
    /// # Examples
    ///
    /// ```
    /// use popen::{Command, Stdio};
    ///
    /// let (reader, mut writer) = std::io::pipe()?;
    /// std::io::Write::write_all(&mut writer, b"through fd 7\n")?;
    /// drop(writer);
    /// let out = Command::shell("cat <&7").pass_fd_as(reader, 7).output()?;
    /// assert_eq!(out.stdout, b"through fd 7\n");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pass_fd_as(&mut self, fd: impl Into<OwnedFd>, target: RawFd) -> &mut Command {
        self.req
            .pass_fds_as
            .push((PassFd::Owned(fd.into()), target));
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
        self.req.pass_fds.push(PassFd::Raw(fd));
        self
    }

    /// Closes the descriptor numbered `fd` in the child, before the standard streams are set up
    /// (CPython's child closes the parent's ends of its pipes so). For a descriptor without
    /// close-on-exec, which the child would otherwise keep. A descriptor that is not open makes
    /// the child fail with `EBADF` at [`Step::PassFds`](crate::Step::PassFds), as CPython's
    /// does. The `posix_spawn` path cannot express it.
    pub fn close_in_child(&mut self, fd: RawFd) -> &mut Command {
        self.req.close_in_child.push(fd);
        self
    }

    /// Whether to give SIGPIPE and SIGXFSZ their default disposition in the child (default
    /// `true`, as in CPython; Rust programs ignore SIGPIPE).
    pub fn restore_signals(&mut self, on: bool) -> &mut Command {
        self.req.restore_signals = on;
        self
    }

    /// The child's initial signal mask (default: empty).
    pub fn signal_mask(&mut self, mask: SignalMask) -> &mut Command {
        self.req.signal_mask = mask;
        self
    }

    /// Starts the child in a new session (`setsid`), which also makes it a process-group leader.
    /// It cannot be combined with [`process_group`](Self::process_group): [`spawn`](Self::spawn)
    /// refuses the pair before any process exists.
    pub fn start_new_session(&mut self, on: bool) -> &mut Command {
        self.req.new_session = on;
        self
    }

    /// Puts the child in process group `pgid` (`setpgid(0, pgid)`); `0` makes a new group led
    /// by the child. A negative value is refused by [`spawn`](Self::spawn).
    ///
    /// Only a group the child leads (`0`, or [`start_new_session`](Self::start_new_session)) is
    /// the child's: [`Popen::process_group`](crate::Popen::process_group) names it, and
    /// [`Popen::send_signal_group`](crate::Popen::send_signal_group) and a `run` timeout signal
    /// all of it. A child that joins an existing group (say the caller's, `getpgrp()`) has no
    /// group of its own there: `process_group` is `None`, and a group signal goes to the child
    /// alone, never to the group it joined.
    ///
    /// # Examples
    ///
    /// ```
    /// use popen::Command;
    ///
    /// let mut child = Command::new("sleep").arg("10").process_group(0).spawn()?;
    /// assert_eq!(child.process_group(), Some(child.pid()));
    /// child.send_signal_group(libc::SIGKILL)?;
    /// assert_eq!(child.wait()?.signal(), Some(libc::SIGKILL));
    ///
    /// // SAFETY: getpgrp only reads.
    /// let ours = unsafe { libc::getpgrp() };
    /// let mut joined = Command::new("true").process_group(ours).spawn()?;
    /// assert_eq!(joined.process_group(), None);
    /// joined.wait()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn process_group(&mut self, pgid: i32) -> &mut Command {
        self.req.process_group = Some(pgid);
        self
    }

    /// Runs the child as user `uid` (`setreuid`).
    ///
    /// # Supplementary groups
    ///
    /// The child's supplementary groups are, in this order of precedence:
    ///
    /// - the list given to [`extra_groups`](Self::extra_groups), if any (`setgroups`);
    /// - none at all, when this process runs as root (effective uid 0) and a `uid` is set: the
    ///   child drops root's groups (`setgroups(0, NULL)`), as the standard library's
    ///   `CommandExt::uid` does, so a child run as another user is not left in groups such as
    ///   `root`, `adm` or `sudo`;
    /// - this process's groups, unchanged, otherwise, or when
    ///   [`keep_supplementary_groups`](Self::keep_supplementary_groups) asks for them (CPython's
    ///   `subprocess` behaviour: no `setgroups` unless `extra_groups` is given).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// // As root: the child runs as nobody, in no supplementary group.
    /// let status = popen::Command::new("id").uid(65534).gid(65534).spawn()?.wait()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn uid(&mut self, uid: u32) -> &mut Command {
        self.req.uid = Some(uid);
        self
    }

    /// Keeps this process's supplementary groups in a child given a [`uid`](Self::uid) without
    /// [`extra_groups`](Self::extra_groups), instead of dropping them when this process runs as
    /// root (default `false`). CPython's `subprocess` keeps them; see [`uid`](Self::uid).
    pub fn keep_supplementary_groups(&mut self, on: bool) -> &mut Command {
        self.req.keep_supplementary_groups = on;
        self
    }

    /// Runs the child with group `gid` (`setregid`).
    pub fn gid(&mut self, gid: u32) -> &mut Command {
        self.req.gid = Some(gid);
        self
    }

    /// Sets the child's supplementary groups (`setgroups`; an empty list clears them). Without
    /// it, a child given a [`uid`](Self::uid) by a root parent has none (the rules are on
    /// [`uid`](Self::uid)).
    pub fn extra_groups(&mut self, groups: impl IntoIterator<Item = u32>) -> &mut Command {
        self.req.extra_groups = Some(groups.into_iter().collect());
        self
    }

    /// Sets the child's umask.
    pub fn umask(&mut self, mask: u32) -> &mut Command {
        self.req.umask = Some(mask);
        self
    }

    /// Asks for pipe buffers of `bytes` for the pipes made for the child (`F_SETPIPE_SZ`, CPython's
    /// `pipesize`). Larger pipes mean fewer wake-ups when moving much data.
    pub fn pipe_size(&mut self, bytes: usize) -> &mut Command {
        self.req.pipe_size = Some(bytes);
        self
    }

    /// Sets a resource limit for the child (`setrlimit`), without a pre-exec hook, so the fast
    /// vfork-style path is kept.
    pub fn rlimit(&mut self, resource: Resource, soft: u64, hard: u64) -> &mut Command {
        self.req.rlimits.retain(|(r, _, _)| *r != resource);
        self.req.rlimits.push((resource, soft, hard));
        self
    }

    /// Sends `signal` to the child when the thread that spawned it exits (Linux
    /// `PR_SET_PDEATHSIG`).
    ///
    /// **The signal follows the spawning thread, not this process.** The kernel sends it when
    /// the child's parent *thread* exits: a child spawned from a short-lived thread (a worker
    /// of a thread pool, a scoped thread, an async runtime's blocking task) gets the signal as
    /// soon as that thread ends, while the process lives on. The child then stays a child of
    /// this process, and its [`Popen`] waits for it as usual. To tie a child to the life of the
    /// process, spawn it from a thread that lives as long as the process: the main thread, or
    /// a thread kept for spawning. When the process exits or is killed, every such child gets
    /// the signal.
    ///
    /// The child arms the signal after changing its credentials (a uid or gid change clears
    /// it) and before exec, while the spawning thread waits in [`spawn`](Self::spawn), so that
    /// thread cannot end before the signal is armed. If the parent process is already gone
    /// when the child arms it, the child gets the signal at once instead of never. The kernel
    /// clears it when the child execs a set-user-ID or set-group-ID program, or one with file
    /// capabilities. The child may catch or ignore `signal`, unless it is `SIGKILL`.
    ///
    /// The `posix_spawn` path cannot set it: forced onto that path, [`spawn`](Self::spawn)
    /// fails with `Unsupported`; the automatic choice takes another path.
    pub fn parent_death_signal(&mut self, signal: i32) -> &mut Command {
        self.req.parent_death_signal = Some(signal);
        self
    }

    /// Runs `hook` in the child after every other setup step and before descriptors are closed
    /// and the program is executed. Several hooks run in the order they were added. An error
    /// from a hook aborts the spawn with [`Step::PreExecHook`](crate::Step::PreExecHook). A hook
    /// forces the `fork` path. The child runs it with every caught signal handler of this
    /// process reset to its default, so no handler of the parent's runs in the child.
    ///
    /// A hook that panics ends the child at once, without running the program's panic hook
    /// (which takes locks another thread may have held at the fork), and the spawn fails with
    /// [`Step::PreExecHook`](crate::Step::PreExecHook). This holds while the panic hook in
    /// place is the one the first spawn with a pre-exec hook installed: a program that replaces
    /// the panic hook after that loses it.
    ///
    /// # Safety
    ///
    /// The hook runs in a forked copy of a possibly multi-threaded process: it may only call
    /// async-signal-safe functions (no allocation, no locks).
    #[allow(unsafe_code)]
    pub unsafe fn pre_exec<F>(&mut self, hook: F) -> &mut Command
    where
        F: FnMut() -> io::Result<()> + Send + Sync + 'static,
    {
        self.req.hooks.push(Box::new(hook));
        self
    }

    /// Forces one spawn path instead of the automatic choice. [`spawn`](Self::spawn) then fails
    /// with `Unsupported` if that path cannot honour every option.
    pub fn spawn_path(&mut self, path: SpawnPath) -> &mut Command {
        self.req.spawn_path = Some(path);
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
        spawn::strategy::choose(&self.req)
    }

    /// The program and arguments, `argv[0]` first.
    pub fn get_argv(&self) -> &[OsString] {
        &self.req.argv
    }

    /// The program that will be executed: the [`executable`](Self::executable) if one is set,
    /// else `argv[0]` (empty for an empty argument vector), as given — before any `PATH`
    /// search (std's `Command::get_program`).
    ///
    /// ```
    /// use popen::Command;
    ///
    /// assert_eq!(Command::new("ls").get_program(), "ls");
    /// assert_eq!(Command::shell("echo hi").get_program(), "/bin/sh");
    /// assert_eq!(Command::from_argv(["renamed"]).executable("/bin/true").get_program(), "/bin/true");
    /// ```
    pub fn get_program(&self) -> &OsStr {
        match (&self.req.executable, self.req.argv.first()) {
            (Some(exe), _) => exe,
            (None, Some(arg0)) => arg0,
            (None, None) => OsStr::new(""),
        }
    }

    /// The arguments after `argv[0]` (std's `Command::get_args`).
    ///
    /// ```
    /// use popen::Command;
    ///
    /// let mut cmd = Command::new("ls");
    /// cmd.arg("-l").arg("/tmp");
    /// assert_eq!(cmd.get_args().collect::<Vec<_>>(), ["-l", "/tmp"]);
    /// ```
    pub fn get_args(&self) -> impl ExactSizeIterator<Item = &OsStr> + '_ {
        self.req.argv.iter().skip(1).map(OsString::as_os_str)
    }

    /// The environment changes made with [`env`](Self::env), [`envs`](Self::envs) and
    /// [`env_remove`](Self::env_remove), in the order each variable was first named: a value
    /// for a variable set, `None` for one removed (std's `Command::get_envs`, which sorts them
    /// instead). After [`env_clear`](Self::env_clear) only the later changes are listed.
    ///
    /// ```
    /// use popen::Command;
    /// use std::ffi::OsStr;
    ///
    /// let mut cmd = Command::new("ls");
    /// cmd.env("TZ", "UTC").env_remove("LANG");
    /// let envs: Vec<(&OsStr, Option<&OsStr>)> = cmd.get_envs().collect();
    /// assert_eq!(envs, [(OsStr::new("TZ"), Some(OsStr::new("UTC"))), (OsStr::new("LANG"), None)]);
    /// ```
    pub fn get_envs(&self) -> impl ExactSizeIterator<Item = (&OsStr, Option<&OsStr>)> + '_ {
        self.req
            .env
            .iter()
            .map(|(k, v)| (k.as_os_str(), v.as_deref()))
    }

    /// The working directory set with [`cwd`](Self::cwd), if any (std's
    /// `Command::get_current_dir`).
    ///
    /// ```
    /// use popen::Command;
    /// use std::path::Path;
    ///
    /// let mut cmd = Command::new("ls");
    /// assert_eq!(cmd.get_current_dir(), None);
    /// cmd.cwd("/tmp");
    /// assert_eq!(cmd.get_current_dir(), Some(Path::new("/tmp")));
    /// ```
    pub fn get_current_dir(&self) -> Option<&Path> {
        self.req.cwd.as_deref().map(Path::new)
    }

    /// Replaces this process with the command's program (std's `CommandExt::exec`): the
    /// steps a spawn would run in the child — redirections, passed descriptors, working
    /// directory, umask, signals, session and group, limits, credentials, hooks,
    /// `close_fds` — run in this process, which then execs the program. On success it does
    /// not return.
    ///
    /// Everything is checked and prepared first, as for [`spawn`](Self::spawn) (bad input is
    /// refused before anything changes, the audit hooks are asked, files of
    /// [`Stdio::read_from`](crate::Stdio::read_from) and its kin are opened). Then, in this
    /// process and in the calling thread:
    ///
    /// - the steps change the whole process (its standard streams, working directory, umask,
    ///   session, limits, and — through the C library's wrappers, so for every thread, as std
    ///   does — its credentials). If the exec then fails, these changes stay, as with std;
    ///   only the dispositions of SIGPIPE and SIGXFSZ and the thread's signal mask are put
    ///   back, so that a Rust program that goes on is not killed by its next write to a
    ///   closed pipe;
    /// - other threads keep running until the exec ends them. So that none of them has a
    ///   descriptor closed under it (and its number reused), `close_fds` marks descriptors
    ///   close-on-exec (`CLOSE_RANGE_CLOEXEC`) instead of closing them: the exec closes them,
    ///   and a failed exec leaves them open (close-on-exec);
    /// - no signal handler is reset (the exec resets every caught one); pre-exec hooks run
    ///   here, in this thread, and an error from one aborts the exec;
    /// - the environment is the snapshot taken while preparing, never `environ` read while
    ///   another thread may change it;
    /// - this process's Rust stdout buffer is flushed first (the exec would drop it).
    ///
    /// A piped stream is refused: the process that would hold its other end is the one
    /// replaced. [`parent_death_signal`](Self::parent_death_signal) ties this process to its
    /// own parent's thread.
    ///
    /// # Errors
    ///
    /// Returns only on a failure, a [`SpawnError`] naming the step, the errno and the path,
    /// as [`spawn`](Self::spawn) does (e.g. [`Step::Exec`](crate::Step::Exec) with the
    /// program, [`Step::Chdir`](crate::Step::Chdir) with the directory).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use popen::Command;
    ///
    /// // Becomes `ls`; only reached if that failed.
    /// let err = Command::new("ls").arg("-l").exec();
    /// eprintln!("{err}");
    /// ```
    ///
    /// ```
    /// use popen::{Command, Step};
    ///
    /// let err = Command::new("surely-no-such-program").exec();
    /// assert_eq!(err.step(), Step::Exec);
    /// assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    /// ```
    pub fn exec(&mut self) -> SpawnError {
        let _ = std::io::Write::flush(&mut std::io::stdout());
        spawn::exec(&mut self.req)
    }

    /// Starts the child.
    ///
    /// # Errors
    ///
    /// A [`SpawnError`] naming the step that failed. Bad input (an empty argv, a NUL byte, a
    /// negative process group, a process group with a new session, too many groups, a passed
    /// or redirected descriptor that is not open, with [`Step::PassFds`](crate::Step::PassFds)
    /// or [`Step::Dup2`](crate::Step::Dup2)) is refused before any descriptor or process is
    /// created; a failure in the child is reported after the child has been reaped and every
    /// descriptor made for it closed.
    pub fn spawn(&mut self) -> Result<Popen, SpawnError> {
        let child = spawn::spawn(&mut self.req)?;
        Ok(Popen::from_child(child, self.req.argv.clone()))
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command")
            .field("argv", &self.req.argv)
            .field("executable", &self.req.executable)
            .field("cwd", &self.req.cwd)
            .field("stdin", &self.req.stdin)
            .field("stdout", &self.req.stdout)
            .field("stderr", &self.req.stderr)
            .field("close_fds", &self.req.close_fds)
            .finish_non_exhaustive()
    }
}

/// A [`Command`] from a program and its arguments, each of any type that is
/// `AsRef<OsStr>` — `&str`, `String`, `&Path`, `PathBuf`, `OsString` mixed freely, where
/// [`Command::args`] wants one type for all. Nothing is split or parsed: one expression, one
/// argument, so a path with spaces stays whole.
///
/// ```
/// use popen::cmd;
/// use std::path::PathBuf;
///
/// let dir = PathBuf::from("/");
/// let n = 1;
/// let out = cmd!("ls", "-d", &dir, format!("-w{n}")).output()?;
/// assert_eq!(out.stdout, b"/\n");
///
/// // The same with the builder:
/// let out = popen::Command::new("ls").arg("-d").arg(&dir).arg(format!("-w{n}")).output()?;
/// assert_eq!(out.stdout, b"/\n");
/// # Ok::<(), popen::RunError>(())
/// ```
#[macro_export]
macro_rules! cmd {
    ($program:expr $(, $arg:expr)* $(,)?) => {{
        #[allow(unused_mut)]
        let mut command = $crate::Command::new($program);
        $( command.arg($arg); )*
        command
    }};
}
