//! `run` and its conveniences, check errors carrying the output, and text decoding.

use popen::{CaptureLimit, Command, DecodeError, RunError, RunOptions, Stdio, Stream, Text};
use std::borrow::Cow;
use std::io::ErrorKind;
use std::time::{Duration, Instant};

#[test]
fn run_without_capture_just_runs() {
    let done = popen::run(Command::shell("exit 7"), &RunOptions::new()).unwrap();
    assert_eq!(done.returncode(), 7);
    assert!(done.stdout.is_empty() && done.stderr.is_empty());
    assert_eq!(done.args, ["/bin/sh", "-c", "exit 7"]);
}

#[test]
fn run_captures_each_stream_or_both() {
    let mut cmd = Command::shell("echo out; echo err >&2");
    let both = popen::run(&mut cmd, &RunOptions::new().capture_output()).unwrap();
    assert_eq!(
        (&both.stdout[..], &both.stderr[..]),
        (&b"out\n"[..], &b"err\n"[..])
    );

    let out_only = popen::run(
        cmd.stderr(Stdio::null()),
        &RunOptions::new().capture_stdout(),
    )
    .unwrap();
    assert_eq!(
        (&out_only.stdout[..], &out_only.stderr[..]),
        (&b"out\n"[..], &b""[..])
    );

    let err_only = popen::run(
        cmd.stdout(Stdio::null()).stderr(Stdio::inherit()),
        &RunOptions::new().capture_stderr(),
    )
    .unwrap();
    assert_eq!(
        (&err_only.stdout[..], &err_only.stderr[..]),
        (&b""[..], &b"err\n"[..])
    );

    // stderr merged into stdout (CPython's stderr=STDOUT).
    let merged = popen::run(
        cmd.stdout(Stdio::inherit()).stderr(Stdio::same_as_stdout()),
        &RunOptions::new().capture_stdout(),
    )
    .unwrap();
    assert_eq!(merged.stdout, b"out\nerr\n");
}

#[test]
fn run_keeps_the_commands_own_redirections() {
    let dir = std::env::temp_dir().join(format!("popen-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("out.txt");
    let mut cmd = Command::new("echo");
    cmd.arg("to-file")
        .stdout(std::fs::File::create(&file).unwrap());
    // Captured for this run only…
    let done = popen::run(&mut cmd, &RunOptions::new().capture_stdout()).unwrap();
    assert_eq!(done.stdout, b"to-file\n");
    assert_eq!(std::fs::read(&file).unwrap(), b"");
    // …and to the file again afterwards.
    popen::check_call(&mut cmd).unwrap();
    assert_eq!(std::fs::read(&file).unwrap(), b"to-file\n");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn run_with_input() {
    let done = popen::run(
        &mut Command::new("wc"),
        &RunOptions::new()
            .input(&b"one two\nthree\n"[..])
            .capture_stdout(),
    )
    .unwrap();
    let counts: Vec<&str> = std::str::from_utf8(&done.stdout)
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(counts, ["2", "3", "14"]);

    // Owned input, and empty input: the child sees end of file at once.
    let owned = popen::run(
        &mut Command::new("cat"),
        &RunOptions::new().input(b"owned".to_vec()).capture_stdout(),
    )
    .unwrap();
    assert_eq!(owned.stdout, b"owned");
    let empty = popen::run(
        &mut Command::new("cat"),
        &RunOptions::new().input(&b""[..]).capture_stdout(),
    )
    .unwrap();
    assert!(empty.stdout.is_empty() && empty.status.success());
}

#[test]
fn run_check_error_carries_status_and_output() {
    let err = popen::run(
        Command::shell("echo out; echo err >&2; exit 9"),
        &RunOptions::new().capture_output().check(),
    )
    .unwrap_err();
    assert_eq!((err.stdout(), err.stderr()), (&b"out\n"[..], &b"err\n"[..]));
    let RunError::Failed(e) = err else {
        panic!("{err}")
    };
    assert_eq!(e.returncode(), 9);
    assert_eq!(e.status.code(), Some(9));
    assert_eq!(e.args, ["/bin/sh", "-c", "echo out; echo err >&2; exit 9"]);
    assert_eq!(
        e.to_string(),
        r#"command ["/bin/sh", "-c", "echo out; echo err >&2; exit 9"] returned non-zero exit status 9"#
    );

    // Death by a signal.
    let err = popen::run(Command::shell("kill -TERM $$"), &RunOptions::new().check()).unwrap_err();
    let RunError::Failed(e) = err else {
        panic!("{err}")
    };
    assert_eq!(e.returncode(), -libc::SIGTERM);
    assert!(e.to_string().ends_with("died with signal 15"), "{e}");

    // Success passes a check.
    let ok = popen::run(&mut Command::new("true"), &RunOptions::new().check()).unwrap();
    assert!(ok.status.success());
    assert!(ok.check().is_ok());
}

#[test]
fn run_timeout_kills_and_carries_partial_output() {
    let started = Instant::now();
    let err = popen::run(
        Command::shell("echo before; echo err >&2; exec sleep 30"),
        &RunOptions::new()
            .capture_output()
            .timeout(Duration::from_millis(500)),
    )
    .unwrap_err();
    let elapsed = started.elapsed();
    let RunError::Timeout(t) = err else {
        panic!("{err}")
    };
    assert_eq!(
        (&t.stdout[..], &t.stderr[..]),
        (&b"before\n"[..], &b"err\n"[..])
    );
    assert_eq!(t.timeout, Duration::from_millis(500));
    assert_eq!(t.status.and_then(|s| s.signal()), Some(libc::SIGKILL));
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    assert!(t.to_string().contains("timed out after 500ms"), "{t}");
    let io: std::io::Error = RunError::Timeout(t).into();
    assert_eq!(io.kind(), ErrorKind::TimedOut);
}

#[test]
fn run_timeout_that_does_not_expire() {
    let done = popen::run(
        Command::shell("echo quick"),
        &RunOptions::new()
            .capture_stdout()
            .timeout(Duration::from_secs(30)),
    )
    .unwrap();
    assert_eq!(done.stdout, b"quick\n");
}

#[test]
fn run_caps_both_modes() {
    let truncated = popen::run(
        Command::shell("head -c 3000000 /dev/zero; echo done >&2"),
        &RunOptions::new()
            .capture_output()
            .stdout_limit(CaptureLimit::Truncate(100)),
    )
    .unwrap();
    assert_eq!(
        (truncated.stdout.len(), truncated.stdout_dropped),
        (100, 2_999_900)
    );
    assert_eq!(truncated.stderr, b"done\n");
    assert!(truncated.status.success());

    let started = Instant::now();
    let err = popen::run(
        Command::shell("head -c 3000000 /dev/zero; exec sleep 30"),
        &RunOptions::new()
            .capture_output()
            .stdout_limit(CaptureLimit::Error(100)),
    )
    .unwrap_err();
    let RunError::LimitExceeded(e) = err else {
        panic!("{err}")
    };
    assert_eq!(
        (e.stream, e.limit, e.stdout.len()),
        (Stream::Stdout, 100, 100)
    );
    assert_eq!(e.status.and_then(|s| s.signal()), Some(libc::SIGKILL));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        e.to_string().contains("more than 100 bytes to stdout"),
        "{e}"
    );
}

#[test]
fn run_spawn_error_is_typed() {
    let err = popen::run(
        &mut Command::new("surely-no-such-program"),
        &RunOptions::new().capture_output(),
    )
    .unwrap_err();
    let RunError::Spawn(e) = err else {
        panic!("{err}")
    };
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[test]
fn call_returns_the_status() {
    assert_eq!(
        popen::call(Command::shell("exit 3")).unwrap().code(),
        Some(3)
    );
    assert!(popen::call(&mut Command::new("true")).unwrap().success());
    assert!(matches!(
        popen::call(&mut Command::new("surely-no-such-program")),
        Err(RunError::Spawn(_))
    ));
}

#[test]
fn check_call_fails_on_unsuccessful_status() {
    popen::check_call(&mut Command::new("true")).unwrap();
    let err = popen::check_call(Command::shell("exit 4")).unwrap_err();
    let RunError::Failed(e) = err else {
        panic!("{err}")
    };
    assert_eq!(e.returncode(), 4);
    assert!(e.stdout.is_empty() && e.stderr.is_empty());
}

#[test]
fn check_output_returns_stdout_and_its_error_carries_it() {
    assert_eq!(
        popen::check_output(Command::new("printf").arg("a\\nb")).unwrap(),
        b"a\nb"
    );
    let err = popen::check_output(
        Command::shell("echo partial; echo err >&2; exit 1").stderr(Stdio::piped()),
    )
    .unwrap_err();
    let RunError::Failed(e) = err else {
        panic!("{err}")
    };
    assert_eq!(e.stdout, b"partial\n");
    // A command whose own stderr is a pipe has it captured too (CPython's
    // `check_output(..., stderr=PIPE)`).
    assert_eq!(e.stderr, b"err\n");
    assert_eq!(e.returncode(), 1);
}

#[test]
fn getoutput_and_getstatusoutput() {
    assert_eq!(popen::getoutput("echo hello").unwrap(), "hello");
    assert_eq!(
        popen::getoutput("printf 'a\\r\\nb\\n\\n'").unwrap(),
        "a\nb\n"
    );
    assert_eq!(
        popen::getoutput("echo out; echo err >&2; exit 3").unwrap(),
        "out\nerr"
    );
    assert_eq!(
        popen::getstatusoutput("echo out; echo err >&2; exit 3").unwrap(),
        (3, "out\nerr".to_string())
    );
    assert_eq!(popen::getstatusoutput("true").unwrap(), (0, String::new()));
    assert_eq!(
        popen::getstatusoutput("kill -KILL $$").unwrap(),
        (-libc::SIGKILL, String::new())
    );
    let err = popen::getoutput("printf 'ok\\377'").unwrap_err();
    let RunError::Decode(d) = err else {
        panic!("{err}")
    };
    assert_eq!((d.stream(), d.offset()), (Stream::Stdout, 2));
}

#[test]
fn strict_and_lossy_decoding() {
    let done = popen::run(
        Command::new("printf").arg("caf\\303\\251\\n\\377\\376 tail"),
        &RunOptions::new().capture_stdout(),
    )
    .unwrap();
    let err: DecodeError = done.stdout_text(Text::strict()).unwrap_err();
    assert_eq!(
        (err.stream(), err.offset(), err.invalid_len()),
        (Stream::Stdout, 6, Some(1))
    );
    assert_eq!(
        err.to_string(),
        "stdout is not valid UTF-8: invalid byte sequence at offset 6"
    );
    assert_eq!(
        done.stdout_text(Text::lossy()).unwrap(),
        "café\n\u{FFFD}\u{FFFD} tail"
    );

    // A character cut at the end, on stderr.
    let done = popen::run(
        Command::shell("printf 'ab\\303' >&2"),
        &RunOptions::new().capture_stderr(),
    )
    .unwrap();
    let err = done.stderr_text(Text::strict()).unwrap_err();
    assert_eq!(
        (err.stream(), err.offset(), err.invalid_len()),
        (Stream::Stderr, 2, None)
    );
    assert!(
        err.to_string().starts_with("stderr is not valid UTF-8"),
        "{err}"
    );
    let io: std::io::Error = err.into();
    assert_eq!(io.kind(), ErrorKind::InvalidData);

    // Valid text is borrowed, not copied.
    let done = popen::run(
        Command::new("echo").arg("plain"),
        &RunOptions::new().capture_stdout(),
    )
    .unwrap();
    assert!(matches!(
        done.stdout_text(Text::strict()).unwrap(),
        Cow::Borrowed("plain\n")
    ));
}

#[test]
fn universal_newlines() {
    let done = popen::run(
        Command::new("printf").arg("one\\r\\ntwo\\rthree\\n\\r\\n"),
        &RunOptions::new().capture_stdout(),
    )
    .unwrap();
    assert_eq!(
        done.stdout, b"one\r\ntwo\rthree\n\r\n",
        "bytes are untouched"
    );
    let text = Text::strict().universal_newlines(true);
    assert_eq!(done.stdout_text(text).unwrap(), "one\ntwo\nthree\n\n");
    assert_eq!(
        done.stdout_text(Text::lossy().universal_newlines(true))
            .unwrap(),
        "one\ntwo\nthree\n\n"
    );
    assert_eq!(
        done.stdout_text(Text::strict()).unwrap(),
        "one\r\ntwo\rthree\n\r\n"
    );
    assert_eq!(
        text.decode_vec(b"x\r".to_vec(), Stream::Stdout).unwrap(),
        "x\n"
    );
}

#[test]
fn run_options_run_method_and_reuse() {
    let opts = RunOptions::new().capture_stdout().check();
    let mut cmd = Command::new("echo");
    cmd.arg("again");
    for _ in 0..3 {
        assert_eq!(opts.run(&mut cmd).unwrap().stdout, b"again\n");
    }
}

#[test]
fn errors_and_results_are_send_and_sync() {
    fn both<T: Send + Sync>() {}
    both::<RunError>();
    both::<popen::CommunicateError>();
    both::<popen::CompletedProcess>();
    both::<popen::Output>();
    both::<RunOptions<'static>>();
    both::<popen::Popen>();
}
