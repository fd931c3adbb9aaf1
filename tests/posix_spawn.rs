//! The public `posix_spawn` layer: each file action, each attribute, each refusal, the `PATH`
//! search of `spawnp`, and the typed errors of a failed spawn.
//!
//! Tests that change process-wide state (ids, signal dispositions, `PATH`, simulated missing
//! extensions) run again alone in a fresh copy of this test binary (see [`scenario`]).

mod common;

use popen::posix_spawn::{Extension, FileAction, FileActions, SpawnAttr};
use popen::{Command, ExitStatus, SigSet, SpawnPath, Step};
use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Runs `argv` (searched in `PATH`) with its stdout captured by the first file action, then
/// the actions `more` adds; returns (stdout, status).
fn output_with(
    argv: &[&str],
    more: impl FnOnce(&mut FileActions),
    attr: &SpawnAttr,
) -> (String, ExitStatus) {
    let (mut ours, theirs) = UnixStream::pair().expect("socketpair");
    let mut actions = FileActions::new().unwrap();
    actions.dup2(theirs.as_raw_fd(), 1).unwrap();
    more(&mut actions);
    let child = popen::Popen::posix_spawnp(argv[0], argv, None, &actions, attr).expect("spawn");
    drop(theirs);
    let mut out = String::new();
    ours.read_to_string(&mut out).expect("read stdout");
    (out, child.wait().expect("wait"))
}

fn output(argv: &[&str], more: impl FnOnce(&mut FileActions)) -> String {
    let (out, status) = output_with(argv, more, &SpawnAttr::new().unwrap());
    assert!(status.success(), "{argv:?}: {status:?}");
    out
}

fn no_attr() -> SpawnAttr {
    SpawnAttr::new().unwrap()
}

fn c(path: &Path) -> CString {
    CString::new(path.to_str().unwrap()).unwrap()
}

fn tempdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("popen-ps-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_program(path: &Path, text: &str, mode: u32) {
    // From a `cat` child, never opened for writing here: see `common::write_executable`.
    let mut cat = popen::Command::shell("cat > \"$0\"")
        .arg(path)
        .stdin(popen::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(cat.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    drop(cat.stdin.take());
    assert!(cat.wait().unwrap().success());
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A shell line that prints whether descriptor `fd` is open in the shell.
fn is_open_probe(fd: RawFd) -> String {
    format!("if [ -e /proc/self/fd/{fd} ]; then echo open; else echo closed; fi")
}

/// (pid, pgrp, session) and the scheduling (rt_priority, policy) from a /proc/PID/stat line.
fn stat_fields(stat: &str) -> (i32, i32, i32, u32, u32) {
    let pid = stat.split(' ').next().unwrap().parse().unwrap();
    let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    // Fields after the command name start at field 3 (state): pgrp is 5, session 6,
    // rt_priority 40, policy 41.
    let field = |n: usize| f[n - 3];
    (
        pid,
        field(5).parse().unwrap(),
        field(6).parse().unwrap(),
        field(40).parse().unwrap(),
        field(41).parse().unwrap(),
    )
}

/// A hexadecimal mask line ("SigBlk", "SigIgn", …) of /proc/self/status.
fn status_mask(status: &str, field: &str) -> u64 {
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

fn bit(signal: i32) -> u64 {
    1 << (signal - 1)
}

/// Runs the test `name` again, alone, in a fresh copy of this test binary where
/// [`in_scenario`] is true, and asserts that it passed there.
fn scenario(name: &str) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env("POPEN_PS_SCENARIO", name);
    let status = common::run_captured(name, &mut cmd, |_| {});
    assert!(status.success(), "scenario {name}: {status}");
}

fn in_scenario(name: &str) -> bool {
    std::env::var("POPEN_PS_SCENARIO").as_deref() == Ok(name)
}

// ---- file actions ----

#[test]
fn open_creates_a_file_with_the_flags_and_mode() {
    let dir = tempdir("open");
    let file = dir.join("out");
    let mut actions = FileActions::new().unwrap();
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
    actions.open(1, &c(&file), flags, 0o600).unwrap();
    let child =
        popen::Popen::posix_spawnp("echo", &["echo", "hello"], None, &actions, &no_attr()).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "hello\n");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        matches!(&actions.actions()[0], FileAction::Open { fd: 1, flags: f, mode: 0o600, .. } if *f == flags)
    );
}

#[test]
fn open_reads_a_file_onto_a_descriptor() {
    let dir = tempdir("open-read");
    std::fs::write(dir.join("in"), "from the file").unwrap();
    let out = output(&["cat"], |a| {
        a.open(0, &c(&dir.join("in")), libc::O_RDONLY, 0).unwrap()
    });
    assert_eq!(out, "from the file");
}

#[test]
fn close_closes_the_descriptor_in_the_child() {
    let null = std::fs::File::open("/dev/null").unwrap();
    let probe = is_open_probe(7);
    let argv = ["sh", "-c", probe.as_str()];
    let kept = output(&argv, |a| a.dup2(null.as_raw_fd(), 7).unwrap());
    assert_eq!(kept, "open\n");
    let closed = output(&argv, |a| {
        a.dup2(null.as_raw_fd(), 7).unwrap();
        a.close(7).unwrap();
    });
    assert_eq!(closed, "closed\n");
}

#[test]
fn close_and_dup2_refuse_negative_descriptors() {
    let mut actions = FileActions::new().unwrap();
    assert_eq!(
        actions.close(-1).unwrap_err().raw_os_error(),
        Some(libc::EBADF)
    );
    assert_eq!(
        actions.dup2(-1, 3).unwrap_err().raw_os_error(),
        Some(libc::EBADF)
    );
    assert_eq!(
        actions
            .open(-1, c"/dev/null", 0, 0)
            .unwrap_err()
            .raw_os_error(),
        Some(libc::EBADF)
    );
    assert!(
        actions.actions().is_empty(),
        "a refused action is not recorded"
    );
}

#[test]
fn dup2_onto_itself_clears_close_on_exec() {
    // std opens files close-on-exec: without the action the child does not get it.
    let file = std::fs::File::open("/dev/null").unwrap();
    let fd = file.as_raw_fd();
    let probe = is_open_probe(fd);
    let argv = ["sh", "-c", probe.as_str()];
    assert_eq!(output(&argv, |_| {}), "closed\n");
    assert_eq!(output(&argv, |a| a.dup2(fd, fd).unwrap()), "open\n");
}

#[test]
fn chdir_changes_directory_for_the_program_and_later_relative_paths() {
    let dir = tempdir("chdir");
    let real = std::fs::canonicalize(&dir).unwrap();
    assert_eq!(
        output(&["pwd"], |a| a.chdir(&c(&dir)).unwrap()).trim_end(),
        real.to_str().unwrap()
    );

    // A relative open after the chdir lands in the new directory; so does a relative program.
    write_program(&dir.join("script"), "#!/bin/sh\necho ran\n", 0o755);
    let mut actions = FileActions::new().unwrap();
    actions.chdir(&c(&dir)).unwrap();
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
    actions.open(1, c"relative-out", flags, 0o600).unwrap();
    let child =
        popen::Popen::posix_spawn("./script", &["script"], None, &actions, &no_attr()).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(
        std::fs::read_to_string(dir.join("relative-out")).unwrap(),
        "ran\n"
    );
}

#[test]
fn fchdir_changes_to_the_directory_open_on_the_descriptor() {
    let dir = tempdir("fchdir");
    let real = std::fs::canonicalize(&dir).unwrap();
    let handle = std::fs::File::open(&dir).unwrap();
    let out = output(&["pwd"], |a| a.fchdir(handle.as_raw_fd()).unwrap());
    assert_eq!(out.trim_end(), real.to_str().unwrap());
    // The C library takes any number; a bad one fails the spawn.
    let mut actions = FileActions::new().unwrap();
    actions.fchdir(-1).unwrap();
    assert_eq!(
        actions.closefrom(-1).unwrap_err().raw_os_error(),
        Some(libc::EBADF)
    );
    let err =
        popen::Popen::posix_spawnp("true", &["true"], None, &actions, &no_attr()).unwrap_err();
    assert_eq!(
        (err.step(), err.raw_os_error()),
        (Step::Chdir, Some(libc::EBADF))
    );
}

#[test]
fn closefrom_closes_every_descriptor_from_the_lowest_up() {
    let null = std::fs::File::open("/dev/null").unwrap();
    let script = format!("{}; {}", is_open_probe(5), is_open_probe(9));
    let argv = ["sh", "-c", script.as_str()];
    let before = |a: &mut FileActions| {
        a.dup2(null.as_raw_fd(), 5).unwrap();
        a.dup2(null.as_raw_fd(), 9).unwrap();
    };
    assert_eq!(output(&argv, before), "open\nopen\n");
    let out = output(&argv, |a| {
        before(a);
        a.closefrom(6).unwrap();
    });
    assert_eq!(out, "open\nclosed\n");
}

#[test]
fn a_failing_open_fails_the_spawn_as_a_setup_step() {
    let mut actions = FileActions::new().unwrap();
    actions
        .open(3, c"/no/such/dir/file", libc::O_RDONLY, 0)
        .unwrap();
    let err =
        popen::Popen::posix_spawnp("true", &["true"], None, &actions, &no_attr()).unwrap_err();
    assert_eq!(err.step(), Step::Spawn);
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    assert_eq!(err.path(), Some(Path::new("true")));
}

#[test]
fn chdir_and_fchdir_failures_are_chdir_errors() {
    let mut actions = FileActions::new().unwrap();
    actions.chdir(c"/no/such/dir").unwrap();
    let err =
        popen::Popen::posix_spawnp("true", &["true"], None, &actions, &no_attr()).unwrap_err();
    assert_eq!(
        (err.step(), err.raw_os_error()),
        (Step::Chdir, Some(libc::ENOENT))
    );
    assert_eq!(err.path(), Some(Path::new("/no/such/dir")));
    assert_eq!(
        err.to_string(),
        r#"could not chdir to "/no/such/dir": No such file or directory (os error 2)"#
    );

    let file = std::fs::File::open("/dev/null").unwrap();
    let mut actions = FileActions::new().unwrap();
    actions.fchdir(file.as_raw_fd()).unwrap();
    let err =
        popen::Popen::posix_spawnp("true", &["true"], None, &actions, &no_attr()).unwrap_err();
    assert_eq!(
        (err.step(), err.raw_os_error()),
        (Step::Chdir, Some(libc::ENOTDIR))
    );
}

// ---- attributes ----

#[test]
fn setpgroup_zero_makes_the_child_a_group_leader() {
    let mut attr = no_attr();
    attr.setpgroup(0).unwrap();
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    let mut actions = FileActions::new().unwrap();
    actions.dup2(theirs.as_raw_fd(), 1).unwrap();
    let child =
        popen::Popen::posix_spawnp("cat", &["cat", "/proc/self/stat"], None, &actions, &attr)
            .unwrap();
    drop(theirs);
    let mut stat = String::new();
    ours.read_to_string(&mut stat).unwrap();
    let (pid, pgrp, _, _, _) = stat_fields(&stat);
    assert_eq!((pid, pgrp), (child.pid(), child.pid()));
    assert_eq!(child.process_group(), Some(child.pid()));
    assert!(child.wait().unwrap().success());
}

#[test]
fn setpgroup_joins_an_existing_group() {
    let mut leader_attr = no_attr();
    leader_attr.setpgroup(0).unwrap();
    let leader = popen::Popen::posix_spawnp(
        "sleep",
        &["sleep", "30"],
        None,
        &FileActions::new().unwrap(),
        &leader_attr,
    )
    .unwrap();
    let mut attr = no_attr();
    attr.setpgroup(leader.pid()).unwrap();
    let (stat, status) = output_with(&["cat", "/proc/self/stat"], |_| {}, &attr);
    assert!(status.success());
    assert_eq!(stat_fields(&stat).1, leader.pid());
    leader.kill().unwrap();
    leader.wait().unwrap();
}

#[test]
fn setpgroup_to_a_group_of_another_session_fails_the_spawn() {
    // Process 1 leads a group in another session (or none we may join).
    let mut attr = no_attr();
    attr.setpgroup(1).unwrap();
    let err =
        popen::Popen::posix_spawnp("true", &["true"], None, &FileActions::new().unwrap(), &attr)
            .unwrap_err();
    assert_eq!(
        (err.step(), err.raw_os_error()),
        (Step::Spawn, Some(libc::EPERM))
    );
}

#[test]
fn setsid_starts_a_new_session() {
    let mut attr = no_attr();
    attr.setsid().unwrap();
    let (stat, status) = output_with(&["cat", "/proc/self/stat"], |_| {}, &attr);
    assert!(status.success());
    let (pid, pgrp, session, _, _) = stat_fields(&stat);
    assert_eq!((pgrp, session), (pid, pid));
}

#[test]
fn setsigmask_sets_the_childs_signal_mask() {
    let mut attr = no_attr();
    attr.setsigmask(&SigSet::from_signals([libc::SIGUSR1, libc::SIGTERM]).unwrap())
        .unwrap();
    let (status, _) = output_with(&["cat", "/proc/self/status"], |_| {}, &attr);
    assert_eq!(
        status_mask(&status, "SigBlk:"),
        bit(libc::SIGUSR1) | bit(libc::SIGTERM)
    );

    let mut attr = no_attr();
    attr.setsigmask(&SigSet::empty()).unwrap();
    let (status, _) = output_with(&["cat", "/proc/self/status"], |_| {}, &attr);
    assert_eq!(status_mask(&status, "SigBlk:"), 0);
}

#[test]
fn setsigdef_resets_ignored_signals_to_the_default() {
    if !in_scenario("setsigdef_resets_ignored_signals_to_the_default") {
        return scenario("setsigdef_resets_ignored_signals_to_the_default");
    }
    // SAFETY: ignoring a signal in this single-purpose process.
    unsafe { libc::signal(libc::SIGUSR2, libc::SIG_IGN) };
    let (status, _) = output_with(&["cat", "/proc/self/status"], |_| {}, &no_attr());
    assert_ne!(
        status_mask(&status, "SigIgn:") & bit(libc::SIGUSR2),
        0,
        "ignored is inherited"
    );
    let mut attr = no_attr();
    attr.setsigdef(&SigSet::from_signals([libc::SIGUSR2]).unwrap())
        .unwrap();
    let (status, _) = output_with(&["cat", "/proc/self/status"], |_| {}, &attr);
    assert_eq!(status_mask(&status, "SigIgn:") & bit(libc::SIGUSR2), 0);
}

#[test]
fn resetids_resets_the_effective_ids_to_the_real_ones() {
    if !in_scenario("resetids_resets_the_effective_ids_to_the_real_ones") {
        return scenario("resetids_resets_the_effective_ids_to_the_real_ones");
    }
    // SAFETY: geteuid takes no arguments.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to make the effective ids differ from the real ones");
        return;
    }
    // SAFETY: changing this single-purpose process's effective ids (group first, while root).
    unsafe {
        assert_eq!(libc::setegid(65534), 0);
        assert_eq!(libc::seteuid(65534), 0);
    }
    let ids = |status: &str, field: &str| -> Vec<u32> {
        let line = status.lines().find(|l| l.starts_with(field)).unwrap();
        line.split_whitespace()
            .skip(1)
            .map(|v| v.parse().unwrap())
            .collect()
    };
    let (status, _) = output_with(&["cat", "/proc/self/status"], |_| {}, &no_attr());
    assert_eq!(
        &ids(&status, "Uid:")[..2],
        [0, 65534],
        "effective uid inherited"
    );
    let mut attr = no_attr();
    attr.resetids().unwrap();
    let (status, _) = output_with(&["cat", "/proc/self/status"], |_| {}, &attr);
    assert_eq!(&ids(&status, "Uid:")[..2], [0, 0]);
    assert_eq!(&ids(&status, "Gid:")[..2], [0, 0]);
}

#[test]
fn scheduler_sets_the_policy_and_priority() {
    let mut attr = no_attr();
    attr.scheduler(libc::SCHED_OTHER, 0).unwrap();
    let (stat, status) = output_with(&["cat", "/proc/self/stat"], |_| {}, &attr);
    assert!(status.success());
    assert_eq!(stat_fields(&stat).4, libc::SCHED_OTHER as u32);

    // A real-time policy needs the privilege; without it the spawn fails with EPERM.
    let mut attr = no_attr();
    attr.scheduler(libc::SCHED_FIFO, 1).unwrap();
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    let mut actions = FileActions::new().unwrap();
    actions.dup2(theirs.as_raw_fd(), 1).unwrap();
    match popen::Popen::posix_spawnp("cat", &["cat", "/proc/self/stat"], None, &actions, &attr) {
        Ok(child) => {
            drop(theirs);
            let mut stat = String::new();
            ours.read_to_string(&mut stat).unwrap();
            let (_, _, _, rt_priority, policy) = stat_fields(&stat);
            assert_eq!((policy, rt_priority), (libc::SCHED_FIFO as u32, 1));
            assert!(child.wait().unwrap().success());
        }
        Err(e) => assert_eq!(
            (e.step(), e.raw_os_error()),
            (Step::Spawn, Some(libc::EPERM))
        ),
    }
}

#[test]
fn schedparam_alone_keeps_the_policy_and_checks_the_priority() {
    let mut attr = no_attr();
    attr.schedparam(0).unwrap();
    assert_eq!(attr.flags(), libc::POSIX_SPAWN_SETSCHEDPARAM as i16);
    let (stat, status) = output_with(&["cat", "/proc/self/stat"], |_| {}, &attr);
    assert!(status.success());
    assert_eq!(stat_fields(&stat).4, libc::SCHED_OTHER as u32);

    // SCHED_OTHER has only priority 0: the child's sched_setparam fails.
    let mut attr = no_attr();
    attr.schedparam(5).unwrap();
    let err =
        popen::Popen::posix_spawnp("true", &["true"], None, &FileActions::new().unwrap(), &attr)
            .unwrap_err();
    assert_eq!(
        (err.step(), err.raw_os_error()),
        (Step::Spawn, Some(libc::EINVAL))
    );
}

#[test]
fn scheduler_refuses_a_policy_the_c_library_does_not_accept() {
    let mut attr = no_attr();
    let err = attr.scheduler(12345, 0).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    assert_eq!(attr.flags(), 0, "nothing is set by a refused call");
}

// ---- refusals ----

#[test]
fn each_missing_extension_is_refused_never_skipped() {
    if !in_scenario("each_missing_extension_is_refused_never_skipped") {
        return scenario("each_missing_extension_is_refused_never_skipped");
    }
    type Try = fn(&mut FileActions, &mut SpawnAttr) -> std::io::Result<()>;
    let cases: [(Extension, Try); 4] = [
        (Extension::AddChdir, |a, _| a.chdir(c"/")),
        (Extension::AddFchdir, |a, _| a.fchdir(0)),
        (Extension::AddClosefrom, |a, _| a.closefrom(3)),
        (Extension::SetSid, |_, s| s.setsid()),
    ];
    for (ext, try_it) in cases {
        let (mut actions, mut attr) = (FileActions::new().unwrap(), no_attr());
        popen::testing::simulate_missing_extension(ext, true);
        assert!(!ext.is_available());
        let err = try_it(&mut actions, &mut attr).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::Unsupported, "{ext:?}");
        assert_eq!(
            err.to_string(),
            format!("{} is not supported here by the C library", ext.name())
        );
        assert!(
            actions.actions().is_empty() && attr.flags() == 0,
            "{ext:?}: nothing recorded"
        );
        popen::testing::simulate_missing_extension(ext, false);
        assert!(ext.is_available(), "{ext:?} is there on this test machine");
        try_it(&mut actions, &mut attr).unwrap();
    }

    // The engine's posix_spawn path refuses options that would need a missing extension: forced
    // onto it, a spawn fails before anything exists, naming the missing function.
    popen::testing::simulate_missing_extension(Extension::AddChdir, true);
    let mut cmd = Command::new("true");
    cmd.cwd("/").spawn_path(SpawnPath::PosixSpawn);
    assert_eq!(
        cmd.choose_path().impossible(),
        Some("the C library has no posix_spawn_file_actions_addchdir_np")
    );
    let err = cmd.spawn().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::Unsupported);
    popen::testing::simulate_missing_extension(Extension::AddChdir, false);
    assert_eq!(cmd.choose_path().impossible(), None);
    cmd.spawn().unwrap().wait().unwrap();
}

// ---- spawnp and exec failures ----

#[test]
fn spawnp_searches_this_process_path_and_spawn_does_not() {
    if !in_scenario("spawnp_searches_this_process_path_and_spawn_does_not") {
        return scenario("spawnp_searches_this_process_path_and_spawn_does_not");
    }
    let dir = tempdir("path");
    write_program(
        &dir.join("popen-ps-prog"),
        "#!/bin/sh\necho found \"$0\"\n",
        0o755,
    );
    let old = std::env::var_os("PATH").unwrap_or_default();
    let mut path = dir.clone().into_os_string();
    path.push(":");
    path.push(&old);
    std::env::set_var("PATH", &path);

    let out = output(&["popen-ps-prog"], |_| {});
    assert_eq!(
        out,
        format!("found {}\n", dir.join("popen-ps-prog").display())
    );

    // The PATH of the child's environment is not the one searched.
    let (actions, attr) = (FileActions::new().unwrap(), no_attr());
    let child = popen::Popen::posix_spawnp(
        "popen-ps-prog",
        &["p"],
        Some(&["PATH=/nowhere"][..]),
        &actions,
        &attr,
    )
    .unwrap();
    assert!(child.wait().unwrap().success());

    // No search without the p, nor for a name with a slash.
    for err in [
        popen::Popen::posix_spawn("popen-ps-prog", &["p"], None, &actions, &attr).unwrap_err(),
        popen::Popen::posix_spawnp("./popen-ps-prog", &["p"], None, &actions, &attr).unwrap_err(),
    ] {
        assert_eq!(
            (err.step(), err.raw_os_error()),
            (Step::Exec, Some(libc::ENOENT))
        );
    }
    std::env::set_var("PATH", "/nowhere");
    let err = popen::Popen::posix_spawnp("sh", &["sh"], None, &actions, &attr).unwrap_err();
    assert_eq!(
        (err.step(), err.raw_os_error()),
        (Step::Exec, Some(libc::ENOENT))
    );
    assert_eq!(err.path(), Some(Path::new("sh")));
}

#[test]
fn exec_failures_name_the_step_the_errno_and_the_program() {
    let dir = tempdir("exec");
    write_program(&dir.join("not-executable"), "#!/bin/sh\n", 0o644);
    write_program(&dir.join("bad-format"), "\x7fELF garbage\0\0\0\0", 0o755);
    write_program(
        &dir.join("bad-interpreter"),
        "#!/no/such/interpreter\n",
        0o755,
    );
    let cases = [
        (PathBuf::from("/no/such/program"), libc::ENOENT),
        (dir.clone(), libc::EACCES),
        (dir.join("not-executable"), libc::EACCES),
        (dir.join("bad-format"), libc::ENOEXEC),
        (dir.join("bad-interpreter"), libc::ENOENT),
    ];
    let (actions, attr) = (FileActions::new().unwrap(), no_attr());
    for (program, errno) in cases {
        let err = popen::Popen::posix_spawn(&program, &["x"], None, &actions, &attr).unwrap_err();
        assert_eq!(
            (err.step(), err.raw_os_error()),
            (Step::Exec, Some(errno)),
            "{program:?}"
        );
        assert_eq!(err.path(), Some(program.as_path()));
    }
    let err =
        popen::Popen::posix_spawn("/no/such/program", &["x"], None, &actions, &attr).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"could not exec "/no/such/program": No such file or directory (os error 2)"#
    );
    let err = popen::Popen::posix_spawnp("surely-no-such-program", &["x"], None, &actions, &attr)
        .unwrap_err();
    assert_eq!(err.step(), Step::Exec);
    assert!(matches!(
        err.raw_os_error(),
        Some(libc::ENOENT | libc::EACCES)
    ));
}

#[test]
fn nul_bytes_and_an_empty_argv_are_refused_before_spawning() {
    let (actions, attr) = (FileActions::new().unwrap(), no_attr());
    let empty: [&str; 0] = [];
    for err in [
        popen::Popen::posix_spawn("/bin/true", &empty, None, &actions, &attr).unwrap_err(),
        popen::Popen::posix_spawn("/bin/tr\0ue", &["true"], None, &actions, &attr).unwrap_err(),
        popen::Popen::posix_spawn("/bin/true", &["tr\0ue"], None, &actions, &attr).unwrap_err(),
        popen::Popen::posix_spawn("/bin/true", &["true"], Some(&["A=\0"][..]), &actions, &attr)
            .unwrap_err(),
    ] {
        assert_eq!(
            (err.step(), err.kind()),
            (Step::Prepare, std::io::ErrorKind::InvalidInput)
        );
    }
}

// ---- the handle ----

#[test]
fn env_none_inherits_and_some_replaces() {
    if !in_scenario("env_none_inherits_and_some_replaces") {
        return scenario("env_none_inherits_and_some_replaces");
    }
    std::env::set_var("POPEN_PS_INHERITED", "yes");
    let (actions, attr) = (FileActions::new().unwrap(), no_attr());
    let script = "test \"$POPEN_PS_INHERITED-$X\" = \"$EXPECT\"";
    let child = popen::Popen::posix_spawn(
        "/bin/sh",
        &["sh", "-c", script],
        Some(&["X=1", "EXPECT=-1"][..]),
        &actions,
        &attr,
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
    let script = "test \"$POPEN_PS_INHERITED\" = yes";
    let child =
        popen::Popen::posix_spawn("/bin/sh", &["sh", "-c", script], None, &actions, &attr).unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn the_handle_waits_signals_and_knows_its_origin() {
    let (actions, attr) = (FileActions::new().unwrap(), no_attr());
    let child =
        popen::Popen::posix_spawnp("sleep", &["sleep", "30"], None, &actions, &attr).unwrap();
    assert_eq!(child.spawn_path(), SpawnPath::PosixSpawn);
    assert_eq!(child.args(), ["sleep", "30"]);
    assert_eq!(child.process_group(), None);
    assert!(child.pidfd().is_some(), "a pidfd, as from Command::spawn");
    assert_eq!(child.wait_timeout(Duration::from_millis(50)).unwrap(), None);
    child.send_signal(libc::SIGTERM).unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGTERM));
    // Signalling a reaped child does nothing.
    child.kill().unwrap();
}

#[test]
fn the_wrappers_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<FileActions>();
    assert_send_sync::<SpawnAttr>();
}

#[test]
fn audit_hooks_see_posix_spawn_layer_spawns() {
    // Runs alone in a fresh process: audit hooks are process-wide.
    const NAME: &str = "audit_hooks_see_posix_spawn_layer_spawns";
    if !common::in_scenario(NAME) {
        let status = common::run_scenario(NAME, |_| {});
        assert!(status.success(), "{status}");
        return;
    }
    popen::add_audit_hook(|event| {
        assert_eq!(event.cwd(), Some(std::ffi::OsStr::new("/")));
        if event.args().get(1).is_some_and(|a| a == "refuse-me") {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "no",
            ));
        }
        Ok(())
    });
    let mut actions = popen::posix_spawn::FileActions::new().unwrap();
    actions.chdir(c"/").unwrap();
    let attr = popen::posix_spawn::SpawnAttr::new().unwrap();
    let child =
        popen::Popen::posix_spawn("/bin/true", &["true", "fine"], None, &actions, &attr).unwrap();
    assert!(child.wait().unwrap().success());
    let err = popen::Popen::posix_spawn("/bin/true", &["true", "refuse-me"], None, &actions, &attr)
        .unwrap_err();
    assert_eq!(err.step(), popen::Step::Audit);
    std::process::exit(0);
}
