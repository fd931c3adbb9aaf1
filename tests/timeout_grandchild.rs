//! Timeouts that always return: a grandchild that keeps the capture pipes open after the
//! child is killed (CPython issue 81605) does not hold `run` past timeout + grace period; a
//! child in a process group of its own takes its whole group with it.
//!
//! One test in its own binary: it makes this process a child subreaper, so that the orphaned
//! grandchildren become its children and can be found, checked, and cleaned up by pid.

mod common;

use common::processes;
use popen::{CaptureOptions, Command, CommunicateError, RunError, RunOptions, Stdio};
use std::time::{Duration, Instant};

const SCRIPT: &str = "sleep 30 & echo hi; sleep 30";
const TIMEOUT: Duration = Duration::from_secs(1);
/// Slack on top of timeout + grace, for a loaded machine.
const SLACK: Duration = Duration::from_secs(2);

/// Our children (orphans adopted as subreaper included) running `sleep`, alive or zombie.
fn our_sleeps() -> Vec<(i32, char)> {
    let me = std::process::id() as i32;
    processes()
        .into_iter()
        .filter(|p| p.ppid == me && p.comm == "sleep")
        .map(|p| (p.pid, p.state))
        .collect()
}

/// Kills (by pid: each is our child, so the pid cannot be recycled before we reap it) and
/// reaps the given children.
fn kill_and_reap(pids: &[i32]) {
    for &pid in pids {
        // SAFETY: plain system calls on a child of ours that we have not reaped.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            let mut status = 0;
            libc::waitpid(pid, &mut status, 0);
        }
    }
}

/// The live (non-zombie) members of process group `pgrp`, polled for up to 3 s while the
/// SIGKILLs land.
fn live_members(pgrp: i32) -> Vec<(i32, String)> {
    let until = Instant::now() + Duration::from_secs(3);
    loop {
        let live: Vec<(i32, String)> = processes()
            .into_iter()
            .filter(|p| p.pgrp == pgrp && p.state != 'Z' && p.state != 'X')
            .map(|p| (p.pid, p.comm))
            .collect();
        if live.is_empty() || Instant::now() >= until {
            return live;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn grandchild_holding_the_pipe_does_not_hold_the_timeout() {
    // SAFETY: prctl with integer arguments.
    assert_eq!(
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) },
        0
    );
    let grace = popen::DEFAULT_GRACE_PERIOD;
    // run with capture and TIMEOUT, which must time out: its error and how long it took.
    let run_to_timeout = |cmd: &mut Command| {
        let started = Instant::now();
        let err =
            popen::run(cmd, &RunOptions::new().capture_output().timeout(TIMEOUT)).unwrap_err();
        let elapsed = started.elapsed();
        let RunError::Timeout(t) = err else {
            panic!("{err}")
        };
        (t, elapsed)
    };

    // 1. A plain child: it is killed; its background grandchild is not (it is in no group of
    // the child's own) and keeps the pipes open; run returns after the grace period anyway.
    let (t, elapsed) = run_to_timeout(&mut Command::shell(SCRIPT));
    assert_eq!(t.stdout, b"hi\n");
    assert_eq!(t.status.and_then(|s| s.signal()), Some(libc::SIGKILL));
    assert!(elapsed >= TIMEOUT, "{elapsed:?}");
    assert!(elapsed < TIMEOUT + grace + SLACK, "took {elapsed:?}");
    let survivors: Vec<i32> = our_sleeps()
        .into_iter()
        .filter(|s| s.1 != 'Z')
        .map(|s| s.0)
        .collect();
    assert!(!survivors.is_empty(), "the grandchild outlives the child");
    kill_and_reap(&survivors);

    // 2. The same in a process group of its own, through run: the whole group is killed.
    let (t, elapsed) = run_to_timeout(Command::shell(SCRIPT).process_group(0));
    assert_eq!(t.stdout, b"hi\n");
    assert!(elapsed < TIMEOUT + grace + SLACK, "took {elapsed:?}");
    std::thread::sleep(Duration::from_millis(200));
    let leftovers = our_sleeps();
    assert!(
        leftovers.iter().all(|s| s.1 == 'Z'),
        "only dead grandchildren remain: {leftovers:?}"
    );
    kill_and_reap(&leftovers.iter().map(|s| s.0).collect::<Vec<_>>());

    // 3. Through the handle, in a new session, where the group id is known: no process of the
    // group survives.
    let mut child = Command::shell(SCRIPT)
        .start_new_session(true)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let group = child.process_group().expect("leads its own group");
    assert_eq!(group, child.pid());
    let started = Instant::now();
    let err = child
        .capture_options(CaptureOptions::new().kill_on_timeout(Some(grace)))
        .communicate(None, Some(TIMEOUT))
        .unwrap_err();
    let elapsed = started.elapsed();
    let CommunicateError::Timeout(t) = err else {
        panic!("{err}")
    };
    assert_eq!(t.stdout, b"hi\n");
    assert!(elapsed < TIMEOUT + grace + SLACK, "took {elapsed:?}");
    assert_eq!(
        live_members(group),
        vec![],
        "no process of the group survives"
    );
    let zombies: Vec<i32> = our_sleeps().into_iter().map(|s| s.0).collect();
    kill_and_reap(&zombies);
}
