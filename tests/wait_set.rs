//! Waiting for many children: wait_any, wait_all, and the reusable WaitSet that also watches
//! the caller's own descriptors.

mod common;

use std::io::Write;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use common::zombie_children;
use popen::{wait_all, wait_any, Command, Interest, Pipeline, Popen, Ready, WaitSet, Waitable};

fn sleep(secs: &str) -> Popen {
    Command::new("sleep").arg(secs).spawn().unwrap()
}

#[test]
fn wait_any_returns_the_first_to_exit_and_caches_its_status() {
    let children = [sleep("0.6"), sleep("0.05"), sleep("0.3")];
    let mut order = Vec::new();
    let mut left: Vec<(usize, &Popen)> = children.iter().enumerate().collect();
    while !left.is_empty() {
        let handles: Vec<&Popen> = left.iter().map(|(_, c)| *c).collect();
        let i = wait_any(&handles, Some(Duration::from_secs(10)))
            .unwrap()
            .unwrap();
        let (idx, c) = left.remove(i);
        // Reaped, and the status is in the handle: no zombie, poll answers at once.
        assert!(c.poll().unwrap().unwrap().success());
        assert!(!zombie_children().contains(&c.pid()));
        order.push(idx);
    }
    assert_eq!(order, [1, 2, 0]);
}

#[test]
fn wait_any_times_out_without_reaping() {
    let children = [sleep("10"), sleep("10")];
    let started = Instant::now();
    assert_eq!(
        wait_any(&children, Some(Duration::from_millis(100))).unwrap(),
        None
    );
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert!(children.iter().all(|c| c.poll().unwrap().is_none()));
    for c in &children {
        c.kill().unwrap();
    }
    assert!(wait_all(&children, Some(Duration::from_secs(10))).unwrap());
    assert!(children
        .iter()
        .all(|c| c.poll().unwrap().unwrap().signal() == Some(libc::SIGKILL)));
}

#[test]
fn wait_any_and_wait_all_take_pipelines_and_handles_together() {
    let pipeline = Pipeline::new([Command::shell("sleep 0.3"), Command::new("cat")])
        .spawn()
        .unwrap();
    let single = sleep("0.05");
    let both: [&dyn Waitable; 2] = [&pipeline, &single];
    assert_eq!(
        wait_any(&both, Some(Duration::from_secs(10))).unwrap(),
        Some(1)
    );
    // The pipeline counts as ended only when every stage has.
    let started = Instant::now();
    assert!(wait_all(&both, Some(Duration::from_secs(10))).unwrap());
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert!(pipeline.poll().unwrap().unwrap().all_success());
}

#[test]
fn waits_never_reap_other_code_children() {
    // A child started by std, which only std may reap.
    let mut other = std::process::Command::new("sleep")
        .arg("0.1")
        .spawn()
        .unwrap();
    let ours = sleep("0.3");
    assert!(wait_all(&[&ours], Some(Duration::from_secs(10))).unwrap());
    let mut set: WaitSet<Popen> = WaitSet::new().unwrap();
    set.insert(sleep("0.05")).unwrap();
    assert_eq!(set.wait(Some(Duration::from_secs(10))).unwrap().len(), 1);
    // std still finds its child's status: nobody called waitpid(-1).
    assert!(other.wait().unwrap().success());
}

#[test]
fn a_wait_set_reports_exits_in_order_and_can_be_reused() {
    let mut set = WaitSet::new().unwrap();
    let lengths = ["0.4", "0.1", "0.25", "0.01"];
    let tokens: Vec<_> = lengths
        .iter()
        .map(|l| set.insert(sleep(l)).unwrap())
        .collect();
    let mut order = Vec::new();
    while !set.is_empty() {
        for r in set.wait(Some(Duration::from_secs(10))).unwrap() {
            let Ready::Exited(token, child) = r else {
                panic!("no fd watched")
            };
            assert!(child.poll().unwrap().unwrap().success());
            order.push(tokens.iter().position(|&t| t == token).unwrap());
        }
    }
    assert_eq!(order, [3, 1, 2, 0]);
    // Reused, with a child that had already ended before it was inserted.
    let done = Command::new("true").spawn().unwrap();
    assert!(wait_all(&[&done], None).unwrap());
    let t = set.insert(done).unwrap();
    let r = set.wait(Some(Duration::from_secs(10))).unwrap();
    assert!(matches!(&r[..], [Ready::Exited(tok, _)] if *tok == t));
    // Timeout: empty; removal gives the child back.
    let t = set.insert(sleep("10")).unwrap();
    assert!(set
        .wait(Some(Duration::from_millis(50)))
        .unwrap()
        .is_empty());
    let child = set.remove(t).unwrap();
    child.kill().unwrap();
    assert!(set.is_empty());
}

#[test]
fn a_pipeline_in_a_wait_set_exits_once_every_stage_has() {
    let mut set = WaitSet::new().unwrap();
    // Stage 0 ends at once; the pipeline only when the last stage does.
    let t = set
        .insert(
            Pipeline::new([Command::shell("exit 0"), Command::shell("sleep 0.3; cat")])
                .spawn()
                .unwrap(),
        )
        .unwrap();
    let started = Instant::now();
    let r = set.wait(Some(Duration::from_secs(10))).unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
    let [Ready::Exited(tok, p)] = &r[..] else {
        panic!("{r:?}")
    };
    assert_eq!(*tok, t);
    assert!(p.poll().unwrap().unwrap().all_success());
}

fn eventfd() -> OwnedFd {
    // SAFETY: eventfd returns a new descriptor or -1.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    assert!(fd >= 0);
    // SAFETY: a fresh descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

#[test]
fn a_wait_set_watches_the_callers_pipe_and_an_eventfd_for_cancellation() {
    let mut set = WaitSet::new().unwrap();
    let child = set.insert(sleep("30")).unwrap();
    // Output ready on a pipe of ours.
    let (reader, writer) = std::io::pipe().unwrap();
    let output = set.watch_fd(reader.as_fd(), Interest::Read).unwrap();
    (&writer).write_all(b"x").unwrap();
    let r = set.wait(Some(Duration::from_secs(10))).unwrap();
    assert!(matches!(&r[..], [Ready::Fd(t)] if *t == output));
    set.unwatch_fd(output).unwrap();
    // Cancelled from another thread, while the child still runs.
    let cancel = eventfd();
    let cancel_token = set.watch_fd(cancel.as_fd(), Interest::Read).unwrap();
    let started = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(100));
            let one = 1u64.to_ne_bytes();
            // SAFETY: writes 8 bytes from a valid buffer to an eventfd.
            assert_eq!(
                unsafe {
                    libc::write(
                        std::os::fd::AsRawFd::as_raw_fd(&cancel),
                        one.as_ptr().cast(),
                        8,
                    )
                },
                8
            );
        });
        let r = set.wait(None).unwrap();
        assert!(matches!(&r[..], [Ready::Fd(t)] if *t == cancel_token));
    });
    assert!(started.elapsed() < Duration::from_secs(10));
    set.remove(child).unwrap().kill().unwrap();
}

#[test]
fn a_wait_set_of_three_hundred_children_reaps_every_one() {
    let mut set = WaitSet::new().unwrap();
    for i in 0..300 {
        let secs = format!("0.{:03}", (i * 7919) % 500);
        set.insert(Command::new("sleep").arg(secs).spawn().unwrap())
            .unwrap();
    }
    let mut pids = Vec::new();
    let mut wakeups = 0;
    while !set.is_empty() {
        let r = set.wait(Some(Duration::from_secs(30))).unwrap();
        assert!(!r.is_empty(), "timed out with {} left", set.len());
        wakeups += 1;
        for ready in r {
            let Ready::Exited(_, child) = ready else {
                panic!("no fd watched")
            };
            assert!(child.poll().unwrap().unwrap().success());
            pids.push(child.pid());
        }
    }
    assert_eq!(pids.len(), 300);
    assert!(wakeups <= 300);
    let zombies = zombie_children();
    assert!(pids.iter().all(|p| !zombies.contains(p)), "{zombies:?}");
}

#[test]
fn nothing_to_wait_for_returns_at_once() {
    let none: [Popen; 0] = [];
    assert_eq!(wait_any(&none, None).unwrap(), None);
    assert!(wait_all(&none, None).unwrap());
    let mut set: WaitSet<Popen> = WaitSet::new().unwrap();
    assert!(set.wait(None).unwrap().is_empty());
}
