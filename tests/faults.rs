//! Faults injected around a spawn: no descriptor left (`EMFILE`), no process left for the user
//! (`EAGAIN` from `RLIMIT_NPROC`), the parent's standard streams closed, the spawning thread
//! exiting while its child runs, and a long run of concurrent spawns. Each ends in a typed error
//! or the documented behaviour, with nothing leaked: no descriptor, no child, no zombie.
//!
//! The tests that change process-wide state (a resource limit, the uid, closed fds 0–2) or count
//! every descriptor and child of the process run again alone in a fresh copy of this test binary
//! (see `common::run_scenario`).

mod common;

use common::{children, in_scenario, open_fds, run_scenario, scenario_passed, zombie_children};
use popen::{Command, Popen, SpawnError, SpawnPath, Stdio, Step};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

/// True in the scenario copy of this binary started for `name`; elsewhere starts that copy,
/// asserts that it passed, and returns false.
fn scenario(name: &str) -> bool {
    if in_scenario(name) {
        return true;
    }
    let status = run_scenario(name, |_| {});
    assert!(status.success(), "scenario {name}: {status}");
    false
}

/// Sets the soft limit of `resource`, and its hard limit when given.
fn set_limit(resource: libc::__rlimit_resource_t, soft: u64, hard: Option<u64>) {
    let mut lim = libc::rlimit64 {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit64/setrlimit64 only read and write `lim`; this is a scenario process.
    unsafe {
        assert_eq!(libc::getrlimit64(resource, &mut lim), 0);
        lim.rlim_cur = soft;
        lim.rlim_max = hard.unwrap_or(lim.rlim_max);
        assert_eq!(
            libc::setrlimit64(resource, &lim),
            0,
            "{}",
            std::io::Error::last_os_error()
        );
    }
}

/// Asserts that no child of this process exists, running or zombie.
fn assert_no_child(what: &str) {
    let left = children();
    assert!(left.is_empty(), "{what}: children left: {left:?}");
}

// --- EMFILE --------------------------------------------------------------------------------

/// The descriptor limit of the `EMFILE` scenario: small, so the table fills fast.
const FD_LIMIT: u64 = 64;

/// Fills every free descriptor number below the limit with a copy of the null device and
/// returns the copies, lowest number first.
fn fill_fd_table() -> Vec<OwnedFd> {
    let null = std::fs::File::open("/dev/null").expect("open /dev/null");
    let mut held = Vec::new();
    loop {
        // SAFETY: F_DUPFD_CLOEXEC on a live descriptor; a new one is owned by `held` alone.
        let fd = unsafe { libc::fcntl(null.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
        if fd == -1 {
            let err = std::io::Error::last_os_error();
            assert_eq!(err.raw_os_error(), Some(libc::EMFILE), "{err}");
            break;
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        held.push(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    held.push(null.into());
    held.sort_by_key(|fd| fd.as_raw_fd());
    held
}

/// Asserts that `err` is the typed `EMFILE` failure of one of `steps`.
fn assert_emfile(err: &SpawnError, steps: &[Step], what: &str) {
    assert!(
        steps.contains(&err.step()),
        "{what}: step {:?} ({err})",
        err.step()
    );
    assert_eq!(err.raw_os_error(), Some(libc::EMFILE), "{what}: {err}");
    assert_eq!(
        err.kind(),
        std::io::Error::from_raw_os_error(libc::EMFILE).kind(),
        "{what}"
    );
}

/// Feeds `input` to a child with every stream piped and returns (stdout, stderr), after a
/// successful wait.
fn talk(mut child: Popen, input: &[u8]) -> (String, String) {
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input).expect("write stdin");
    }
    let out = common::read_all(&mut child);
    let err = common::read_stderr(&mut child);
    assert!(child.wait().expect("wait").success());
    (out, err)
}

/// With a full descriptor table, a spawn fails at the step that needed a descriptor, with
/// `EMFILE`, on every path: with no descriptor free, with enough for some of its pipes but not
/// all, with the pipes made but not the fork path's error pipe, and with a pipe made on fds 0
/// and 1 whose child end cannot be moved out of the way. Each failure closes whatever the spawn
/// had made and leaves no child; with enough descriptors free, the same spawn works, the table
/// still full around it.
#[test]
fn emfile_at_spawn_is_a_typed_error_and_leaks_nothing() {
    if !scenario("emfile_at_spawn_is_a_typed_error_and_leaks_nothing") {
        return;
    }
    set_limit(libc::RLIMIT_NOFILE, FD_LIMIT, None);
    let baseline = open_fds();
    // Three pipes, made before anything path-specific: no path can do with fewer descriptors.
    const PIPES: usize = 6;
    const ENOUGH: usize = PIPES + 6;
    for path in SpawnPath::ALL {
        let mut first_ok = None;
        for free in 0..=ENOUGH {
            let what = format!("{path}, {free} descriptors free");
            let mut held = fill_fd_table();
            held.truncate(held.len() - free);
            let spawned = Command::shell("read -r x; echo \"$x\"; echo err >&2")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn_path(path)
                .spawn();
            match spawned {
                Err(err) => {
                    assert_eq!(first_ok, None, "{what}: failed after a success: {err}");
                    let steps: &[Step] = if free < PIPES {
                        &[Step::Pipe]
                    } else {
                        // Past the standard streams' pipes: the fork path's error pipe, or a
                        // descriptor made with the child (a pidfd).
                        &[Step::Pipe, Step::Spawn]
                    };
                    assert_emfile(&err, steps, &what);
                }
                Ok(child) => {
                    first_ok.get_or_insert(free);
                    // Reading and waiting need no new descriptor: the table stays full.
                    let got = talk(child, b"in\n");
                    assert_eq!(got, ("in\n".into(), "err\n".into()), "{what}");
                }
            }
            drop(held);
            assert_eq!(open_fds(), baseline, "{what}");
            assert_no_child(&what);
        }
        let first_ok = first_ok.unwrap_or_else(|| panic!("{path}: no spawn with {ENOUGH} free"));
        println!("{path}: the first spawn to succeed had {first_ok} descriptors free");
    }

    // The null device is a descriptor too.
    for path in SpawnPath::ALL {
        let held = fill_fd_table();
        let err = Command::new("true")
            .stdout(Stdio::null())
            .spawn_path(path)
            .spawn()
            .expect_err("no descriptor for /dev/null");
        assert_emfile(&err, &[Step::Pipe], &format!("{path}, null device"));
        drop(held);
        assert_eq!(open_fds(), baseline, "{path}, null device");
        assert_no_child(&format!("{path}, null device"));
    }

    // Only fds 0 and 1 free: a pipe for the child's stderr is made there, and its write end
    // (the child's side) sits on fd 1, which the child's stdout would take: it must be moved
    // above 2, and there is no room for that.
    // SAFETY: this scenario process's own standard streams; fd 2 stays open for panics.
    unsafe {
        libc::close(0);
        libc::close(1);
    }
    let baseline = open_fds();
    for path in SpawnPath::ALL {
        for extra in [0, ENOUGH] {
            let what = format!("{path}, fds 0 and 1 free, {extra} more");
            let mut held = fill_fd_table();
            // The two lowest are 0 and 1; then drop `extra` of the highest.
            held.drain(..2);
            held.truncate(held.len() - extra);
            let spawned = Command::shell("echo err >&2")
                .stderr(Stdio::piped())
                .spawn_path(path)
                .spawn();
            match (extra, spawned) {
                (0, Err(err)) => assert_emfile(&err, &[Step::Pipe], &what),
                (0, Ok(_)) => panic!("{what}: spawned with no room to move the child's end"),
                (_, Err(err)) => panic!("{what}: {err}"),
                (_, Ok(mut child)) => {
                    let err = common::read_stderr(&mut child);
                    assert!(child.wait().unwrap().success(), "{what}");
                    assert_eq!(err, "err\n", "{what}");
                }
            }
            drop(held);
            assert_eq!(open_fds(), baseline, "{what}");
            assert_no_child(&what);
        }
    }
    scenario_passed();
}

// --- EAGAIN from RLIMIT_NPROC --------------------------------------------------------------

/// An unprivileged uid (and gid) that no other process on the machine runs as, so that every
/// task counted against its `RLIMIT_NPROC` is a thread of the scenario process.
const UNPRIVILEGED_ID: u32 = 64_321;

/// The tasks (threads) whose real uid is `uid`: what the kernel counts against `RLIMIT_NPROC`.
fn tasks_of_user(uid: u32) -> u64 {
    let real_uid = |status: &str| -> Option<u32> {
        let line = status.lines().find(|l| l.starts_with("Uid:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    let mut count = 0;
    for proc_entry in std::fs::read_dir("/proc").unwrap().flatten() {
        // Only the pid directories: /proc/self would count this process twice.
        let is_pid = proc_entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
        let Ok(tasks) = std::fs::read_dir(proc_entry.path().join("task")) else {
            continue;
        };
        if !is_pid {
            continue;
        }
        for task in tasks.flatten() {
            let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
            if real_uid(&status) == Some(uid) {
                count += 1;
            }
        }
    }
    count
}

/// An unprivileged user at its process limit cannot start a child: every path fails with a
/// typed [`Step::Spawn`] error carrying `EAGAIN` (`WouldBlock`), closes the pipes it had made
/// and leaves no child. One process more under the limit, the same spawn works.
#[test]
fn eagain_from_rlimit_nproc_is_a_typed_spawn_error() {
    const NAME: &str = "eagain_from_rlimit_nproc_is_a_typed_spawn_error";
    if !in_scenario(NAME) {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            println!("skipped: dropping to an unprivileged user needs root");
            return;
        }
        scenario(NAME);
        return;
    }
    // Drop every privilege, for the whole process (glibc applies set*id to every thread):
    // RLIMIT_NPROC does not bind a process with CAP_SYS_RESOURCE or CAP_SYS_ADMIN.
    // SAFETY: this scenario process changes its own credentials; nothing else depends on them.
    unsafe {
        assert_eq!(libc::setgroups(0, std::ptr::null()), 0);
        assert_eq!(libc::setgid(UNPRIVILEGED_ID), 0);
        assert_eq!(libc::setuid(UNPRIVILEGED_ID), 0);
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    assert!(
        status.contains("CapEff:\t0000000000000000"),
        "still privileged:\n{status}"
    );
    let baseline = open_fds();
    let tasks = tasks_of_user(UNPRIVILEGED_ID);
    assert!(tasks >= 1);
    // At the limit: the kernel refuses the next task.
    set_limit(libc::RLIMIT_NPROC, tasks, Some(tasks + 16));
    for path in SpawnPath::ALL {
        let err = Command::new("true")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn_path(path)
            .spawn()
            .expect_err("spawned above RLIMIT_NPROC");
        assert_eq!(
            (err.step(), err.kind(), err.raw_os_error()),
            (Step::Spawn, ErrorKind::WouldBlock, Some(libc::EAGAIN)),
            "{path}: {err}"
        );
        assert_eq!(open_fds(), baseline, "{path}");
        assert_no_child(&path.to_string());
    }
    // Room for one more: the limit was the only obstacle.
    set_limit(libc::RLIMIT_NPROC, tasks + 1, None);
    for path in SpawnPath::ALL {
        let mut child = Command::new("echo")
            .arg("ok")
            .stdout(Stdio::piped())
            .spawn_path(path)
            .spawn()
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(common::read_all(&mut child), "ok\n", "{path}");
        assert!(child.wait().unwrap().success(), "{path}");
    }
    assert_eq!(open_fds(), baseline);
    assert_no_child("after the spawns under the limit");
    scenario_passed();
}

// --- fds 0, 1, 2 closed in the parent ------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Redirect {
    Piped,
    Null,
    Inherit,
}

impl Redirect {
    const ALL: [Redirect; 3] = [Redirect::Piped, Redirect::Null, Redirect::Inherit];

    fn stdio(self) -> Stdio {
        match self {
            Redirect::Piped => Stdio::piped(),
            Redirect::Null => Stdio::null(),
            Redirect::Inherit => Stdio::inherit(),
        }
    }
}

/// What `/proc/PID/fd/N` links to (`pipe:[INODE]`, `/dev/null`), or "closed".
fn fd_link(pid: i32, fd: RawFd) -> String {
    match std::fs::read_link(format!("/proc/{pid}/fd/{fd}")) {
        Ok(target) => target.to_string_lossy().into_owned(),
        Err(e) if e.kind() == ErrorKind::NotFound => "closed".into(),
        Err(e) => panic!("readlink /proc/{pid}/fd/{fd}: {e}"),
    }
}

/// The link a child descriptor on the other end of the parent's pipe end `fd` shows.
fn pipe_link(fd: RawFd) -> String {
    let ino = std::fs::metadata(format!("/proc/self/fd/{fd}"))
        .expect("stat our pipe end")
        .ino();
    format!("pipe:[{ino}]")
}

/// With the parent's fds 0, 1 and 2 closed, every combination of piped, null and inherited
/// streams gives the child exactly the streams asked for, on every path: a pipe or the null
/// device made for it (which the parent gets on the free numbers 0–2) reaches the right
/// descriptor, and an inherited stream stays closed, as it is in the parent, even when this
/// spawn's own descriptors sit on its number (they are close-on-exec). Data flows through the
/// pipes; nothing is left open or running.
#[test]
fn closed_standard_streams_in_the_parent_give_the_child_the_asked_streams() {
    if !scenario("closed_standard_streams_in_the_parent_give_the_child_the_asked_streams") {
        return;
    }
    // Panic messages go to a copy of stderr above 2.
    // SAFETY: F_DUPFD_CLOEXEC on our open stderr; the copy is owned by the File alone.
    let diag = unsafe { std::fs::File::from_raw_fd(libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 3)) };
    std::panic::set_hook(Box::new(move |info| {
        let _ = writeln!(&diag, "{info}");
    }));
    // SAFETY: this scenario process's own standard streams.
    unsafe {
        libc::close(0);
        libc::close(1);
        libc::close(2);
    }
    let baseline = open_fds();
    for path in SpawnPath::ALL {
        for stdin in Redirect::ALL {
            for stdout in Redirect::ALL {
                for stderr in Redirect::ALL {
                    let what = format!("{path}: stdin {stdin:?}, stdout {stdout:?}, {stderr:?}");
                    check_streams(path, [stdin, stdout, stderr], &what);
                    check_data(path, [stdin, stdout, stderr], &what);
                    assert_eq!(open_fds(), baseline, "{what}");
                    assert_no_child(&what);
                }
            }
        }
    }
    scenario_passed();
}

/// "Same as stdout" with stdout inherited means the parent's fd 1 as the spawn finds it. With
/// that descriptor closed, a pipe made for the same spawn can land on its number; the child's
/// stderr must not become that pipe (the write end of its own stdin, here): the spawn is
/// refused with a typed `Dup2`/`EBADF` error, on every path, and likewise for "stdout same as
/// stderr". With fd 1 open, the child's stderr is that file, whatever the spawn makes.
#[test]
fn same_as_a_closed_inherited_stream_is_refused_not_misdirected() {
    if !scenario("same_as_a_closed_inherited_stream_is_refused_not_misdirected") {
        return;
    }
    // SAFETY: F_DUPFD_CLOEXEC on our open stderr; the copy is owned by the File alone.
    let diag = unsafe { std::fs::File::from_raw_fd(libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 3)) };
    std::panic::set_hook(Box::new(move |info| {
        let _ = writeln!(&diag, "{info}");
    }));
    // For the last part, made while fds 0–2 are still open.
    let (mut read_end, write_end) = std::io::pipe().unwrap();
    // SAFETY: this scenario process's own standard streams.
    unsafe {
        libc::close(0);
        libc::close(1);
        libc::close(2);
    }
    let baseline = open_fds();
    for path in SpawnPath::ALL {
        for (stdout, stderr) in [
            (Stdio::inherit(), Stdio::same_as_stdout()),
            (Stdio::same_as_stderr(), Stdio::inherit()),
        ] {
            let what = format!("{path}: {stdout:?}, {stderr:?}");
            let spawned = Command::shell("echo err >&2; echo out")
                .stdin(Stdio::piped())
                .stdout(stdout)
                .stderr(stderr)
                .spawn_path(path)
                .spawn();
            let err = match spawned {
                Err(err) => err,
                Ok(mut child) => {
                    drop(child.stdin.take());
                    child.wait().unwrap();
                    panic!("{what}: spawned, its stream made of this spawn's own pipe");
                }
            };
            assert_eq!(
                (err.step(), err.raw_os_error()),
                (Step::Dup2, Some(libc::EBADF)),
                "{what}: {err}"
            );
            assert_eq!(open_fds(), baseline, "{what}");
            assert_no_child(&what);
        }
    }
    // Fd 1 open on a pipe of ours (fd 0 and 2 still closed): stderr goes there.
    // SAFETY: puts our pipe's write end on the closed fd 1.
    unsafe {
        assert_eq!(libc::dup2(write_end.as_raw_fd(), 1), 1);
    }
    drop(write_end);
    for path in SpawnPath::ALL {
        let mut child = Command::shell("echo err >&2")
            .stdin(Stdio::piped())
            .stderr(Stdio::same_as_stdout())
            .spawn_path(path)
            .spawn()
            .unwrap();
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success(), "{path}");
    }
    // SAFETY: closes our fd 1, the last write end of the pipe.
    unsafe { libc::close(1) };
    let mut got = String::new();
    read_end.read_to_string(&mut got).unwrap();
    assert_eq!(got, "err\n".repeat(3));
    scenario_passed();
}

/// Checks which file each of the exec'd child's fds 0–2 is.
fn check_streams(path: SpawnPath, redirects: [Redirect; 3], what: &str) {
    let [stdin, stdout, stderr] = redirects;
    let child = Command::new("sleep")
        .arg("30")
        .stdin(stdin.stdio())
        .stdout(stdout.stdio())
        .stderr(stderr.stdio())
        .spawn_path(path)
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let parent_ends = [
        child.stdin.as_ref().map(|p| p.as_raw_fd()),
        child.stdout.as_ref().map(|p| p.as_raw_fd()),
        child.stderr.as_ref().map(|p| p.as_raw_fd()),
    ];
    let expected: Vec<String> = redirects
        .iter()
        .zip(parent_ends)
        .map(|(redirect, parent_end)| match redirect {
            Redirect::Piped => pipe_link(parent_end.expect("a piped stream has a parent end")),
            Redirect::Null => "/dev/null".into(),
            Redirect::Inherit => "closed".into(),
        })
        .collect();
    // Fds 0–2, then every other descriptor: none, since close_fds closed every descriptor
    // made for the spawn.
    let pid = child.pid();
    let actual = || -> (Vec<String>, Vec<String>) {
        let others = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<RawFd>().ok())
            .filter(|&fd| fd > 2)
            .map(|fd| format!("{fd} -> {}", fd_link(pid, fd)))
            .collect();
        ((0..3).map(|fd| fd_link(pid, fd)).collect(), others)
    };
    // The spawn returned after the exec, but the program's start-up (the dynamic loader,
    // locale files) opens and closes files for a moment, on the lowest free numbers: wait
    // until `sleep` sleeps (its system call is `clock_nanosleep`), when start-up is over. A
    // descriptor wrongly placed or leaked by the spawn would stay.
    let sleeping = format!("{} ", libc::SYS_clock_nanosleep);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(format!("/proc/{pid}/syscall"))
        .is_ok_and(|s| s.starts_with(&sleeping))
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(actual(), (expected, Vec::new()), "{what}: fds 0–2, others");
    child.kill().unwrap();
    assert_eq!(
        child.wait_shared().unwrap().signal(),
        Some(libc::SIGKILL),
        "{what}"
    );
}

/// Checks that data goes through the piped streams.
fn check_data(path: SpawnPath, redirects: [Redirect; 3], what: &str) {
    let [stdin, stdout, stderr] = redirects;
    // Each stream is used only if open: writing to a closed one would make the shell complain
    // on stderr.
    let script = "x=; if [ -e /proc/$$/fd/0 ]; then read -r x; fi
        if [ -e /proc/$$/fd/1 ]; then echo \"out:$x\"; fi
        if [ -e /proc/$$/fd/2 ]; then echo \"err:$x\" >&2; fi
        exit 0";
    let mut child = Command::shell(script)
        .stdin(stdin.stdio())
        .stdout(stdout.stdio())
        .stderr(stderr.stdio())
        .spawn_path(path)
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let x = match stdin {
        Redirect::Piped => {
            child.stdin.take().unwrap().write_all(b"in\n").unwrap();
            "in"
        }
        _ => "",
    };
    let read = |pipe: Option<&mut dyn Read>| {
        let mut s = String::new();
        pipe.map(|p| p.read_to_string(&mut s).unwrap());
        s
    };
    let out = read(child.stdout.as_mut().map(|p| p as &mut dyn Read));
    let err = read(child.stderr.as_mut().map(|p| p as &mut dyn Read));
    assert!(child.wait().unwrap().success(), "{what}");
    let expect = |r: Redirect, tag: &str| match r {
        Redirect::Piped => format!("{tag}:{x}\n"),
        _ => String::new(),
    };
    assert_eq!(
        (out, err),
        (expect(stdout, "out"), expect(stderr, "err")),
        "{what}"
    );
}

// --- the spawning thread exits -------------------------------------------------------------

/// `parent_death_signal` is tied to the thread that spawned, not to the process (Linux sends it
/// when the child's parent *thread* exits): a child spawned from a thread that then ends gets
/// the signal while the process lives on, on the vfork and fork paths; spawned from a thread
/// that stays, it runs on. The child stays this process's child: its handle waits for it, and
/// one dropped in the spawning thread is collected by the reaper. The posix_spawn path cannot
/// set the signal and refuses the command.
#[test]
fn parent_death_signal_fires_when_the_spawning_thread_exits() {
    let command = |path| {
        let mut cmd = Command::new("sleep");
        cmd.arg("30")
            .parent_death_signal(libc::SIGTERM)
            .spawn_path(path);
        cmd
    };
    let err = command(SpawnPath::PosixSpawn).spawn().unwrap_err();
    assert_eq!(
        (err.step(), err.kind()),
        (Step::Prepare, ErrorKind::Unsupported),
        "{err}"
    );
    for path in [SpawnPath::CloneVfork, SpawnPath::Fork] {
        let spawn = move || command(path).spawn().unwrap();
        // From a thread that ends right after the spawn.
        let child = std::thread::spawn(spawn).join().unwrap();
        let status = child
            .wait_timeout(Duration::from_secs(20))
            .unwrap()
            .unwrap_or_else(|| panic!("{path}: no signal 20 s after the spawning thread ended"));
        assert_eq!(status.signal(), Some(libc::SIGTERM), "{path}: {status}");

        // Dropped in the spawning thread, then the thread ends: the reaper collects it.
        let pid = std::thread::spawn(move || spawn().pid()).join().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let gone = || !std::path::Path::new(&format!("/proc/{pid}")).exists();
        while !gone() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            gone(),
            "{path}: dropped child {pid} neither signalled nor reaped"
        );

        // From a thread that is still alive: no signal.
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let (child_tx, child_rx) = std::sync::mpsc::channel();
        let spawner = std::thread::spawn(move || {
            child_tx.send(spawn()).unwrap();
            let _ = done_rx.recv();
        });
        let child = child_rx.recv().unwrap();
        assert_eq!(
            child.wait_timeout(Duration::from_millis(300)).unwrap(),
            None,
            "{path}: signalled while the spawning thread lives"
        );
        child.kill().unwrap();
        assert_eq!(
            child.wait_shared().unwrap().signal(),
            Some(libc::SIGKILL),
            "{path}"
        );
        done_tx.send(()).unwrap();
        spawner.join().unwrap();
    }
}

// --- soak ----------------------------------------------------------------------------------

/// Spawns from 4 threads — each spawn `/bin/true` with its stdout piped, read to the end and
/// waited for, one in five dropped unwaited right after the spawn — cycling through every spawn
/// path; afterwards, once the reaper has collected the dropped children (a bounded wait), the
/// descriptor table is exactly what it was before and no child of ours is a zombie.
///
/// The number of spawns comes from `POPEN_SOAK_SPAWNS` (default 2,000, a few seconds in a debug
/// build). The full soak, 100,000 spawns in a release build:
///
/// ```text
/// POPEN_SOAK_SPAWNS=100000 cargo test --release --test faults soak
/// ```
#[test]
fn soak_spawns_from_four_threads_leave_no_descriptor_and_no_zombie() {
    const NAME: &str = "soak_spawns_from_four_threads_leave_no_descriptor_and_no_zombie";
    if !scenario(NAME) {
        return;
    }
    const THREADS: usize = 4;
    let total: usize = match std::env::var("POPEN_SOAK_SPAWNS") {
        Ok(n) => n.parse().expect("POPEN_SOAK_SPAWNS: a number"),
        Err(_) => 2_000,
    };
    let settle = || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while (popen::testing::pending_orphans() > 0 || !zombie_children().is_empty())
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    // The reaper's own descriptors are made once, on the first dropped running child: make
    // them before the baseline.
    drop(Command::new("sleep").arg("0.05").spawn().unwrap());
    settle();
    let baseline = open_fds();
    let start = Instant::now();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..total / THREADS {
                    let mut child = Command::new("/bin/true")
                        .stdout(Stdio::piped())
                        .spawn_path(SpawnPath::ALL[(t + i) % 3])
                        .spawn()
                        .unwrap_or_else(|e| panic!("thread {t}, spawn {i}: {e}"));
                    if i % 5 == 4 {
                        drop(child); // left to the reaper, maybe still running
                        continue;
                    }
                    assert_eq!(common::read_all(&mut child), "");
                    assert!(child.wait().unwrap().success());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let elapsed = start.elapsed();
    settle();
    println!(
        "soak: {} spawns from {THREADS} threads in {:.2} s",
        total / THREADS * THREADS,
        elapsed.as_secs_f64()
    );
    assert_eq!(
        popen::testing::pending_orphans(),
        0,
        "dropped children never reaped"
    );
    assert_eq!(zombie_children(), Vec::<i32>::new());
    assert_eq!(open_fds(), baseline);
    scenario_passed();
}

/// Makes `close_range` and `unshare` fail with EPERM in this thread and the children it makes
/// from now on, as an older container sandbox does (a seccomp filter that knows neither).
fn refuse_close_range_and_unshare() {
    #[cfg(target_arch = "x86_64")]
    const AUDIT_ARCH: u32 = 0xc000_003e;
    #[cfg(target_arch = "aarch64")]
    const AUDIT_ARCH: u32 = 0xc000_00b7;
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let stmt = |code: u16, k: u32| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: JEQ_K,
        jt,
        jf,
        k,
    };
    let filter = [
        // seccomp_data: nr at offset 0, arch at 4.
        stmt(LD_W_ABS, 4),
        jump(AUDIT_ARCH, 0, 4),
        stmt(LD_W_ABS, 0),
        jump(libc::SYS_close_range as u32, 2, 0),
        jump(libc::SYS_unshare as u32, 1, 0),
        stmt(RET_K, libc::SECCOMP_RET_ALLOW),
        stmt(RET_K, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: prctl reads the filter program, alive for the call; the filter only makes two
    // system calls fail, in this scenario process's thread and its children.
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        assert_eq!(
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const libc::sock_fprog
            ),
            0,
            "{}",
            std::io::Error::last_os_error()
        );
    }
}

#[test]
fn a_sandbox_refusing_close_range_and_unshare_still_spawns_on_every_path() {
    if !scenario("a_sandbox_refusing_close_range_and_unshare_still_spawns_on_every_path") {
        return;
    }
    refuse_close_range_and_unshare();
    // SAFETY: unshare only fails here, by the filter.
    assert_eq!(unsafe { libc::unshare(libc::CLONE_FILES) }, -1);
    let (_r, w) = std::io::pipe().unwrap();
    let inheritable = OwnedFd::from(w);
    // SAFETY: clears close-on-exec on a descriptor this scenario process owns.
    assert_ne!(
        unsafe { libc::fcntl(inheritable.as_raw_fd(), libc::F_SETFD, 0) },
        -1
    );
    let probe = format!(
        "test -e /dev/fd/{} && echo leaked; read x; echo \"$x\"",
        inheritable.as_raw_fd()
    );
    for path in SpawnPath::ALL {
        // Several times: the first vfork-style child is made differently from the next ones.
        for round in 0..3 {
            let child = Command::shell(&probe)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn_path(path)
                .spawn()
                .unwrap_or_else(|e| panic!("{path} round {round}: {e}"));
            let (out, err) = talk(child, b"fed\n");
            assert_eq!(
                (out.as_str(), err.as_str()),
                ("fed\n", ""),
                "{path} round {round}"
            );
        }
    }
    scenario_passed();
}
