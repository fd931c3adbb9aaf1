//! The async front end (`popen::tokio`): waits on the pidfd through the reactor, async pipes,
//! async communicate/run with the synchronous contract, cancel-safety, kill_on_drop, and no
//! zombie or descriptor left behind — on the current-thread and the multi-thread runtime.
#![cfg(feature = "tokio")]

mod common;

use std::future::Future;
use std::time::{Duration, Instant};

use common::{in_scenario, noise, open_fds, run_scenario, scenario_passed};
use popen::tokio::Child;
use popen::{CaptureLimit, CaptureOptions, Command, CommunicateError, RunError, RunOptions, Stdio};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Runs `make()` to completion on a current-thread runtime, then on a multi-thread one.
fn on_both_runtimes<F: Future<Output = ()>>(mut make: impl FnMut() -> F) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(make());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(make());
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| common::parse_stat(&s))
        .is_some_and(|p| p.state != 'Z')
}

#[test]
fn wait_returns_the_exit_status_on_every_path_and_runtime() {
    on_both_runtimes(|| async {
        for path in popen::SpawnPath::ALL {
            let mut child = Child::spawn(Command::shell("exit 7").spawn_path(path)).unwrap();
            assert_eq!(child.wait().await.unwrap().code(), Some(7), "{path:?}");
        }
        let mut child = Child::spawn(Command::new("sleep").arg("0.1")).unwrap();
        assert!(child.wait().await.unwrap().success());
        // A status once known is kept.
        assert!(child.wait().await.unwrap().success());
        assert!(child.try_wait().unwrap().unwrap().success());
    });
}

#[test]
fn wait_timeout_and_kill() {
    on_both_runtimes(|| async {
        let mut child = Child::spawn(Command::new("sleep").arg("30")).unwrap();
        let started = Instant::now();
        let status = child
            .wait_timeout(Duration::from_millis(100))
            .await
            .unwrap();
        assert_eq!(status, None);
        assert!(started.elapsed() >= Duration::from_millis(100));
        let status = child.kill().await.unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        // Signalling a reaped child does nothing.
        child.start_kill().unwrap();
        child.terminate().unwrap();
    });
}

#[test]
fn a_child_spawned_outside_the_runtime_is_awaited_inside_it() {
    let mut child = Child::spawn(Command::shell("echo hi; exit 4").stdout(Stdio::piped())).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (out, status) = rt.block_on(async {
        let mut out = String::new();
        let mut stdout = child.stdout.take().unwrap();
        stdout.read_to_string(&mut out).await.unwrap();
        (out, child.wait().await.unwrap())
    });
    assert_eq!((out.as_str(), status.code()), ("hi\n", Some(4)));
}

#[test]
fn pipes_are_async_read_and_write() {
    on_both_runtimes(|| async {
        let data = noise(3 << 20, 11);
        let mut child = Child::spawn(
            Command::new("cat")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped()),
        )
        .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let to_write = data.clone();
        // The writer and the reader run at once: either alone would fill a pipe and stall.
        let writer = async move {
            stdin.write_all(&to_write).await.unwrap();
            drop(stdin);
        };
        let reader = async {
            let mut got = Vec::new();
            stdout.read_to_end(&mut got).await.unwrap();
            got
        };
        let ((), got) = tokio::join!(writer, reader);
        assert!(got == data, "{} bytes back of {}", got.len(), data.len());
        assert!(child.wait().await.unwrap().success());
    });
}

#[test]
fn communicate_moves_both_ways_on_every_path_and_runtime() {
    on_both_runtimes(|| async {
        for path in popen::SpawnPath::ALL {
            let data = noise(5 << 20, path as u64 + 3);
            let mut child = Child::spawn(
                Command::shell("cat; head -c 70000 /dev/zero >&2")
                    .spawn_path(path)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped()),
            )
            .unwrap();
            let out = child.communicate(Some(&data), None).await.unwrap();
            assert!(out.stdout == data, "{path:?}: {} bytes", out.stdout.len());
            assert_eq!(out.stderr, vec![0u8; 70000], "{path:?}");
            assert!(out.status.success());
        }
    });
}

#[test]
fn communicate_refuses_input_without_a_piped_stdin() {
    on_both_runtimes(|| async {
        let mut child = Child::spawn(&mut Command::new("true")).unwrap();
        let err = child.communicate(Some(b"x"), None).await.unwrap_err();
        assert!(
            matches!(&err, CommunicateError::Io(e) if e.kind() == std::io::ErrorKind::InvalidInput)
        );
        child.wait().await.unwrap();
    });
}

#[test]
fn a_child_that_does_not_read_its_input_is_not_an_error() {
    on_both_runtimes(|| async {
        let mut child = Child::spawn(
            Command::shell("exec 0<&-; echo done")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped()),
        )
        .unwrap();
        let out = child
            .communicate(Some(&vec![b'x'; 4 << 20]), None)
            .await
            .unwrap();
        assert_eq!(out.stdout, b"done\n");
    });
}

#[test]
fn a_timeout_with_a_grandchild_holding_the_pipe_returns_with_the_partial_output() {
    on_both_runtimes(|| async {
        let opts = RunOptions::new()
            .capture_output()
            .timeout(Duration::from_millis(300))
            .grace_period(Duration::from_millis(100));
        let started = Instant::now();
        // The background sleep keeps stdout open for 20 s after its parent is killed.
        let err = popen::tokio::run(Command::shell("sleep 20 & echo hi; exec sleep 30"), &opts)
            .await
            .unwrap_err();
        let elapsed = started.elapsed();
        assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
        let RunError::Timeout(t) = err else {
            panic!("{err}")
        };
        assert_eq!(t.stdout, b"hi\n");
        assert_eq!(t.status.and_then(|s| s.signal()), Some(libc::SIGKILL));
        assert_eq!(t.timeout, Duration::from_millis(300));
    });
}

#[test]
fn a_timeout_leaves_the_child_running_and_a_later_call_returns_every_byte_once() {
    on_both_runtimes(|| async {
        let mut child =
            Child::spawn(Command::shell("echo one; sleep 0.4; echo two").stdout(Stdio::piped()))
                .unwrap();
        match child
            .communicate(None, Some(Duration::from_millis(150)))
            .await
        {
            Err(CommunicateError::Timeout(t)) => {
                assert_eq!(t.stdout, b"one\n");
                assert_eq!(t.status, None);
            }
            other => panic!("{other:?}"),
        }
        let out = child.communicate(None, None).await.unwrap();
        assert_eq!(out.stdout, b"one\ntwo\n");
    });
}

#[test]
fn cancelling_communicate_mid_way_loses_no_output() {
    on_both_runtimes(|| async {
        let mut child =
            Child::spawn(Command::shell("echo one; sleep 0.4; echo two").stdout(Stdio::piped()))
                .unwrap();
        // The future is dropped once "one" has been read and the child still runs.
        let cancelled =
            tokio::time::timeout(Duration::from_millis(150), child.communicate(None, None)).await;
        assert!(cancelled.is_err(), "{cancelled:?}");
        let out = child.communicate(None, None).await.unwrap();
        assert_eq!(out.stdout, b"one\ntwo\n");
    });
}

#[test]
fn cancelling_communicate_mid_input_loses_no_input() {
    on_both_runtimes(|| async {
        let data = noise(4 << 20, 5);
        // The child reads nothing for 300 ms: the first call fills the pipe and is dropped.
        let mut child = Child::spawn(
            Command::shell("sleep 0.3; exec cat")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped()),
        )
        .unwrap();
        let first = child.communicate(Some(&data), None);
        assert!(tokio::time::timeout(Duration::from_millis(100), first)
            .await
            .is_err());
        // A resumed call brings no new input; the rest of the first one is written.
        let out = child.communicate(None, None).await.unwrap();
        assert!(
            out.stdout == data,
            "{} bytes of {}",
            out.stdout.len(),
            data.len()
        );
    });
}

#[test]
fn a_cancelled_wait_changes_nothing() {
    on_both_runtimes(|| async {
        let mut child = Child::spawn(Command::new("sleep").arg("0.3")).unwrap();
        tokio::select! {
            _ = child.wait() => panic!("sleep 0.3 ended within 50 ms"),
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
        assert!(child.wait().await.unwrap().success());
    });
}

#[test]
fn caps_apply_as_in_the_synchronous_communicate() {
    on_both_runtimes(|| async {
        let mut child =
            Child::spawn(Command::shell("yes | head -c 100000").stdout(Stdio::piped())).unwrap();
        let out = child
            .capture_options(CaptureOptions::new().stdout_limit(CaptureLimit::Truncate(10)))
            .communicate(None, None)
            .await
            .unwrap();
        assert_eq!((out.stdout.len(), out.stdout_dropped), (10, 99_990));

        let opts = RunOptions::new()
            .capture_stdout()
            .stdout_limit(CaptureLimit::Error(5));
        let err = popen::tokio::run(Command::shell("echo 0123456789; exec sleep 30"), &opts)
            .await
            .unwrap_err();
        let RunError::LimitExceeded(l) = err else {
            panic!("{err}")
        };
        assert_eq!(l.stdout, b"01234");
        assert_eq!(l.status.and_then(|s| s.signal()), Some(libc::SIGKILL));
    });
}

#[test]
fn output_status_and_check_output() {
    on_both_runtimes(|| async {
        let out = popen::tokio::output(Command::shell("echo out; echo err >&2; exit 3"))
            .await
            .unwrap();
        assert_eq!(
            (out.status.code(), &out.stdout[..], &out.stderr[..]),
            (Some(3), &b"out\n"[..], &b"err\n"[..])
        );
        let status = popen::tokio::status(Command::new("false")).await.unwrap();
        assert_eq!(status.code(), Some(1));
        let err = popen::tokio::check_output(Command::shell("echo partial; exit 2"))
            .await
            .unwrap_err();
        assert!(matches!(err, RunError::Failed(f) if f.stdout == b"partial\n"));
        let err = popen::tokio::status(Command::new("surely-no-such-program"))
            .await
            .unwrap_err();
        assert!(matches!(err, RunError::Spawn(e) if e.step() == popen::Step::Exec));
    });
}

#[test]
fn kill_on_drop_kills_a_running_child_and_the_reaper_reaps_it() {
    on_both_runtimes(|| async {
        let mut child = Child::spawn(Command::new("sleep").arg("30")).unwrap();
        child.kill_on_drop(true);
        let pid = child.id();
        drop(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        // Gone from /proc once killed and reaped: not running, not a zombie.
        while std::path::Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    });
}

#[test]
fn without_kill_on_drop_a_dropped_child_runs_on() {
    on_both_runtimes(|| async {
        let child = Child::spawn(Command::new("sleep").arg("30")).unwrap();
        let pid = child.id();
        drop(child);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(alive(pid));
        // SAFETY: the child is unreaped (the reaper only reaps exited children), so `pid` is
        // still ours.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    });
}

#[test]
fn futures_are_send_and_the_handle_is_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Child>();
    send_sync::<popen::tokio::ChildStdout>();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let task = tokio::spawn(async {
                let mut child =
                    Child::spawn(Command::new("echo").arg("x").stdout(Stdio::piped())).unwrap();
                child.communicate(None, None).await.unwrap().stdout
            });
            assert_eq!(task.await.unwrap(), b"x\n");
        });
}

#[test]
fn five_hundred_concurrent_children_leave_no_zombie_and_no_descriptor() {
    const NAME: &str = "five_hundred_concurrent_children_leave_no_zombie_and_no_descriptor";
    if in_scenario(NAME) {
        for multi in [false, true] {
            let mut builder = if multi {
                tokio::runtime::Builder::new_multi_thread()
            } else {
                tokio::runtime::Builder::new_current_thread()
            };
            let rt = builder.enable_all().build().unwrap();
            rt.block_on(async {
                let before = open_fds();
                let mut tasks = tokio::task::JoinSet::new();
                for i in 0..500u32 {
                    tasks.spawn(async move {
                        let mut cmd = Command::shell(format!("sleep 0.2; echo {i}"));
                        cmd.stdout(Stdio::piped());
                        let mut child = Child::spawn(&mut cmd).unwrap();
                        match i % 5 {
                            // Dropped while it runs: the reaper takes it.
                            0 => drop(child),
                            1 => {
                                child.kill_on_drop(true);
                            }
                            // Awaited on its pidfd (its few bytes fit in the pipe).
                            2 => {
                                assert!(child.wait().await.unwrap().success());
                            }
                            _ => {
                                let out = child.communicate(None, None).await.unwrap();
                                assert_eq!(out.stdout, format!("{i}\n").as_bytes());
                            }
                        }
                    });
                }
                while let Some(done) = tasks.join_next().await {
                    done.unwrap();
                }
                let deadline = Instant::now() + Duration::from_secs(30);
                while (popen::testing::pending_orphans() > 0 || !common::children().is_empty())
                    && Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                assert_eq!(common::children().len(), 0, "children left");
                // The reaper thread's wake-up pipe is the only descriptor allowed to be new.
                let new: Vec<_> = open_fds()
                    .into_iter()
                    .filter(|fd| !before.contains(fd))
                    .collect();
                assert!(new.len() <= 2, "new descriptors: {new:?}");
            });
        }
        scenario_passed();
    }
    let status = run_scenario(NAME, |_| {});
    assert!(status.success(), "{status}");
}

/// Voluntary context switches of the calling thread.
fn thread_switches() -> i64 {
    // SAFETY: getrusage fills the struct it is given.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut ru);
        ru
    };
    ru.ru_nvcsw
}

#[test]
fn waiting_sleeps_on_the_pidfd_without_polling() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut child = Child::spawn(Command::new("sleep").arg("1")).unwrap();
        let before = thread_switches();
        assert!(child.wait().await.unwrap().success());
        let slept = thread_switches() - before;
        // One sleep in epoll_wait until the exit (a few more at most, never one per tick).
        assert!(slept <= 5, "{slept} context switches during a 1 s wait");
    });
}

#[test]
fn a_child_reaped_behind_the_handles_back_waits_as_the_sync_handle_does() {
    const NAME: &str = "a_child_reaped_behind_the_handles_back_waits_as_the_sync_handle_does";
    if in_scenario(NAME) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut child = Child::spawn(Command::shell("exit 3")).unwrap();
            let mut raw = 0;
            // SAFETY: waitpid on our own child with a valid status pointer.
            let reaped = unsafe { libc::waitpid(child.id(), &mut raw, 0) };
            assert_eq!(reaped, child.id());
            // The status is lost, and said to be (not a made-up exit code), as the
            // synchronous handle says.
            let status = child.wait().await.unwrap();
            assert!(status.is_unavailable(), "{status}");
        });
        scenario_passed();
    }
    let status = run_scenario(NAME, |_| {});
    assert!(status.success(), "{status}");
}
