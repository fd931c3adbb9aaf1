//! When the child cannot be started: typed errors naming the step, the errno and the path, on
//! every path; bad input refused before anything exists; nothing leaked, no zombie left.

mod common;

use common::{in_scenario, open_fds, run_scenario, scenario_passed, zombie_children};
use popen::{Command, SpawnPath, Stdio, Step};
use std::ffi::OsStr;
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

fn fixture(name: &str, content: &[u8], mode: u32) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("popen-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    common::write_executable(&path, content, mode);
    path
}

/// Spawns with every std stream piped, on `path`, and returns the error.
fn spawn_err(mut cmd: Command, path: SpawnPath) -> popen::SpawnError {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn_path(path);
    match cmd.spawn() {
        Ok(child) => panic!("{path}: spawned pid {} unexpectedly", child.pid()),
        Err(e) => e,
    }
}

#[test]
fn missing_program() {
    for path in SpawnPath::ALL {
        let err = spawn_err(Command::new("popen-surely-missing"), path);
        assert_eq!(err.step(), Step::Exec, "{path}");
        assert_eq!(err.kind(), ErrorKind::NotFound, "{path}");
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
        assert_eq!(
            err.path(),
            Some(std::path::Path::new("popen-surely-missing"))
        );
        assert_eq!(
            err.to_string(),
            r#"could not exec "popen-surely-missing": No such file or directory (os error 2)"#
        );
        let io: std::io::Error = err.into();
        assert_eq!(io.kind(), ErrorKind::NotFound);
    }
}

#[test]
fn a_directory() {
    for path in SpawnPath::ALL {
        let err = spawn_err(Command::new("/tmp"), path);
        assert_eq!(
            (err.step(), err.raw_os_error()),
            (Step::Exec, Some(libc::EACCES)),
            "{path}"
        );
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
        assert_eq!(err.path(), Some(std::path::Path::new("/tmp")));
    }
}

#[test]
fn a_file_without_the_x_bit() {
    let file = fixture("not-executable", b"#!/bin/sh\necho hi\n", 0o644);
    for path in SpawnPath::ALL {
        let err = spawn_err(Command::new(&file), path);
        assert_eq!(
            (err.step(), err.raw_os_error()),
            (Step::Exec, Some(libc::EACCES)),
            "{path}"
        );
        assert_eq!(err.path(), Some(file.as_path()));
    }
}

#[test]
fn a_file_the_kernel_cannot_execute() {
    let file = fixture("garbage", b"\x7fELF but not really\0\x01\x02", 0o755);
    for path in SpawnPath::ALL {
        let err = spawn_err(Command::new(&file), path);
        assert_eq!(
            (err.step(), err.raw_os_error()),
            (Step::Exec, Some(libc::ENOEXEC)),
            "{path}"
        );
    }
}

#[test]
fn path_search_reports_the_first_error_that_is_not_not_found() {
    let file = fixture("popen-noexec-prog", b"#!/bin/sh\n", 0o644);
    let dir = file.parent().unwrap();
    for path in SpawnPath::ALL {
        let mut cmd = Command::new("popen-noexec-prog");
        cmd.env(
            "PATH",
            format!("/nonexistent:{}:/also-missing", dir.display()),
        );
        let err = spawn_err(cmd, path);
        assert_eq!(err.raw_os_error(), Some(libc::EACCES), "{path}");
    }
}

#[test]
fn a_missing_cwd() {
    for path in SpawnPath::ALL {
        let mut cmd = Command::new("true");
        cmd.cwd("/popen/no/such/dir");
        let err = spawn_err(cmd, path);
        assert_eq!(
            (err.step(), err.kind()),
            (Step::Chdir, ErrorKind::NotFound),
            "{path}"
        );
        assert_eq!(err.path(), Some(std::path::Path::new("/popen/no/such/dir")));
        assert_eq!(
            err.to_string(),
            r#"could not chdir to "/popen/no/such/dir": No such file or directory (os error 2)"#
        );
    }
}

#[test]
fn a_cwd_that_is_a_file() {
    let file = fixture("plain-file", b"", 0o644);
    for path in SpawnPath::ALL {
        let mut cmd = Command::new("true");
        cmd.cwd(&file);
        let err = spawn_err(cmd, path);
        assert_eq!(
            (err.step(), err.raw_os_error()),
            (Step::Chdir, Some(libc::ENOTDIR)),
            "{path}"
        );
    }
}

#[test]
fn a_hook_that_fails() {
    let mut cmd = Command::new("true");
    // SAFETY: the hook allocates nothing and only returns an error.
    unsafe { cmd.pre_exec(|| Err(std::io::Error::from_raw_os_error(libc::EPERM))) };
    let err = spawn_err(cmd, SpawnPath::Fork);
    assert_eq!(
        (err.step(), err.kind()),
        (Step::PreExecHook, ErrorKind::PermissionDenied)
    );
    assert_eq!(
        err.to_string(),
        "could not run pre-exec hook: Operation not permitted (os error 1)"
    );
}

#[test]
fn a_hook_that_panics() {
    let mut cmd = Command::new("true");
    // SAFETY: the panic is caught in the child and reported; the test accepts the risk of the
    // panic machinery allocating in a forked copy of this process.
    unsafe { cmd.pre_exec(|| panic!("hook panicked")) };
    let err = spawn_err(cmd, SpawnPath::Fork);
    assert_eq!(err.step(), Step::PreExecHook);
}

#[test]
fn a_hook_cannot_take_the_fast_paths() {
    for path in [SpawnPath::PosixSpawn, SpawnPath::CloneVfork] {
        let mut cmd = Command::new("true");
        // SAFETY: the hook does nothing.
        unsafe { cmd.pre_exec(|| Ok(())) };
        let err = spawn_err(cmd, path);
        assert_eq!(
            (err.step(), err.kind()),
            (Step::Prepare, ErrorKind::Unsupported),
            "{path}"
        );
        assert!(err.to_string().contains("a pre-exec hook is set"), "{err}");
    }
}

#[test]
fn bad_input_is_refused_before_anything_exists() {
    // Runs alone in a fresh process: it counts descriptors.
    const NAME: &str = "bad_input_is_refused_before_anything_exists";
    if !in_scenario(NAME) {
        assert!(run_scenario(NAME, |_| {}).success());
        return;
    }
    let nul = OsStr::from_bytes(b"a\0b");
    let cases: Vec<(&str, Command)> = vec![
        ("empty argv", Command::from_argv(Vec::<&str>::new())),
        ("NUL in program", Command::new(nul)),
        ("NUL in argument", {
            let mut c = Command::new("echo");
            c.arg(nul);
            c
        }),
        ("NUL in env key", {
            let mut c = Command::new("true");
            c.env(nul, "v");
            c
        }),
        ("NUL in env value", {
            let mut c = Command::new("true");
            c.env("K", nul);
            c
        }),
        ("= in env key", {
            let mut c = Command::new("true");
            c.env("A=B", "v");
            c
        }),
        ("NUL in cwd", {
            let mut c = Command::new("true");
            c.cwd(nul);
            c
        }),
        ("NUL in executable", {
            let mut c = Command::new("true");
            c.executable(nul);
            c
        }),
        ("empty program", Command::new("")),
        ("negative process group", {
            let mut c = Command::new("true");
            c.process_group(-5);
            c
        }),
        ("soft limit above hard", {
            let mut c = Command::new("true");
            c.rlimit(popen::Resource::NoFile, 10, 5);
            c
        }),
        ("stdin same as stdout", {
            let mut c = Command::new("true");
            c.stdin(Stdio::same_as_stdout());
            c
        }),
        ("stdout and stderr each the other", {
            let mut c = Command::new("true");
            c.stdout(Stdio::same_as_stderr())
                .stderr(Stdio::same_as_stdout());
            c
        }),
    ];
    for (what, mut cmd) in cases {
        let before = open_fds();
        if !what.contains("std") {
            // A pipe would be the first thing made: it must not be.
            cmd.stdout(Stdio::piped());
        }
        let err = cmd.spawn().expect_err(what);
        assert_eq!(
            (err.step(), err.kind()),
            (Step::Prepare, ErrorKind::InvalidInput),
            "{what}"
        );
        assert!(
            err.to_string().starts_with("invalid command: "),
            "{what}: {err}"
        );
        assert_eq!(open_fds(), before, "{what}");
    }
    scenario_passed();
}

#[test]
fn failures_leak_no_descriptor_and_leave_no_zombie() {
    const NAME: &str = "failures_leak_no_descriptor_and_leave_no_zombie";
    if in_scenario(NAME) {
        let before = open_fds();
        for path in SpawnPath::ALL {
            for _ in 0..20 {
                spawn_err(Command::new("popen-surely-missing"), path);
                let mut cmd = Command::new("true");
                cmd.cwd("/popen/missing");
                spawn_err(cmd, path);
            }
        }
        let mut cmd = Command::new("true");
        // SAFETY: the hook only returns an error.
        unsafe { cmd.pre_exec(|| Err(std::io::Error::from_raw_os_error(libc::EIO))) };
        spawn_err(cmd, SpawnPath::Fork);
        assert_eq!(open_fds(), before);
        assert_eq!(zombie_children(), Vec::<i32>::new());
        scenario_passed();
    }
    assert!(run_scenario(NAME, |_| {}).success());
}

#[test]
fn credential_failures_name_their_step() {
    const NAME: &str = "credential_failures_name_their_step";
    if in_scenario(NAME) {
        // This copy runs as an unprivileged user: it may not become root again.
        type SetCredential = fn(&mut Command);
        let cases: [(Step, SetCredential); 3] = [
            (Step::Setgroups, |c| {
                c.extra_groups([0]);
            }),
            (Step::Setgid, |c| {
                c.gid(0);
            }),
            (Step::Setuid, |c| {
                c.uid(0);
            }),
        ];
        for path in [SpawnPath::CloneVfork, SpawnPath::Fork] {
            for (step, set) in cases {
                let mut cmd = Command::new("true");
                set(&mut cmd);
                let err = spawn_err(cmd, path);
                assert_eq!(
                    (err.step(), err.kind()),
                    (step, ErrorKind::PermissionDenied),
                    "{path}"
                );
            }
        }
        scenario_passed();
    }
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: starting the unprivileged copy needs root");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let status = run_scenario(NAME, |c| {
        // Run the copy as nobody, from a directory it can enter.
        c.uid(65534).gid(65534).extra_groups([]).cwd("/");
    });
    // The copy must be able to execute the test binary; where the build directory is closed
    // to other users that is not possible, and the failure would say so.
    assert!(
        status.success(),
        "{status} (test binary: {})",
        exe.display()
    );
}

#[test]
fn a_failed_child_can_be_left_for_the_caller_to_reap() {
    for path in [SpawnPath::CloneVfork, SpawnPath::Fork] {
        let mut cmd = Command::new("popen-surely-missing");
        popen::testing::keep_failed_child(&mut cmd, true);
        let err = spawn_err(cmd, path);
        assert_eq!(err.step(), Step::Exec);
        let pid = err.pid().expect("the failed child's pid");
        let mut status = 0;
        // SAFETY: waitpid on our own, unreaped child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid, "{path}");
        assert_eq!(
            popen::ExitStatus::from_raw(status).code(),
            Some(127),
            "{path}"
        );
    }
    // By default the engine reaps it and names no pid.
    let err = spawn_err(Command::new("popen-surely-missing"), SpawnPath::CloneVfork);
    assert_eq!(err.pid(), None);
}

/// valgrind runs a `CLONE_VM | CLONE_VFORK` child as a fork, so a failure the vfork child
/// stores in shared memory never reaches the parent. The first such spawn notices (its child
/// ran in memory of its own) and from then on the process spawns through fork, whose pipe
/// reports failures as usual. (`scripts/test-all.sh` installs valgrind.)
#[test]
fn under_valgrind_spawn_failures_stay_typed_errors() {
    const NAME: &str = "under_valgrind_spawn_failures_stay_typed_errors";
    if in_scenario(NAME) {
        let first = Command::new("/no/such/program").spawn();
        match first {
            // What the C library's posix_spawn gives here too: a child that exits 127.
            Ok(child) => assert_eq!(child.wait().unwrap().code(), Some(127)),
            Err(e) => assert_eq!(e.step(), Step::Exec),
        }
        let err = Command::new("/no/such/program").spawn().unwrap_err();
        assert_eq!((err.step(), err.kind()), (Step::Exec, ErrorKind::NotFound));
        let err = Command::new("true")
            .cwd("/no/such/dir")
            .spawn()
            .unwrap_err();
        assert_eq!((err.step(), err.kind()), (Step::Chdir, ErrorKind::NotFound));
        let child = Command::new("true").spawn().unwrap();
        assert!(child.wait().unwrap().success());
        scenario_passed();
    }
    let exe = std::env::current_exe().expect("test binary path");
    // valgrind must be installed (scripts/test-all.sh installs it).
    let mut cmd = Command::new("valgrind");
    cmd.args(["-q", "--error-exitcode=99"])
        .arg(exe)
        .args([NAME, "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env("POPEN_TEST_SCENARIO", NAME);
    let status = common::run_captured(NAME, &mut cmd, |_| {});
    assert!(status.success(), "under valgrind: {status}");
}

/// What an error reporter (anyhow's `{:#}`, eyre) prints: each error of the `source()` chain.
fn report_chain(err: &dyn std::error::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut next = err.source();
    while let Some(e) = next {
        parts.push(e.to_string());
        next = e.source();
    }
    parts.join(": ")
}

#[test]
fn an_error_reporter_prints_the_os_error_once() {
    let os_message = std::io::Error::from_raw_os_error(libc::ENOENT).to_string();
    let os_message = os_message.split(" (os error").next().unwrap().to_owned();
    let once = |report: String, what: &str| {
        assert_eq!(report.matches(&os_message).count(), 1, "{what}: {report}");
    };
    let spawn = Command::new("surely-no-such-program").spawn().unwrap_err();
    once(report_chain(&spawn), "spawn");
    once(
        report_chain(&std::io::Error::from(spawn)),
        "spawn as io::Error",
    );
    let run = popen::check_call(Command::new("surely-no-such-program")).unwrap_err();
    once(report_chain(&run), "run");
    once(report_chain(&std::io::Error::from(run)), "run as io::Error");
}

#[test]
fn a_script_whose_interpreter_is_missing_says_so() {
    let script = fixture(
        "missing-interpreter",
        b"#!/surely/no/such/interpreter -x\necho hi\n",
        0o755,
    );
    common::on_each_path(
        || Command::new(&script),
        |path, cmd| {
            let err = cmd.spawn().unwrap_err();
            assert_eq!(err.step(), Step::Exec, "{path}: {err}");
            assert_eq!(err.kind(), ErrorKind::NotFound, "{path}: {err}");
            assert_eq!(err.raw_os_error(), Some(libc::ENOENT), "{path}");
            assert_eq!(
                err.missing_interpreter(),
                Some(std::path::Path::new("/surely/no/such/interpreter")),
                "{path}: {err}"
            );
            let msg = err.to_string();
            assert!(
                msg.contains("interpreter") && msg.contains("/surely/no/such/interpreter"),
                "{path}: {msg}"
            );
        },
    );
    let layer = popen::Popen::posix_spawn(
        &script,
        &["script"],
        None,
        &popen::posix_spawn::FileActions::new().unwrap(),
        &popen::posix_spawn::SpawnAttr::new().unwrap(),
    )
    .unwrap_err();
    assert_eq!(layer.kind(), ErrorKind::NotFound, "{layer}");
    assert!(
        layer.to_string().contains("/surely/no/such/interpreter"),
        "{layer}"
    );
    // A program that is really missing says nothing of an interpreter.
    let missing = Command::new("/surely/no/such/program").spawn().unwrap_err();
    assert_eq!(missing.missing_interpreter(), None);
    assert!(!missing.to_string().contains("interpreter"), "{missing}");
}
