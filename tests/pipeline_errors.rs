//! Pipelines that go wrong: a stage that cannot start, a failed check, the deadline, caps, and
//! process groups.

mod common;

use std::time::{Duration, Instant};

use common::{children, in_scenario, open_fds, run_scenario, scenario_passed};
use popen::{Command, Pipeline, PipelineErrorKind, RunOptions, Step, Stream};

fn sh(script: &str) -> Command {
    Command::shell(script)
}

fn alive(pid: i32) -> bool {
    // A zombie still answers kill(0): only a reaped pid is gone.
    // SAFETY: kill with signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[test]
fn a_stage_that_cannot_start_stops_the_others_fast_with_no_survivor() {
    let started = Instant::now();
    let err = Pipeline::new([
        Command::new("sleep").arg("1000"),
        &mut Command::new("/nonexistent"),
        &mut Command::new("cat"),
    ])
    .spawn()
    .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    let PipelineErrorKind::Spawn { stage, error } = err.kind() else {
        panic!("{err:?}")
    };
    assert_eq!((*stage, error.step()), (1, Step::Exec));
    assert_eq!(err.stages.len(), 3);
    let sleep = &err.stages[0];
    let pid = sleep.pid.expect("sleep started");
    assert_eq!(sleep.status.and_then(|s| s.signal()), Some(libc::SIGTERM));
    assert!(!alive(pid), "sleep {pid} survived");
    assert_eq!((err.stages[1].pid, err.stages[2].pid), (None, None));
    assert_eq!(
        err.to_string(),
        "stage 2 of 3 `/nonexistent` could not start: could not exec \"/nonexistent\": \
         No such file or directory (os error 2)"
    );
}

#[test]
fn a_failed_start_leaves_no_descriptor_and_no_child() {
    const NAME: &str = "a_failed_start_leaves_no_descriptor_and_no_child";
    if in_scenario(NAME) {
        let before = open_fds();
        for _ in 0..5 {
            let mut p = Command::new("sleep");
            p.arg("1000");
            let mut p = p.pipe(Command::new("cat"));
            p.pipe(Command::new("cat"))
                .pipe(Command::new("/nonexistent"));
            assert!(p.spawn().is_err());
            // A stage that exits on its own once its pipe closes is reaped too.
            let mut p = Command::new("cat");
            assert!(p.pipe(Command::new("/nonexistent")).spawn().is_err());
        }
        assert_eq!(open_fds(), before);
        assert!(children().is_empty(), "{:?}", children());
        scenario_passed();
    }
    assert!(run_scenario(NAME, |_| {}).success());
}

#[test]
fn with_a_process_group_a_failed_start_also_stops_grandchildren() {
    // A shell stage whose `sleep` is its child, not the stage itself.
    let err = sh("sleep 1000; echo never")
        .pipe(Command::new("/nonexistent"))
        .process_group(true)
        .spawn()
        .unwrap_err();
    let leader = err.stages[0].pid.unwrap();
    let gone_by = Instant::now() + Duration::from_secs(5);
    let members = || {
        common::processes()
            .into_iter()
            .filter(|p| p.pgrp == leader && p.state != 'Z')
            .count()
    };
    while members() > 0 && Instant::now() < gone_by {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(members(), 0, "a process of group {leader} survived");
}

#[test]
fn a_failed_check_names_the_stage_and_carries_every_stage() {
    let err = sh("echo a")
        .pipe(Command::new("grep").args(["-E", "x("]))
        .pipe(Command::new("cat"))
        .run(&RunOptions::new().capture_output().check())
        .unwrap_err();
    let PipelineErrorKind::Failed { stage, status } = err.kind() else {
        panic!("{err:?}")
    };
    assert_eq!(*stage, 1);
    assert_eq!(status.stages()[1].code(), Some(2));
    let msg = err.to_string();
    assert!(
        msg.starts_with("stage 2 of 3 `grep -E x(` exited 2: grep"),
        "{msg}"
    );
    for (i, s) in err.stages.iter().enumerate() {
        assert!(s.pid.is_some() && s.status.is_some(), "stage {i}: {s:?}");
    }
    assert!(!err.stages[1].stderr.is_empty());
    assert_eq!(err.stages[1].args, ["grep", "-E", "x("]);
    assert_eq!(err.command_line(), "/bin/sh -c echo a | grep -E x( | cat");
    // A signal is named as such.
    let err = sh("kill -9 $$")
        .pipe(Command::new("cat"))
        .run(&RunOptions::new().check())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "stage 1 of 2 `/bin/sh -c kill -9 $$` was killed by signal 9"
    );
}

#[test]
fn one_deadline_for_the_whole_pipeline_with_partial_output() {
    let started = Instant::now();
    let err = sh("echo early; exec sleep 30")
        .pipe(sh("cat; exec sleep 30"))
        .pipe(Command::new("cat"))
        .run(
            &RunOptions::new()
                .capture_stdout()
                .timeout(Duration::from_millis(300))
                .grace_period(Duration::from_millis(100)),
        )
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(err.kind(), PipelineErrorKind::Timeout { .. }),
        "{err:?}"
    );
    assert_eq!(err.stdout, b"early\n");
    for s in &err.stages {
        // Every stage was terminated (cat ends on SIGTERM, or on end of file after it).
        let status = s.status.expect("reaped");
        assert!(!alive(s.pid.unwrap()));
        assert!(
            status.signal() == Some(libc::SIGTERM) || status.success(),
            "{status}"
        );
    }
    assert_eq!(err.stages[0].status.unwrap().signal(), Some(libc::SIGTERM));
    assert!(err.to_string().contains("timed out after 300ms"), "{err}");
}

#[test]
fn a_stage_that_ignores_sigterm_is_killed_after_the_grace() {
    // In a group of its own, so that the shell's `sleep` child goes too.
    let err = sh("trap '' TERM; echo ready; sleep 30; sleep 30")
        .pipe(Command::new("cat"))
        .process_group(true)
        .run(
            &RunOptions::new()
                .capture_stdout()
                .timeout(Duration::from_millis(300))
                .grace_period(Duration::from_millis(100)),
        )
        .unwrap_err();
    assert_eq!(err.stdout, b"ready\n");
    assert_eq!(err.stages[0].status.unwrap().signal(), Some(libc::SIGKILL));
}

#[test]
fn the_deadline_holds_when_a_grandchild_keeps_the_output_open() {
    // The last stage leaves a background child that ignores SIGTERM holding stdout.
    let started = Instant::now();
    let err = sh("echo x")
        .pipe(sh("(trap '' TERM; exec sleep 3) & echo hi; exec sleep 30"))
        .run(
            &RunOptions::new()
                .capture_stdout()
                .timeout(Duration::from_millis(300))
                .grace_period(Duration::from_millis(100)),
        )
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(err.stdout, b"hi\n");
    assert!(matches!(err.kind(), PipelineErrorKind::Timeout { .. }));
}

#[test]
fn with_a_process_group_the_deadline_reaches_grandchildren() {
    let err = sh("(trap '' TERM; exec sleep 30) & echo $!; exec sleep 30")
        .pipe(Command::new("cat"))
        .process_group(true)
        .run(
            &RunOptions::new()
                .capture_stdout()
                .timeout(Duration::from_millis(300))
                .grace_period(Duration::from_millis(100)),
        )
        .unwrap_err();
    let grandchild: i32 = String::from_utf8_lossy(&err.stdout).trim().parse().unwrap();
    // It was SIGKILLed with the group; init reaps it shortly.
    let gone_by = Instant::now() + Duration::from_secs(5);
    while alive(grandchild) && Instant::now() < gone_by {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!alive(grandchild), "grandchild {grandchild} survived");
}

fn pgrp_of(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    common::parse_stat(&stat).unwrap().pgrp
}

#[test]
fn a_shared_process_group_led_by_stage_0_and_group_signals() {
    let child = Pipeline::new(["sleep 30", "sleep 30", "sleep 30"].map(sh))
        .process_group(true)
        .spawn()
        .unwrap();
    let pids = child.pids();
    assert_eq!(child.process_group(), Some(pids[0]));
    for &pid in &pids {
        assert_eq!(pgrp_of(pid), pids[0], "stage {pid}");
    }
    child.send_signal_group(libc::SIGTERM).unwrap();
    let status = child
        .wait_timeout(Duration::from_secs(10))
        .unwrap()
        .unwrap();
    assert!(status
        .stages()
        .iter()
        .all(|s| s.signal() == Some(libc::SIGTERM)));
    // After everyone is reaped the group may be another's: nothing is sent.
    child.send_signal_group(libc::SIGKILL).unwrap();
}

#[test]
fn a_group_signal_without_a_group_of_its_own_is_refused() {
    let mut sleep = Command::new("sleep");
    let child = sleep.arg("30").pipe(Command::new("cat")).spawn().unwrap();
    let err = child.send_signal_group(libc::SIGTERM).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    // This process is still here; the stages are stopped per process.
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.stages()[0].signal(), Some(libc::SIGKILL));
}

#[test]
fn a_stage_over_its_stderr_cap_stops_the_pipeline() {
    let err = sh("echo ok")
        .pipe(sh("head -c 100000 /dev/zero >&2; exec sleep 30"))
        .run(
            &RunOptions::new()
                .capture_output()
                .stderr_limit(popen::CaptureLimit::Error(1000))
                .timeout(Duration::from_secs(20))
                .grace_period(Duration::from_millis(100)),
        )
        .unwrap_err();
    let PipelineErrorKind::LimitExceeded {
        stage,
        stream,
        limit,
    } = err.kind()
    else {
        panic!("{err:?}")
    };
    assert_eq!((*stage, *stream, *limit), (1, Stream::Stderr, 1000));
    assert_eq!(err.stages[1].stderr.len(), 1000);
    assert!(err.stages.iter().all(|s| s.status.is_some()));
}
