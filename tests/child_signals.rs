//! Signals between the child's creation and its exec: the parent blocks every signal around
//! clone/fork, and no handler of the parent's runs in the child.
//!
//! Each test changes signal dispositions, so it runs in a re-run copy of this binary.

mod common;

use common::{in_scenario, processes, run_scenario, scenario_passed};
use popen::{Command, SigSet, SignalMask, SpawnPath};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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

static HANDLER_PIPE: AtomicI32 = AtomicI32::new(-1);

/// A self-pipe writer, as an event loop installs: writes the pid of the process it runs in.
extern "C" fn write_pid(_: libc::c_int) {
    // SAFETY: getpid and write are async-signal-safe; the buffer is on the stack.
    unsafe {
        let pid = libc::getpid().to_ne_bytes();
        libc::write(
            HANDLER_PIPE.load(Ordering::Relaxed),
            pid.as_ptr().cast(),
            pid.len(),
        );
    }
}

fn install(sig: i32, handler: libc::sighandler_t) {
    // SAFETY: plain calls on a struct we own; the handler only calls async-signal-safe
    // functions.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler;
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(libc::sigaction(sig, &action, std::ptr::null_mut()), 0);
    }
}

/// Everything the handler wrote so far (the pipe is non-blocking).
fn drain(fd: RawFd) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        // SAFETY: reads into a buffer we own.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
}

/// A signal that reaches the forked child before its exec (here raised by the pre-exec hook
/// itself) must not run the parent's handler there: the handler would write into the parent's
/// self-pipe, and the parent would see an event that never happened to it.
#[test]
fn a_parent_handler_never_runs_in_the_forked_child() {
    const NAME: &str = "a_parent_handler_never_runs_in_the_forked_child";
    if !in_scenario(NAME) {
        assert!(run_scenario(NAME, |_| {}).success());
        return;
    }
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into `fds`.
    assert_eq!(
        unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) },
        0
    );
    HANDLER_PIPE.store(fds[1], Ordering::Relaxed);
    install(libc::SIGUSR1, write_pid as *const () as libc::sighandler_t);
    install(libc::SIGUSR2, libc::SIG_IGN);
    // The second time SIGUSR1 is blocked by the child's mask, and the hook unblocks it.
    for blocked in [false, true] {
        let started = Instant::now();
        let mut cmd = Command::new("true");
        if blocked {
            cmd.signal_mask(SignalMask::Set(
                SigSet::from_signals([libc::SIGUSR1]).unwrap(),
            ));
        }
        // SAFETY: the hook only calls sigaction, pthread_sigmask and raise, all
        // async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                // An ignored signal stays ignored (restore_signals only concerns SIGPIPE and
                // SIGXFSZ).
                let mut old: libc::sigaction = std::mem::zeroed();
                libc::sigaction(libc::SIGUSR2, std::ptr::null(), &mut old);
                if old.sa_sigaction != libc::SIG_IGN {
                    return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
                }
                let mut usr1: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut usr1);
                libc::sigaddset(&mut usr1, libc::SIGUSR1);
                libc::pthread_sigmask(libc::SIG_UNBLOCK, &usr1, std::ptr::null_mut());
                libc::raise(libc::SIGUSR1);
                Ok(())
            })
        };
        let status = cmd
            .spawn_path(SpawnPath::Fork)
            .spawn()
            .expect("spawn")
            .wait()
            .expect("wait");
        assert!(started.elapsed() < Duration::from_secs(60));
        let written = drain(fds[0]);
        assert!(
            written.is_empty(),
            "the parent's handler ran in the child (pid {:?}, mask blocking SIGUSR1: {blocked}); \
             the child ended with {status:?}",
            written
                .get(..4)
                .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        );
        // The default action of SIGUSR1: the child dies of it, before exec.
        assert_eq!(
            status.signal(),
            Some(libc::SIGUSR1),
            "{blocked}: {status:?}"
        );
    }
    scenario_passed();
}
