//! The Rust worker: a child process of the benchmark that allocates and touches the parent
//! memory of the scenario, then runs the variants it is asked for, one JSON request per line on
//! stdin, one JSON reply per line on stdout.
//!
//! The spawning happens here, so the resident size that fork-based paths must copy is this
//! process's. The protocol uses private, close-on-exec copies of stdin and stdout; the
//! children see /dev/null on fds 0 and 1.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use serde_json::{json, Value};

use crate::raw;
use crate::variants::{self, DuplexInput, Opts, Variant};

const MIB: usize = 1 << 20;

fn dup_cloexec(fd: i32) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC returns a fresh descriptor or -1.
    let ret = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor is fresh and ours.
    Ok(unsafe { OwnedFd::from_raw_fd(ret) })
}

/// Moves the protocol off fds 0 and 1 and puts /dev/null there; raises the descriptor limit
/// to its maximum (scenario 6 holds a thousand children).
fn setup_fds() -> io::Result<(File, File)> {
    let input = File::from(dup_cloexec(0)?);
    let output = File::from(dup_cloexec(1)?);
    let null = File::options().read(true).write(true).open("/dev/null")?;
    for target in [0, 1] {
        // SAFETY: dup2 onto a standard stream number; both descriptors are open.
        if unsafe { libc::dup2(null.as_raw_fd(), target) } == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: getrlimit/setrlimit read and write a local struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
    Ok((input, output))
}

pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// `n` open descriptors (of `/dev/null`, close-on-exec), within the limit `setup_fds` raised.
fn hold_fds(n: usize) -> io::Result<Vec<File>> {
    let null = File::open("/dev/null")?;
    (0..n).map(|_| null.try_clone()).collect()
}

struct State {
    duplex: Option<DuplexInput>,
}

fn str_field<'a>(req: &'a Value, key: &str) -> io::Result<&'a str> {
    req[key]
        .as_str()
        .ok_or_else(|| io::Error::other(format!("request has no string field {key:?}")))
}

fn num_field(req: &Value, key: &str) -> io::Result<f64> {
    req[key]
        .as_f64()
        .ok_or_else(|| io::Error::other(format!("request has no number field {key:?}")))
}

fn handle(state: &mut State, req: &Value) -> io::Result<Value> {
    if let Some(reply) = crate::tokio_side::handle(req) {
        return reply;
    }
    let op = str_field(req, "op")?;
    let name = str_field(req, "variant")?;
    let v = Variant::parse(name)
        .ok_or_else(|| io::Error::other(format!("unknown variant {name:?}")))?;
    Ok(match op {
        "spawn" => {
            let (opts, hold) = match str_field(req, "opts")? {
                "full" => (Opts::Full, 0),
                "fds" => (Opts::Default, num_field(req, "hold_fds")? as usize),
                _ => (Opts::Default, 0),
            };
            // Open until the batch is done.
            let _held = hold_fds(hold)?;
            let b = variants::spawn_batch(
                v,
                opts,
                num_field(req, "threads")? as usize,
                num_field(req, "secs")?,
                num_field(req, "min_iters")? as u64,
            )?;
            json!({"count": b.count, "secs": b.secs, "cpu_ns": b.cpu_ns, "path": b.path})
        }
        "capture" => {
            let (n, mut reply) = timed(|| variants::capture(v, str_field(req, "file")?))?;
            if n as f64 != num_field(req, "bytes")? {
                return Err(io::Error::other(format!("captured {n} bytes")));
            }
            reply["bytes"] = json!(n);
            reply
        }
        "duplex" => {
            let bytes = num_field(req, "bytes")? as usize;
            if state.duplex.as_ref().map(DuplexInput::len) != Some(bytes) {
                state.duplex = None;
                state.duplex = Some(DuplexInput::new(bytes));
            }
            let input = state.duplex.as_ref().expect("just made");
            let (n, mut reply) = timed(|| variants::duplex(v, input))?;
            if n != bytes {
                return Err(io::Error::other(format!("read back {n} of {bytes} bytes")));
            }
            reply["bytes"] = json!(n);
            reply
        }
        "wait" => {
            let s = variants::wait_reaction(
                v,
                str_field(req, "fixture")?,
                num_field(req, "sleep_ms")? as u64,
                str_field(req, "stamp")?,
            )?;
            json!({"latency_ns": s.latency_ns, "cpu_ns": s.cpu_ns, "wakeups": s.wakeups})
        }
        "many" => {
            let (spawn_secs, secs) =
                variants::many(v, num_field(req, "n")? as usize, str_field(req, "sleep")?)?;
            json!({"spawn_secs": spawn_secs, "secs": secs})
        }
        _ => return Err(io::Error::other(format!("unknown op {op:?}"))),
    })
}

/// Runs `f` and measures it: wall seconds, this process's CPU time (every thread) and the CPU
/// time of the children it reaped meanwhile, so that a table can tell a saturated single
/// thread from work spread over several.
fn timed<T>(f: impl FnOnce() -> io::Result<T>) -> io::Result<(T, Value)> {
    let (cpu0, child0) = (raw::rusage_self().0, raw::rusage_children().0);
    let start = std::time::Instant::now();
    let out = f()?;
    let secs = start.elapsed().as_secs_f64();
    let (cpu1, child1) = (raw::rusage_self().0, raw::rusage_children().0);
    let reply = json!({"secs": secs, "cpu_ns": cpu1 - cpu0, "child_cpu_ns": child1 - child0});
    Ok((out, reply))
}

/// Runs the worker until `{"op": "quit"}` or end of input.
pub fn run(rss_mib: usize) -> io::Result<()> {
    let (input, mut output) = setup_fds()?;
    // Allocated and touched (a non-zero fill writes every page), kept until the end.
    let ballast = vec![1u8; rss_mib * MIB];
    let ready = json!({
        "ready": true,
        "rss_kib": rss_kib(),
        "ballast": std::hint::black_box(&ballast).len(),
    });
    writeln!(output, "{ready}")?;
    let mut state = State { duplex: None };
    for line in BufReader::new(input).lines() {
        let req: Value = serde_json::from_str(&line?).map_err(io::Error::other)?;
        if req["op"] == "quit" {
            break;
        }
        let reply = handle(&mut state, &req).unwrap_or_else(|e| json!({"error": e.to_string()}));
        writeln!(output, "{reply}")?;
    }
    drop(ballast);
    Ok(())
}
