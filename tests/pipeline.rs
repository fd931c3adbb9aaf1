//! Pipelines: per-stage status, SIGPIPE, the data path, redirections of the outer streams,
//! many threads at once. Errors, timeouts and groups are in tests/pipeline_errors.rs.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{in_scenario, on_each_path, open_fds, run_scenario, scenario_passed};
use popen::{Command, Pipeline, PipelineErrorKind, RunOptions, SpawnPath, Stdio};

fn sh(script: &str) -> Command {
    Command::shell(script)
}

/// The pipe descriptors open in this process (pidfds, which the stages' handles own, are not).
fn open_pipes() -> Vec<i32> {
    open_fds()
        .into_iter()
        .filter(|fd| {
            std::fs::read_link(format!("/proc/self/fd/{fd}"))
                .is_ok_and(|l| l.to_string_lossy().starts_with("pipe:"))
        })
        .collect()
}

fn codes(status: &popen::PipelineStatus) -> Vec<i32> {
    status.stages().iter().map(|s| s.returncode()).collect()
}

#[test]
fn false_true_last_is_0_pipefail_is_1_on_each_path() {
    for path in SpawnPath::ALL {
        let status = Command::new("false")
            .spawn_path(path)
            .pipe(Command::new("true").spawn_path(path))
            .spawn()
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(status.last().code(), Some(0), "{path}");
        assert_eq!(status.pipefail().code(), Some(1), "{path}");
        assert!(!status.all_success(), "{path}");
        assert!(!status.success(), "{path}");
        assert_eq!(status.failed_stage(), Some(0), "{path}");
    }
}

#[test]
fn pipefail_is_the_rightmost_failure() {
    let status =
        Pipeline::new(["exit 1", "exit 2", "exit 3", "exit 4", "exit 0"].map(Command::shell))
            .run(&RunOptions::new())
            .unwrap()
            .status;
    assert_eq!(codes(&status), [1, 2, 3, 4, 0]);
    assert_eq!(status.pipefail().code(), Some(4));
    assert_eq!(status.last().code(), Some(0));
    assert_eq!(status.failed_stage(), Some(3));
}

#[test]
fn a_checked_failure_beats_an_unchecked_one_and_any_failure_beats_success() {
    // exit 1 (checked) | exit 2 (unchecked) | exit 0: the checked one decides.
    let status = Pipeline::new(["exit 1", "exit 2", "exit 0"].map(Command::shell))
        .check_stage(1, false)
        .run(&RunOptions::new())
        .unwrap()
        .status;
    assert_eq!(status.pipefail().code(), Some(1));
    assert_eq!(status.failed_stage(), Some(0));
    // Only unchecked failures: pipefail still reports the rightmost, a check passes.
    let status = Pipeline::new(["exit 1", "exit 2", "exit 0"].map(Command::shell))
        .check_stage(0, false)
        .check_stage(1, false)
        .run(&RunOptions::new().check())
        .unwrap()
        .status;
    assert_eq!(status.pipefail().code(), Some(2));
    assert!(status.success());
    assert!(!status.all_success());
    assert_eq!(status.failed_stage(), None);
    // Two checked failures: the right one wins.
    let err = Pipeline::new(["exit 5", "exit 6", "exit 0"].map(Command::shell))
        .run(&RunOptions::new().check())
        .unwrap_err();
    assert_eq!(err.stage(), Some(1));
}

fn sigpipe_is_ignored_here() -> bool {
    // SAFETY: with a null new action, sigaction only writes the current one.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old);
        old.sa_sigaction == libc::SIG_IGN
    }
}

#[test]
fn yes_head_ends_fast_and_succeeds_by_default_fails_when_strict() {
    // Rust ignores SIGPIPE in this process; the stages must not inherit that.
    assert!(sigpipe_is_ignored_here());
    on_each_path(
        || Command::new("yes"),
        |path, yes| {
            // Even a command that asks to keep this process's dispositions gets the default.
            yes.restore_signals(false);
            for strict in [false, true] {
                let started = Instant::now();
                let out = yes
                    .pipe(Command::new("head").arg("-n1"))
                    .strict_sigpipe(strict)
                    .run(
                        &RunOptions::new()
                            .capture_stdout()
                            .timeout(Duration::from_secs(20)),
                    )
                    .unwrap();
                assert!(started.elapsed() < Duration::from_secs(1), "{path}");
                assert_eq!(out.stdout, b"y\n");
                let s = out.status;
                assert_eq!(s.stages()[0].signal(), Some(libc::SIGPIPE), "{path}");
                assert_eq!(s.success(), !strict, "{path} strict={strict}");
                assert_eq!(s.all_success(), !strict, "{path} strict={strict}");
                assert_eq!(s.pipefail().signal(), strict.then_some(libc::SIGPIPE));
            }
        },
    );
}

#[test]
fn a_stage_starts_with_sigpipe_default_even_with_restore_signals_off() {
    on_each_path(
        || {
            let mut grep = Command::new("grep");
            grep.args(["^SigIgn", "/proc/self/status"]);
            grep
        },
        |path, grep| {
            let out = grep
                .restore_signals(false)
                .pipe(Command::new("cat"))
                .run(&RunOptions::new().capture_stdout())
                .unwrap();
            let text = String::from_utf8(out.stdout).unwrap();
            let mask = common::status_mask(&text, "SigIgn");
            assert_eq!(mask & (1 << (libc::SIGPIPE - 1)), 0, "{path}: {text}");
        },
    );
}

#[test]
fn cat_of_16_mib_into_a_stage_that_exits_ends_with_sigpipe_and_3() {
    const NAME: &str = "cat_of_16_mib_into_a_stage_that_exits_ends_with_sigpipe_and_3";
    if in_scenario(NAME) {
        let path = std::env::temp_dir().join(format!("popen-16mib-{}", std::process::id()));
        std::fs::write(&path, vec![b'x'; 16 << 20]).unwrap();
        let mut p = Command::new("cat");
        p.arg(&path);
        let mut pipeline = p.pipe(sh("sleep 0.2; exit 3"));
        let before = open_fds();
        let pipes = open_pipes();
        let child = pipeline.spawn().unwrap();
        // Right after the spawn: no pipe end between the stages is left in this process.
        assert_eq!(open_pipes(), pipes);
        let status = child.wait().unwrap();
        assert_eq!(status.stages()[0].signal(), Some(libc::SIGPIPE));
        assert_eq!(status.stages()[1].code(), Some(3));
        assert_eq!(status.pipefail().code(), Some(3));
        drop(child);
        assert_eq!(open_fds(), before);
        std::fs::remove_file(&path).unwrap();
        scenario_passed();
    }
    assert!(run_scenario(NAME, |_| {}).success());
}

#[test]
fn the_parent_holds_no_inter_stage_pipe_end_after_the_spawn() {
    const NAME: &str = "the_parent_holds_no_inter_stage_pipe_end_after_the_spawn";
    if in_scenario(NAME) {
        let mut p =
            Pipeline::new(["sleep 0.3", "sleep 0.3", "sleep 0.3", "cat"].map(Command::shell));
        let before = open_fds();
        let pipes = open_pipes();
        let child = p.spawn().unwrap();
        assert_eq!(open_pipes(), pipes, "inter-stage pipe ends left open");
        assert!(child.wait().unwrap().all_success());
        drop(child);
        assert_eq!(open_fds(), before);
        scenario_passed();
    }
    assert!(run_scenario(NAME, |_| {}).success());
}

#[test]
fn ten_mib_into_head_c_10_wc_c_prints_10() {
    let input = vec![b'z'; 10 << 20];
    let out = Command::new("head")
        .args(["-c", "10"])
        .pipe(Command::new("wc").arg("-c"))
        .run(
            &RunOptions::new()
                .input(&input[..])
                .capture_output()
                .check()
                .timeout(Duration::from_secs(20)),
        )
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "10");
    assert!(out.stderr.iter().all(Vec::is_empty), "{:?}", out.stderr);
}

#[test]
fn a_one_stage_pipeline_behaves_as_its_command() {
    let opts = RunOptions::new()
        .input(&b"b\na\n"[..])
        .capture_output()
        .timeout(Duration::from_secs(10));
    let script = "sort; echo err >&2; exit 3";
    let single = popen::run(sh(script), &opts).unwrap();
    let piped = Pipeline::from(sh(script)).run(&opts).unwrap();
    assert_eq!(piped.stdout, single.stdout);
    assert_eq!(piped.stderr, [single.stderr]);
    assert_eq!(piped.status.stages(), [single.status]);
    assert_eq!(piped.status.last(), single.status);
    assert_eq!(piped.status.pipefail(), single.status);
}

#[test]
fn outer_streams_take_files_and_pipes() {
    let dir = std::env::temp_dir();
    let src = dir.join(format!("popen-pipe-in-{}", std::process::id()));
    let dst = dir.join(format!("popen-pipe-out-{}", std::process::id()));
    std::fs::write(&src, "pear\napple\n").unwrap();
    // From a file, to a file.
    let status = Command::new("sort")
        .stdin(File::open(&src).unwrap())
        .pipe(
            Command::new("tr")
                .args(["a-z", "A-Z"])
                .stdout(File::create(&dst).unwrap()),
        )
        .spawn()
        .unwrap()
        .wait()
        .unwrap();
    assert!(status.all_success());
    assert_eq!(std::fs::read_to_string(&dst).unwrap(), "APPLE\nPEAR\n");
    // Piped at both ends, set on the pipeline.
    let mut p = Pipeline::new([Command::new("sort"), Command::new("uniq")]);
    let mut child = p
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"b\na\nb\n").unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(out, "a\nb\n");
    assert!(child.wait().unwrap().all_success());
    // The pipeline can run again: the commands kept their own redirections.
    let out = p
        .run(&RunOptions::new().input(&b"z\ny\n"[..]).capture_stdout())
        .unwrap();
    assert_eq!(out.stdout, b"y\nz\n");
    std::fs::remove_file(&src).unwrap();
    std::fs::remove_file(&dst).unwrap();
}

#[test]
fn a_middle_stage_may_send_its_stderr_down_the_pipe() {
    let mut mid = sh("echo to-err >&2; cat");
    mid.stderr(Stdio::same_as_stdout());
    let out = sh("echo data")
        .pipe(mid)
        .pipe(Command::new("sort"))
        .run(&RunOptions::new().capture_stdout())
        .unwrap();
    assert_eq!(out.stdout, b"data\nto-err\n");
}

#[test]
fn capturing_every_stage_stderr_does_not_deadlock() {
    // Each stage writes 4 MiB to stderr (many pipe buffers) before passing its input on.
    let stage = "head -c 4194304 /dev/zero >&2; cat";
    let out = Pipeline::new([stage, stage, stage].map(Command::shell))
        .run(
            &RunOptions::new()
                .input(&b"through\n"[..])
                .capture_output()
                .timeout(Duration::from_secs(60)),
        )
        .unwrap();
    assert_eq!(out.stdout, b"through\n");
    for err in &out.stderr {
        assert_eq!(err.len(), 4 << 20);
    }
}

#[test]
fn a_middle_stream_set_by_a_command_or_an_empty_pipeline_is_refused() {
    let err = Command::new("true")
        .stdout(Stdio::null())
        .pipe(Command::new("cat"))
        .spawn()
        .unwrap_err();
    assert!(
        matches!(err.kind(), PipelineErrorKind::Io(e) if e.kind() == std::io::ErrorKind::InvalidInput)
    );
    assert!(
        err.to_string().contains("stage 1 of 2 sets its stdout"),
        "{err}"
    );
    let err = Command::new("true")
        .pipe(Command::new("cat").stdin(Stdio::null()))
        .spawn()
        .unwrap_err();
    assert!(
        err.to_string().contains("stage 2 of 2 sets its stdin"),
        "{err}"
    );
    let err = Pipeline::new(Vec::<Command>::new()).spawn().unwrap_err();
    assert!(matches!(err.kind(), PipelineErrorKind::Io(_)));
}

#[test]
fn eight_threads_each_run_fifty_two_stage_pipelines() {
    // What a child sees without close_fds before any pipeline exists: 0-2, the directory ls
    // reads, and whatever this test process inherited without close-on-exec.
    let (seen, _) = common::output(Command::new("ls").arg("/proc/self/fd").close_fds(false));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let seen = seen.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    let word = format!("t{t}i{i}\n");
                    // close_fds off: only close-on-exec keeps other pipelines' ends out.
                    let out = Command::new("ls")
                        .arg("/proc/self/fd")
                        .close_fds(false)
                        .pipe(Command::new("cat").close_fds(false))
                        .run(
                            &RunOptions::new()
                                .capture_stdout()
                                .timeout(Duration::from_secs(30)),
                        )
                        .unwrap();
                    // Nothing from another pipeline.
                    assert_eq!(String::from_utf8_lossy(&out.stdout), seen, "{word}");
                    let out = sh("cat")
                        .pipe(Command::new("cat"))
                        .run(
                            &RunOptions::new()
                                .input(word.as_bytes())
                                .capture_stdout()
                                .timeout(Duration::from_secs(30)),
                        )
                        .unwrap();
                    assert_eq!(out.stdout, word.as_bytes());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn input_capture_and_check_run_on_pipelines() {
    let out = Command::new("tr")
        .args(["a-z", "A-Z"])
        .pipe(Command::new("rev"))
        .run(
            &RunOptions::new()
                .input(&b"abc\n"[..])
                .capture_output()
                .check(),
        )
        .unwrap();
    assert_eq!(out.stdout, b"CBA\n");
    assert_eq!(out.args[1], ["rev"]);
}

#[test]
fn a_truncating_cap_counts_what_it_dropped() {
    let out = sh("head -c 100000 /dev/zero; head -c 5000 /dev/zero >&2")
        .pipe(Command::new("cat"))
        .run(
            &RunOptions::new()
                .capture_output()
                .stdout_limit(popen::CaptureLimit::Truncate(10))
                .stderr_limit(popen::CaptureLimit::Truncate(100)),
        )
        .unwrap();
    assert_eq!((out.stdout.len(), out.stdout_dropped), (10, 99_990));
    assert_eq!((out.stderr[0].len(), out.stderr_dropped[0]), (100, 4900));
    assert_eq!(out.stderr_dropped[1], 0);
}

#[test]
fn a_stage_with_its_own_group_is_refused_in_a_grouped_pipeline() {
    let err = Command::new("true")
        .start_new_session(true)
        .pipe(Command::new("cat"))
        .process_group(true)
        .spawn()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("stage 1 of 2 chooses its own session"),
        "{err}"
    );
}

#[test]
fn pipeline_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Pipeline<'static>>();
    send_sync::<popen::PipelineChild>();
    send_sync::<popen::PipelineError>();
    send_sync::<popen::PipelineOutput>();
    send_sync::<popen::WaitSet<popen::Popen>>();
    send_sync::<popen::WaitSet<popen::PipelineChild>>();
}

#[test]
fn megabytes_of_noise_through_two_stages_arrive_byte_exact() {
    // Large enough for the capture to read through its relay pipe (see `capture.rs`).
    let input = common::noise(6 << 20, 29);
    let out = Command::new("cat")
        .pipe(Command::new("cat"))
        .run(
            &RunOptions::new()
                .input(&input[..])
                .capture_output()
                .check()
                .timeout(Duration::from_secs(60)),
        )
        .unwrap();
    assert!(
        out.stdout == input,
        "{} bytes back of {}",
        out.stdout.len(),
        input.len()
    );
}
