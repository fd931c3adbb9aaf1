//! The parent prepares every byte the child needs: C strings, the argv and envp arrays, the
//! list of paths to try, and the descriptor plan. This is the only place a spawn allocates.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use crate::command::{Command, SignalMask};
use crate::error::{SpawnError, Step};
use crate::stdio::{ChildStderr, ChildStdin, ChildStdout, StdioKind};
use crate::sys;
use crate::sys::signal::SigSet;

/// A NULL-terminated array of pointers into owned C strings.
pub(crate) struct CStringArray {
    strings: Vec<CString>,
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
        CStringArray { strings, ptrs }
    }

    pub(crate) fn as_ptr(&self) -> *const *const libc::c_char {
        self.ptrs.as_ptr()
    }

    pub(crate) fn strings(&self) -> &[CString] {
        &self.strings
    }
}

/// The child's standard streams: which parent descriptor becomes child fd 0, 1, 2.
pub(crate) struct FdPlan {
    /// Source descriptor for each of the child's fds 0–2; `None` leaves that fd as inherited.
    /// Every source is either ≥ 3 or equal to its own target, so the `dup2`s can run in any
    /// order without one clobbering another's source.
    pub(crate) sources: [Option<RawFd>; 3],
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
    /// `None`: the child inherits the parent's environment as it is at exec time.
    pub(crate) envp: Option<CStringArray>,
    /// The paths to try with `execve`, in order.
    pub(crate) candidates: Vec<CString>,
    /// What error messages name as the program: `executable` or `argv[0]`.
    pub(crate) program: OsString,
    pub(crate) cwd: Option<CString>,
    pub(crate) pass_fds: Vec<RawFd>,
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
pub(crate) fn prepare(cmd: &Command) -> Result<Prepared, SpawnError> {
    if cmd.argv.is_empty() {
        return Err(SpawnError::invalid("the argument list is empty"));
    }
    let argv = cmd
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
    let envp = build_env(cmd)?;
    let program = cmd
        .executable
        .clone()
        .unwrap_or_else(|| cmd.argv[0].clone());
    // With an executable list, the program name only labels errors.
    if program.is_empty() && cmd.executable_list.is_none() {
        return Err(SpawnError::invalid("the program name is empty"));
    }
    let candidates = match &cmd.executable_list {
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
                search_path(cmd)
            };
            exec_candidates(&program, path.as_deref())
        }
    };
    let cwd = cmd.cwd.as_deref().map(|c| cstring("cwd", c)).transpose()?;
    if let Some(pgid) = cmd.process_group {
        if pgid < 0 {
            return Err(SpawnError::invalid(format!(
                "process group {pgid} is negative"
            )));
        }
    }
    let mut pass_fds: Vec<RawFd> = cmd.pass_fds.iter().map(|p| p.raw()).collect();
    if let Some(bad) = pass_fds.iter().find(|&&fd| fd < 0) {
        return Err(SpawnError::invalid(format!(
            "pass_fds holds a negative descriptor: {bad}"
        )));
    }
    pass_fds.sort_unstable();
    pass_fds.dedup();
    let groups = match &cmd.extra_groups {
        Some(g) => {
            if g.len() > ngroups_max() {
                return Err(SpawnError::invalid(format!("too many groups: {}", g.len())));
            }
            Some(g.clone())
        }
        None => None,
    };
    let rlimits = cmd
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
    if let Some(sig) = cmd.parent_death_signal {
        if !(1..sys::signal::max_signal()).contains(&sig) {
            return Err(SpawnError::invalid(format!(
                "{sig} is not a valid signal number"
            )));
        }
    }
    if matches!(
        cmd.stdin.0,
        StdioKind::SameAsStdout | StdioKind::SameAsStderr
    ) {
        return Err(SpawnError::invalid(
            "stdin cannot be the same as stdout or stderr",
        ));
    }
    if matches!(cmd.stdout.0, StdioKind::SameAsStdout)
        || matches!(cmd.stderr.0, StdioKind::SameAsStderr)
        || (matches!(cmd.stdout.0, StdioKind::SameAsStderr)
            && matches!(cmd.stderr.0, StdioKind::SameAsStdout))
    {
        return Err(SpawnError::invalid(
            "stdout and stderr cannot each be the same as the other",
        ));
    }
    let mask = match cmd.signal_mask {
        SignalMask::Empty => Some(SigSet::empty()),
        SignalMask::Inherit => None,
        SignalMask::Set(s) => Some(s),
    };
    Ok(Prepared {
        argv: CStringArray::new(argv),
        envp,
        candidates,
        program,
        cwd,
        pass_fds,
        groups,
        rlimits,
        mask,
    })
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

/// The environment the child gets, or `None` when it is the parent's, unchanged.
fn build_env(cmd: &Command) -> Result<Option<CStringArray>, SpawnError> {
    if let Some(entries) = &cmd.environ {
        let strings = entries
            .iter()
            .map(|e| cstring("environment entry", e))
            .collect::<Result<_, _>>()?;
        return Ok(Some(CStringArray::new(strings)));
    }
    if !cmd.env_clear && cmd.env.is_empty() {
        return Ok(None);
    }
    for (k, v) in &cmd.env {
        if k.is_empty() || k.as_bytes()[1..].contains(&b'=') {
            return Err(SpawnError::invalid(format!(
                "invalid environment variable name: {k:?}"
            )));
        }
        cstring("environment variable name", k)?;
        if let Some(v) = v {
            cstring("environment variable value", v)?;
        }
    }
    let mut vars: Vec<(OsString, OsString)> = if cmd.env_clear {
        Vec::new()
    } else {
        std::env::vars_os().collect()
    };
    for (k, v) in &cmd.env {
        let slot = vars.iter().position(|(vk, _)| vk == k);
        match (slot, v) {
            (Some(i), Some(v)) => vars[i].1 = v.clone(),
            (None, Some(v)) => vars.push((k.clone(), v.clone())),
            (Some(i), None) => {
                vars.remove(i);
            }
            (None, None) => {}
        }
    }
    let strings = vars
        .into_iter()
        .map(|(k, v)| {
            let mut kv = k.into_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).map_err(|_| SpawnError::invalid("environment contains a NUL byte"))
        })
        .collect::<Result<_, _>>()?;
    Ok(Some(CStringArray::new(strings)))
}

/// The `PATH` the child's program is searched in: the child's own if the command sets one.
fn search_path(cmd: &Command) -> Option<OsString> {
    if let Some(entries) = &cmd.environ {
        return entries
            .iter()
            .find_map(|e| e.as_bytes().strip_prefix(b"PATH="))
            .map(|v| OsStr::from_bytes(v).to_owned());
    }
    match cmd.env.iter().find(|(k, _)| k == "PATH") {
        Some((_, v)) => v.clone(),
        None if cmd.env_clear => None,
        None => std::env::var_os("PATH"),
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

/// Makes the pipes and opens the null device, and decides which parent descriptor becomes each
/// of the child's standard streams.
pub(crate) fn plan_fds(cmd: &Command) -> Result<FdPlan, SpawnError> {
    let mut plan = FdPlan {
        sources: [None; 3],
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
        match cmd.pipe_size {
            Some(size) => {
                sys::fd::set_pipe_size(fd, size).map_err(|e| SpawnError::new(Step::PipeSize, e))
            }
            None => Ok(()),
        }
    };

    // stdin
    plan.sources[0] = match &cmd.stdin.0 {
        StdioKind::Inherit => None,
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
    let mut out_err = [&cmd.stdout.0, &cmd.stderr.0];
    for (i, kind) in out_err.iter_mut().enumerate() {
        let target = i + 1;
        plan.sources[target] = match kind {
            StdioKind::Inherit | StdioKind::SameAsStdout | StdioKind::SameAsStderr => None,
            StdioKind::Null => Some(open_null(&mut plan)?),
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
    if matches!(cmd.stderr.0, StdioKind::SameAsStdout) {
        plan.sources[2] = Some(plan.sources[1].unwrap_or(1));
    }
    if matches!(cmd.stdout.0, StdioKind::SameAsStderr) {
        plan.sources[1] = Some(plan.sources[2].unwrap_or(2));
    }

    // A source that sits on another standard stream's number would be clobbered by that
    // stream's dup2: move it above 2 first. Afterwards each source is ≥ 3 or its own target.
    for target in 0..3 {
        if let Some(src) = plan.sources[target] {
            if src < 3 && src != target as RawFd {
                #[allow(unsafe_code)]
                // SAFETY: `src` is open: it is one of our own descriptors, a descriptor the
                // command owns, or one of the parent's standard streams named by "same as".
                let borrowed = unsafe { BorrowedFd::borrow_raw(src) };
                let moved = sys::fd::dup_cloexec_min(borrowed, 3).map_err(pipe_err)?;
                plan.sources[target] = Some(moved.as_raw_fd());
                plan.keep_alive.push(moved);
            }
        }
    }
    Ok(plan)
}

/// Moves `fd` to a number ≥ 3 if it sits on a standard stream's number.
pub(crate) fn above_std_streams(fd: OwnedFd) -> Result<OwnedFd, SpawnError> {
    if fd.as_raw_fd() >= 3 {
        return Ok(fd);
    }
    sys::fd::dup_cloexec_min(fd.as_fd(), 3).map_err(|e| SpawnError::new(Step::Pipe, e))
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
