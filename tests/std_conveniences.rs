//! std's everyday calls: `output`, `status`, the getters, `wait` closing stdin, and a graceful
//! stop.

mod common;

use popen::{Command, Stdio};
use std::ffi::OsStr;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

#[test]
fn output_captures_both_streams_and_gives_stdin_the_null_device() {
    // `cat` reads the null device (end of file at once) instead of this process's stdin.
    let out = Command::shell("echo out; echo err >&2; cat; exit 3")
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn output_keeps_the_streams_the_command_sets() {
    let mut cmd = Command::shell("echo out; echo err >&2");
    cmd.stdout(Stdio::null());
    let out = cmd.output().unwrap();
    assert_eq!(out.stdout, b"");
    assert_eq!(out.stderr, b"err\n");
    // A stderr merged into stdout is captured with it.
    let mut cmd = Command::shell("echo out; echo err >&2");
    cmd.stderr(Stdio::same_as_stdout());
    let out = cmd.output().unwrap();
    assert_eq!(
        (&out.stdout[..], &out.stderr[..]),
        (&b"out\nerr\n"[..], &b""[..])
    );
}

#[test]
fn output_leaves_the_command_as_it_was() {
    let mut cmd = Command::new("echo");
    cmd.arg("hi");
    assert_eq!(cmd.output().unwrap().stdout, b"hi\n");
    // The command's own (default) streams are back: a spawn inherits them, nothing is piped.
    let mut child = cmd.spawn().unwrap();
    assert!(child.stdin.is_none() && child.stdout.is_none() && child.stderr.is_none());
    assert!(child.wait().unwrap().success());
    assert_eq!(cmd.output().unwrap().stdout, b"hi\n");
}

#[test]
fn output_names_the_step_when_the_program_is_missing() {
    let err = Command::new("surely-no-such-program").output().unwrap_err();
    match err {
        popen::RunError::Spawn(e) => assert_eq!(e.step(), popen::Step::Exec),
        other => panic!("expected a spawn error, got {other:?}"),
    }
}

#[test]
fn status_inherits_and_reports_the_exit() {
    assert_eq!(Command::shell("exit 4").status().unwrap().code(), Some(4));
    // An inherited stdout: the child writes where this process does, nothing is read here.
    assert!(Command::new("true").status().unwrap().success());
}

#[test]
fn wait_closes_a_piped_stdin_first() {
    // `cat` ends only at end of input: without the close, wait would never return.
    common::on_each_path(
        || {
            let mut cmd = Command::new("cat");
            cmd.stdin(Stdio::piped()).stdout(Stdio::null());
            cmd
        },
        |path, cmd| {
            let mut child = cmd.spawn().unwrap();
            child
                .stdin
                .as_mut()
                .unwrap()
                .write_all(b"some input\n")
                .unwrap();
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let status = child.wait();
                let _ = tx.send((status.map(|s| s.success()).ok(), child.stdin.is_none()));
            });
            let got = rx
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("{path}: wait did not close stdin"));
            assert_eq!(got, (Some(true), true), "{path}");
        },
    );
}

#[test]
fn wait_shared_leaves_stdin_open() {
    let mut child = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert_eq!(
        child.wait_timeout(Duration::from_millis(100)).unwrap(),
        None
    );
    assert!(child.stdin.is_some());
    child.stdin.as_mut().unwrap().write_all(b"x").unwrap();
    drop(child.stdin.take());
    assert!(child.wait_shared().unwrap().success());
}

#[test]
fn terminate_with_grace_lets_an_obedient_child_end_on_sigterm() {
    let child = Command::new("sleep").arg("30").spawn().unwrap();
    let started = Instant::now();
    let status = child.terminate_with_grace(Duration::from_secs(20)).unwrap();
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    assert!(started.elapsed() < Duration::from_secs(10));
    // Reaped: the status is cached, and nothing is signalled again.
    assert_eq!(child.poll().unwrap(), Some(status));
}

#[test]
fn terminate_with_grace_kills_a_child_that_ignores_sigterm() {
    // The shell says when its trap is set, so the SIGTERM cannot land before it.
    let mut child = Command::shell("trap '' TERM; echo ready; while :; do sleep 1; done")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = [0u8; 6];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut ready).unwrap();
    let started = Instant::now();
    let status = child
        .terminate_with_grace(Duration::from_millis(300))
        .unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300),
        "killed before the grace: {took:?}"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn terminate_with_grace_on_an_exited_child_returns_its_status() {
    let child = Command::shell("exit 7").spawn().unwrap();
    while child.poll().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = child.terminate_with_grace(Duration::from_secs(5)).unwrap();
    assert_eq!(status.code(), Some(7));
}

#[test]
fn getters_return_what_the_builder_was_given() {
    let mut cmd = Command::new("prog");
    cmd.arg("a")
        .args(["b", "c"])
        .env("K", "v")
        .env_remove("GONE")
        .env("K", "w")
        .cwd("/tmp");
    assert_eq!(cmd.get_program(), "prog");
    assert_eq!(cmd.get_args().collect::<Vec<_>>(), ["a", "b", "c"]);
    assert_eq!(cmd.get_args().len(), 3);
    let envs: Vec<_> = cmd.get_envs().collect();
    assert_eq!(
        envs,
        [
            (OsStr::new("K"), Some(OsStr::new("w"))),
            (OsStr::new("GONE"), None)
        ]
    );
    assert_eq!(cmd.get_current_dir(), Some(Path::new("/tmp")));
    cmd.env_clear();
    assert_eq!(cmd.get_envs().len(), 0);

    let mut renamed = Command::from_argv(["name-in-argv0", "x"]);
    renamed.executable("/bin/echo");
    assert_eq!(renamed.get_program(), "/bin/echo");
    assert_eq!(renamed.get_args().collect::<Vec<_>>(), ["x"]);
    let empty = Command::from_argv(Vec::<&str>::new());
    assert_eq!(empty.get_program(), "");
    assert_eq!(empty.get_args().len(), 0);
    assert_eq!(empty.get_current_dir(), None);
}

#[test]
fn cmd_macro_takes_mixed_argument_types_and_never_splits_them() {
    let spaced = std::path::PathBuf::from("a b");
    let cmd = popen::cmd!(
        "printf",
        "[%s]",
        &spaced,
        String::from("c"),
        OsStr::new("d"),
    );
    assert_eq!(cmd.get_program(), "printf");
    assert_eq!(cmd.get_args().len(), 4);
    let mut cmd = cmd;
    assert_eq!(cmd.output().unwrap().stdout, b"[a b][c][d]");
    assert_eq!(popen::cmd!("true").get_args().len(), 0);
}

#[test]
fn output_with_a_piped_stdin_closes_it_and_returns() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let out = Command::new("cat").stdin(Stdio::piped()).output();
        let _ = tx.send(out.map(|o| (o.status.success(), o.stdout)).ok());
    });
    let got = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("output() left a piped stdin open");
    assert_eq!(got, Some((true, Vec::new())));
}
