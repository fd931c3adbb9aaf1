//! `Popen::communicate` and `Popen::lines`: every output pattern, timeouts and resumption,
//! caps, tee.

mod common;

use common::{in_scenario, noise, scenario_command};
use popen::{CaptureLimit, CaptureOptions, Command, CommunicateError, Popen, Stdio, Stream};
use std::io::ErrorKind;
use std::time::{Duration, Instant};

fn piped(cmd: &mut Command) -> Popen {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

fn sh(script: &str) -> Command {
    Command::shell(script)
}

/// The first position where two byte strings differ, for readable failures.
fn assert_same(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let at = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{what}: {} bytes, expected {}; first difference at {at:?}",
            got.len(),
            want.len()
        );
    }
}

const MIB: usize = 1 << 20;

#[test]
fn hundred_mib_through_cat_both_ways_with_stderr_chatter() {
    let input = noise(100 * MIB, 7);
    // 200,000 lines of stderr written while cat moves the data.
    let mut child = piped(&mut sh("yes chatter | head -n 200000 >&2 & cat; wait"));
    let out = child.communicate(Some(&input), None).expect("communicate");
    assert!(out.status.success(), "{:?}", out.status);
    assert_same(&out.stdout, &input, "stdout");
    assert_eq!(out.stderr.len(), 200_000 * 8);
    assert!(out.stderr.chunks(8).all(|c| c == b"chatter\n"));
    assert!(child.stdin.is_none() && child.stdout.is_none() && child.stderr.is_none());
}

#[test]
fn child_writing_only_to_stderr_a_lot() {
    let mut child = piped(&mut sh("head -c 67108864 /dev/zero >&2; echo end >&2"));
    let out = child.communicate(None, None).expect("communicate");
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    assert_eq!(out.stderr.len(), 64 * MIB + 4);
    assert!(out.stderr.ends_with(b"\0end\n"));
}

#[test]
fn child_that_never_reads_stdin_while_ten_mib_are_pending() {
    let input = noise(10 * MIB, 3);
    // It writes, and exits, without ever reading its stdin.
    let mut child = piped(&mut sh("echo started; sleep 0.3; echo done >&2; exit 3"));
    let out = child.communicate(Some(&input), None).expect("communicate");
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        (&out.stdout[..], &out.stderr[..]),
        (&b"started\n"[..], &b"done\n"[..])
    );

    // It closes its stdin and goes on: EPIPE is swallowed, the output still collected.
    let mut child = piped(&mut sh("exec 0<&-; echo closed; sleep 0.2; echo after"));
    let out = child.communicate(Some(&input), None).expect("communicate");
    assert!(out.status.success());
    assert_eq!(out.stdout, b"closed\nafter\n");

    // It never reads and never ends: the timeout fires, the input stays pending, and a
    // resumed call after a kill still returns.
    let mut child = piped(&mut sh("echo waiting; exec sleep 30"));
    let err = child
        .communicate(Some(&input), Some(Duration::from_millis(300)))
        .unwrap_err();
    let CommunicateError::Timeout(t) = err else {
        panic!("{err}")
    };
    assert_eq!(t.stdout, b"waiting\n");
    assert_eq!(t.status, None);
    assert!(
        child.stdin.is_some(),
        "stdin stays open while input is pending"
    );
    child.kill().unwrap();
    let out = child
        .communicate(None, Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGKILL));
    assert_eq!(out.stdout, b"waiting\n");
}

#[test]
fn child_exiting_at_once_while_input_is_pending() {
    let input = noise(10 * MIB, 5);
    for prog in ["true", "false"] {
        let mut child = piped(&mut Command::new(prog));
        let out = child.communicate(Some(&input), None).expect("communicate");
        assert_eq!(out.status.success(), prog == "true");
        assert!(out.stdout.is_empty() && out.stderr.is_empty());
    }
}

#[test]
fn timeout_in_the_middle_of_output_then_resume_byte_exact() {
    // 2 × 200,000 numbered lines with a pause between the halves.
    let mut child = piped(&mut sh(
        "seq 1 200000; sleep 1; seq 200001 400000; echo err >&2",
    ));
    let err = child
        .communicate(None, Some(Duration::from_millis(400)))
        .unwrap_err();
    let CommunicateError::Timeout(t) = err else {
        panic!("{err}")
    };
    let mut want = Vec::new();
    for i in 1..=400_000 {
        want.extend_from_slice(format!("{i}\n").as_bytes());
    }
    assert!(
        !t.stdout.is_empty(),
        "the first half arrived before the timeout"
    );
    assert!(want.starts_with(&t.stdout), "partial output is a prefix");
    assert!(t.stdout.len() < want.len());
    let out = child.communicate(None, None).expect("resume");
    assert_same(&out.stdout, &want, "stdout after resume");
    assert_eq!(out.stderr, b"err\n");
    assert!(out.status.success());
}

#[test]
fn timeout_with_pending_input_then_resume_byte_exact() {
    let input = noise(8 * MIB, 11);
    // It starts reading only after the first call has given up.
    let mut child = piped(&mut sh("sleep 0.6; cat"));
    let mut timeouts = 0;
    let err = child
        .communicate(Some(&input), Some(Duration::from_millis(150)))
        .unwrap_err();
    assert!(matches!(err, CommunicateError::Timeout(_)), "{err}");
    // New input after the start is refused; resuming without input goes on.
    let refused = child.communicate(Some(b"more"), None).unwrap_err();
    assert!(matches!(&refused, CommunicateError::Io(e) if e.kind() == ErrorKind::InvalidInput));
    let out = loop {
        match child.communicate(None, Some(Duration::from_millis(100))) {
            Ok(out) => break out,
            Err(CommunicateError::Timeout(t)) => {
                assert!(input.starts_with(&t.stdout));
                timeouts += 1;
                assert!(timeouts < 200, "never finished");
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_same(&out.stdout, &input, "stdout");
    assert!(out.status.success());
}

#[test]
fn timeout_while_waiting_for_exit_after_eof() {
    let mut child = piped(&mut sh("exec >&- 2>&-; sleep 0.5"));
    let err = child
        .communicate(None, Some(Duration::from_millis(100)))
        .unwrap_err();
    assert!(matches!(err, CommunicateError::Timeout(_)), "{err}");
    let out = child
        .communicate(None, Some(Duration::from_secs(10)))
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn kill_on_timeout_returns_within_grace_with_partial_output() {
    let mut child = piped(&mut sh("echo partial; exec sleep 30"));
    let started = Instant::now();
    let err = child
        .capture_options(CaptureOptions::new().kill_on_timeout(Some(Duration::from_millis(200))))
        .communicate(None, Some(Duration::from_millis(300)))
        .unwrap_err();
    let elapsed = started.elapsed();
    let CommunicateError::Timeout(t) = err else {
        panic!("{err}")
    };
    assert_eq!(t.stdout, b"partial\n");
    assert_eq!(t.status.and_then(|s| s.signal()), Some(libc::SIGKILL));
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[test]
fn no_pipes_just_waits() {
    let mut child = Command::new("true").spawn().unwrap();
    let out = child.communicate(None, None).unwrap();
    assert!(out.status.success() && out.stdout.is_empty());
    // Again: the same status, nothing more.
    assert_eq!(child.communicate(None, None).unwrap().status, out.status);
}

#[test]
fn input_without_a_stdin_pipe_is_refused() {
    let mut child = Command::new("true").stdout(Stdio::piped()).spawn().unwrap();
    let err = child.communicate(Some(b"x"), None).unwrap_err();
    assert!(matches!(&err, CommunicateError::Io(e) if e.kind() == ErrorKind::InvalidInput));
    child.communicate(None, None).unwrap();
}

#[test]
fn cap_error_mode() {
    let mut child = piped(&mut sh("head -c 1000000 /dev/zero; exec sleep 30"));
    let err = child
        .capture_options(CaptureOptions::new().stdout_limit(CaptureLimit::Error(1000)))
        .communicate(None, Some(Duration::from_secs(20)))
        .unwrap_err();
    let CommunicateError::LimitExceeded(e) = err else {
        panic!("{err}")
    };
    assert_eq!(
        (e.stream, e.limit, e.stdout.len()),
        (Stream::Stdout, 1000, 1000)
    );
    assert_eq!(e.status, None, "the child is left running");
    assert_eq!(child.poll().unwrap(), None);
    child.kill().unwrap();
    child.wait().unwrap();

    // Exactly at the cap is not over it.
    let mut child = piped(&mut sh("head -c 1000 /dev/zero; echo -n 12345 >&2"));
    let out = child
        .capture_options(
            CaptureOptions::new()
                .stdout_limit(CaptureLimit::Error(1000))
                .stderr_limit(CaptureLimit::Error(5)),
        )
        .communicate(None, None)
        .unwrap();
    assert_eq!((out.stdout.len(), &out.stderr[..]), (1000, &b"12345"[..]));

    // With kill on timeout, the cap also kills, and the other stream is kept.
    let mut child = piped(&mut sh(
        "echo err >&2; head -c 1000000 /dev/zero; exec sleep 30",
    ));
    let err = child
        .capture_options(
            CaptureOptions::new()
                .stderr_limit(CaptureLimit::Error(100))
                .stdout_limit(CaptureLimit::Error(10))
                .kill_on_timeout(Some(Duration::from_millis(200))),
        )
        .communicate(None, None)
        .unwrap_err();
    let CommunicateError::LimitExceeded(e) = err else {
        panic!("{err}")
    };
    assert_eq!((e.stream, e.stdout.len()), (Stream::Stdout, 10));
    assert_eq!(e.stderr, b"err\n");
    assert_eq!(e.status.and_then(|s| s.signal()), Some(libc::SIGKILL));
}

#[test]
fn cap_error_then_raised_cap_resumes_without_losing_a_byte() {
    let mut child = piped(&mut sh("seq 1 100000"));
    let err = child
        .capture_options(CaptureOptions::new().stdout_limit(CaptureLimit::Error(1000)))
        .communicate(None, None)
        .unwrap_err();
    let CommunicateError::LimitExceeded(e) = err else {
        panic!("{err}")
    };
    assert_eq!(e.stdout.len(), 1000);
    // Hitting the cap again shows the same bytes.
    let again = child.communicate(None, None).unwrap_err();
    assert_eq!(again.stdout(), &e.stdout[..]);
    let out = child
        .capture_options(CaptureOptions::new())
        .communicate(None, None)
        .unwrap();
    let want: String = (1..=100_000).map(|i| format!("{i}\n")).collect();
    assert_same(&out.stdout, want.as_bytes(), "stdout after raising the cap");
}

#[test]
fn cap_truncate_mode() {
    let mut child = piped(&mut sh(
        "head -c 5000000 /dev/zero; head -c 300 /dev/zero >&2; exit 4",
    ));
    let out = child
        .capture_options(
            CaptureOptions::new()
                .stdout_limit(CaptureLimit::Truncate(1000))
                .stderr_limit(CaptureLimit::Truncate(0)),
        )
        .communicate(None, None)
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "the child ran to its end");
    assert_eq!((out.stdout.len(), out.stdout_dropped), (1000, 4_999_000));
    assert_eq!((out.stderr.len(), out.stderr_dropped), (0, 300));
    assert!(out.truncated());
}

#[test]
fn pipes_are_grown_and_left_blocking_after_a_timeout() {
    let mut child = Command::new("sleep")
        .arg("5")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child
        .communicate(None, Some(Duration::from_millis(10)))
        .unwrap_err();
    let fd = std::os::fd::AsRawFd::as_raw_fd(child.stdout.as_ref().unwrap());
    // SAFETY: fcntl queries on a descriptor the handle keeps open.
    let (size, flags) = unsafe {
        (
            libc::fcntl(fd, libc::F_GETPIPE_SZ),
            libc::fcntl(fd, libc::F_GETFL),
        )
    };
    assert_eq!(size, 1 << 20);
    assert_eq!(flags & libc::O_NONBLOCK, 0);
    child.kill().unwrap();
}

#[test]
fn lines_stream_while_stderr_floods() {
    // Each line is followed by 4 MiB of stderr: without concurrent reading, the child would
    // block on stderr and the next line would never come.
    let mut child = piped(&mut sh(
        "for i in 1 2 3; do echo line$i; head -c 4194304 /dev/zero >&2; done; printf tail",
    ));
    let mut lines = child.lines().timeout(Duration::from_secs(60));
    let mut seen = Vec::new();
    for line in &mut lines {
        seen.push(line.unwrap());
    }
    assert_eq!(seen, ["line1", "line2", "line3", "tail"]);
    let out = lines.finish().unwrap();
    assert_eq!(out.stderr.len(), 3 * 4 * MIB);
    assert!(out.stdout.is_empty());
    assert!(out.status.success());
}

#[test]
fn lines_raw_bytes_decode_errors_and_crlf() {
    let mut child = Command::new("printf")
        .arg("a\\r\\nok\\n\\377bad\\nlast")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = child.lines();
    assert_eq!(lines.next().unwrap().unwrap(), "a");
    assert_eq!(lines.next_bytes().unwrap().unwrap(), b"ok\n");
    let err = lines.next().unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData);
    let decode = err
        .get_ref()
        .unwrap()
        .downcast_ref::<popen::DecodeError>()
        .unwrap();
    assert_eq!((decode.stream(), decode.offset()), (Stream::Stdout, 6));
    assert_eq!(lines.next_bytes().unwrap().unwrap(), b"last");
    assert!(lines.next().is_none());
    assert!(lines.finish().unwrap().status.success());
}

#[test]
fn lines_dropped_early_then_communicate_returns_the_rest() {
    let mut child = Command::new("printf")
        .arg("1\\n2\\n3\\n")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut lines = child.lines();
        assert_eq!(lines.next().unwrap().unwrap(), "1");
    }
    let out = child.communicate(None, None).unwrap();
    assert_eq!(out.stdout, b"2\n3\n");
}

/// A second `lines()` after one dropped midway: the lines handed out stay at the front of the
/// buffer when they came in one read, and must not be found again.
#[test]
fn lines_twice_resumes_after_the_lines_handed_out() {
    let mut child = Command::new("printf")
        .arg("1\\n2\\n3\\n")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Let the one write land before the first read.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(child.lines().next().unwrap().unwrap(), "1");
    let rest: Vec<String> = child.lines().collect::<Result<_, _>>().unwrap();
    assert_eq!(rest, ["2", "3"]);
}

/// A decode error in a second `lines()` names the offset in the stream, not in what the second
/// iterator saw.
#[test]
fn lines_decode_offset_counts_the_lines_an_earlier_iterator_handed_out() {
    let mut child = piped(&mut sh("echo 1; sleep 0.2; printf '\\377\\n'"));
    assert_eq!(child.lines().next().unwrap().unwrap(), "1");
    let err = child.lines().next().unwrap().unwrap_err();
    let decode = err
        .get_ref()
        .unwrap()
        .downcast_ref::<popen::DecodeError>()
        .unwrap();
    assert_eq!((decode.stream(), decode.offset()), (Stream::Stdout, 2));
}

#[test]
fn lines_timeout() {
    let mut child = piped(&mut sh("echo one; exec sleep 30"));
    let mut lines = child.lines().timeout(Duration::from_millis(300));
    assert_eq!(lines.next().unwrap().unwrap(), "one");
    let err = lines.next().unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    drop(lines);
    child.kill().unwrap();
}

#[test]
fn lines_timeout_with_kill_on_timeout() {
    let mut child = piped(&mut sh("echo one; echo err >&2; exec sleep 30"));
    child.capture_options(CaptureOptions::new().kill_on_timeout(Some(Duration::from_millis(100))));
    let mut lines = child.lines().timeout(Duration::from_millis(300));
    assert_eq!(lines.next_bytes().unwrap().unwrap(), b"one\n");
    let err = lines.next_bytes().unwrap().unwrap_err();
    let CommunicateError::Timeout(t) = err else {
        panic!("{err}")
    };
    assert_eq!(t.stderr, b"err\n");
    assert_eq!(t.status.and_then(|s| s.signal()), Some(libc::SIGKILL));
    assert!(lines.next().is_none());
    let out = lines.finish().unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGKILL));
}

/// Tee: the child's output reaches this process's own stdout/stderr and is captured too. Run
/// in a fresh copy of this test binary whose stdout and stderr the test captures.
#[test]
fn tee_copies_to_own_streams_while_capturing() {
    const NAME: &str = "tee_copies_to_own_streams_while_capturing";
    if in_scenario(NAME) {
        let mut child = piped(&mut sh("echo to-out; echo to-err >&2"));
        let out = child
            .capture_options(CaptureOptions::new().tee_stdout(true).tee_stderr(true))
            .communicate(None, None)
            .unwrap();
        assert_eq!(
            (&out.stdout[..], &out.stderr[..]),
            (&b"to-out\n"[..], &b"to-err\n"[..])
        );
        return;
    }
    let mut outer = scenario_command(NAME)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = outer
        .communicate(None, Some(Duration::from_secs(60)))
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(o.contains("to-out\n") && !o.contains("to-err"), "{o}");
    assert!(e.contains("to-err\n") && !e.contains("to-out"), "{e}");
}

#[test]
fn lines_tee_and_capture_limit_apply() {
    let mut child = piped(&mut sh("echo short; head -c 100000 /dev/zero; echo"));
    assert_short_line_then_cap(&mut child);
    child.kill().unwrap();
}

/// With a 1,000-byte error cap on stdout: `lines()` hands out the line `short`, then reports
/// the cap with exactly the capped bytes.
fn assert_short_line_then_cap(child: &mut Popen) {
    child.capture_options(CaptureOptions::new().stdout_limit(CaptureLimit::Error(1000)));
    let mut lines = child.lines();
    assert_eq!(lines.next().unwrap().unwrap(), "short");
    let err = lines.next_bytes().unwrap().unwrap_err();
    assert!(matches!(&err, CommunicateError::LimitExceeded(e) if e.stdout.len() == 1000));
}

#[test]
fn lines_complete_before_the_cap_are_handed_out_first() {
    // One write (cat of a file) holds the short line and far more than the cap after it.
    let file = std::env::temp_dir().join(format!("popen-lines-cap-{}", std::process::id()));
    let mut content = b"short\n".to_vec();
    content.extend(std::iter::repeat_n(b'0', 100_000));
    std::fs::write(&file, content).unwrap();
    let mut child = piped(Command::new("cat").arg(&file));
    assert_short_line_then_cap(&mut child);
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::remove_file(&file).unwrap();
}
