//! The parent prepares every byte the child needs: C strings, the argv array, the list of paths
//! to try, and the descriptor plan (the envp is built by `exec::env`). Only these two modules
//! allocate for a spawn.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::request::{Request, SignalMask};
use crate::error::{SpawnError, Step};
use crate::exec::env::{self, EnvBlock};
use crate::exec::{exec_candidates, CStringArray};
use crate::stdio::{ChildStderr, ChildStdin, ChildStdout, OpenMode, StdioKind};
use crate::sys;
use crate::sys::signal::SigSet;

/// The child's descriptors: which parent descriptor becomes child fd 0, 1, 2, and each number
/// chosen with `pass_fd_as`.
///
/// Every source (of a standard stream or of a chosen number) is either equal to its own
/// target or no target at all (not 0–2, not a chosen number), so the `dup2`s can run in any
/// order without one clobbering another's source.
pub(crate) struct FdPlan {
    /// Source descriptor for each of the child's fds 0–2; `None` leaves that fd as inherited.
    pub(crate) sources: [Option<RawFd>; 3],
    /// (source, target) for each descriptor given at a chosen number (targets ≥ 3).
    pub(crate) extra: Vec<(RawFd, RawFd)>,
    /// The lowest number above every target (≥ 3): a descriptor the child must keep through
    /// the `dup2`s (the error pipe) is put at or above it.
    pub(crate) floor: RawFd,
    /// Descriptors that must stay open until the child has been started (child ends of pipes,
    /// the null device, copies moved out of 0–2); closed when the plan is dropped.
    pub(crate) keep_alive: Vec<OwnedFd>,
    pub(crate) stdin: Option<ChildStdin>,
    pub(crate) stdout: Option<ChildStdout>,
    pub(crate) stderr: Option<ChildStderr>,
}

/// Everything the spawn back-ends read. Built before any process exists.
pub(crate) struct Prepared {
    pub(crate) argv: CStringArray,
    /// The child's whole environment, always built here: a child that read the parent's
    /// `environ` itself would race with a thread changing it (`std::env::set_var`).
    pub(crate) envp: EnvBlock,
    /// Whether `envp` is the parent's environment unchanged (audit hooks then see `None`, as
    /// CPython's do).
    pub(crate) env_inherited: bool,
    /// The paths to try with `execve`, in order.
    pub(crate) candidates: Vec<CString>,
    /// What error messages name as the program: `executable` or `argv[0]`.
    pub(crate) program: OsString,
    pub(crate) cwd: Option<CString>,
    pub(crate) pass_fds: Vec<RawFd>,
    /// Every descriptor ≥ 3 that `close_fds` must leave open, ascending: the passed ones and
    /// the chosen numbers of `pass_fd_as`.
    pub(crate) keep_fds: Vec<RawFd>,
    pub(crate) groups: Option<Vec<libc::gid_t>>,
    pub(crate) rlimits: Vec<(libc::c_int, libc::rlimit64)>,
    /// The mask the child must end up with; `None` for "as inherited".
    pub(crate) mask: Option<SigSet>,
}

fn cstring(what: &str, s: &OsStr) -> Result<CString, SpawnError> {
    CString::new(s.as_bytes())
        .map_err(|_| SpawnError::invalid(format!("{what} contains a NUL byte: {s:?}")))
}

/// Checks the command and builds its strings. Creates no descriptor.
pub(crate) fn prepare(req: &Request) -> Result<Prepared, SpawnError> {
    if req.argv.is_empty() {
        return Err(SpawnError::invalid("the argument list is empty"));
    }
    let argv = req
        .argv
        .iter()
        .enumerate()
        .map(|(i, a)| {
            // The label is only formatted for an error.
            CString::new(a.as_bytes()).map_err(|_| {
                SpawnError::invalid(format!("argument {i} contains a NUL byte: {a:?}"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let envp = match &req.environ {
        Some(entries) => EnvBlock::from_entries(entries).map_err(|i| {
            SpawnError::invalid(format!(
                "environment entry {i} contains a NUL byte: {:?}",
                entries[i]
            ))
        })?,
        None => env::build(req.env_clear, &req.env)?,
    };
    let env_inherited = !req.env_clear && req.env.is_empty() && req.environ.is_none();
    let program = req
        .executable
        .clone()
        .unwrap_or_else(|| req.argv[0].clone());
    // With an executable list, the program name only labels errors.
    if program.is_empty() && req.executable_list.is_none() {
        return Err(SpawnError::invalid("the program name is empty"));
    }
    let candidates = match &req.executable_list {
        Some(list) => list
            .iter()
            .map(|p| cstring("executable path", p))
            .collect::<Result<_, _>>()?,
        None => {
            if program.as_bytes().contains(&0) {
                return Err(SpawnError::invalid(format!(
                    "program contains a NUL byte: {program:?}"
                )));
            }
            // The PATH is looked up only for a program without a `/`.
            let path = if program.as_bytes().contains(&b'/') {
                None
            } else {
                search_path(&envp)
            };
            exec_candidates(&program, path)
        }
    };
    let cwd = req.cwd.as_deref().map(|c| cstring("cwd", c)).transpose()?;
    if let Some(pgid) = req.process_group {
        if pgid < 0 {
            return Err(SpawnError::invalid(format!(
                "process group {pgid} is negative"
            )));
        }
        if req.new_session {
            return Err(SpawnError::invalid(format!(
                "start_new_session and process_group({pgid}) cannot be combined: the new \
                 session's leader already leads a process group of its own, and a session \
                 leader cannot change its process group (setpgid fails with EPERM)"
            )));
        }
    }
    let mut pass_fds: Vec<RawFd> = req.pass_fds.iter().map(|p| p.raw()).collect();
    if let Some(bad) = pass_fds.iter().find(|&&fd| fd < 0) {
        return Err(SpawnError::invalid(format!(
            "pass_fds holds a negative descriptor: {bad}"
        )));
    }
    pass_fds.sort_unstable();
    pass_fds.dedup();
    let keep_fds = kept_descriptors(req, &pass_fds)?;
    if let Some((step, fd)) = closed_descriptor(req, &pass_fds) {
        return Err(SpawnError::from_errno(step, libc::EBADF).with_fd(fd));
    }
    for stdio in [&req.stdin, &req.stdout, &req.stderr] {
        if let StdioKind::Path(path, _) = &stdio.0 {
            cstring("redirection path", path.as_os_str())?;
        }
    }
    let groups = match &req.extra_groups {
        Some(g) => {
            if g.len() > ngroups_max() {
                return Err(SpawnError::invalid(format!("too many groups: {}", g.len())));
            }
            Some(g.clone())
        }
        // Root's groups must not follow a child that runs as another user (see `Command::uid`).
        None if req.uid.is_some() && !req.keep_supplementary_groups && euid_is_root() => {
            Some(Vec::new())
        }
        None => None,
    };
    let rlimits = req
        .rlimits
        .iter()
        .map(|&(r, soft, hard)| {
            if soft > hard {
                return Err(SpawnError::invalid(format!(
                    "{r:?}: soft limit above hard limit"
                )));
            }
            Ok((
                r.as_raw(),
                libc::rlimit64 {
                    rlim_cur: soft,
                    rlim_max: hard,
                },
            ))
        })
        .collect::<Result<_, _>>()?;
    if let Some(sig) = req.parent_death_signal {
        if !(1..sys::signal::max_signal()).contains(&sig) {
            return Err(SpawnError::invalid(format!(
                "{sig} is not a valid signal number"
            )));
        }
    }
    if matches!(
        req.stdin.0,
        StdioKind::SameAsStdout | StdioKind::SameAsStderr
    ) {
        return Err(SpawnError::invalid(
            "stdin cannot be the same as stdout or stderr",
        ));
    }
    if matches!(req.stdout.0, StdioKind::SameAsStdout)
        || matches!(req.stderr.0, StdioKind::SameAsStderr)
        || (matches!(req.stdout.0, StdioKind::SameAsStderr)
            && matches!(req.stderr.0, StdioKind::SameAsStdout))
    {
        return Err(SpawnError::invalid(
            "stdout and stderr cannot each be the same as the other",
        ));
    }
    let mask = match req.signal_mask {
        SignalMask::Empty => Some(SigSet::empty()),
        SignalMask::Inherit => None,
        SignalMask::Set(s) => Some(s),
    };
    Ok(Prepared {
        argv: CStringArray::new(argv),
        envp,
        env_inherited,
        candidates,
        program,
        cwd,
        pass_fds,
        keep_fds,
        groups,
        rlimits,
        mask,
    })
}

/// Checks the numbers chosen with `pass_fd_as` and returns every descriptor ≥ 3 that
/// `close_fds` must keep, ascending.
fn kept_descriptors(req: &Request, pass_fds: &[RawFd]) -> Result<Vec<RawFd>, SpawnError> {
    let mut targets: Vec<RawFd> = Vec::with_capacity(req.pass_fds_as.len());
    for (source, target) in &req.pass_fds_as {
        let target = *target;
        if target < 3 {
            return Err(SpawnError::invalid(format!(
                "pass_fd_as({}, {target}): the target must be 3 or more (0-2 are set with \
                 stdin, stdout and stderr)",
                source.raw()
            )));
        }
        if source.raw() < 0 {
            return Err(SpawnError::invalid(format!(
                "pass_fd_as holds a negative descriptor: {}",
                source.raw()
            )));
        }
        let limit = descriptor_limit();
        if target >= limit {
            return Err(SpawnError::new(
                Step::PassFds,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "pass_fd_as target {target} is beyond the descriptor limit \
                         (RLIMIT_NOFILE {limit})"
                    ),
                ),
            )
            .with_fd(target));
        }
        if targets.contains(&target) {
            return Err(SpawnError::invalid(format!(
                "descriptor {target} is the target of two pass_fd_as"
            )));
        }
        if pass_fds.binary_search(&target).is_ok() {
            return Err(SpawnError::invalid(format!(
                "descriptor {target} is both passed (pass_fd) and the target of a pass_fd_as"
            )));
        }
        targets.push(target);
    }
    targets.extend(pass_fds.iter().copied().filter(|&fd| fd >= 3));
    targets.sort_unstable();
    Ok(targets)
}

/// The step a child would fail at because a descriptor it must use is not open in this process
/// (closed, or out of the descriptor table's range): [`Step::PassFds`] for a passed one,
/// [`Step::Dup2`] for a standard stream's. Checked here so that no child is started for it on
/// any path: the vfork and fork children would only report it after they exist, and
/// `posix_spawn` reports it as an errno that cannot be told from a failed exec.
pub(crate) fn closed_descriptor(req: &Request, pass_fds: &[RawFd]) -> Option<(Step, RawFd)> {
    if let Some(fd) = pass_fds
        .iter()
        .copied()
        .chain(req.pass_fds_as.iter().map(|(source, _)| source.raw()))
        .find(|&fd| !sys::fd::is_open(fd))
    {
        return Some((Step::PassFds, fd));
    }
    [&req.stdin, &req.stdout, &req.stderr]
        .into_iter()
        .find_map(|s| match &s.0 {
            StdioKind::Fd(fd) if !sys::fd::is_open(fd.as_raw_fd()) => Some(fd.as_raw_fd()),
            _ => None,
        })
        .map(|fd| (Step::Dup2, fd))
}

/// The soft `RLIMIT_NOFILE`: no descriptor number reaches it.
fn descriptor_limit() -> RawFd {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    #[allow(unsafe_code)]
    // SAFETY: getrlimit only writes the struct we own.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    if ok {
        limit.rlim_cur.min(RawFd::MAX as libc::rlim_t) as RawFd
    } else {
        RawFd::MAX
    }
}

fn euid_is_root() -> bool {
    #[allow(unsafe_code)]
    // SAFETY: geteuid cannot fail and touches no memory.
    let euid = unsafe { libc::geteuid() };
    euid == 0
}

fn ngroups_max() -> usize {
    #[allow(unsafe_code)]
    // SAFETY: sysconf only reads a configuration value.
    let n = unsafe { libc::sysconf(libc::_SC_NGROUPS_MAX) };
    if n > 0 {
        n as usize
    } else {
        65536
    }
}

/// The `PATH` the child's program is searched in: the one in the child's environment.
fn search_path(envp: &EnvBlock) -> Option<&OsStr> {
    envp.get(b"PATH")
}

/// Makes the pipes and opens the null device, and decides which parent descriptor becomes each
/// of the child's standard streams.
pub(crate) fn plan_fds(req: &Request) -> Result<FdPlan, SpawnError> {
    let mut plan = FdPlan {
        sources: [None; 3],
        extra: Vec::new(),
        floor: 3,
        keep_alive: Vec::new(),
        stdin: None,
        stdout: None,
        stderr: None,
    };
    let mut null: Option<RawFd> = None;
    let pipe_err = |e| SpawnError::new(Step::Pipe, e);
    let mut open_null = |plan: &mut FdPlan| -> Result<RawFd, SpawnError> {
        if let Some(fd) = null {
            return Ok(fd);
        }
        let fd = sys::fd::open_cloexec(c"/dev/null", libc::O_RDWR).map_err(pipe_err)?;
        let raw = fd.as_raw_fd();
        plan.keep_alive.push(fd);
        null = Some(raw);
        Ok(raw)
    };
    let set_size = |fd: BorrowedFd<'_>| -> Result<(), SpawnError> {
        match req.pipe_size {
            Some(size) => {
                sys::fd::set_pipe_size(fd, size).map_err(|e| SpawnError::new(Step::PipeSize, e))
            }
            None => Ok(()),
        }
    };

    // "Same as" a stream that is inherited means the parent's descriptor as the spawn finds
    // it: copy it before this spawn's own descriptors can take its number (the parent may
    // have it closed, and a pipe made below would then be the child's stream).
    let inherited_twin = match (&req.stdout.0, &req.stderr.0) {
        (StdioKind::Inherit, StdioKind::SameAsStdout) => Some(1),
        (StdioKind::SameAsStderr, StdioKind::Inherit) => Some(2),
        _ => None,
    };
    let inherited_twin = match inherited_twin {
        Some(fd) => {
            let copy =
                sys::fd::dup_raw_cloexec_min(fd, 3).map_err(|e| SpawnError::new(Step::Dup2, e))?;
            let raw = copy.as_raw_fd();
            plan.keep_alive.push(copy);
            Some(raw)
        }
        None => None,
    };

    let open_path = |plan: &mut FdPlan, path: &Path, mode: OpenMode| {
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| SpawnError::invalid(format!("{path:?} contains a NUL byte")))?;
        let fd = sys::fd::open_cloexec_mode(&c, mode.flags(), 0o666)
            .map_err(|e| SpawnError::new(Step::Open, e).with_path(path))?;
        let raw = fd.as_raw_fd();
        plan.keep_alive.push(fd);
        Ok::<RawFd, SpawnError>(raw)
    };

    // stdin
    plan.sources[0] = match &req.stdin.0 {
        StdioKind::Inherit => None,
        StdioKind::Path(path, mode) => Some(open_path(&mut plan, path, *mode)?),
        StdioKind::Null => Some(open_null(&mut plan)?),
        StdioKind::Fd(fd) => Some(fd.as_raw_fd()),
        StdioKind::Pipe => {
            let (r, w) = sys::fd::pipe_cloexec().map_err(pipe_err)?;
            set_size(w.as_fd())?;
            let raw = r.as_raw_fd();
            plan.keep_alive.push(r);
            plan.stdin = Some(ChildStdin::from_owned(w));
            Some(raw)
        }
        StdioKind::SameAsStdout | StdioKind::SameAsStderr => unreachable!("refused in prepare"),
    };
    // stdout and stderr; a "same as" side is resolved after the other.
    let mut out_err = [&req.stdout.0, &req.stderr.0];
    for (i, kind) in out_err.iter_mut().enumerate() {
        let target = i + 1;
        plan.sources[target] = match kind {
            StdioKind::Inherit | StdioKind::SameAsStdout | StdioKind::SameAsStderr => None,
            StdioKind::Null => Some(open_null(&mut plan)?),
            StdioKind::Path(path, mode) => Some(open_path(&mut plan, path, *mode)?),
            StdioKind::Fd(fd) => Some(fd.as_raw_fd()),
            StdioKind::Pipe => {
                let (r, w) = sys::fd::pipe_cloexec().map_err(pipe_err)?;
                set_size(r.as_fd())?;
                let raw = w.as_raw_fd();
                plan.keep_alive.push(w);
                if target == 1 {
                    plan.stdout = Some(ChildStdout::from_owned(r));
                } else {
                    plan.stderr = Some(ChildStderr::from_owned(r));
                }
                Some(raw)
            }
        };
    }
    if matches!(req.stderr.0, StdioKind::SameAsStdout) {
        plan.sources[2] = plan.sources[1].or(inherited_twin);
    }
    if matches!(req.stdout.0, StdioKind::SameAsStderr) {
        plan.sources[1] = plan.sources[2].or(inherited_twin);
    }

    plan.extra = req
        .pass_fds_as
        .iter()
        .map(|(source, target)| (source.raw(), *target))
        .collect();
    plan.floor = plan
        .extra
        .iter()
        .map(|&(_, target)| target + 1)
        .max()
        .unwrap_or(3)
        .max(3);

    // A source that sits on another target's number (0-2, or a number chosen with
    // `pass_fd_as`) would be clobbered by that target's dup2: move it above every target
    // first. Afterwards each source is its own target or no target at all. Sources below 3
    // are moved even when that standard stream is inherited (no dup2 writes there): simpler
    // to prove, and it costs one dup in a rare case.
    let is_target = |fd: RawFd, extra: &[(RawFd, RawFd)]| {
        (0..3).contains(&fd) || extra.iter().any(|&(_, t)| t == fd)
    };
    let floor = plan.floor;
    let move_away = |plan: &mut FdPlan, src: RawFd| -> Result<RawFd, SpawnError> {
        #[allow(unsafe_code)]
        // SAFETY: `src` is open: it is one of our own descriptors, a descriptor the command
        // owns (checked open in `prepare`), or one of the parent's standard streams named by
        // "same as".
        let borrowed = unsafe { BorrowedFd::borrow_raw(src) };
        let moved = sys::fd::dup_cloexec_min(borrowed, floor).map_err(pipe_err)?;
        let raw = moved.as_raw_fd();
        plan.keep_alive.push(moved);
        Ok(raw)
    };
    for target in 0..3 {
        if let Some(src) = plan.sources[target] {
            if src != target as RawFd && is_target(src, &plan.extra) {
                plan.sources[target] = Some(move_away(&mut plan, src)?);
            }
        }
    }
    for i in 0..plan.extra.len() {
        let (src, target) = plan.extra[i];
        if src != target && is_target(src, &plan.extra) {
            plan.extra[i].0 = move_away(&mut plan, src)?;
        }
    }
    Ok(plan)
}

/// Moves `fd` to a number ≥ `floor` if it sits below: a descriptor the child needs after its
/// `dup2`s (the error pipe) must not sit on a number they write to.
pub(crate) fn above_targets(fd: OwnedFd, floor: RawFd) -> Result<OwnedFd, SpawnError> {
    if fd.as_raw_fd() >= floor {
        return Ok(fd);
    }
    sys::fd::dup_cloexec_min(fd.as_fd(), floor).map_err(|e| SpawnError::new(Step::Pipe, e))
}

impl Prepared {
    /// The program as error messages name it.
    pub(crate) fn program_path(&self) -> &OsStr {
        &self.program
    }

    pub(crate) fn cwd_path(&self) -> Option<&OsStr> {
        self.cwd
            .as_deref()
            .map(|c: &CStr| OsStr::from_bytes(c.to_bytes()))
    }
}
