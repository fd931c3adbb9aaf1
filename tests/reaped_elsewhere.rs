//! Children reaped by someone else (SIGCHLD ignored, `SA_NOCLDWAIT`): their pids are recycled,
//! and a stale handle must never reach the process that got the pid next.

mod common;

use common::{in_scenario, open_fds, run_scenario, scenario_passed, zombie_children};
use popen::{Command, ExitStatus, RunError, RunOptions, SpawnPath, Step};
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
        // The kernel reaps it (SIGCHLD ignored): this returns once it is gone.
        let _ = stranger.wait();
    }
    panic!("no process could be given pid {pid}");
}

/// A pre-exec hook that leaves behind a grandchild holding this child's descriptors — the
/// spawn's error pipe among them — for 200 ms: the spawn returns only then, long after the
/// child has exec'd `true`, exited and been reaped by the kernel.
fn hold_the_spawn_open() -> std::io::Result<()> {
    // SAFETY: in the forked child: fork, nanosleep and _exit are async-signal-safe.
    unsafe {
        if libc::fork() == 0 {
            let pause = libc::timespec {
                tv_sec: 0,
                tv_nsec: 200_000_000,
            };
            libc::nanosleep(&pause, std::ptr::null_mut());
            libc::_exit(0);
        }
    }
    Ok(())
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
    // Each path, then the fork path with a pre-exec hook (the C library's fork, with the
    // pidfd opened after it: here the child is surely gone by then).
    for (path, hook) in SpawnPath::ALL
        .into_iter()
        .map(|p| (p, false))
        .chain([(SpawnPath::Fork, true)])
    {
        let mut cmd = Command::new("true");
        cmd.spawn_path(path).process_group(0);
        if hook {
            // SAFETY: fork, nanosleep and _exit are async-signal-safe; the grandchild only
            // sleeps and exits.
            unsafe { cmd.pre_exec(hold_the_spawn_open) };
        }
        let child = cmd.spawn().unwrap();
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
        let _ = stranger.wait();
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

/// With the kernel reaping children (as the caller set up), on each path: every operation
/// returns, with the status [unavailable](ExitStatus::is_unavailable) and the output intact,
/// and nothing is left behind.
fn every_operation_returns_while_the_kernel_reaps() {
    let fds_before = open_fds();
    let bound = Duration::from_secs(30);
    common::on_each_path(
        || Command::shell("exit 3"),
        |path, cmd| {
            let child = cmd.spawn().unwrap();
            // posix_spawn makes no pidfd with the child: the vfork-style child stands in.
            let expected = match path {
                SpawnPath::PosixSpawn => SpawnPath::CloneVfork,
                other => other,
            };
            assert_eq!(child.spawn_path(), expected);
            assert!(child.pidfd().is_some(), "{path}");
            let status = child.wait_timeout(bound).unwrap().expect("no hang");
            assert!(status.is_unavailable(), "{path}: {status}");
            assert_eq!(child.poll().unwrap(), Some(status));
            assert_eq!(child.wait().unwrap(), status);
            // Reaped: nothing is signalled.
            child.kill().unwrap();
        },
    );
    common::on_each_path(
        || {
            let mut cmd = Command::new("sleep");
            cmd.arg("30");
            cmd
        },
        |path, cmd| {
            let child = cmd.spawn().unwrap();
            assert_eq!(child.poll().unwrap(), None, "{path}");
            child.kill().unwrap();
            let status = child.wait_timeout(bound).unwrap().expect("no hang");
            assert!(status.is_unavailable(), "{path}: {status}");
            assert!(!status.success() && status.code().is_none() && status.signal().is_none());
        },
    );
    common::on_each_path(
        || Command::shell("echo hi; exit 0"),
        |path, cmd| {
            let done = RunOptions::new().capture_stdout().run(&mut *cmd).unwrap();
            assert_eq!(done.stdout, b"hi\n", "{path}");
            assert!(done.status.is_unavailable(), "{path}");
            // CPython's returncode for a lost status; not a success for a check.
            assert_eq!(done.returncode(), 0);
            let err = done.check().unwrap_err();
            assert!(err.to_string().contains("unavailable"), "{err}");
        },
    );
    common::on_each_path(
        || {
            let mut cmd = Command::new("sleep");
            cmd.arg("30").process_group(0);
            cmd
        },
        |path, cmd| {
            let start = Instant::now();
            let opts = RunOptions::new()
                .capture_output()
                .timeout(Duration::from_millis(100));
            match opts.run(&mut *cmd) {
                Err(RunError::Timeout(e)) => {
                    assert!(e.status.is_none_or(ExitStatus::is_unavailable), "{path}")
                }
                other => panic!("{path}: {other:?}"),
            }
            assert!(start.elapsed() < bound, "{path}");
        },
    );
    // A pre-exec hook: the C library's fork (its fork handlers run), the pidfd opened after.
    let mut cmd = Command::shell("exit 5");
    // SAFETY: the hook only returns.
    unsafe { cmd.pre_exec(|| Ok(())) };
    let child = cmd.spawn().unwrap();
    assert_eq!(child.spawn_path(), SpawnPath::Fork);
    let status = child.wait_timeout(bound).unwrap().expect("no hang");
    assert!(status.is_unavailable(), "{status}");
    drop(child);
    common::on_each_path(
        || Command::new("/nonexistent/program"),
        |path, cmd| {
            let err = cmd.spawn().unwrap_err();
            assert_eq!(err.step(), Step::Exec, "{path}: {err}");
        },
    );
    assert_eq!(popen::testing::pending_orphans(), 0);
    assert_eq!(zombie_children(), Vec::<i32>::new());
    assert_eq!(open_fds(), fds_before, "descriptors leaked");
}

#[test]
fn every_operation_returns_with_sigchld_ignored() {
    const NAME: &str = "every_operation_returns_with_sigchld_ignored";
    if in_scenario(NAME) {
        // SAFETY: the scenario process is ours alone; the kernel reaps children from now on.
        unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
        every_operation_returns_while_the_kernel_reaps();
        scenario_passed();
    }
    assert!(run_scenario(NAME, |_| {}).success());
}

#[test]
fn every_operation_returns_with_sa_nocldwait() {
    const NAME: &str = "every_operation_returns_with_sa_nocldwait";
    if in_scenario(NAME) {
        set_nocldwait();
        every_operation_returns_while_the_kernel_reaps();
        scenario_passed();
    }
    assert!(run_scenario(NAME, |_| {}).success());
}
