//! `Popen::output_lines` and `Popen::stderr_lines`: both streams' lines as they arrive, each
//! stream in order, without deadlock; partial last lines, CRLF, invalid UTF-8, a stream closed
//! early, a grandchild holding a pipe, and an iterator dropped midway.

use popen::{
    CaptureLimit, CaptureOptions, Command, CommunicateError, DecodeError, Line, Popen, Stdio,
    Stream,
};
use std::io::ErrorKind;
use std::time::{Duration, Instant};

fn both_piped(script: &str) -> Popen {
    Command::shell(script)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

fn line(stream: Stream, text: &str) -> Line {
    Line {
        stream,
        text: text.to_string(),
    }
}

/// Every line, in the order yielded; panics on an error.
fn collect_all(child: &mut Popen) -> Vec<Line> {
    let mut lines = child.output_lines().timeout(Duration::from_secs(120));
    let seen: Vec<Line> = (&mut lines).map(|l| l.expect("line")).collect();
    assert!(lines.finish().expect("finish").status.success());
    seen
}

/// The texts of the lines of `stream`, in the order yielded.
fn texts(lines: &[Line], stream: Stream) -> Vec<&str> {
    lines
        .iter()
        .filter(|l| l.stream == stream)
        .map(|l| l.text.as_str())
        .collect()
}

fn numbered(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

#[test]
fn each_stream_keeps_its_order_while_both_interleave() {
    // One line to each stream in turn, flushed each time: 2 × 200,000 lines, more than the
    // pipes hold, so the reads see the streams interleaved.
    const N: usize = 200_000;
    let mut child = both_piped(&format!(
        "awk 'BEGIN {{ for (i = 0; i < {N}; i++) {{ print \"o\" i; fflush(); \
         print \"e\" i > \"/dev/stderr\"; fflush(\"/dev/stderr\") }} }}'"
    ));
    let seen = collect_all(&mut child);
    assert_eq!(seen.len(), 2 * N);
    assert!(
        texts(&seen, Stream::Stdout) == numbered("o", N),
        "stdout out of order"
    );
    assert!(
        texts(&seen, Stream::Stderr) == numbered("e", N),
        "stderr out of order"
    );
}

#[test]
fn big_outputs_on_both_streams_do_not_deadlock() {
    // About 14 MiB on each stream at once.
    const N: usize = 2_000_000;
    let mut child = both_piped(&format!("seq 1 {N} >&2 & seq 1 {N}; wait"));
    let mut lines = child.output_lines().timeout(Duration::from_secs(120));
    let mut next = [1usize; 2];
    for l in &mut lines {
        let l = l.unwrap();
        let i = usize::from(l.stream == Stream::Stderr);
        assert_eq!(l.text, next[i].to_string(), "{} out of order", l.stream);
        next[i] += 1;
    }
    assert_eq!(next, [N + 1; 2]);
    let out = lines.finish().unwrap();
    assert!(out.status.success());
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
}

#[test]
fn lines_in_arrival_order_across_streams() {
    let mut child =
        both_piped("echo o1; sleep 0.3; echo e1 >&2; sleep 0.3; echo o2; sleep 0.3; echo e2 >&2");
    let seen = collect_all(&mut child);
    assert_eq!(
        seen,
        [
            line(Stream::Stdout, "o1"),
            line(Stream::Stderr, "e1"),
            line(Stream::Stdout, "o2"),
            line(Stream::Stderr, "e2"),
        ]
    );
}

#[test]
fn partial_last_lines_and_crlf() {
    let mut child = both_piped("printf 'a\\r\\nb\\rc\\nlast'; printf 'x\\r\\n\\r\\ny' >&2");
    let seen = collect_all(&mut child);
    assert_eq!(texts(&seen, Stream::Stdout), ["a", "b\rc", "last"]);
    assert_eq!(texts(&seen, Stream::Stderr), ["x", "", "y"]);
}

#[test]
fn raw_bytes_keep_their_newlines() {
    // `b` is a line only at stdout's end of file, which comes after `c`.
    let mut child = both_piped("printf 'a\\r\\nb'; sleep 0.3; printf 'c\\n' >&2; sleep 0.3");
    let mut lines = child.output_lines();
    assert_eq!(
        lines.next_bytes().unwrap().unwrap(),
        (Stream::Stdout, b"a\r\n".to_vec())
    );
    assert_eq!(
        lines.next_bytes().unwrap().unwrap(),
        (Stream::Stderr, b"c\n".to_vec())
    );
    assert_eq!(
        lines.next_bytes().unwrap().unwrap(),
        (Stream::Stdout, b"b".to_vec())
    );
    assert!(lines.next_bytes().is_none());
    assert!(lines.finish().unwrap().status.success());
}

#[test]
fn invalid_utf8_names_the_stream_and_its_offset_and_iteration_goes_on() {
    // stdout is written first, so that its bytes cannot shift stderr's offsets.
    let mut child =
        both_piped("printf '0123456789\\n'; sleep 0.1; printf 'ok\\n\\377bad\\nend' >&2");
    let mut lines = child.output_lines();
    assert_eq!(
        lines.next().unwrap().unwrap(),
        line(Stream::Stdout, "0123456789")
    );
    assert_eq!(lines.next().unwrap().unwrap(), line(Stream::Stderr, "ok"));
    let err = lines.next().unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData);
    let decode = err
        .get_ref()
        .unwrap()
        .downcast_ref::<DecodeError>()
        .unwrap();
    assert_eq!((decode.stream(), decode.offset()), (Stream::Stderr, 3));
    assert_eq!(lines.next().unwrap().unwrap(), line(Stream::Stderr, "end"));
    assert!(lines.next().is_none());
    assert!(lines.finish().unwrap().status.success());
}

#[test]
fn decode_offsets_count_the_lines_an_earlier_iterator_handed_out() {
    let mut child = both_piped("echo 1 >&2; sleep 0.2; printf 'ok\\n\\377\\n' >&2");
    assert_eq!(
        child.output_lines().next().unwrap().unwrap(),
        line(Stream::Stderr, "1")
    );
    let mut lines = child.output_lines();
    assert_eq!(lines.next().unwrap().unwrap(), line(Stream::Stderr, "ok"));
    let err = lines.next().unwrap().unwrap_err();
    let decode = err
        .get_ref()
        .unwrap()
        .downcast_ref::<DecodeError>()
        .unwrap();
    assert_eq!((decode.stream(), decode.offset()), (Stream::Stderr, 5));
}

#[test]
fn a_stream_closed_early_leaves_the_other_going() {
    let mut child = both_piped("exec 1>&-; echo e1 >&2; sleep 0.2; echo e2 >&2");
    let seen = collect_all(&mut child);
    assert_eq!(texts(&seen, Stream::Stderr), ["e1", "e2"]);
    assert!(texts(&seen, Stream::Stdout).is_empty());

    let mut child =
        both_piped("printf 'half' >&2; sleep 0.3; exec 2>&-; echo o1; sleep 0.2; echo o2");
    let seen = collect_all(&mut child);
    assert_eq!(
        seen,
        [
            line(Stream::Stderr, "half"),
            line(Stream::Stdout, "o1"),
            line(Stream::Stdout, "o2"),
        ]
    );
}

/// A last line without a newline comes before a line of the other stream read later, even when
/// the end of file that completes it is seen in the same read as that line.
#[test]
fn a_last_line_ranks_by_its_bytes_not_by_its_end_of_file() {
    let mut child = both_piped("printf 'x\\nhalf' >&2; sleep 0.3; exec 2>&-; echo o1");
    let mut lines = child.output_lines();
    assert_eq!(lines.next().unwrap().unwrap(), line(Stream::Stderr, "x"));
    // Both the end of stderr and stdout's line are waiting by the next read.
    std::thread::sleep(Duration::from_millis(800));
    let rest: Vec<Line> = (&mut lines).map(Result::unwrap).collect();
    assert_eq!(
        rest,
        [line(Stream::Stderr, "half"), line(Stream::Stdout, "o1")]
    );
}

#[test]
fn a_stream_not_piped_yields_nothing() {
    let mut child = Command::shell("echo out; echo err >&2")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert_eq!(collect_all(&mut child), [line(Stream::Stdout, "out")]);
}

#[test]
fn a_grandchild_holding_the_pipes_does_not_hold_the_timeout() {
    // The shell exits at once; its `sleep` keeps both pipes open. Its own group, so that the
    // test can kill the sleep afterwards.
    let mut child = Command::shell("sleep 30 & echo out; echo err >&2")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut lines = child.output_lines().timeout(Duration::from_millis(500));
    let mut seen = Vec::new();
    let err = loop {
        match lines.next().expect("an error before the end") {
            Ok(l) => seen.push(l),
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(texts(&seen, Stream::Stdout), ["out"]);
    assert_eq!(texts(&seen, Stream::Stderr), ["err"]);
    drop(lines);
    child.send_signal_group(libc::SIGKILL).unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn kill_on_timeout_ends_the_iteration_with_the_status() {
    let mut child = both_piped("echo one >&2; exec sleep 30");
    child.capture_options(CaptureOptions::new().kill_on_timeout(Some(Duration::from_millis(100))));
    let mut lines = child.output_lines().timeout(Duration::from_millis(300));
    assert_eq!(lines.next().unwrap().unwrap(), line(Stream::Stderr, "one"));
    let err = lines.next_bytes().unwrap().unwrap_err();
    let CommunicateError::Timeout(t) = err else {
        panic!("{err}")
    };
    assert_eq!(t.status.and_then(|s| s.signal()), Some(libc::SIGKILL));
    assert!(lines.next().is_none());
    assert_eq!(lines.finish().unwrap().status.signal(), Some(libc::SIGKILL));
}

#[test]
fn dropped_midway_then_communicate_loses_no_byte() {
    // Lines handed out and bytes left in the handle make up each stream exactly.
    const N: usize = 50_000;
    let mut child = both_piped(&format!(
        "awk 'BEGIN {{ for (i = 0; i < {N}; i++) {{ print \"o\" i; \
         print \"e\" i > \"/dev/stderr\" }} }}'"
    ));
    let mut got = [Vec::new(), Vec::new()];
    {
        let mut lines = child.output_lines().timeout(Duration::from_secs(60));
        for _ in 0..N / 2 {
            let (stream, bytes) = lines.next_bytes().unwrap().unwrap();
            got[usize::from(stream == Stream::Stderr)].extend(bytes);
        }
    }
    let out = child
        .communicate(None, Some(Duration::from_secs(60)))
        .unwrap();
    got[0].extend(out.stdout);
    got[1].extend(out.stderr);
    let want = |p: &str| -> Vec<u8> {
        numbered(p, N)
            .into_iter()
            .flat_map(|l| format!("{l}\n").into_bytes())
            .collect()
    };
    assert!(got[0] == want("o"), "stdout: {} bytes", got[0].len());
    assert!(got[1] == want("e"), "stderr: {} bytes", got[1].len());
}

#[test]
fn a_later_iterator_resumes_where_a_dropped_one_stopped() {
    // One write holds every line, so the handed-out ones stay at the front of the buffer.
    let mut child = Command::new("printf")
        .arg("1\\n2\\n3\\n4\\n")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let next_of =
        |lines: &mut dyn Iterator<Item = std::io::Result<String>>| lines.next().unwrap().unwrap();
    assert_eq!(
        child.output_lines().next().unwrap().unwrap(),
        line(Stream::Stdout, "1")
    );
    assert_eq!(
        child.output_lines().next().unwrap().unwrap(),
        line(Stream::Stdout, "2")
    );
    assert_eq!(next_of(&mut child.lines()), "3");
    assert_eq!(next_of(&mut child.lines()), "4");
    assert!(child.output_lines().next().is_none());
}

#[test]
fn stderr_lines_while_stdout_floods() {
    // 4 MiB of stdout before each stderr line: without reading stdout at the same time, the
    // child would block and the next line would never come.
    let mut child = both_piped(
        "for i in 1 2 3; do head -c 4194304 /dev/zero; echo progress$i >&2; done; printf done >&2",
    );
    let mut lines = child.stderr_lines().timeout(Duration::from_secs(60));
    let seen: Vec<String> = (&mut lines).map(Result::unwrap).collect();
    assert_eq!(seen, ["progress1", "progress2", "progress3", "done"]);
    let out = lines.finish().unwrap();
    assert_eq!(out.stdout.len(), 3 << 22);
    assert!(out.stderr.is_empty());
    assert!(out.status.success());
}

#[test]
fn a_cap_bounds_one_line_of_either_stream() {
    let mut child = both_piped("echo short >&2; head -c 100000 /dev/zero >&2; echo");
    child.capture_options(CaptureOptions::new().stderr_limit(CaptureLimit::Error(1000)));
    let mut lines = child.output_lines();
    assert_eq!(
        lines.next().unwrap().unwrap(),
        line(Stream::Stderr, "short")
    );
    let err = lines.next_bytes().unwrap().unwrap_err();
    assert!(
        matches!(&err, CommunicateError::LimitExceeded(e)
            if e.stream == Stream::Stderr && e.stderr.len() == 1000),
        "{err:?}"
    );
    drop(lines);
    child.kill().unwrap();
}

#[test]
fn stderr_lines_dropped_midway_then_communicate_returns_the_rest() {
    let mut child = both_piped("echo out1; echo err1 >&2; sleep 0.1; echo out2; echo err2 >&2");
    {
        let mut lines = child.stderr_lines();
        assert_eq!(lines.next().unwrap().unwrap(), "err1");
    }
    let out = child
        .communicate(None, Some(Duration::from_secs(60)))
        .unwrap();
    assert_eq!(out.stdout, b"out1\nout2\n");
    assert_eq!(out.stderr, b"err2\n");
}

#[test]
fn after_a_timeout_the_iteration_ends_and_a_new_one_goes_on_without_loss() {
    // The second line comes after the first iteration's deadline.
    let mut child = both_piped("echo one; echo two >&2; sleep 0.6; echo three; echo four >&2");
    let started = Instant::now();
    // `flatten` drops the error: the loop must still end (not spin on the error).
    let first: Vec<Line> = child
        .output_lines()
        .timeout(Duration::from_millis(200))
        .flatten()
        .collect();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(texts(&first, Stream::Stdout), ["one"]);
    assert_eq!(texts(&first, Stream::Stderr), ["two"]);
    let rest: Vec<Line> = child
        .output_lines()
        .timeout(Duration::from_secs(30))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(texts(&rest, Stream::Stdout), ["three"]);
    assert_eq!(texts(&rest, Stream::Stderr), ["four"]);
    assert!(child.wait().unwrap().success());
}

#[test]
fn after_a_timeout_stdout_lines_end_and_new_lines_go_on_without_loss() {
    let mut child = Command::shell("echo one; sleep 0.6; echo two")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = child.lines().timeout(Duration::from_millis(200));
    assert_eq!(lines.next().unwrap().unwrap(), "one");
    let err = lines.next().unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(lines.next().is_none());
    drop(lines);
    let rest: Vec<String> = child.lines().collect::<Result<_, _>>().unwrap();
    assert_eq!(rest, ["two"]);
    assert!(child.wait().unwrap().success());
}
