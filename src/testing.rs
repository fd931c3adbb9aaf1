//! Knobs for tests, benchmarks and stand-ins for CPython's own functions — not for everyday
//! use. Each changes what a spawn does in a way an ordinary program should not want: a
//! process-wide spawn path, a C library extension made to look missing, a failed child left
//! for the caller to reap. Kept apart so that the everyday surface stays small.

use crate::command::Command;
use crate::posix_spawn::Extension;
use crate::spawn::{strategy, SpawnPath};

/// Prefers one spawn path for every command of this process that does not force its own
/// ([`Command::spawn_path`]), when that path can honour the command's options (else the
/// automatic choice applies). `None` restores the automatic choice. Process-wide.
///
/// ```
/// use popen::{testing, Command, SpawnPath};
///
/// testing::set_default_spawn_path(Some(SpawnPath::Fork));
/// assert_eq!(Command::new("true").choose_path().path(), SpawnPath::Fork);
/// testing::set_default_spawn_path(None);
/// assert_eq!(testing::default_spawn_path(), None);
/// ```
pub fn set_default_spawn_path(path: Option<SpawnPath>) {
    strategy::set_default_spawn_path(path);
}

/// The process-wide preference set by [`set_default_spawn_path`].
pub fn default_spawn_path() -> Option<SpawnPath> {
    strategy::default_spawn_path()
}

/// The number of children whose handles were dropped while they ran and that were not reaped
/// yet (the background reaper collects them as they exit).
pub fn pending_orphans() -> usize {
    crate::reaper::pending_orphans()
}

/// Makes this process behave as if the C library lacked (`true`) or had again (`false`)
/// `extension`: for tests of the refusals and fallbacks on a C library that has everything.
/// Process-wide.
pub fn simulate_missing_extension(extension: Extension, missing: bool) {
    extension.simulate_missing(missing);
}

/// Leaves a child that failed before exec unreaped, for a caller that reaps it itself (as
/// CPython's `subprocess.py` does after `_posixsubprocess.fork_exec`):
/// [`SpawnError::pid`](crate::SpawnError::pid) then names it, and the caller must wait for it.
/// Only the vfork and fork paths have such a child; a failed `posix_spawn` leaves none behind.
pub fn keep_failed_child(cmd: &mut Command, on: bool) -> &mut Command {
    cmd.req.keep_failed_child = on;
    cmd
}
