//! The Rust variants, one function per scenario: each does one unit of work the way a user of
//! that library would write it, and checks the result (exit status, byte count).

use std::ffi::CStr;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use popen::SpawnPath;

use crate::raw::{self, RawOpts, Spawner};

/// A Rust variant. CPython is measured by the Python worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// popen with the automatic path choice (`None`) or one forced path.
    Popen(Option<SpawnPath>),
    Std,
    Subprocess,
    Duct,
    Raw,
}

impl Variant {
    pub fn parse(name: &str) -> Option<Variant> {
        Some(match name {
            "popen-auto" => Variant::Popen(None),
            "popen-posix_spawn" => Variant::Popen(Some(SpawnPath::PosixSpawn)),
            "popen-vfork" => Variant::Popen(Some(SpawnPath::CloneVfork)),
            "popen-fork" => Variant::Popen(Some(SpawnPath::Fork)),
            "std" => Variant::Std,
            "subprocess" => Variant::Subprocess,
            "duct" => Variant::Duct,
            "raw" => Variant::Raw,
            _ => return None,
        })
    }
}

/// The spawn options of scenarios 1/3 (`Default`) and 2 (`Full`: close_fds + cwd + a new
/// session, whose child is also the leader of a new process group).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opts {
    Default,
    Full,
}

fn check_status(ok: bool, what: &str) -> io::Result<()> {
    if ok {
        Ok(())
    } else {
        Err(io::Error::other(format!("{what}: child failed")))
    }
}

fn popen_command(program: &str, path: Option<SpawnPath>) -> popen::Command {
    let mut c = popen::Command::new(program);
    if let Some(p) = path {
        c.spawn_path(p);
    }
    c
}

/// Per-loop state: what a variant may build once before its loop (only the raw ceiling does).
pub enum Prepared {
    Nothing,
    Raw(Spawner),
}

pub fn prepare_spawn(v: Variant, opts: Opts) -> io::Result<Prepared> {
    Ok(match v {
        Variant::Raw => Prepared::Raw(Spawner::new(
            c"/bin/true",
            &[],
            RawOpts {
                full: opts == Opts::Full,
                ..RawOpts::default()
            },
        )?),
        _ => Prepared::Nothing,
    })
}

/// Scenarios 1–3: one spawn of `/bin/true` and its wait. Returns the path popen took.
pub fn spawn_wait(v: Variant, opts: Opts, prep: &Prepared) -> io::Result<&'static str> {
    let full = opts == Opts::Full;
    match v {
        Variant::Popen(path) => {
            let mut c = popen_command("/bin/true", path);
            if full {
                c.cwd("/tmp").start_new_session(true);
            }
            let child = c.spawn().map_err(io::Error::other)?;
            let taken = child.spawn_path().name();
            check_status(child.wait_shared()?.success(), "popen")?;
            Ok(taken)
        }
        Variant::Std => {
            let mut c = std::process::Command::new("/bin/true");
            if full {
                use std::os::unix::process::CommandExt;
                c.current_dir("/tmp");
                // SAFETY: the hook only makes async-signal-safe system calls.
                unsafe { c.pre_exec(raw::child_session_close_fds) };
            }
            check_status(c.status()?.success(), "std")?;
            Ok(if full {
                "fork (pre_exec)"
            } else {
                "posix_spawn"
            })
        }
        Variant::Subprocess => {
            let mut e = subprocess::Exec::cmd("/bin/true");
            if full {
                use subprocess::ExecExt;
                e = e.cwd("/tmp");
                // SAFETY: the hook only makes async-signal-safe system calls.
                e = unsafe { e.pre_exec(raw::child_session_close_fds) };
            }
            check_status(e.join()?.success(), "subprocess")?;
            Ok("fork")
        }
        Variant::Duct => {
            let mut e = duct::cmd!("/bin/true");
            if full {
                e = e.dir("/tmp").before_spawn(|c| {
                    use std::os::unix::process::CommandExt;
                    // SAFETY: the hook only makes async-signal-safe system calls.
                    unsafe { c.pre_exec(raw::child_session_close_fds) };
                    Ok(())
                });
            }
            e.run()?;
            Ok(if full {
                "fork (std pre_exec)"
            } else {
                "posix_spawn (std)"
            })
        }
        Variant::Raw => match prep {
            Prepared::Raw(s) => {
                s.spawn_wait()?;
                Ok("posix_spawn")
            }
            Prepared::Nothing => unreachable!("the raw variant is prepared"),
        },
    }
}

/// What one spawn batch did.
pub struct Batch {
    pub count: u64,
    pub secs: f64,
    /// CPU time of this process (every thread, not the children) during the batch.
    pub cpu_ns: u64,
    pub path: &'static str,
}

/// Scenarios 1–3: spawn + wait in a loop from `threads` threads, each until `secs` have passed
/// and it has done at least `min_iters`.
pub fn spawn_batch(
    v: Variant,
    opts: Opts,
    threads: usize,
    secs: f64,
    min_iters: u64,
) -> io::Result<Batch> {
    let prep = prepare_spawn(v, opts)?;
    let cpu0 = raw::rusage_self().0;
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let one = |prep: &Prepared| -> io::Result<(u64, &'static str)> {
        let mut n = 0;
        let mut path = "";
        while n < min_iters || Instant::now() < deadline {
            path = spawn_wait(v, opts, prep)?;
            n += 1;
        }
        Ok((n, path))
    };
    let results: Vec<io::Result<(u64, &'static str)>> = if threads == 1 {
        vec![one(&prep)]
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads).map(|_| s.spawn(|| one(&prep))).collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("spawn thread panicked"))
                .collect()
        })
    };
    let elapsed = start.elapsed().as_secs_f64();
    let cpu_ns = raw::rusage_self().0 - cpu0;
    let mut total = 0;
    let mut path = "";
    for r in results {
        let (n, p) = r?;
        total += n;
        path = p;
    }
    Ok(Batch {
        count: total,
        secs: elapsed,
        cpu_ns,
        path,
    })
}

/// Scenario 4a: the whole stdout of `cat FILE`. Returns the bytes captured.
pub fn capture(v: Variant, file: &str) -> io::Result<usize> {
    match v {
        Variant::Popen(path) => {
            let mut c = popen_command("/bin/cat", path);
            c.arg(file);
            let done = popen::run(&mut c, &popen::RunOptions::new().capture_stdout())
                .map_err(io::Error::other)?;
            check_status(done.status.success(), "popen")?;
            Ok(done.stdout.len())
        }
        Variant::Std => {
            let out = std::process::Command::new("/bin/cat").arg(file).output()?;
            check_status(out.status.success(), "std")?;
            Ok(out.stdout.len())
        }
        Variant::Subprocess => {
            let cap = subprocess::Exec::cmd("/bin/cat")
                .arg(file)
                .stdout(subprocess::Redirection::Pipe)
                .capture()?;
            check_status(cap.exit_status.success(), "subprocess")?;
            Ok(cap.stdout.len())
        }
        Variant::Duct => Ok(duct::cmd!("/bin/cat", file)
            .stdout_capture()
            .run()?
            .stdout
            .len()),
        Variant::Raw => {
            let (r, w) = raw::pipe()?;
            raw::set_pipe_size(&r, 1 << 20)?;
            let file = std::ffi::CString::new(file).map_err(io::Error::other)?;
            let file: &'static CStr = Box::leak(file.into_boxed_c_str());
            let s = Spawner::new(
                c"/bin/cat",
                &[file],
                RawOpts {
                    stdout: Some(w.as_raw_fd()),
                    ..RawOpts::default()
                },
            )?;
            let pid = s.spawn()?;
            drop(w);
            let mut out = Vec::new();
            while raw::read_into(&r, &mut out, 1 << 20)? > 0 {}
            raw::expect_success(raw::waitpid(pid)?)?;
            Ok(out.len())
        }
    }
}

/// `Vec` bytes shared without copying, for the subprocess crate's input.
struct Shared(Arc<Vec<u8>>);

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// State kept across duplex runs: the input, and duct's expression built around it (duct
/// takes its input by value, so it is built once, not copied per run).
pub struct DuplexInput {
    data: Arc<Vec<u8>>,
    duct: duct::Expression,
}

impl DuplexInput {
    pub fn new(bytes: usize) -> DuplexInput {
        // A cheap pseudo-random pattern (xorshift), so nothing along the way can shortcut it.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut data = Vec::with_capacity(bytes);
        while data.len() < bytes {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let take = (bytes - data.len()).min(8);
            data.extend_from_slice(&x.to_le_bytes()[..take]);
        }
        let duct = duct::cmd!("/bin/cat")
            .stdin_bytes(data.clone())
            .stdout_capture();
        DuplexInput {
            data: Arc::new(data),
            duct,
        }
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }
}

/// Scenario 4b: all of `input` through `cat`, reading its stdout meanwhile. Returns the bytes
/// read back.
pub fn duplex(v: Variant, input: &DuplexInput) -> io::Result<usize> {
    let data: &[u8] = &input.data;
    match v {
        Variant::Popen(path) => {
            let mut c = popen_command("/bin/cat", path);
            let opts = popen::RunOptions::new().input(data).capture_stdout();
            let done = popen::run(&mut c, &opts).map_err(io::Error::other)?;
            check_status(done.status.success(), "popen")?;
            Ok(done.stdout.len())
        }
        Variant::Std => {
            let mut child = std::process::Command::new("/bin/cat")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()?;
            let mut stdin = child.stdin.take().expect("stdin is piped");
            let mut stdout = child.stdout.take().expect("stdout is piped");
            let mut out = Vec::new();
            std::thread::scope(|s| -> io::Result<()> {
                let writer = s.spawn(move || stdin.write_all(data));
                stdout.read_to_end(&mut out)?;
                writer.join().expect("writer panicked")
            })?;
            check_status(child.wait()?.success(), "std")?;
            Ok(out.len())
        }
        Variant::Subprocess => {
            let cap = subprocess::Exec::cmd("/bin/cat")
                .stdin(subprocess::InputData::from_bytes(Shared(
                    input.data.clone(),
                )))
                .stdout(subprocess::Redirection::Pipe)
                .capture()?;
            check_status(cap.exit_status.success(), "subprocess")?;
            Ok(cap.stdout.len())
        }
        Variant::Duct => Ok(input.duct.run()?.stdout.len()),
        Variant::Raw => raw_duplex(data),
    }
}

/// The single-threaded poll loop over non-blocking 1 MiB pipes.
fn raw_duplex(data: &[u8]) -> io::Result<usize> {
    const CHUNK: usize = 1 << 20;
    let (in_r, in_w) = raw::pipe()?;
    let (out_r, out_w) = raw::pipe()?;
    raw::set_pipe_size(&in_w, CHUNK)?;
    raw::set_pipe_size(&out_r, CHUNK)?;
    let s = Spawner::new(
        c"/bin/cat",
        &[],
        RawOpts {
            stdin: Some(in_r.as_raw_fd()),
            stdout: Some(out_w.as_raw_fd()),
            ..RawOpts::default()
        },
    )?;
    let pid = s.spawn()?;
    drop((in_r, out_w));
    raw::set_nonblocking(&in_w)?;
    raw::set_nonblocking(&out_r)?;
    let mut input = Some(in_w);
    let mut written = 0;
    let mut out = Vec::new();
    loop {
        let mut fds = [libc::pollfd {
            fd: out_r.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }; 2];
        let n = if let Some(w) = &input {
            fds[1] = libc::pollfd {
                fd: w.as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            };
            2
        } else {
            1
        };
        raw::poll(&mut fds[..n])?;
        if n == 2 && fds[1].revents != 0 {
            let w = input.as_ref().expect("polled");
            let end = (written + CHUNK).min(data.len());
            match raw::write_from(w, &data[written..end]) {
                Ok(k) => written += k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if written == data.len() {
                input = None;
            }
        }
        if fds[0].revents != 0 {
            match raw::read_into(&out_r, &mut out, CHUNK) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }
    raw::expect_success(raw::waitpid(pid)?)?;
    Ok(out.len())
}

/// One wait measurement: latency from the child's stamp to the wait's return, and the CPU
/// and context switches of this process between spawn and wait return.
pub struct WaitSample {
    pub latency_ns: i64,
    pub cpu_ns: u64,
    pub wakeups: u64,
}

/// Scenario 5: spawn the stamp fixture, then wait for it with a 10 s timeout (std and the raw
/// loop, which have none, block in `wait`/`waitpid`).
pub fn wait_reaction(
    v: Variant,
    fixture: &str,
    sleep_ms: u64,
    stamp: &str,
) -> io::Result<WaitSample> {
    let _ = std::fs::remove_file(stamp);
    let ms = sleep_ms.to_string();
    let timeout = Duration::from_secs(10);
    let before;
    let t1;
    match v {
        Variant::Popen(path) => {
            let mut c = popen_command(fixture, path);
            c.args([ms.as_str(), stamp]);
            let child = c.spawn().map_err(io::Error::other)?;
            before = raw::rusage_self();
            let st = child.wait_timeout(timeout)?;
            t1 = raw::monotonic_ns();
            check_status(st.is_some_and(|s| s.success()), "popen")?;
        }
        Variant::Std => {
            let mut child = std::process::Command::new(fixture)
                .args([ms.as_str(), stamp])
                .spawn()?;
            before = raw::rusage_self();
            let st = child.wait()?;
            t1 = raw::monotonic_ns();
            check_status(st.success(), "std")?;
        }
        Variant::Subprocess => {
            let job = subprocess::Exec::cmd(fixture)
                .args([ms.as_str(), stamp])
                .start()?;
            before = raw::rusage_self();
            let st = job.wait_timeout(timeout)?;
            t1 = raw::monotonic_ns();
            check_status(st.is_some_and(|s| s.success()), "subprocess")?;
        }
        Variant::Duct => {
            let handle = duct::cmd!(fixture, &ms, stamp).start()?;
            before = raw::rusage_self();
            let st = handle.wait_timeout(timeout)?.map(|o| o.status.success());
            t1 = raw::monotonic_ns();
            check_status(st == Some(true), "duct")?;
        }
        Variant::Raw => {
            let fixture_c = std::ffi::CString::new(fixture).map_err(io::Error::other)?;
            let args = [
                std::ffi::CString::new(ms.as_str()).map_err(io::Error::other)?,
                std::ffi::CString::new(stamp).map_err(io::Error::other)?,
            ];
            // The raw spawner takes 'static strings; these few bytes are leaked per sample.
            let leak = |c: std::ffi::CString| -> &'static CStr { Box::leak(c.into_boxed_c_str()) };
            let [a0, a1] = args;
            let s = Spawner::new(leak(fixture_c), &[leak(a0), leak(a1)], RawOpts::default())?;
            let pid = s.spawn()?;
            before = raw::rusage_self();
            let st = raw::waitpid(pid)?;
            t1 = raw::monotonic_ns();
            raw::expect_success(st)?;
        }
    }
    let after = raw::rusage_self();
    let stamp_ns: i64 = std::fs::read_to_string(stamp)?
        .trim()
        .parse()
        .map_err(io::Error::other)?;
    Ok(WaitSample {
        latency_ns: t1 - stamp_ns,
        cpu_ns: after.0 - before.0,
        wakeups: after.1 - before.1,
    })
}

/// Scenario 6: start `n` × `sleep SECS`, then wait for each in start order. Returns (seconds
/// to start them all, total seconds).
pub fn many(v: Variant, n: usize, sleep: &str) -> io::Result<(f64, f64)> {
    let start = Instant::now();
    let spawned;
    match v {
        Variant::Popen(path) => {
            let mut kids = Vec::with_capacity(n);
            for _ in 0..n {
                let mut c = popen_command("/bin/sleep", path);
                c.arg(sleep);
                kids.push(c.spawn().map_err(io::Error::other)?);
            }
            spawned = start.elapsed();
            for k in &kids {
                check_status(k.wait_shared()?.success(), "popen")?;
            }
        }
        Variant::Std => {
            let mut kids = Vec::with_capacity(n);
            for _ in 0..n {
                kids.push(
                    std::process::Command::new("/bin/sleep")
                        .arg(sleep)
                        .spawn()?,
                );
            }
            spawned = start.elapsed();
            for k in &mut kids {
                check_status(k.wait()?.success(), "std")?;
            }
        }
        Variant::Subprocess => {
            let mut kids = Vec::with_capacity(n);
            for _ in 0..n {
                kids.push(subprocess::Exec::cmd("/bin/sleep").arg(sleep).start()?);
            }
            spawned = start.elapsed();
            for k in &kids {
                check_status(k.wait()?.success(), "subprocess")?;
            }
        }
        Variant::Duct => {
            let mut kids = Vec::with_capacity(n);
            for _ in 0..n {
                kids.push(duct::cmd!("/bin/sleep", sleep).start()?);
            }
            spawned = start.elapsed();
            for k in &kids {
                k.wait()?;
            }
        }
        Variant::Raw => {
            let arg = std::ffi::CString::new(sleep).map_err(io::Error::other)?;
            let arg: &'static CStr = Box::leak(arg.into_boxed_c_str());
            let s = Spawner::new(c"/bin/sleep", &[arg], RawOpts::default())?;
            let mut pids = Vec::with_capacity(n);
            for _ in 0..n {
                pids.push(s.spawn()?);
            }
            spawned = start.elapsed();
            for pid in pids {
                raw::expect_success(raw::waitpid(pid)?)?;
            }
        }
    }
    Ok((spawned.as_secs_f64(), start.elapsed().as_secs_f64()))
}
