//! Every option of the builder, on every spawn path that supports it.

mod common;

use common::{ids_of, on_each_path, output, status_mask};
use popen::{Command, Resource, SigSet, SignalMask, SpawnPath, Stdio};
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

#[test]
fn arguments_pass_through_byte_exact() {
    let odd = OsStr::from_bytes(b"caf\xe9 \xff with spaces");
    on_each_path(
        || {
            Command::from_argv([
                OsStr::new("printf"),
                OsStr::new("%s|%s"),
                odd,
                OsStr::new(""),
            ])
        },
        |path, cmd| {
            let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
            let mut out = Vec::new();
            child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
            assert!(child.wait().unwrap().success());
            assert_eq!(out, b"caf\xe9 \xff with spaces|", "{path}");
        },
    );
}

#[test]
fn executable_overrides_the_file_run_but_not_argv0() {
    on_each_path(
        || {
            let mut c = Command::from_argv(["my-name", "-c", "echo $0"]);
            c.executable("sh");
            c
        },
        |path, cmd| assert_eq!(output(cmd).0, "my-name\n", "{path}"),
    );
}

#[test]
fn shell_mode_runs_through_sh() {
    on_each_path(
        || Command::shell("echo $((6 * 7)) | tr 4 X"),
        |path, cmd| assert_eq!(output(cmd).0, "X2\n", "{path}"),
    );
}

#[test]
fn cwd_is_entered_and_relative_programs_resolve_from_it() {
    let dir = tempdir();
    common::write_executable(&dir.join("script"), b"#!/bin/sh\npwd\n", 0o755);
    let real = std::fs::canonicalize(&dir).unwrap();
    on_each_path(
        || {
            let mut c = Command::new("./script");
            c.cwd(&dir);
            c
        },
        |path, cmd| assert_eq!(output(cmd).0.trim_end(), real.to_str().unwrap(), "{path}"),
    );
}

#[test]
fn env_inherit_set_remove_and_clear() {
    std::env::set_var("POPEN_TEST_INHERITED", "yes");
    std::env::set_var("POPEN_TEST_REMOVED", "no");
    on_each_path(
        || {
            let mut c = Command::shell(
                "echo ${POPEN_TEST_INHERITED}-${POPEN_TEST_SET}-${POPEN_TEST_REMOVED:-gone}",
            );
            c.env("POPEN_TEST_SET", "set")
                .env_remove("POPEN_TEST_REMOVED");
            c
        },
        |path, cmd| assert_eq!(output(cmd).0, "yes-set-gone\n", "{path}"),
    );
    on_each_path(
        || Command::shell("echo ${POPEN_TEST_INHERITED:-unset}"),
        |path, cmd| assert_eq!(output(cmd).0, "yes\n", "{path}"),
    );
    on_each_path(
        || {
            let mut c = Command::new("/usr/bin/env");
            c.env_clear().env("ONLY", "1");
            c
        },
        |path, cmd| assert_eq!(output(cmd).0, "ONLY=1\n", "{path}"),
    );
}

#[test]
fn environ_entries_reach_the_child_byte_for_byte() {
    let entries: [&[u8]; 7] = [
        b"A=1",
        b"A=2",
        b"NO_EQUALS",
        b"",
        b"B==c",
        b"=x",
        b"\xff=\xfe",
    ];
    on_each_path(
        || {
            let mut c = Command::from_argv(["cat", "/proc/self/environ"]);
            // Replaces what env() set; PATH is searched in the entries.
            c.env("DROPPED", "1")
                .environ(entries.iter().map(|e| OsStr::from_bytes(e)))
                .environ(
                    entries
                        .iter()
                        .map(|e| OsStr::from_bytes(e))
                        .chain([OsStr::new("PATH=/bin:/usr/bin")]),
                );
            c
        },
        |path, cmd| {
            let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
            let mut out = Vec::new();
            child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
            assert!(child.wait().unwrap().success(), "{path}");
            assert_eq!(
                out, b"A=1\0A=2\0NO_EQUALS\0\0B==c\0=x\0\xff=\xfe\0PATH=/bin:/usr/bin\0",
                "{path}"
            );
        },
    );
}

#[test]
fn program_is_searched_in_the_childs_path() {
    let dir = tempdir();
    common::write_executable(
        &dir.join("popen-test-prog"),
        b"#!/bin/sh\necho found\n",
        0o755,
    );
    on_each_path(
        || {
            let mut c = Command::new("popen-test-prog");
            c.env("PATH", format!("/nonexistent:{}", dir.display()));
            c
        },
        |path, cmd| assert_eq!(output(cmd).0, "found\n", "{path}"),
    );
}

#[test]
fn executable_list_is_tried_in_order() {
    on_each_path(
        || {
            let mut c = Command::from_argv(["sh", "-c", "echo ran"]);
            c.executable_list(["/nonexistent/sh", "/bin/sh"]);
            c
        },
        |path, cmd| assert_eq!(output(cmd).0, "ran\n", "{path}"),
    );
}

#[test]
fn stdin_from_pipe_null_file_and_borrowed_fd() {
    on_each_path(
        || Command::new("cat"),
        |path, cmd| {
            let mut child = cmd
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(b"through a pipe")
                .unwrap();
            assert_eq!(common::read_all(&mut child), "through a pipe", "{path}");
            child.wait().unwrap();
        },
    );
    on_each_path(
        || Command::new("cat"),
        |path, cmd| {
            cmd.stdin(Stdio::null());
            assert_eq!(output(cmd).0, "", "{path}");
        },
    );
    let dir = tempdir();
    let file = dir.join("input");
    std::fs::write(&file, "from a file").unwrap();
    on_each_path(
        || Command::new("cat"),
        |path, cmd| {
            cmd.stdin(std::fs::File::open(&file).unwrap());
            assert_eq!(output(cmd).0, "from a file", "{path}");
        },
    );
    let kept = std::fs::File::open(&file).unwrap();
    on_each_path(
        || Command::new("cat"),
        |path, cmd| {
            cmd.stdin(Stdio::borrowed(kept.as_fd()).unwrap());
            // Each borrow shares the file offset: rewind first.
            rewind(&kept);
            assert_eq!(output(cmd).0, "from a file", "{path}");
        },
    );
}

#[test]
fn stdout_and_stderr_to_pipe_null_and_files() {
    on_each_path(
        || Command::shell("echo out; echo err >&2"),
        |path, cmd| {
            let mut child = cmd
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let err = common::read_stderr(&mut child);
            assert_eq!(common::read_all(&mut child), "out\n", "{path}");
            assert_eq!(err, "err\n", "{path}");
            child.wait().unwrap();
        },
    );
    on_each_path(
        || Command::shell("echo out; echo err >&2"),
        |path, cmd| {
            let mut child = cmd
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let err = common::read_stderr(&mut child);
            assert_eq!(err, "err\n", "{path}");
            assert!(child.stdout.is_none());
            child.wait().unwrap();
        },
    );
    let dir = tempdir();
    on_each_path(
        || Command::shell("echo out; echo err >&2"),
        |path, cmd| {
            let name = dir.join(format!("both-{path}"));
            let file = std::fs::File::create(&name).unwrap();
            cmd.stdout(file.try_clone().unwrap())
                .stderr(Stdio::from(OwnedFd::from(file)));
            assert!(cmd.spawn().unwrap().wait().unwrap().success());
            assert_eq!(
                std::fs::read_to_string(&name).unwrap(),
                "out\nerr\n",
                "{path}"
            );
        },
    );
}

#[test]
fn stderr_merged_into_stdout_and_stdout_into_stderr() {
    on_each_path(
        || Command::shell("echo out; echo err >&2"),
        |path, cmd| {
            cmd.stderr(Stdio::same_as_stdout());
            assert_eq!(output(cmd).0, "out\nerr\n", "{path}");
        },
    );
    on_each_path(
        || Command::shell("echo out; echo err >&2"),
        |path, cmd| {
            let mut child = cmd
                .stdout(Stdio::same_as_stderr())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let all = common::read_stderr(&mut child);
            assert_eq!(all, "out\nerr\n", "{path}");
            child.wait().unwrap();
        },
    );
}

/// A descriptor without close-on-exec, as a careless library would leave one.
fn inheritable_fd() -> OwnedFd {
    let file = std::fs::File::open("/dev/null").unwrap();
    let fd = OwnedFd::from(file);
    // SAFETY: clearing FD_CLOEXEC on a descriptor we own.
    assert_eq!(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, 0) }, 0);
    fd
}

#[test]
fn close_fds_closes_leaked_descriptors_by_default() {
    let leaked = inheritable_fd();
    let n = leaked.as_raw_fd();
    on_each_path(
        || {
            Command::shell(format!(
                "test -e /proc/self/fd/{n} && echo open || echo closed"
            ))
        },
        |path, cmd| assert_eq!(output(cmd).0, "closed\n", "{path}"),
    );
    on_each_path(
        || {
            let mut c = Command::shell(format!(
                "test -e /proc/self/fd/{n} && echo open || echo closed"
            ));
            c.close_fds(false);
            c
        },
        |path, cmd| assert_eq!(output(cmd).0, "open\n", "{path}"),
    );
}

/// With every standard stream inherited the posix_spawn path shares one prepared set of file
/// actions between spawns (and threads): it must close leaked descriptors every time.
#[test]
fn close_fds_with_inherited_streams_closes_leaked_descriptors_every_time() {
    let leaked = inheritable_fd();
    let n = leaked.as_raw_fd();
    let script = format!("test ! -e /proc/self/fd/{n}");
    for round in 0..3 {
        on_each_path(
            || Command::shell(&script),
            |path, cmd| {
                let status = cmd.spawn().unwrap().wait().unwrap();
                assert!(
                    status.success(),
                    "{path}, round {round}: fd {n} was inherited"
                );
            },
        );
    }
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..25 {
                    let status = Command::shell(&script).spawn().unwrap().wait().unwrap();
                    assert!(status.success(), "fd {n} was inherited");
                }
            });
        }
    });
    let status = {
        let mut c = Command::shell(&script);
        c.close_fds(false);
        c.spawn().unwrap().wait().unwrap()
    };
    assert!(!status.success(), "without close_fds, fd {n} stays open");
}

#[test]
fn pass_fds_stay_open_at_the_same_number() {
    for path in SpawnPath::ALL {
        let (r, w) = pipe();
        let n = w.as_raw_fd();
        let mut cmd = Command::shell(format!("echo passed >&{n}"));
        cmd.pass_fd(w).spawn_path(path);
        if path == SpawnPath::PosixSpawn {
            // close_fds with pass_fds is not expressible with posix_spawn, unless close_fds is off.
            assert!(cmd.choose_path().impossible().is_some());
            cmd.close_fds(false);
        }
        let child = cmd.spawn().unwrap();
        assert!(child.wait_shared().unwrap().success());
        // The command owns the passed write end: drop it so the read sees end of file.
        drop(cmd);
        let mut got = String::new();
        std::fs::File::from(r).read_to_string(&mut got).unwrap();
        assert_eq!(got, "passed\n", "{path}");
    }
}

#[test]
fn restore_signals_resets_sigpipe() {
    // The test harness, like every Rust program, ignores SIGPIPE.
    let sigpipe_bit = 1u64 << (libc::SIGPIPE - 1);
    on_each_path(
        || {
            let mut c = Command::new("grep");
            c.args(["SigIgn", "/proc/self/status"]);
            c
        },
        |path, cmd| {
            let out = output(cmd).0;
            assert_eq!(status_mask(&out, "SigIgn") & sigpipe_bit, 0, "{path}");
        },
    );
    on_each_path(
        || {
            let mut c = Command::new("grep");
            c.args(["SigIgn", "/proc/self/status"])
                .restore_signals(false);
            c
        },
        |path, cmd| {
            let out = output(cmd).0;
            assert_ne!(status_mask(&out, "SigIgn") & sigpipe_bit, 0, "{path}");
        },
    );
}

#[test]
fn signal_mask_is_empty_by_default_inherited_or_given() {
    // Block SIGUSR1 in this thread only; the default must not leak it to the child.
    let handle = std::thread::spawn(|| {
        let usr1 = 1u64 << (libc::SIGUSR1 - 1);
        let usr2 = 1u64 << (libc::SIGUSR2 - 1);
        let mut blocked = SigSet::empty();
        blocked.add(libc::SIGUSR1).unwrap();
        // SAFETY: changes only this thread's mask.
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &raw_set(&blocked), std::ptr::null_mut()) };
        let grep = |mask: SignalMask| {
            let mut c = Command::new("grep");
            c.args(["SigBlk", "/proc/self/status"]).signal_mask(mask);
            c
        };
        on_each_path(
            || grep(SignalMask::Empty),
            |path, cmd| assert_eq!(status_mask(&output(cmd).0, "SigBlk"), 0, "{path}"),
        );
        on_each_path(
            || grep(SignalMask::Inherit),
            |path, cmd| assert_eq!(status_mask(&output(cmd).0, "SigBlk"), usr1, "{path}"),
        );
        on_each_path(
            || {
                grep(SignalMask::Set(
                    SigSet::from_signals([libc::SIGUSR2]).unwrap(),
                ))
            },
            |path, cmd| assert_eq!(status_mask(&output(cmd).0, "SigBlk"), usr2, "{path}"),
        );
    });
    handle.join().unwrap();
}

fn raw_set(set: &SigSet) -> libc::sigset_t {
    // SAFETY: an all-zero sigset_t is a valid value; sigemptyset below initialises it.
    let mut raw: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: raw is a valid set to initialise and fill.
    unsafe { libc::sigemptyset(&mut raw) };
    for s in set.signals() {
        // SAFETY: as above.
        unsafe { libc::sigaddset(&mut raw, s) };
    }
    raw
}

#[test]
fn new_session_and_process_groups() {
    on_each_path(
        || {
            let mut c = Command::new("cat");
            c.arg("/proc/self/stat").start_new_session(true);
            c
        },
        |path, cmd| {
            let (pid, pgrp, sid) = ids_of(&output(cmd).0);
            assert_eq!((pgrp, sid), (pid, pid), "{path}");
        },
    );
    on_each_path(
        || {
            let mut c = Command::new("cat");
            c.arg("/proc/self/stat").process_group(0);
            c
        },
        |path, cmd| {
            let (pid, pgrp, _) = ids_of(&output(cmd).0);
            assert_eq!(pgrp, pid, "{path}");
        },
    );
    let leader = Command::new("sleep")
        .arg("30")
        .process_group(0)
        .spawn()
        .unwrap();
    on_each_path(
        || {
            let mut c = Command::new("cat");
            c.arg("/proc/self/stat").process_group(leader.pid());
            c
        },
        |path, cmd| assert_eq!(ids_of(&output(cmd).0).1, leader.pid(), "{path}"),
    );
    leader.kill().unwrap();
    leader.wait_shared().unwrap();
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn user_group_and_extra_groups() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let make = || {
        let mut c = Command::shell("id -u; id -g; id -G");
        c.uid(65534).gid(65534).extra_groups([4, 65534]);
        c
    };
    for path in [SpawnPath::CloneVfork, SpawnPath::Fork] {
        let mut cmd = make();
        cmd.spawn_path(path);
        assert_eq!(output(&mut cmd).0, "65534\n65534\n65534 4\n", "{path}");
    }
    let mut cmd = make();
    assert_eq!(cmd.choose_path().path(), SpawnPath::CloneVfork);
    cmd.spawn_path(SpawnPath::PosixSpawn);
    let err = cmd.spawn().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::Unsupported);
}

#[test]
fn umask_is_applied() {
    on_each_path(
        || {
            let mut c = Command::shell("umask");
            c.umask(0o027);
            c
        },
        |path, cmd| {
            if path == SpawnPath::PosixSpawn {
                assert!(cmd.choose_path().impossible().is_some());
                return;
            }
            assert_eq!(output(cmd).0, "0027\n", "{path}");
        },
    );
}

#[test]
fn pipe_size_is_applied_to_every_pipe() {
    let mut child = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .pipe_size(1 << 20)
        .spawn()
        .unwrap();
    for fd in [
        child.stdin.as_ref().unwrap().as_raw_fd(),
        child.stdout.as_ref().unwrap().as_raw_fd(),
    ] {
        // SAFETY: F_GETPIPE_SZ on a pipe we own.
        assert_eq!(unsafe { libc::fcntl(fd, libc::F_GETPIPE_SZ) }, 1 << 20);
    }
    drop(child.stdin.take());
    child.wait().unwrap();
}

#[test]
fn pre_exec_hook_runs_in_the_child_before_exec() {
    let mut cmd = Command::shell("echo after");
    // SAFETY: the hook only calls write(2), which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::write(1, b"hook\n".as_ptr().cast(), 5);
            Ok(())
        });
    }
    assert_eq!(cmd.choose_path().path(), SpawnPath::Fork);
    assert_eq!(
        cmd.choose_path().to_string(),
        "fork (vfork: not used because a pre-exec hook is set; \
         posix_spawn: not used because a pre-exec hook is set)"
    );
    assert_eq!(output(&mut cmd).0, "hook\nafter\n");
}

#[test]
fn resource_limits_without_a_hook() {
    let mut cmd = Command::shell("ulimit -n; ulimit -c");
    cmd.rlimit(Resource::NoFile, 64, 128)
        .rlimit(Resource::Core, 0, 0);
    assert_eq!(cmd.choose_path().path(), SpawnPath::CloneVfork);
    for path in [SpawnPath::CloneVfork, SpawnPath::Fork] {
        cmd.spawn_path(path);
        assert_eq!(output(&mut cmd).0, "64\n0\n", "{path}");
    }
}

#[test]
fn parent_death_signal_fires_when_the_spawning_thread_exits() {
    for path in [SpawnPath::CloneVfork, SpawnPath::Fork] {
        let child = std::thread::spawn(move || {
            Command::new("sleep")
                .arg("30")
                .parent_death_signal(libc::SIGTERM)
                .spawn_path(path)
                .spawn()
                .unwrap()
        })
        .join()
        .unwrap();
        let status = child
            .wait_timeout(std::time::Duration::from_secs(20))
            .unwrap();
        assert_eq!(
            status.and_then(|s| s.signal()),
            Some(libc::SIGTERM),
            "{path}"
        );
    }
}

#[test]
fn audit_event_sees_the_spawn() {
    // Runs alone in a fresh process: it counts descriptors, and its hook is process-wide.
    const NAME: &str = "audit_event_sees_the_spawn";
    if !common::in_scenario(NAME) {
        assert!(common::run_scenario(NAME, |_| {}).success());
        return;
    }
    // Hooks are process-wide: this one only looks at its own marker program.
    use std::sync::atomic::{AtomicUsize, Ordering};
    static SEEN: AtomicUsize = AtomicUsize::new(0);
    popen::add_audit_hook(|event| {
        if event
            .args()
            .get(1)
            .map(|a| a == "popen-audit-marker")
            .unwrap_or(false)
        {
            assert_eq!(event.executable(), "echo");
            assert_eq!(event.cwd(), Some(OsStr::new("/")));
            let env: Vec<_> = event.env().unwrap().collect();
            assert!(env.contains(&(OsStr::new("K"), OsStr::new("v=1"))));
            SEEN.fetch_add(1, Ordering::SeqCst);
        }
        if event
            .args()
            .get(1)
            .map(|a| a == "popen-audit-refuse")
            .unwrap_or(false)
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "refused",
            ));
        }
        Ok(())
    });
    let mut cmd = Command::new("echo");
    cmd.arg("popen-audit-marker")
        .cwd("/")
        .env("K", "v=1")
        .stdout(Stdio::null());
    cmd.spawn().unwrap().wait().unwrap();
    assert_eq!(SEEN.load(Ordering::SeqCst), 1);
    let before = common::open_fds();
    let err = Command::new("echo")
        .arg("popen-audit-refuse")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_err();
    assert_eq!(err.step(), popen::Step::Audit);
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
    assert_eq!(common::open_fds(), before);
    common::scenario_passed();
}

fn tempdir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "popen-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rewind(file: &std::fs::File) {
    use std::io::Seek;
    let mut f = file;
    f.seek(std::io::SeekFrom::Start(0)).unwrap();
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let (r, w) = std::io::pipe().unwrap();
    (r.into(), w.into())
}

/// The vfork child's stack is not carved out of the caller's frame: a thread with a small
/// stack can spawn on that path (and again, reusing it).
#[test]
fn vfork_path_spawns_from_a_thread_with_a_small_stack() {
    let worker = std::thread::Builder::new()
        .stack_size(48 * 1024)
        .spawn(|| {
            for _ in 0..3 {
                let mut cmd = Command::new("true");
                cmd.spawn_path(SpawnPath::CloneVfork);
                let child = cmd.spawn().unwrap();
                assert_eq!(child.spawn_path(), SpawnPath::CloneVfork);
                assert!(child.wait_shared().unwrap().success());
            }
        })
        .unwrap();
    worker.join().unwrap();
}

/// A pre-exec hook may change the environment the program gets, as CPython's `preexec_fn` can,
/// when the command leaves the environment inherited: the child starts the hooks on the
/// parent's snapshot and execs with the environment as they leave it. A command that sets its
/// own environment keeps it (CPython passes `env` to `execve` as given).
#[test]
fn a_pre_exec_hook_may_change_an_inherited_environment() {
    let hook = || {
        // SAFETY: the string is static and NUL-terminated; the forked child is single-threaded.
        if unsafe { libc::putenv(c"POPEN_FROM_HOOK=set in the hook".as_ptr().cast_mut()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    let mut inherited = Command::shell("printf %s \"${POPEN_FROM_HOOK-unset}\"");
    // SAFETY: the hook only calls putenv, which the forked child of this test may.
    unsafe { inherited.pre_exec(hook) };
    assert_eq!(output(&mut inherited).0, "set in the hook");

    let mut own = Command::shell("printf %s \"${POPEN_FROM_HOOK-unset}\"");
    own.env("POPEN_OTHER", "1");
    // SAFETY: as above.
    unsafe { own.pre_exec(hook) };
    assert_eq!(output(&mut own).0, "unset");
}
