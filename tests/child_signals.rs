//! Signals between the child's creation and its exec: the parent blocks every signal around
//! clone/fork, and no handler of the parent's runs in the child.
//!
//! Each test changes signal dispositions, so it runs in a re-run copy of this binary.

mod common;

use common::{in_scenario, processes, run_scenario, scenario_passed};
use popen::{Command, SpawnPath};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

/// A hexadecimal mask line ("SigBlk:", "SigCgt:", …) of a /proc status file.
fn status_mask(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    u64::from_str_radix(line.split_whitespace().nth(1)?, 16).ok()
}

/// The bit of `sig` in a /proc mask.
fn bit(sig: i32) -> u64 {
    1 << (sig - 1)
}

extern "C" fn never_called(_: libc::c_int) {}

/// Installs a handler for `sig` with the raw system call, which takes the C library's internal
/// signals too (as the library itself does for them). The handler is never delivered.
fn catch_raw(sig: i32) {
    // The kernel's struct sigaction starts with the handler on x86, x86-64, Arm, AArch64 and
    // RISC-V; the rest (flags, restorer, mask) stays zero.
    let mut action = [0usize; 8];
    action[0] = never_called as *const () as usize;
    // SAFETY: the kernel reads its struct sigaction from `action`; nothing is written.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            sig,
            action.as_ptr(),
            std::ptr::null_mut::<usize>(),
            8usize,
        )
    };
    assert_eq!(ret, 0, "rt_sigaction({sig})");
}

/// The C library's internal signals: those `sigaction` refuses (glibc: 32 and 33).
fn internal_signals() -> Vec<i32> {
    (1..=64)
        .filter(|&sig| {
            // SAFETY: only reads the disposition into a struct we own.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                libc::sigaction(sig, std::ptr::null(), &mut old) == -1
            }
        })
        .filter(|&sig| sig != libc::SIGKILL && sig != libc::SIGSTOP)
        .collect()
}

/// The vfork-style child runs while the thread that made it is suspended; with many exec
/// candidates that fail before the one that works, that lasts long enough to read, from another
/// thread, the mask of the suspended thread and the dispositions of the child.
#[test]
fn the_vfork_child_is_made_with_all_64_signals_blocked_and_runs_no_library_handler() {
    const NAME: &str =
        "the_vfork_child_is_made_with_all_64_signals_blocked_and_runs_no_library_handler";
    if !in_scenario(NAME) {
        assert!(run_scenario(NAME, |_| {}).success());
        return;
    }
    let internal = internal_signals();
    if internal.is_empty() {
        println!("skipped: this C library has no internal signals");
        scenario_passed();
    }
    // As the C library does once a thread is cancelled or a threaded process calls setuid.
    for &sig in &internal {
        catch_raw(sig);
    }
    let internal_bits = internal.iter().fold(0, |m, &s| m | bit(s));

    static OBSERVED: AtomicBool = AtomicBool::new(false);
    let (tid_tx, tid_rx) = mpsc::channel();
    let spawner = std::thread::Builder::new()
        .name("popen-spawner".into())
        .spawn(move || {
            // SAFETY: gettid has no preconditions.
            tid_tx.send(unsafe { libc::gettid() }).unwrap();
            let mut list: Vec<String> = (0..200_000)
                .map(|i| format!("/nonexistent-popen-test/{i}"))
                .collect();
            list.push("/bin/true".into());
            for _ in 0..50 {
                if OBSERVED.load(Ordering::SeqCst) {
                    break;
                }
                let status = Command::new("true")
                    .executable_list(&list)
                    .spawn_path(SpawnPath::CloneVfork)
                    .spawn()
                    .expect("spawn")
                    .wait()
                    .expect("wait");
                assert!(status.success());
            }
        })
        .unwrap();
    let tid = tid_rx.recv().unwrap();
    let me = std::process::id() as i32;
    let pre_exec = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| common::parse_stat(&s))
            .is_some_and(|p| p.comm == "popen-spawner" && p.state != 'Z')
    };
    let mut observation = None;
    while observation.is_none() && !spawner.is_finished() {
        for child in processes().into_iter().filter(|p| p.ppid == me) {
            if !pre_exec(child.pid) {
                continue;
            }
            let child_status = std::fs::read_to_string(format!("/proc/{}/status", child.pid));
            let thread_status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status"));
            // Still before exec after both reads: the spawning thread was suspended (CLONE_VFORK)
            // throughout, and the child had set its final mask (empty), so its reset was done.
            let (Ok(child_status), Ok(thread_status)) = (child_status, thread_status) else {
                continue;
            };
            if !pre_exec(child.pid) || status_mask(&child_status, "SigBlk:") != Some(0) {
                continue;
            }
            observation = Some((
                status_mask(&thread_status, "SigBlk:").unwrap(),
                status_mask(&child_status, "SigCgt:").unwrap(),
            ));
            OBSERVED.store(true, Ordering::SeqCst);
            break;
        }
    }
    spawner.join().unwrap();
    let (parent_blocked, child_caught) =
        observation.expect("no child was seen before its exec in 50 spawns");
    // Every signal the kernel lets a thread block.
    let all = !(bit(libc::SIGKILL) | bit(libc::SIGSTOP));
    assert_eq!(
        parent_blocked, all,
        "the spawning thread's mask during the clone: {parent_blocked:#x}"
    );
    assert_eq!(
        child_caught & internal_bits,
        0,
        "the child still catches {:?} with the C library's handlers (SigCgt {child_caught:#x})",
        internal
    );
    scenario_passed();
}
