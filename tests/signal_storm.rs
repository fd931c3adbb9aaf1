//! EINTR never surfaces: with a SIGALRM handler (installed without `SA_RESTART`) firing every
//! millisecond at the calling thread, waits, communicate, line streaming and run all work.
//!
//! One test in its own binary, so that the signal handler and timer are this process's alone.

mod common;

use common::noise;
use popen::{CaptureOptions, Command, CommunicateError, RunError, RunOptions, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

static HITS: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_alarm(_: libc::c_int) {
    HITS.fetch_add(1, Ordering::Relaxed);
}

/// A per-thread SIGALRM every millisecond; stopped when dropped.
struct Storm {
    timer: libc::timer_t,
}

impl Storm {
    fn start() -> Storm {
        // SAFETY: plain calls with structs we own; the handler only touches an atomic.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_alarm as *const () as usize;
            action.sa_flags = 0; // no SA_RESTART: every slow system call sees EINTR
            libc::sigemptyset(&mut action.sa_mask);
            assert_eq!(
                libc::sigaction(libc::SIGALRM, &action, std::ptr::null_mut()),
                0
            );

            let mut event: libc::sigevent = std::mem::zeroed();
            event.sigev_notify = libc::SIGEV_THREAD_ID;
            event.sigev_signo = libc::SIGALRM;
            event.sigev_notify_thread_id = libc::gettid();
            let mut timer: libc::timer_t = std::mem::zeroed();
            assert_eq!(
                libc::timer_create(libc::CLOCK_MONOTONIC, &mut event, &mut timer),
                0
            );
            let ms = libc::timespec {
                tv_sec: 0,
                tv_nsec: 1_000_000,
            };
            let spec = libc::itimerspec {
                it_interval: ms,
                it_value: ms,
            };
            assert_eq!(
                libc::timer_settime(timer, 0, &spec, std::ptr::null_mut()),
                0
            );
            Storm { timer }
        }
    }
}

impl Drop for Storm {
    fn drop(&mut self) {
        // SAFETY: deletes the timer created in `start`.
        unsafe { libc::timer_delete(self.timer) };
    }
}

#[test]
fn a_signal_every_millisecond_breaks_nothing() {
    let storm = Storm::start();
    let before = HITS.load(Ordering::Relaxed);

    // Plain waits: blocking, with a timeout that expires, with one that does not.
    let child = Command::new("sleep").arg("0.3").spawn().unwrap();
    assert_eq!(
        child.wait_timeout(Duration::from_millis(100)).unwrap(),
        None
    );
    assert!(child.wait_shared().unwrap().success());
    let child = Command::new("sleep").arg("0.2").spawn().unwrap();
    assert!(child
        .wait_timeout(Duration::from_secs(30))
        .unwrap()
        .expect("exited")
        .success());

    // 32 MiB both ways through a child that starts reading late, with stderr chatter.
    let input = noise(32 << 20, 0x2545_f491_4f6c_dd1d);
    let mut child = Command::shell("yes chatter | head -n 10000 >&2; sleep 0.2; cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.communicate(Some(&input), None).unwrap();
    assert!(out.stdout == input, "stdout differs from input");
    assert_eq!(out.stderr.len(), 80_000);

    // A timeout, then a resumed call, byte-exact.
    let mut child = Command::shell("echo one; sleep 0.5; echo two")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child
        .communicate(None, Some(Duration::from_millis(200)))
        .unwrap_err();
    assert!(
        matches!(&err, CommunicateError::Timeout(t) if t.stdout == b"one\n"),
        "{err}"
    );
    assert_eq!(child.communicate(None, None).unwrap().stdout, b"one\ntwo\n");

    // Line streaming with pauses.
    let mut child = Command::shell("for i in 1 2 3; do echo $i; sleep 0.1; done")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines: Vec<String> = child.lines().collect::<Result<_, _>>().unwrap();
    assert_eq!(lines, ["1", "2", "3"]);

    // run with a timeout that kills, and with kill on timeout through the handle.
    let started = Instant::now();
    let err = popen::run(
        Command::shell("echo hi; exec sleep 30"),
        &RunOptions::new()
            .capture_output()
            .timeout(Duration::from_millis(300)),
    )
    .unwrap_err();
    assert!(
        matches!(&err, RunError::Timeout(t) if t.stdout == b"hi\n"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let mut child = Command::new("sleep")
        .arg("30")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child
        .capture_options(CaptureOptions::new().kill_on_timeout(Some(Duration::from_millis(100))))
        .communicate(None, Some(Duration::from_millis(200)))
        .unwrap_err();
    assert!(
        matches!(&err, CommunicateError::Timeout(t) if t.status.is_some()),
        "{err}"
    );

    // The conveniences.
    assert_eq!(
        popen::check_output(Command::shell("sleep 0.1; echo done")).unwrap(),
        b"done\n"
    );
    assert_eq!(popen::getoutput("sleep 0.1; echo text").unwrap(), "text");
    assert_eq!(
        popen::call(Command::shell("sleep 0.1; exit 2"))
            .unwrap()
            .code(),
        Some(2)
    );

    drop(storm);
    let hits = HITS.load(Ordering::Relaxed) - before;
    assert!(hits > 500, "only {hits} signals arrived");
    println!("{hits} SIGALRMs handled during the test");
}
