//! The descriptor plan in the hard cases, on every spawn path.

mod common;

use common::{in_scenario, on_each_path, output, run_scenario, scenario_passed};
use popen::{Command, RunOptions, SpawnPath, Stdio};
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

/// (device, inode) of what `fd` refers to.
fn identity(fd: i32) -> Option<(u64, u64)> {
    // SAFETY: fstat only writes the struct on our stack.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        (libc::fstat(fd, &mut st) == 0).then_some((st.st_dev, st.st_ino))
    }
}

#[test]
fn a_parent_holding_thousands_of_descriptors_gives_a_child_only_its_own() {
    let name = "a_parent_holding_thousands_of_descriptors_gives_a_child_only_its_own";
    if !in_scenario(name) {
        // Thousands of open descriptors, some inheritable, and a raised limit: process-wide.
        assert!(run_scenario(name, |_| {}).success());
        return;
    }
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on this scenario process's own limit.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max.min(4096);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    let count = (limit.rlim_cur as usize).saturating_sub(100).min(3000);
    let null = std::fs::File::open("/dev/null").unwrap();
    let held: Vec<OwnedFd> = (0..count)
        .map(|i| {
            let fd = OwnedFd::from(null.try_clone().unwrap());
            if i % 2 == 0 {
                // SAFETY: clears close-on-exec on a descriptor this scenario owns.
                assert_ne!(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, 0) }, -1);
            }
            fd
        })
        .collect();
    let inheritable = held[count - 2].as_raw_fd();
    let low_inheritable = held[0].as_raw_fd();
    let before: Vec<_> = (0..3).map(identity).collect();
    for path in SpawnPath::ALL {
        // Twice: the first child of a path may be made differently from the next ones.
        for round in 0..2 {
            // Above every other descriptor. (posix_spawn cannot pass one with close_fds on.)
            let pass = held[count - 1].try_clone().unwrap();
            let passed = pass.as_raw_fd();
            let passes = path != SpawnPath::PosixSpawn;
            let probe = format!(
                "for fd in {low_inheritable} {inheritable} {passed}; do \
                   if test -e /dev/fd/$fd; then echo $fd open; else echo $fd closed; fi; \
                 done; read line; echo \"$line\"; echo err >&2"
            );
            let mut cmd = Command::shell(&probe);
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn_path(path);
            if passes {
                cmd.pass_fd(pass);
            }
            let mut child = cmd.spawn().unwrap();
            child.stdin.take().unwrap().write_all(b"input\n").unwrap();
            let out = common::read_all(&mut child);
            let err = common::read_stderr(&mut child);
            assert!(child.wait().unwrap().success(), "{path} round {round}");
            let state = if passes { "open" } else { "closed" };
            let want = format!(
                "{low_inheritable} closed\n{inheritable} closed\n{passed} {state}\ninput\n"
            );
            assert_eq!(
                (out.as_str(), err.as_str()),
                (want.as_str(), "err\n"),
                "{path}"
            );
        }
    }
    // The child's redirections and closes were made in its own table, never in this one.
    assert_eq!((0..3).map(identity).collect::<Vec<_>>(), before);
    for fd in &held {
        assert!(
            identity(fd.as_raw_fd()).is_some(),
            "{} was closed",
            fd.as_raw_fd()
        );
    }
    scenario_passed();
}

#[test]
fn spawns_with_redirections_from_threads_leave_the_parents_own_descriptors_alone() {
    // Children redirect their streams and close everything else while another thread of the
    // parent keeps using its descriptors: each of those must still be what it was.
    let path = std::env::temp_dir().join(format!("popen-fd-plan-{}", std::process::id()));
    std::fs::write(&path, b"parent's own data\n").unwrap();
    let file = std::fs::File::open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let before: Vec<_> = (0..3).map(identity).collect();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut rounds = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || rounds == 0 {
                let mut text = String::new();
                let mut f = file.try_clone().unwrap();
                use std::io::Seek;
                f.seek(std::io::SeekFrom::Start(0)).unwrap();
                f.read_to_string(&mut text).unwrap();
                assert_eq!(text, "parent's own data\n");
                rounds += 1;
            }
        });
        let spawners: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    for path in SpawnPath::ALL.into_iter().cycle().take(60) {
                        let mut cmd = Command::shell("read x; echo \"$x\" >&2");
                        cmd.spawn_path(path);
                        let opts = RunOptions::new().input(&b"ok\n"[..]).capture_stderr();
                        let done = popen::run(&mut cmd, &opts).unwrap();
                        assert_eq!(done.stderr, b"ok\n", "{path}");
                    }
                })
            })
            .collect();
        for t in spawners {
            t.join().unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        reader.join().unwrap();
    });
    assert_eq!((0..3).map(identity).collect::<Vec<_>>(), before);
}
