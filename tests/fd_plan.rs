//! The descriptor plan in the hard cases, on every spawn path.

mod common;

use common::{in_scenario, on_each_path, output, run_scenario, scenario_passed};
use popen::{Command, SpawnPath, Stdio};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

#[test]
fn pipes_that_land_on_fds_0_to_2_when_the_parent_closed_them() {
    if in_scenario("pipes_that_land_on_fds_0_to_2_when_the_parent_closed_them") {
        // SAFETY: this process is a scenario copy; nothing else uses its standard streams.
        unsafe {
            libc::close(0);
            libc::close(1);
            libc::close(2);
        }
        for path in SpawnPath::ALL {
            let mut child = Command::shell("read x; echo \"$x\"; echo err >&2")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn_path(path)
                .spawn()
                .unwrap();
            // The pipes really were made on the closed numbers.
            assert!(child.stdin.as_ref().unwrap().as_raw_fd() <= 2);
            child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
            let out = common::read_all(&mut child);
            let err = common::read_stderr(&mut child);
            assert!(child.wait().unwrap().success());
            if (out.as_str(), err.as_str()) != ("hello\n", "err\n") {
                std::process::exit(1);
            }
        }
        scenario_passed();
    }
    let status = run_scenario(
        "pipes_that_land_on_fds_0_to_2_when_the_parent_closed_them",
        |_| {},
    );
    assert!(status.success(), "{status}");
}

#[test]
fn stdin_and_stdout_swapped() {
    if in_scenario("stdin_and_stdout_swapped") {
        let null = std::fs::File::open("/dev/null").unwrap();
        for path in SpawnPath::ALL {
            // Occupy 0 and 1 (the previous round handed them to its command) so the pipes
            // below are made above 2.
            // SAFETY: rearranging this scenario process's own standard streams.
            unsafe {
                libc::dup2(null.as_raw_fd(), 0);
                libc::dup2(null.as_raw_fd(), 1);
            }
            let (to_child_r, mut to_child_w) = std::io::pipe().unwrap();
            let (mut from_child_r, from_child_w) = std::io::pipe().unwrap();
            // Parent fd 1 becomes what the child reads; parent fd 0 what the child writes.
            // SAFETY: rearranging this scenario process's own standard streams.
            unsafe {
                assert_eq!(libc::dup2(to_child_r.as_raw_fd(), 1), 1);
                assert_eq!(libc::dup2(from_child_w.as_raw_fd(), 0), 0);
            }
            drop((to_child_r, from_child_w));
            let mut cmd = Command::new("cat");
            // SAFETY: fds 0 and 1 are open and handed over to the command.
            unsafe {
                cmd.stdin(Stdio::from_raw_fd(1))
                    .stdout(Stdio::from_raw_fd(0));
            }
            let child = cmd.spawn_path(path).spawn().unwrap();
            drop(cmd);
            to_child_w.write_all(b"swapped\n").unwrap();
            drop(to_child_w);
            let mut got = String::new();
            from_child_r.read_to_string(&mut got).unwrap();
            assert!(child.wait_shared().unwrap().success());
            if got != "swapped\n" {
                std::process::exit(1);
            }
        }
        scenario_passed();
    }
    assert!(run_scenario("stdin_and_stdout_swapped", |c| {
        c.stdout(Stdio::null());
    })
    .success());
}

#[test]
fn one_descriptor_for_both_stdout_and_stderr() {
    on_each_path(
        || Command::shell("echo 1; echo 2 >&2; echo 3"),
        |path, cmd| {
            cmd.stderr(Stdio::same_as_stdout());
            assert_eq!(output(cmd).0, "1\n2\n3\n", "{path}");
        },
    );
}

#[test]
fn pass_fds_entry_that_collides_with_a_std_stream() {
    for path in SpawnPath::ALL {
        // Passing fd 1 while stdout is redirected: the redirection wins, as in CPython.
        let mut cmd = Command::shell("echo redirected");
        // SAFETY: fd 1 stays open for the whole test.
        unsafe { cmd.pass_raw_fd(1) };
        cmd.spawn_path(path)
            .close_fds(path != SpawnPath::PosixSpawn);
        assert_eq!(output(&mut cmd).0, "redirected\n", "{path}");

        // The source of stdout is also passed: the child has it at both numbers.
        let (mut r, w) = std::io::pipe().unwrap();
        let w = OwnedFd::from(w);
        let n = w.as_raw_fd();
        let mut cmd = Command::shell(format!("echo one; echo two >&{n}"));
        // SAFETY: the command owns `w` (as stdout) until it is dropped below.
        unsafe { cmd.pass_raw_fd(n) };
        cmd.stdout(w)
            .spawn_path(path)
            .close_fds(path != SpawnPath::PosixSpawn);
        let child = cmd.spawn().unwrap();
        drop(cmd);
        let mut got = String::new();
        r.read_to_string(&mut got).unwrap();
        assert!(child.wait_shared().unwrap().success());
        assert_eq!(got, "one\ntwo\n", "{path}");
    }
}

#[test]
fn close_in_child_closes_an_inheritable_descriptor_before_the_streams() {
    let name = "close_in_child_closes_an_inheritable_descriptor_before_the_streams";
    if !in_scenario(name) {
        // An inheritable descriptor is process-wide state: the other tests' children would
        // inherit it.
        assert!(run_scenario(name, |_| {}).success());
        return;
    }
    let (_r, w) = std::io::pipe().unwrap();
    let w = OwnedFd::from(w);
    let n = w.as_raw_fd();
    // SAFETY: clears close-on-exec on a descriptor this scenario process owns.
    assert_ne!(unsafe { libc::fcntl(n, libc::F_SETFD, 0) }, -1);
    let probe = format!("test -e /dev/fd/{n} && echo open || echo closed");
    for path in [SpawnPath::CloneVfork, SpawnPath::Fork] {
        let mut cmd = Command::shell(&probe);
        cmd.close_fds(false).spawn_path(path);
        assert_eq!(output(&mut cmd).0, "open\n", "{path}: inherited without it");
        cmd.close_in_child(n);
        assert_eq!(output(&mut cmd).0, "closed\n", "{path}");
        // Closed before stdout is set up: closing the child's own fd 1 loses nothing.
        let mut cmd = Command::shell("echo still here");
        cmd.close_in_child(1).spawn_path(path);
        assert_eq!(output(&mut cmd).0, "still here\n", "{path}");
    }
    let mut cmd = Command::shell(&probe);
    cmd.close_in_child(n).spawn_path(SpawnPath::PosixSpawn);
    assert!(cmd.choose_path().impossible().is_some());
    scenario_passed();
}

#[test]
fn close_in_child_of_a_descriptor_that_is_not_open_fails_with_ebadf() {
    // Numbers that are never open (a closed one could be reused by another test's thread).
    for path in [SpawnPath::CloneVfork, SpawnPath::Fork] {
        for fd in [-1, libc::c_int::MAX] {
            let mut cmd = Command::new("true");
            cmd.close_in_child(fd).spawn_path(path);
            let err = cmd.spawn().unwrap_err();
            assert_eq!(err.step(), popen::Step::PassFds, "{path}");
            assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{path}");
        }
    }
}
