//! Commands that no child could carry out are refused in the parent, before any process exists,
//! on every spawn path.
//!
//! `keep_failed_child(true)` makes a vfork or fork child that failed come back as
//! `SpawnError::pid`: an error without a pid shows that no child was created.

mod common;

use common::on_each_path;
use popen::{Command, SpawnError, SpawnPath, Stdio, Step};
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;

/// Spawns `cmd` (which must fail) keeping any failed child, and reaps that child if there was
/// one, so a failing assertion leaves no zombie behind.
fn spawn_err(cmd: &mut Command) -> SpawnError {
    let err = popen::testing::keep_failed_child(cmd, true)
        .spawn()
        .unwrap_err();
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

/// A descriptor number that is not open in this process: closed, or beyond any descriptor
/// table.
const NOT_OPEN: [i32; 2] = [700, 1 << 30];

fn assert_not_open(fd: i32) {
    // SAFETY: F_GETFD only reads the descriptor table.
    let ret = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    assert_eq!(ret, -1, "descriptor {fd} is open in the test process");
}

/// Spawns `cmd` on `path` and checks it was refused at `step` with `EBADF`, without a child.
fn assert_refused(path: SpawnPath, cmd: &mut Command, (step, fd): (Step, i32), what: &str) {
    let err = spawn_err(cmd.spawn_path(path));
    assert_eq!(err.pid(), None, "{path}: {what}: a child was created");
    assert_eq!(
        (err.step(), err.raw_os_error()),
        (step, Some(libc::EBADF)),
        "{path}: {what}: {err}"
    );
    assert_eq!(err.fd(), Some(fd), "{path}: {what}: {err}");
    assert!(
        err.to_string().contains(&format!("descriptor {fd}")),
        "{err}"
    );
}

/// A command that is never dropped: it owns a descriptor number that is not open, and closing
/// that would be an I/O-safety violation (and could close another thread's descriptor).
fn never_dropped() -> ManuallyDrop<Command> {
    ManuallyDrop::new(Command::new("true"))
}

#[test]
fn a_standard_stream_from_a_descriptor_that_is_not_open_is_refused_as_dup2() {
    for fd in NOT_OPEN {
        assert_not_open(fd);
        for path in SpawnPath::ALL {
            let mut cmd = never_dropped();
            // SAFETY: deliberately a descriptor that is not open; the command is never dropped,
            // so nothing closes it.
            cmd.stdout(unsafe { Stdio::from_raw_fd(fd) });
            assert_refused(
                path,
                &mut cmd,
                (Step::Dup2, fd),
                &format!("stdout from fd {fd}"),
            );
        }
    }
}

#[test]
fn a_passed_descriptor_that_is_not_open_is_refused_as_pass_fds() {
    for fd in NOT_OPEN {
        assert_not_open(fd);
        for path in SpawnPath::ALL {
            let mut cmd = never_dropped();
            // posix_spawn passes descriptors only with close_fds off.
            cmd.close_fds(path != SpawnPath::PosixSpawn);
            // SAFETY: deliberately a descriptor that is not open; it is only checked.
            unsafe { cmd.pass_raw_fd(fd) };
            assert_refused(
                path,
                &mut cmd,
                (Step::PassFds, fd),
                &format!("pass fd {fd}"),
            );
        }
    }
}
