//! A child that stops reading does not kill this process with SIGPIPE, even where SIGPIPE has
//! its default disposition (Rust programs ignore it; C hosts may not).
//!
//! One test in its own binary, since it changes a process-wide signal disposition.

use popen::{Command, RunOptions, Stdio};

fn sigpipe_pending() -> bool {
    // SAFETY: sigpending fills the set; sigismember reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigpending(&mut set);
        libc::sigismember(&set, libc::SIGPIPE) == 1
    }
}

fn sigpipe_blocked() -> bool {
    // SAFETY: with a null new set, pthread_sigmask only writes the current mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_SETMASK, std::ptr::null(), &mut set);
        libc::sigismember(&set, libc::SIGPIPE) == 1
    }
}

#[test]
fn epipe_with_default_sigpipe_disposition() {
    // SAFETY: restores the default disposition of SIGPIPE for this process.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let input = vec![b'x'; 10 << 20];
    for script in [
        "exit 0",
        "exec 0<&-; sleep 0.1; echo after",
        "head -c 1000 >/dev/null",
    ] {
        let mut child = Command::shell(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.communicate(Some(&input), None).unwrap();
        assert!(out.status.success(), "{script}: {:?}", out.status);
        assert!(!sigpipe_pending(), "{script}: the SIGPIPE was taken back");
        assert!(!sigpipe_blocked(), "{script}: the signal mask is restored");
    }
    let done = popen::run(
        Command::new("true"),
        &RunOptions::new().input(&input[..]).capture_output(),
    )
    .unwrap();
    assert!(done.status.success());
}
