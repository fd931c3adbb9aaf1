//! The public `posix_spawn` layer's calls made as the engine makes every spawn: orphans
//! collected first, the audit hooks asked, and the child returned for the handle.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use super::{led_group, Child, SpawnPath, Started};
use crate::audit;
use crate::error::SpawnError;
use crate::exec::env::EnvBlock;
use crate::posix_spawn::{self, FileAction, FileActions, SpawnAttr};
use crate::reaper;

/// [`posix_spawn::spawn`] (or [`posix_spawn::spawnp`] with `search`), seen by the audit hooks.
pub(crate) fn spawn<S: AsRef<OsStr>>(
    program: &OsStr,
    argv: &[S],
    env: Option<&[S]>,
    actions: &FileActions,
    attr: &SpawnAttr,
    search: bool,
) -> Result<Child, SpawnError> {
    // As for every spawn: collect children whose handles were dropped before they exited.
    reaper::reap_orphans();
    if audit::enabled() && !argv.is_empty() {
        let args: Vec<OsString> = argv.iter().map(|a| a.as_ref().to_owned()).collect();
        let cwd = actions.actions().iter().rev().find_map(|a| match a {
            FileAction::Chdir(dir) => Some(OsStr::from_bytes(dir.to_bytes())),
            _ => None,
        });
        // An entry with a NUL byte is refused below, by the layer itself.
        let env = env.and_then(|e| EnvBlock::from_entries(e).ok());
        audit::check(program, &args, cwd, env.as_ref())?;
    }
    let spawned = if search {
        posix_spawn::spawnp(program, argv, env, actions, attr)?
    } else {
        posix_spawn::spawn(program, argv, env, actions, attr)?
    };
    let (pid, pidfd, reaped_elsewhere) = spawned.into_parts();
    Ok(Child {
        started: Started {
            pid,
            pidfd,
            reaped_elsewhere,
        },
        path: SpawnPath::PosixSpawn,
        group: led_group(attr.has_setsid(), attr.pgroup(), pid),
        stdin: None,
        stdout: None,
        stderr: None,
    })
}
