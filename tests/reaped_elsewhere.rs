//! Children reaped by someone else (SIGCHLD ignored, `SA_NOCLDWAIT`): their pids are recycled,
//! and a stale handle must never reach the process that got the pid next.

mod common;

use common::{in_scenario, scenario_passed};
use popen::{Command, ExitStatus, SpawnPath};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// Runs the test `name` again, alone, as pid 1 of a new pid namespace with its own /proc
/// (`unshare -p -f --mount-proc`), where it may pick the next pid through
/// /proc/sys/kernel/ns_last_pid. `None` (with the reason printed) where that cannot be done.
fn run_in_pid_namespace(name: &str) -> Option<ExitStatus> {
    // SAFETY: geteuid only reads.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: a new pid namespace and ns_last_pid need root");
        return None;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = Command::new("unshare");
    cmd.args(["-p", "-f", "--mount-proc"])
        .arg(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env("POPEN_TEST_SCENARIO", name);
    match cmd.spawn() {
        Ok(child) => Some(child.wait().expect("wait scenario")),
        Err(e) => {
            eprintln!("skipped: cannot run unshare: {e}");
            None
        }
    }
}

/// Waits until no process `pid` exists (the kernel reaped it), at most 10 s.
fn wait_gone(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(Instant::now() < deadline, "process {pid} never went away");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Starts `sleep 100`, by other means than this crate, as the process that gets `pid` (the pid
/// of a child that was reaped elsewhere), leading a process group of its own.
fn stranger_with_pid(pid: i32) -> std::process::Child {
    for _ in 0..20 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string())
            .expect("write ns_last_pid");
        let mut stranger = std::process::Command::new("sleep")
            .arg("100")
            .process_group(0)
            .spawn()
            .expect("start the stranger");
        if stranger.id() as i32 == pid {
            return stranger;
        }
        let _ = stranger.kill();
    }
    panic!("no process could be given pid {pid}");
}

/// Whether process `pid` runs (exists and is not a zombie).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| common::parse_stat(&s))
        .is_some_and(|p| p.state != 'Z')
}

/// With the kernel reaping children (as the caller set up), on each path: a child exits, a
/// stranger gets its pid, and every operation on the stale handle leaves the stranger alone.
fn stale_handles_never_reach_the_stranger() {
    for path in SpawnPath::ALL {
        let child = Command::new("true")
            .spawn_path(path)
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.pid();
        wait_gone(pid);
        let mut stranger = stranger_with_pid(pid);
        child.kill().unwrap();
        child.send_signal(libc::SIGTERM).unwrap();
        // The stranger leads a group with the dead child's id: refused, not sent there.
        let refused = child.send_signal_group(libc::SIGKILL).unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::InvalidInput, "{path}");
        let status = child.wait_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(status.map(ExitStatus::is_unavailable), Some(true), "{path}");
        let status = child.wait().unwrap();
        assert!(status.is_unavailable(), "{path}: {status}");
        assert!(!status.success() && status.code().is_none(), "{path}");
        assert_eq!(child.poll().unwrap(), Some(status));
        std::thread::sleep(Duration::from_millis(50));
        assert!(alive(pid), "{path}: the stranger with pid {pid} was hit");
        stranger.kill().unwrap();
        drop(child);
    }
}

#[test]
fn a_recycled_pid_is_never_hit_with_sigchld_ignored() {
    const NAME: &str = "a_recycled_pid_is_never_hit_with_sigchld_ignored";
    if in_scenario(NAME) {
        // SAFETY: the scenario process is ours alone; the kernel reaps children from now on.
        unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
        stale_handles_never_reach_the_stranger();
        scenario_passed();
    }
    if let Some(status) = run_in_pid_namespace(NAME) {
        assert!(status.success(), "{status}");
    }
}

#[test]
fn a_recycled_pid_is_never_hit_with_sa_nocldwait() {
    const NAME: &str = "a_recycled_pid_is_never_hit_with_sa_nocldwait";
    if in_scenario(NAME) {
        set_nocldwait();
        stale_handles_never_reach_the_stranger();
        scenario_passed();
    }
    if let Some(status) = run_in_pid_namespace(NAME) {
        assert!(status.success(), "{status}");
    }
}

/// SIGCHLD with its default action and `SA_NOCLDWAIT`: children are reaped by the kernel.
fn set_nocldwait() {
    // SAFETY: all-zero is a valid sigaction (SIG_DFL, empty mask); the scenario process is ours.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = libc::SIG_DFL;
        action.sa_flags = libc::SA_NOCLDWAIT;
        assert_eq!(
            libc::sigaction(libc::SIGCHLD, &action, std::ptr::null_mut()),
            0
        );
    }
}
