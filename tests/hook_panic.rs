//! A pre-exec hook that panics: the forked child ends without running the panic hook (which
//! could block forever on a lock another thread of the parent held at the fork), and the spawn
//! fails with `Step::PreExecHook`, never hangs.
//!
//! Each test runs in a re-run copy of this binary, watched by a timeout: a hang fails the test
//! instead of hanging the suite.

mod common;

use common::{in_scenario, scenario_command, scenario_passed};
use popen::{Command, SpawnPath, Stdio, Step};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// Runs the test `name` again in a fresh process and asserts it passes within a minute.
fn run_watched(name: &str) {
    // In a process group of its own, so that a hung child of the scenario goes with it.
    let child = scenario_command(name)
        .process_group(0)
        .spawn()
        .expect("start scenario");
    match child.wait_timeout(Duration::from_secs(60)).expect("wait") {
        Some(status) => assert!(status.success(), "{name}: {status:?}"),
        None => {
            child
                .send_signal_group(libc::SIGKILL)
                .expect("kill the hung scenario");
            child.wait().expect("reap");
            panic!("{name} hung: the spawn never returned");
        }
    }
}

/// Spawns `true` with a hook that panics, on the fork path, and checks the error.
fn spawn_with_a_panicking_hook() {
    let mut cmd = Command::new("true");
    // The child's stderr is /dev/null: whatever a panic hook would print goes nowhere.
    cmd.stderr(Stdio::null()).spawn_path(SpawnPath::Fork);
    // SAFETY: the hook only panics; the child ends before any panic hook runs.
    unsafe { cmd.pre_exec(|| panic!("the hook panics")) };
    let err = cmd.spawn().expect_err("the hook panicked");
    assert_eq!(err.step(), Step::PreExecHook, "{err}");
}

#[test]
fn a_panicking_hook_fails_the_spawn() {
    const NAME: &str = "a_panicking_hook_fails_the_spawn";
    if !in_scenario(NAME) {
        return run_watched(NAME);
    }
    static PARENT_HOOK_RAN: AtomicBool = AtomicBool::new(false);
    std::panic::set_hook(Box::new(|_| PARENT_HOOK_RAN.store(true, Ordering::SeqCst)));
    spawn_with_a_panicking_hook();
    // A panic of the parent's own still runs the program's panic hook.
    let caught = std::panic::catch_unwind(|| panic!("a panic of the parent's"));
    assert!(caught.is_err());
    assert!(PARENT_HOOK_RAN.load(Ordering::SeqCst));
    scenario_passed();
}

/// The reproduction: another thread panics, and its panic hook holds the lock that serialises
/// panic messages while its write to a full standard error blocks. The forked child's copy of
/// that lock stays locked forever: a panic hook in the child would wait for it for ever.
///
/// The program has spawned with a hook before (the first such spawn installs the guard, and
/// waits for panic hooks running at that moment in other threads to finish).
#[test]
fn a_panicking_hook_does_not_hang_when_another_thread_is_printing_a_panic() {
    const NAME: &str = "a_panicking_hook_does_not_hang_when_another_thread_is_printing_a_panic";
    if !in_scenario(NAME) {
        return run_watched(NAME);
    }
    let mut cmd = Command::new("true");
    // SAFETY: the hook does nothing.
    unsafe { cmd.pre_exec(|| Ok(())) };
    let first = cmd.spawn().expect("a first spawn with a hook");
    assert!(first.wait().expect("wait").success());
    // Standard error becomes a pipe that nobody reads, filled up.
    let mut fds = [0; 2];
    // SAFETY: plain descriptor calls on descriptors this process owns; fd 2 is replaced in this
    // scenario process only.
    unsafe {
        assert_eq!(
            libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK),
            0
        );
        let chunk = [b'x'; 4096];
        while libc::write(fds[1], chunk.as_ptr().cast(), chunk.len()) > 0 {}
        assert_eq!(libc::fcntl(fds[1], libc::F_SETFL, 0), 0);
        assert_eq!(libc::dup2(fds[1], 2), 2);
    }
    let (tid_tx, tid_rx) = mpsc::channel();
    std::thread::spawn(move || {
        // SAFETY: gettid has no preconditions.
        tid_tx.send(unsafe { libc::gettid() }).unwrap();
        panic!("a panic whose message cannot be written");
    });
    let tid = tid_rx.recv().unwrap();
    // Wait until that thread is blocked writing its message to fd 2 (it holds the lock then).
    let writing = format!("{} 0x2 ", libc::SYS_write);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall"))
        .unwrap_or_default()
        .starts_with(&writing)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the panicking thread never wrote"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    spawn_with_a_panicking_hook();
    scenario_passed();
}
