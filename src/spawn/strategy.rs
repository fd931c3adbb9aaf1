//! The choice of spawn path: one visible predicate per path, one reason per rule.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use super::request::Request;
use crate::posix_spawn::Extension;

/// How a child is started, in the order the automatic choice tries them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SpawnPath {
    /// Our own vfork-style child: `clone(CLONE_VM | CLONE_VFORK)` on Linux, for every option
    /// set without a pre-exec hook. The automatic choice there: it makes fewer system calls
    /// per spawn than `posix_spawn` (no stack `mmap`/`munmap` per child, the pidfd made with
    /// the child), and the child reports the step that failed itself rather than leaving it to
    /// be inferred. `bench/README.md` has the measured figures.
    CloneVfork,
    /// The C library's `posix_spawn` (vfork-based in glibc ≥ 2.24, musl): where the vfork-style
    /// child is not available, or when forced.
    PosixSpawn,
    /// `fork`: the only path that can run a user's pre-exec hook. Its cost grows with the
    /// parent's memory.
    Fork,
}

impl SpawnPath {
    /// Every path, in the order the automatic choice tries them.
    pub const ALL: [SpawnPath; 3] = [
        SpawnPath::CloneVfork,
        SpawnPath::PosixSpawn,
        SpawnPath::Fork,
    ];

    /// A short name: `vfork`, `posix_spawn`, `fork`.
    pub fn name(self) -> &'static str {
        match self {
            SpawnPath::PosixSpawn => "posix_spawn",
            SpawnPath::CloneVfork => "vfork",
            SpawnPath::Fork => "fork",
        }
    }
}

impl fmt::Display for SpawnPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The path a spawn takes, and why each path tried before it was not taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathChoice {
    path: SpawnPath,
    forced: bool,
    refusals: Vec<(SpawnPath, &'static str)>,
    /// A forced path that cannot honour the options: why.
    impossible: Option<&'static str>,
}

impl PathChoice {
    /// The path taken.
    pub fn path(&self) -> SpawnPath {
        self.path
    }

    /// Whether the path was forced ([`Command::spawn_path`](crate::Command::spawn_path) or
    /// [`testing::set_default_spawn_path`](crate::testing::set_default_spawn_path)).
    pub fn is_forced(&self) -> bool {
        self.forced
    }

    /// The paths tried before and not taken, each with the reason.
    pub fn refusals(&self) -> &[(SpawnPath, &'static str)] {
        &self.refusals
    }

    /// For a forced path that cannot honour every option: the reason.
    pub fn impossible(&self) -> Option<&'static str> {
        self.impossible
    }
}

impl fmt::Display for PathChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path)?;
        if self.forced {
            write!(f, " (forced)")?;
        } else if !self.refusals.is_empty() {
            let reasons: Vec<String> = self
                .refusals
                .iter()
                .map(|(p, why)| format!("{p}: not used because {why}"))
                .collect();
            write!(f, " ({})", reasons.join("; "))?;
        }
        Ok(())
    }
}

static DEFAULT_PATH: AtomicU8 = AtomicU8::new(0);

/// Prefers one spawn path for every command of this process that does not force its own, when
/// that path can honour the command's options (else the automatic choice applies). `None`
/// restores the automatic choice. Meant for tests and benchmarks.
pub(crate) fn set_default_spawn_path(path: Option<SpawnPath>) {
    let v = match path {
        None => 0,
        Some(SpawnPath::PosixSpawn) => 1,
        Some(SpawnPath::CloneVfork) => 2,
        Some(SpawnPath::Fork) => 3,
    };
    DEFAULT_PATH.store(v, Ordering::Relaxed);
}

/// The process-wide preference set by `set_default_spawn_path`.
pub(crate) fn default_spawn_path() -> Option<SpawnPath> {
    default_path()
}

fn default_path() -> Option<SpawnPath> {
    match DEFAULT_PATH.load(Ordering::Relaxed) {
        1 => Some(SpawnPath::PosixSpawn),
        2 => Some(SpawnPath::CloneVfork),
        3 => Some(SpawnPath::Fork),
        _ => None,
    }
}

/// Set once a `CLONE_VM | CLONE_VFORK` child was seen not to share this process's memory.
static VM_NOT_SHARED: AtomicBool = AtomicBool::new(false);

const NOT_SHARED: &str =
    "children here do not share the parent's memory (run as forks, as under valgrind), so \
     they could not report a failure";

/// Records that `CLONE_VM` children do not share memory in this process (an emulator runs them
/// as forks): the vfork child and glibc's `posix_spawn`, which both report a failure through
/// that memory, are no longer chosen.
pub(crate) fn mark_vm_not_shared() {
    VM_NOT_SHARED.store(true, Ordering::Relaxed);
}

/// Set once a vfork-style child of this process was seen sharing its memory: the kernel runs
/// `CLONE_VM` children as asked, not as forks (valgrind does, and stops the whole program at a
/// `clone` it cannot turn into a fork, such as one with `CLONE_FILES` too).
static VM_SHARED: AtomicBool = AtomicBool::new(false);

/// Records that a vfork-style child shared this process's memory.
pub(crate) fn mark_vm_shared() {
    if !VM_SHARED.load(Ordering::Relaxed) {
        VM_SHARED.store(true, Ordering::Relaxed);
    }
}

/// Set once a child made sharing this process's descriptor table could not take a copy of its
/// own (a sandbox refusing both `close_range` and `unshare`).
static FD_TABLE_SHARING_REFUSED: AtomicBool = AtomicBool::new(false);

/// Records that a child could not leave this process's descriptor table.
pub(crate) fn mark_fd_table_sharing_refused() {
    FD_TABLE_SHARING_REFUSED.store(true, Ordering::Relaxed);
}

/// Whether a vfork-style child may be made sharing this process's descriptor table (see
/// `clone_vfork`): one was seen sharing its memory, and none failed to leave the table.
pub(crate) fn may_share_fd_table() -> bool {
    VM_SHARED.load(Ordering::Relaxed) && !FD_TABLE_SHARING_REFUSED.load(Ordering::Relaxed)
}

/// The highest number `pass_fd_as` may choose for `posix_spawn` to take it with `close_fds` on.
pub(crate) const MAX_CHOSEN_WITH_CLOSE_FDS: i32 = 1024;

/// Why `posix_spawn` cannot express this command, if it cannot.
fn posix_spawn_refusal(req: &Request) -> Option<&'static str> {
    if !req.hooks.is_empty() {
        return Some("a pre-exec hook is set");
    }
    if req.uid.is_some() || req.gid.is_some() || req.extra_groups.is_some() {
        return Some("a user or group is set");
    }
    if req.umask.is_some() {
        return Some("a umask is set");
    }
    if !req.rlimits.is_empty() {
        return Some("resource limits are set");
    }
    if req.parent_death_signal.is_some() {
        return Some("a parent-death signal is set");
    }
    if !req.close_in_child.is_empty() {
        return Some("descriptors are to be closed in the child");
    }
    if req.close_fds && !req.pass_fds.is_empty() {
        return Some("descriptors are passed while close_fds is on");
    }
    // With close_fds, the descriptors below the highest chosen number that are not chosen are
    // closed one file action each (see `posix::file_actions`): keep that list short.
    if req.close_fds
        && req
            .pass_fds_as
            .iter()
            .any(|&(_, target)| target > MAX_CHOSEN_WITH_CLOSE_FDS)
    {
        return Some("a pass_fd_as number is above 1024 while close_fds is on");
    }
    if !Extension::ReportsExecErrors.is_available() {
        return Some("the C library's posix_spawn does not report exec errors");
    }
    if VM_NOT_SHARED.load(Ordering::Relaxed) {
        return Some(NOT_SHARED);
    }
    if req.close_fds && !Extension::AddClosefrom.is_available() {
        return Some("the C library has no posix_spawn_file_actions_addclosefrom_np");
    }
    if req.cwd.is_some() && !Extension::AddChdir.is_available() {
        return Some("the C library has no posix_spawn_file_actions_addchdir_np");
    }
    if req.new_session && !Extension::SetSid.is_available() {
        return Some("the C library has no POSIX_SPAWN_SETSID");
    }
    None
}

/// Why the vfork-style child cannot run this command, if it cannot.
fn vfork_refusal(req: &Request) -> Option<&'static str> {
    if !req.hooks.is_empty() {
        return Some("a pre-exec hook is set");
    }
    if !cfg!(target_os = "linux") {
        return Some("clone(CLONE_VM | CLONE_VFORK) is Linux-only");
    }
    if VM_NOT_SHARED.load(Ordering::Relaxed) {
        return Some(NOT_SHARED);
    }
    None
}

/// Whether the vfork-style child can run this command.
pub(crate) fn vfork_possible(req: &Request) -> bool {
    vfork_refusal(req).is_none()
}

fn refusal(path: SpawnPath, req: &Request) -> Option<&'static str> {
    match path {
        SpawnPath::PosixSpawn => posix_spawn_refusal(req),
        SpawnPath::CloneVfork => vfork_refusal(req),
        SpawnPath::Fork => None,
    }
}

pub(crate) fn choose(req: &Request) -> PathChoice {
    if let Some(path) = req.spawn_path {
        return PathChoice {
            path,
            forced: true,
            refusals: Vec::new(),
            impossible: refusal(path, req),
        };
    }
    if let Some(path) = default_path().filter(|&p| refusal(p, req).is_none()) {
        return PathChoice {
            path,
            forced: true,
            refusals: Vec::new(),
            impossible: None,
        };
    }
    let mut refusals = Vec::new();
    for path in SpawnPath::ALL {
        match refusal(path, req) {
            None => {
                return PathChoice {
                    path,
                    forced: false,
                    refusals,
                    impossible: None,
                }
            }
            Some(why) => refusals.push((path, why)),
        }
    }
    unreachable!("fork is always possible")
}
