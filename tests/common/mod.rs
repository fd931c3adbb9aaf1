//! Helpers shared by the integration tests.
#![allow(dead_code)]

use popen::{Command, ExitStatus, Popen, SpawnPath, Stdio};
use std::io::Read;
use std::os::fd::RawFd;

/// Runs `cmd` with stdout piped and returns (stdout, status).
pub fn output(cmd: &mut Command) -> (String, ExitStatus) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("spawn");
    let out = read_all(&mut child);
    (out, child.wait().expect("wait"))
}

pub fn read_all(child: &mut Popen) -> String {
    let mut s = String::new();
    child
        .stdout
        .take()
        .expect("stdout piped")
        .read_to_string(&mut s)
        .expect("read stdout");
    s
}

/// Everything the child writes to its piped stderr, until end of file.
pub fn read_stderr(child: &mut Popen) -> String {
    let mut s = String::new();
    child
        .stderr
        .take()
        .expect("stderr piped")
        .read_to_string(&mut s)
        .expect("read stderr");
    s
}

/// Runs `f` once per spawn path with a fresh command from `make`, forcing the path.
pub fn on_each_path(mut make: impl FnMut() -> Command, mut f: impl FnMut(SpawnPath, &mut Command)) {
    for path in SpawnPath::ALL {
        let mut cmd = make();
        cmd.spawn_path(path);
        f(path, &mut cmd);
    }
}

/// The descriptors open in this process.
pub fn open_fds() -> Vec<RawFd> {
    let mut fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    fds
}

/// One process as its `/proc/PID/stat` line describes it.
#[derive(Clone, Debug)]
pub struct ProcStat {
    pub pid: i32,
    pub comm: String,
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
    pub session: i32,
}

/// Parses a `/proc/PID/stat` line (the command name may hold spaces and parentheses).
pub fn parse_stat(stat: &str) -> Option<ProcStat> {
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let f: Vec<&str> = stat.get(close + 2..)?.split(' ').collect();
    Some(ProcStat {
        pid: stat[..open].trim().parse().ok()?,
        comm: stat[open + 1..close].to_string(),
        state: f.first()?.chars().next()?,
        ppid: f.get(1)?.parse().ok()?,
        pgrp: f.get(2)?.parse().ok()?,
        session: f.get(3)?.parse().ok()?,
    })
}

/// Every process visible in /proc.
pub fn processes() -> Vec<ProcStat> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|stat| parse_stat(&stat))
        .collect()
}

/// Children of this process that are zombies.
pub fn zombie_children() -> Vec<i32> {
    let me = std::process::id() as i32;
    processes()
        .into_iter()
        .filter(|p| p.state == 'Z' && p.ppid == me)
        .map(|p| p.pid)
        .collect()
}

/// (pid, pgrp, session) of a process, from its /proc/PID/stat line.
pub fn ids_of(stat: &str) -> (i32, i32, i32) {
    let p = parse_stat(stat).expect("a /proc/PID/stat line");
    (p.pid, p.pgrp, p.session)
}

/// Deterministic pseudo-random bytes (xorshift from `seed`), so that a misplaced or repeated
/// chunk shows.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A field ("SigBlk", "SigIgn", …) of /proc/self/status as printed by the child `grep`.
pub fn status_mask(cmd_out: &str, field: &str) -> u64 {
    let line = cmd_out
        .lines()
        .find(|l| l.starts_with(field))
        .expect("field present");
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

/// Whether this process is the fresh copy of the test binary that [`run_scenario`] started for
/// the test `name`.
pub fn in_scenario(name: &str) -> bool {
    std::env::var("POPEN_TEST_SCENARIO").as_deref() == Ok(name)
}

/// Runs the test `name` of this test binary again, alone, in a fresh single-threaded process
/// where [`in_scenario`] is true, so that it may change process-wide state (close fds 0–2,
/// change its uid, count every descriptor and zombie). `configure` may adjust the command.
///
/// The copy's output is kept out of this harness's (see [`run_captured`]) and shown only if it
/// fails.
pub fn run_scenario(name: &str, configure: impl FnOnce(&mut Command)) -> ExitStatus {
    let mut cmd = scenario_command(name);
    run_captured(name, &mut cmd, configure)
}

/// The command that [`run_scenario`] starts, for a test that wants to spawn it itself (to
/// capture its output, say). The copy runs quietly (`-q`); its own prints are not captured
/// (`--nocapture`), so that what it says before an early `exit` is not lost.
pub fn scenario_command(name: &str) -> Command {
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = Command::new(exe);
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env("POPEN_TEST_SCENARIO", name);
    cmd
}

/// Runs `cmd` (the copy of this test binary for the scenario `name`, possibly under a wrapper
/// such as valgrind) after `configure`, and waits for it. Its stdout and stderr go to one
/// unlinked temporary file instead of this harness's streams, where its lines would mix with
/// the harness's own; if it fails, they are printed (to this test's captured output) prefixed
/// with `[scenario NAME]`. A file rather than a pipe: a grandchild the scenario leaves running
/// cannot hold up the wait.
pub fn run_captured(
    name: &str,
    cmd: &mut Command,
    configure: impl FnOnce(&mut Command),
) -> ExitStatus {
    use std::io::{Seek, SeekFrom};
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "popen-scenario-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let mut log = std::fs::File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .expect("scenario log file");
    std::fs::remove_file(&path).expect("unlink scenario log file");
    // Two descriptors of one open file: one offset, so the copy's lines stay in order.
    cmd.stdout(log.try_clone().expect("dup scenario log"))
        .stderr(log.try_clone().expect("dup scenario log"));
    configure(cmd);
    let status = cmd
        .spawn()
        .expect("start scenario")
        .wait()
        .expect("wait scenario");
    if !status.success() {
        let mut out = Vec::new();
        log.seek(SeekFrom::Start(0))
            .and_then(|_| log.read_to_end(&mut out))
            .expect("read scenario log");
        for line in String::from_utf8_lossy(&out).lines() {
            eprintln!("[scenario {name}] {line}");
        }
        eprintln!("[scenario {name}] {status}");
    }
    status
}

/// Ends a scenario process successfully without returning to the test harness (whose own
/// output may go to descriptors the scenario rearranged).
pub fn scenario_passed() -> ! {
    std::process::exit(0)
}

/// Writes an executable fixture at `path` with `mode`, from a separate process.
///
/// A file this process opened for writing could be held open, for a moment, by a child that
/// another test thread is forking; exec of that file then fails with `ETXTBSY`. Writing it
/// from a `cat` child keeps the writable descriptor out of this process entirely.
pub fn write_executable(path: &std::path::Path, content: &[u8], mode: u32) {
    use std::io::Write;
    // `sh -c CMD NAME` sets `$0` to NAME.
    let mut cat = Command::shell("cat > \"$0\"")
        .arg(path)
        .stdin(Stdio::piped())
        .spawn()
        .expect("start cat");
    cat.stdin
        .take()
        .unwrap()
        .write_all(content)
        .expect("write fixture");
    assert!(cat.wait().expect("wait cat").success());
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Children of this process, running or zombie (a child of any of its threads counts).
pub fn children() -> Vec<ProcStat> {
    let me = std::process::id() as i32;
    processes().into_iter().filter(|p| p.ppid == me).collect()
}
