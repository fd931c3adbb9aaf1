//! `pass_fd_as`: a descriptor at a chosen number in the child, on every spawn path, whatever
//! numbers the sources sit on.

mod common;

use common::{in_scenario, on_each_path, run_scenario, scenario_passed};
use popen::{Command, SpawnPath, Stdio, Step};
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};

fn pipe() -> (OwnedFd, OwnedFd) {
    let (r, w) = std::io::pipe().unwrap();
    (r.into(), w.into())
}

fn read_to_end(fd: OwnedFd) -> String {
    let mut s = String::new();
    std::fs::File::from(fd).read_to_string(&mut s).unwrap();
    s
}

/// Every path can take the command as it is, close_fds included.
fn allow_posix_spawn(path: SpawnPath, cmd: &mut Command) {
    assert_eq!(cmd.choose_path().impossible(), None, "{path}");
}

#[test]
fn a_descriptor_arrives_at_the_chosen_number_and_survives_close_fds() {
    on_each_path(
        || Command::shell("echo to-seven >&7; ls /proc/self/fd"),
        |path, cmd| {
            let (r, w) = pipe();
            cmd.pass_fd_as(w, 7).stdout(Stdio::piped());
            allow_posix_spawn(path, cmd);
            let mut child = cmd.spawn().unwrap();
            let listing = common::read_all(&mut child);
            assert!(child.wait().unwrap().success(), "{path}");
            drop(std::mem::replace(cmd, Command::new("true")));
            assert_eq!(read_to_end(r), "to-seven\n", "{path}");
            let fds: Vec<i32> = listing.lines().filter_map(|l| l.parse().ok()).collect();
            assert!(fds.contains(&7), "{path}: {fds:?}");
            // close_fds on: 0-2, 7 and the one `ls` opened to list them.
            assert!(fds.len() <= 5, "{path}: {fds:?}");
        },
    );
}

#[test]
fn two_sources_on_each_others_target_are_swapped() {
    on_each_path(
        // dash's `>&N` takes one digit only: reopen through /proc instead.
        || Command::shell("echo to-a >/proc/self/fd/$A; echo to-b >/proc/self/fd/$B"),
        |path, cmd| {
            let (ra, wa) = pipe();
            let (rb, wb) = pipe();
            let (a, b) = (wa.as_raw_fd(), wb.as_raw_fd());
            // wa goes to b's number and wb to a's: each dup2 would clobber the other source.
            cmd.pass_fd_as(wa, b)
                .pass_fd_as(wb, a)
                .env("A", a.to_string())
                .env("B", b.to_string());
            allow_posix_spawn(path, cmd);
            let mut child = cmd.spawn().unwrap();
            assert!(child.wait().unwrap().success(), "{path}");
            drop(std::mem::replace(cmd, Command::new("true")));
            // What the child wrote to number a went to wb's pipe, and to b to wa's.
            assert_eq!(read_to_end(rb), "to-a\n", "{path}");
            assert_eq!(read_to_end(ra), "to-b\n", "{path}");
        },
    );
}

#[test]
fn a_source_on_a_std_stream_number_is_moved_first() {
    const NAME: &str = "a_source_on_a_std_stream_number_is_moved_first";
    if in_scenario(NAME) {
        for path in SpawnPath::ALL {
            // The pipe's read end lands on 0, which the child's stdin (the null device) takes.
            // SAFETY: this scenario process does not use its stdin.
            unsafe { libc::close(0) };
            let (r, w) = pipe();
            assert_eq!(r.as_raw_fd(), 0);
            std::io::Write::write_all(&mut std::fs::File::from(w), b"via-nine\n").unwrap();
            let mut cmd = Command::shell("cat <&9; cat");
            cmd.pass_fd_as(r, 9)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn_path(path);
            allow_posix_spawn(path, &mut cmd);
            let mut child = cmd.spawn().unwrap();
            let out = common::read_all(&mut child);
            let ok = child.wait().unwrap().success();
            if (out.as_str(), ok) != ("via-nine\n", true) {
                eprintln!("{path}: {out:?} {ok}");
                std::process::exit(1);
            }
        }
        scenario_passed();
    }
    assert!(run_scenario(NAME, |_| {}).success());
}

#[test]
fn the_error_pipe_is_kept_off_a_chosen_number() {
    const NAME: &str = "the_error_pipe_is_kept_off_a_chosen_number";
    if in_scenario(NAME) {
        // The fork path's error pipe is made after the plan, on the lowest free numbers:
        // choose those numbers as targets. Were the pipe left there, the dup2s would replace
        // its write end, and the exec failure below would read as a success.
        let (r, w) = pipe();
        let w2 = std::fs::File::from(w.try_clone().unwrap());
        let (low_r, low_w) = pipe();
        let targets = [low_r.as_raw_fd(), low_w.as_raw_fd()];
        drop((low_r, low_w));
        let err = Command::new("/surely/no/such/program")
            .pass_fd_as(w, targets[0])
            .pass_fd_as(w2, targets[1])
            .spawn_path(SpawnPath::Fork)
            .spawn()
            .map(drop)
            .unwrap_err();
        drop(r);
        if (err.step(), err.kind()) != (Step::Exec, std::io::ErrorKind::NotFound) {
            eprintln!("{err}");
            std::process::exit(1);
        }
        scenario_passed();
    }
    assert!(run_scenario(NAME, |_| {}).success());
}

#[test]
fn bad_targets_are_refused_before_any_process_exists() {
    let refuse = |cmd: &mut Command, what: &str| {
        let err = cmd.spawn().map(drop).unwrap_err();
        assert_eq!(err.step(), Step::Prepare, "{what}: {err}");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{what}");
    };
    let (_r, w) = pipe();
    refuse(Command::new("true").pass_fd_as(w, 1), "target below 3");
    let (_r, w1) = pipe();
    let (_r2, w2) = pipe();
    refuse(
        Command::new("true").pass_fd_as(w1, 12).pass_fd_as(w2, 12),
        "one target twice",
    );
    let (_r, w1) = pipe();
    let (_r2, w2) = pipe();
    let n = w2.as_raw_fd();
    refuse(
        Command::new("true").pass_fd(w2).pass_fd_as(w1, n),
        "a target also passed at its own number",
    );
}

#[test]
fn a_target_above_the_descriptor_limit_names_the_step() {
    on_each_path(
        || Command::new("true"),
        |path, cmd| {
            let (_r, w) = pipe();
            cmd.close_fds(false);
            let err = cmd.pass_fd_as(w, i32::MAX).spawn().map(drop).unwrap_err();
            assert_eq!(err.step(), Step::PassFds, "{path}: {err}");
            assert_eq!(err.fd(), Some(i32::MAX), "{path}");
        },
    );
}

#[test]
fn close_fds_closes_the_numbers_between_chosen_ones() {
    const NAME: &str = "close_fds_closes_the_numbers_between_chosen_ones";
    if in_scenario(NAME) {
        // Inheritable descriptors on low numbers, below and between the chosen ones: each
        // path must close them while keeping 20 and 30.
        let mut leaks = Vec::new();
        for _ in 0..4 {
            let (r, w) = pipe();
            for fd in [r.as_raw_fd(), w.as_raw_fd()] {
                // SAFETY: clearing the flags of descriptors we own.
                unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
            }
            leaks.push((r, w));
        }
        for path in SpawnPath::ALL {
            let (_r1, w1) = pipe();
            let (_r2, w2) = pipe();
            let mut cmd = Command::new("ls");
            cmd.arg("/proc/self/fd")
                .pass_fd_as(w1, 20)
                .pass_fd_as(w2, 30)
                .stdout(Stdio::piped())
                .spawn_path(path);
            let mut child = cmd.spawn().unwrap();
            let listing = common::read_all(&mut child);
            child.wait().unwrap();
            let mut fds: Vec<i32> = listing.lines().filter_map(|l| l.parse().ok()).collect();
            fds.retain(|&fd| fd > 2);
            // What is left: 20, 30, and the one `ls` opened to list them (the lowest free).
            if fds.len() != 3 || !fds.contains(&20) || !fds.contains(&30) {
                eprintln!("{path}: {fds:?}");
                std::process::exit(1);
            }
        }
        scenario_passed();
    }
    assert!(run_scenario(NAME, |_| {}).success());
}

#[test]
fn a_high_chosen_number_keeps_posix_spawn_out_only_with_close_fds() {
    let (_r, w) = pipe();
    let mut cmd = Command::new("true");
    cmd.pass_fd_as(w, 1025).spawn_path(SpawnPath::PosixSpawn);
    assert!(cmd.choose_path().impossible().is_some());
    cmd.close_fds(false);
    assert_eq!(cmd.choose_path().impossible(), None);
    assert!(cmd.spawn().unwrap().wait().unwrap().success());
}
