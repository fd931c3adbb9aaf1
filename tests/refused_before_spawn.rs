//! Commands that no child could carry out are refused in the parent, before any process exists,
//! on every spawn path.
//!
//! `keep_failed_child(true)` makes a vfork or fork child that failed come back as
//! `SpawnError::pid`: an error without a pid shows that no child was created.

mod common;

use common::on_each_path;
use popen::{Command, SpawnError, Step};

/// Spawns `cmd` (which must fail) keeping any failed child, and reaps that child if there was
/// one, so a failing assertion leaves no zombie behind.
fn spawn_err(cmd: &mut Command) -> SpawnError {
    let err = cmd.keep_failed_child(true).spawn().unwrap_err();
    if let Some(pid) = err.pid() {
        let mut status = 0;
        // SAFETY: waitpid writes the status into our local.
        unsafe { libc::waitpid(pid, &mut status, 0) };
    }
    err
}

#[test]
fn a_new_session_with_a_process_group_is_refused() {
    for pgid in [0, 1] {
        on_each_path(
            || {
                let mut c = Command::new("true");
                c.start_new_session(true).process_group(pgid);
                c
            },
            |path, cmd| {
                let err = spawn_err(cmd);
                assert_eq!(err.pid(), None, "{path}: a child was created");
                assert_eq!(err.step(), Step::Prepare, "{path}: {err}");
                assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{path}");
                let msg = err.to_string();
                assert!(
                    msg.contains("start_new_session") && msg.contains("process_group"),
                    "{path}: {msg}"
                );
            },
        );
    }
}
