//! The Popen handle: waiting, polling, signals, exit statuses, threads, drop.

mod common;

use common::{in_scenario, run_scenario, scenario_passed, zombie_children};
use popen::{Command, ExitStatus, Popen, SpawnPath, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn handle_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Popen>();
    assert_send_sync::<Command>();
    assert_send_sync::<popen::SpawnError>();
    assert_send_sync::<popen::ChildStdout>();
}

#[test]
fn poll_is_none_while_running_and_the_status_after() {
    for path in SpawnPath::ALL {
        let mut child = Command::new("sh")
            .args(["-c", "read x; exit 3"])
            .stdin(Stdio::piped())
            .spawn_path(path)
            .spawn()
            .unwrap();
        assert_eq!(child.spawn_path(), path);
        assert_eq!(child.poll().unwrap(), None);
        assert_eq!(child.returncode(), None);
        drop(child.stdin.take());
        assert_eq!(child.wait().unwrap().code(), Some(3));
        assert_eq!(child.poll().unwrap().and_then(ExitStatus::code), Some(3));
        assert_eq!(child.returncode(), Some(3));
    }
}

#[test]
fn every_path_gives_a_pidfd() {
    for path in SpawnPath::ALL {
        let child = Command::new("true").spawn_path(path).spawn().unwrap();
        assert!(child.pidfd().is_some(), "{path}");
        child.wait().unwrap();
    }
}

#[test]
fn wait_timeout_expires_while_the_child_runs() {
    let child = Command::new("sleep").arg("30").spawn().unwrap();
    let start = Instant::now();
    assert_eq!(
        child.wait_timeout(Duration::from_millis(200)).unwrap(),
        None
    );
    assert!(start.elapsed() >= Duration::from_millis(200));
    child.kill().unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
}

#[test]
fn wait_with_a_long_timeout_returns_when_the_child_exits() {
    let child = Command::new("sleep").arg("0.3").spawn().unwrap();
    let start = Instant::now();
    let status = child.wait_timeout(Duration::from_secs(120)).unwrap();
    assert!(status.unwrap().success());
    // Generous slack for a loaded machine; what matters is "not at the timeout".
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn signals_and_the_returncode_convention() {
    let child = Command::new("sleep").arg("30").spawn().unwrap();
    child.terminate().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    assert_eq!(status.code(), None);
    assert_eq!(status.returncode(), -libc::SIGTERM);
    assert!(!status.success());
    let std_status: std::process::ExitStatus = status.into();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(std_status.signal(), Some(libc::SIGTERM));
    assert_eq!(status.to_string(), "signal: 15");

    let child = Command::new("sleep").arg("30").spawn().unwrap();
    child.send_signal(libc::SIGUSR1).unwrap();
    assert_eq!(child.wait().unwrap().returncode(), -libc::SIGUSR1);
}

#[test]
fn signalling_a_reaped_child_signals_nobody() {
    let child = Command::new("true").spawn().unwrap();
    let status = child.wait().unwrap();
    // The pid may already belong to someone else: these must be no-ops, not errors.
    child.kill().unwrap();
    child.terminate().unwrap();
    child.send_signal(libc::SIGUSR1).unwrap();
    assert_eq!(child.wait().unwrap(), status);
}

#[test]
fn wait_and_poll_from_many_threads_at_once() {
    let child = Arc::new(Command::new("sleep").arg("0.3").spawn().unwrap());
    let mut threads = Vec::new();
    for i in 0..8 {
        let child = Arc::clone(&child);
        threads.push(std::thread::spawn(move || {
            if i % 2 == 0 {
                child.wait().unwrap()
            } else {
                loop {
                    if let Some(s) = child.poll().unwrap() {
                        break s;
                    }
                    let _ = child.wait_timeout(Duration::from_millis(10)).unwrap();
                }
            }
        }));
    }
    for t in threads {
        assert!(t.join().unwrap().success());
    }
}

#[test]
fn group_signal_reaches_grandchildren() {
    let child = Command::shell("sleep 30 & sleep 30")
        .process_group(0)
        .spawn()
        .unwrap();
    let group = child.process_group().unwrap();
    assert_eq!(group, child.pid());
    // Wait until the grandchild is in the group.
    let deadline = Instant::now() + Duration::from_secs(10);
    while members_alive(group) < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    child.send_signal_group(libc::SIGKILL).unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    let deadline = Instant::now() + Duration::from_secs(10);
    while members_alive(group) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(members_alive(group), 0);
}

/// Processes in process group `pgrp` that are not zombies.
fn members_alive(pgrp: i32) -> usize {
    common::processes()
        .iter()
        .filter(|p| p.state != 'Z' && p.pgrp == pgrp)
        .count()
}

#[test]
fn dropping_a_running_child_leaves_no_zombie() {
    const NAME: &str = "dropping_a_running_child_leaves_no_zombie";
    if in_scenario(NAME) {
        for path in SpawnPath::ALL {
            let child = Command::new("sleep")
                .arg("0.2")
                .spawn_path(path)
                .spawn()
                .unwrap();
            let start = Instant::now();
            drop(child);
            // Dropping never blocks on a running child.
            assert!(start.elapsed() < Duration::from_millis(150));
        }
        let finished = Command::new("true").spawn().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        drop(finished);
        // The reaper thread collects the running ones as they exit, with no new spawn.
        let deadline = Instant::now() + Duration::from_secs(20);
        while (popen::testing::pending_orphans() > 0 || !zombie_children().is_empty())
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(popen::testing::pending_orphans(), 0);
        assert_eq!(zombie_children(), Vec::<i32>::new());
        scenario_passed();
    }
    assert!(run_scenario(NAME, |_| {}).success());
}

#[test]
fn detach_leaves_reaping_to_the_caller() {
    let child = Command::shell("exit 4").spawn().unwrap();
    let pid = child.detach();
    let mut status = 0;
    // SAFETY: waitpid on our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert_eq!(ExitStatus::from_raw(status).code(), Some(4));
}

#[test]
fn path_choice_explains_itself() {
    let mut cmd = Command::new("true");
    cmd.cwd("/").start_new_session(true).process_group(0).uid(0);
    assert_eq!(cmd.choose_path().to_string(), "vfork");
    // SAFETY: the hook only returns.
    unsafe { cmd.pre_exec(|| Ok(())) };
    assert_eq!(
        cmd.choose_path().to_string(),
        "fork (vfork: not used because a pre-exec hook is set; \
         posix_spawn: not used because a pre-exec hook is set)"
    );
    cmd.spawn_path(SpawnPath::PosixSpawn);
    let forced = cmd.choose_path();
    assert_eq!(forced.to_string(), "posix_spawn (forced)");
    assert_eq!(forced.impossible(), Some("a pre-exec hook is set"));
    cmd.spawn_path(SpawnPath::Fork);
    assert_eq!(cmd.choose_path().to_string(), "fork (forced)");
}

/// Lowers this process's soft limit on open descriptors to `n` (in a scenario process only).
fn limit_open_files(n: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write one valid rlimit.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = n;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
}

/// Opens /dev/null until the descriptor table is full.
fn fill_descriptor_table() -> Vec<std::fs::File> {
    let mut files = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => files.push(f),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EMFILE));
                return files;
            }
        }
    }
}

#[test]
fn a_pidfd_that_could_not_be_opened_is_opened_at_the_next_need() {
    const NAME: &str = "a_pidfd_that_could_not_be_opened_is_opened_at_the_next_need";
    if in_scenario(NAME) {
        limit_open_files(64);
        // The vfork-style and posix_spawn paths need no descriptor in the parent when the
        // standard streams are inherited: the child starts, without a pidfd.
        for path in [SpawnPath::CloneVfork, SpawnPath::PosixSpawn] {
            let mut files = fill_descriptor_table();
            let child = Command::new("sleep")
                .arg("0.3")
                .spawn_path(path)
                .spawn()
                .unwrap_or_else(|e| panic!("{path}: {e}"));
            assert!(child.pidfd().is_none(), "{path}");
            assert_eq!(child.wait_timeout(Duration::from_millis(1)).unwrap(), None);
            files.pop();
            // With room again, the handle gets its pidfd (and sleeps on it) rather than
            // polling for the rest of its life.
            assert!(child.pidfd().is_some(), "{path}");
            let status = child.wait_timeout(Duration::from_secs(30)).unwrap();
            assert!(status.unwrap().success(), "{path}");
        }
        scenario_passed();
    }
    assert!(run_scenario(NAME, |_| {}).success());
}

#[test]
fn a_group_signal_never_reaches_a_group_the_child_only_joined() {
    const NAME: &str = "a_group_signal_never_reaches_a_group_the_child_only_joined";
    if in_scenario(NAME) {
        // A group of our own, so that a stray group signal only hits this scenario process.
        // SAFETY: setpgid and getpgrp take and return integers.
        let ours = unsafe {
            assert_eq!(libc::setpgid(0, 0), 0);
            libc::getpgrp()
        };
        common::on_each_path(
            || {
                let mut cmd = Command::new("sleep");
                cmd.arg("30").process_group(ours);
                cmd
            },
            |path, cmd| {
                let child = cmd.spawn().unwrap();
                assert_eq!(child.process_group(), None, "{path}");
                // Goes to the child alone, not to our group.
                child.send_signal_group(libc::SIGTERM).unwrap();
                assert_eq!(
                    child.wait().unwrap().signal(),
                    Some(libc::SIGTERM),
                    "{path}"
                );
            },
        );
        // A child that leads its group, whose group we then join: refused, not sent to us.
        let leader = Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        // SAFETY: plain system calls.
        assert_eq!(unsafe { libc::setpgid(0, leader.pid()) }, 0);
        let err = leader.send_signal_group(libc::SIGTERM).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
        leader.kill().unwrap();
        assert_eq!(leader.wait().unwrap().signal(), Some(libc::SIGKILL));
        scenario_passed();
    }
    assert!(run_scenario(NAME, |_| {}).success());
}

#[test]
fn a_group_signal_after_the_leader_was_reaped_is_refused() {
    common::on_each_path(
        || {
            let mut cmd = Command::new("true");
            cmd.process_group(0);
            cmd
        },
        |path, cmd| {
            let child = cmd.spawn().unwrap();
            assert_eq!(child.process_group(), Some(child.pid()), "{path}");
            assert!(child.wait().unwrap().success());
            // Its group id is free now, and may be another group's.
            let err = child.send_signal_group(libc::SIGKILL).unwrap_err();
            assert_eq!(
                err.kind(),
                std::io::ErrorKind::InvalidInput,
                "{path}: {err}"
            );
        },
    );
}
