//! `Command::exec`: this process becomes the program. The cases that change the process run
//! in a copy of the test binary (a scenario).

mod common;

use common::{in_scenario, run_scenario, scenario_command, scenario_passed};
use popen::{Command, Stdio, Step};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

/// A pipe whose ends are not close-on-exec: what close_fds exists for.
fn inheritable_pipe() -> (OwnedFd, OwnedFd) {
    let (r, w) = std::io::pipe().unwrap();
    let (r, w): (OwnedFd, OwnedFd) = (r.into(), w.into());
    for fd in [r.as_raw_fd(), w.as_raw_fd()] {
        // SAFETY: clearing the flags of descriptors we own.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    }
    (r, w)
}

/// Ends the scenario with a failure, saying why.
fn fail(why: String) -> ! {
    eprintln!("{why}");
    std::process::exit(1)
}

#[test]
fn exec_replaces_this_process_keeping_only_what_it_is_given() {
    const NAME: &str = "exec_replaces_this_process_keeping_only_what_it_is_given";
    if in_scenario(NAME) {
        let _leak = inheritable_pipe();
        // fd 7 in the program: a copy of this process's stdout.
        let seven = std::io::stdout().as_fd().try_clone_to_owned().unwrap();
        let err = Command::shell("echo $$; echo seven >&7; ls /proc/self/fd; exit 3")
            .pass_fd_as(seven, 7)
            .exec();
        fail(format!("exec failed: {err}"));
    }
    let mut child = scenario_command(NAME)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = common::read_all(&mut child);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3), "{out}");
    // The harness's own first lines, then the program's. The same process: the shell's pid
    // is the one spawned.
    let pid = child.pid().to_string();
    let mut lines = out.lines().skip_while(|l| *l != pid);
    assert_eq!(lines.next(), Some(pid.as_str()), "{out}");
    assert_eq!(lines.next(), Some("seven"), "{out}");
    // 0-2, 7 and the one `ls` opens to list them: the inheritable pipe did not get through.
    let fds: Vec<i32> = lines.filter_map(|l| l.parse().ok()).collect();
    assert!(fds.contains(&7), "{out}");
    assert_eq!(fds.len(), 5, "{out}");
}

#[test]
fn a_failed_exec_names_the_step_and_leaves_the_process_usable() {
    const NAME: &str = "a_failed_exec_names_the_step_and_leaves_the_process_usable";
    if in_scenario(NAME) {
        let (keep_r, _keep_w) = inheritable_pipe();
        let sigpipe_before = sigpipe_disposition();
        if sigpipe_before != libc::SIG_IGN {
            fail("a Rust program starts with SIGPIPE ignored".into());
        }

        let err = Command::new("/surely/no/such/program").exec();
        if (err.step(), err.kind()) != (Step::Exec, std::io::ErrorKind::NotFound)
            || err.path() != Some(Path::new("/surely/no/such/program"))
        {
            fail(format!("missing program: {err}"));
        }
        // restore_signals set SIGPIPE to its default for the program: put back.
        if sigpipe_disposition() != sigpipe_before {
            fail("SIGPIPE's disposition was not put back".into());
        }
        // close_fds marked the descriptor close-on-exec, it did not close it.
        // SAFETY: F_GETFD only reads the flags.
        let flags = unsafe { libc::fcntl(keep_r.as_raw_fd(), libc::F_GETFD) };
        if flags != libc::FD_CLOEXEC {
            fail(format!(
                "the descriptor was closed or left inheritable: {flags}"
            ));
        }

        let err = Command::new("true").cwd("/surely/no/such/dir").exec();
        if (err.step(), err.path()) != (Step::Chdir, Some(Path::new("/surely/no/such/dir"))) {
            fail(format!("missing directory: {err}"));
        }

        let mut cmd = Command::new("true");
        // SAFETY: the hook only returns an error.
        unsafe { cmd.pre_exec(|| Err(std::io::Error::from_raw_os_error(libc::EPERM))) };
        let err = cmd.exec();
        if (err.step(), err.raw_os_error()) != (Step::PreExecHook, Some(libc::EPERM)) {
            fail(format!("failing hook: {err}"));
        }
        scenario_passed();
    }
    assert!(run_scenario(NAME, |_| {}).success());
}

fn sigpipe_disposition() -> libc::sighandler_t {
    // SAFETY: sigaction with no new action only reads the current one into `old`.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old);
        old.sa_sigaction
    }
}

#[test]
fn a_piped_stream_is_refused_before_anything_changes() {
    for stdio in [0, 1, 2] {
        let mut cmd = Command::new("true");
        match stdio {
            0 => cmd.stdin(Stdio::piped()),
            1 => cmd.stdout(Stdio::piped()),
            _ => cmd.stderr(Stdio::piped()),
        };
        let err = cmd.exec();
        assert_eq!(err.step(), Step::Prepare, "{err}");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    }
}
