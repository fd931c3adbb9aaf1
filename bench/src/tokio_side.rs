//! The async scenarios: `popen::tokio` side by side with `tokio::process`, both on a
//! multi-thread tokio runtime (2 worker threads) in the Rust worker, in one run.
//!
//! - `async_many`: N × `sleep 0.5` spawned from a task, each awaited by a task of its own:
//!   total time, the parent's CPU time and context switches, the time spent spawning, and the
//!   worst lateness of a 1 ms ticker task meanwhile (how much spawning held the runtime up);
//! - `async_spawn1`, `async_spawn2`: spawn + await `/bin/true` in a loop from 1 and 2 tasks;
//! - `async_capture`: the stdout of `cat FILE`; `async_duplex`: input through `cat` while its
//!   stdout is read (the tokio side: `write_all` and `read_to_end` joined in one task);
//! - `async_wait`: the reaction to a child's exit, against a blocking `waitpid` (`raw`).

use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::raw::{self, RawOpts, Spawner};
use crate::{at, Run, Workers};

/// The variants of the async scenarios (`raw` only in `async_wait`).
pub const ASYNC_VARIANTS: [&str; 2] = ["popen-tokio", "tokio-process"];

/// Every async scenario key and its variants, for the quick run's completeness check.
pub const ASYNC_SCENARIOS: [(&str, &[&str]); 6] = [
    ("async_many", &ASYNC_VARIANTS),
    ("async_spawn1", &ASYNC_VARIANTS),
    ("async_spawn2", &ASYNC_VARIANTS),
    ("async_capture", &ASYNC_VARIANTS),
    ("async_duplex", &ASYNC_VARIANTS),
    ("async_wait", &["popen-tokio", "tokio-process", "raw"]),
];

/// The worker's runtime, built at the first async request and kept, as a program keeps its
/// `#[tokio::main]` runtime.
fn runtime() -> io::Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    Ok(RUNTIME.get_or_init(|| rt))
}

fn field<'a>(req: &'a Value, key: &str) -> io::Result<&'a Value> {
    let v = &req[key];
    if v.is_null() {
        return Err(io::Error::other(format!("request has no field {key:?}")));
    }
    Ok(v)
}

fn num(req: &Value, key: &str) -> io::Result<f64> {
    field(req, key)?
        .as_f64()
        .ok_or_else(|| io::Error::other(format!("{key:?} is not a number")))
}

fn text<'a>(req: &'a Value, key: &str) -> io::Result<&'a str> {
    field(req, key)?
        .as_str()
        .ok_or_else(|| io::Error::other(format!("{key:?} is not a string")))
}

fn check(ok: bool, what: &str) -> io::Result<()> {
    if ok {
        Ok(())
    } else {
        Err(io::Error::other(format!("{what}: child failed")))
    }
}

/// In the worker: the reply to an `async_*` request, or `None` for any other request.
pub fn handle(req: &Value) -> Option<io::Result<Value>> {
    let op = req["op"].as_str()?;
    op.starts_with("async_").then(|| handle_async(op, req))
}

fn handle_async(op: &str, req: &Value) -> io::Result<Value> {
    let popen = match text(req, "variant")? {
        "popen-tokio" => true,
        "tokio-process" => false,
        "raw" if op == "async_wait" => return wait_raw(req),
        other => return Err(io::Error::other(format!("unknown variant {other:?}"))),
    };
    let rt = runtime()?;
    match op {
        "async_many" => rt.block_on(many(popen, num(req, "n")? as usize, text(req, "sleep")?)),
        "async_spawn" => rt.block_on(spawn_loop(
            popen,
            num(req, "tasks")? as usize,
            num(req, "secs")?,
            num(req, "min_iters")? as u64,
        )),
        "async_capture" => {
            let file = text(req, "file")?;
            let bytes = num(req, "bytes")? as usize;
            timed(|| rt.block_on(capture(popen, file)), bytes)
        }
        "async_duplex" => {
            let data = duplex_input(num(req, "bytes")? as usize);
            timed(|| rt.block_on(duplex(popen, &data)), data.len())
        }
        "async_wait" => rt.block_on(wait(popen, req)),
        _ => Err(io::Error::other(format!("unknown op {op:?}"))),
    }
}

/// Runs `f`, checks that it moved `bytes`, and measures it: wall seconds, this process's CPU
/// time and the CPU time of the children reaped meanwhile.
fn timed(f: impl FnOnce() -> io::Result<usize>, bytes: usize) -> io::Result<Value> {
    let (cpu0, child0) = (raw::rusage_self().0, raw::rusage_children().0);
    let start = Instant::now();
    let n = f()?;
    let secs = start.elapsed().as_secs_f64();
    let (cpu1, child1) = (raw::rusage_self().0, raw::rusage_children().0);
    if n != bytes {
        return Err(io::Error::other(format!("moved {n} of {bytes} bytes")));
    }
    Ok(json!({"bytes": n, "secs": secs, "cpu_ns": cpu1 - cpu0, "child_cpu_ns": child1 - child0}))
}

/// N children at once: the spawning task starts them all, one task awaits each.
async fn many(popen: bool, n: usize, sleep: &str) -> io::Result<Value> {
    let (cpu0, switches0) = raw::rusage_self();
    let start = Instant::now();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ticker = tokio::spawn(worst_tick_lateness(stop.clone()));
    let sleep = sleep.to_string();
    let spawner = tokio::spawn(async move {
        let mut waits = Vec::with_capacity(n);
        for _ in 0..n {
            if popen {
                let mut child =
                    popen::tokio::Child::spawn(popen::Command::new("/bin/sleep").arg(&sleep))
                        .map_err(io::Error::other)?;
                waits.push(tokio::spawn(async move {
                    child.wait().await.map(|s| s.success())
                }));
            } else {
                let mut child = tokio::process::Command::new("/bin/sleep")
                    .arg(&sleep)
                    .spawn()?;
                waits.push(tokio::spawn(async move {
                    child.wait().await.map(|s| s.success())
                }));
            }
        }
        Ok::<_, io::Error>((start.elapsed(), waits))
    });
    let (spawn_time, waits) = spawner.await.map_err(io::Error::other)??;
    for w in waits {
        check(w.await.map_err(io::Error::other)??, "sleep")?;
    }
    let secs = start.elapsed().as_secs_f64();
    let (cpu1, switches1) = raw::rusage_self();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let stall = ticker.await.map_err(io::Error::other)?;
    Ok(
        json!({"secs": secs, "spawn_secs": spawn_time.as_secs_f64(), "cpu_ns": cpu1 - cpu0,
        "wakeups": switches1 - switches0, "stall_ns": stall.as_nanos() as u64}),
    )
}

/// A task that sleeps 1 ms at a time until `stop`, and returns the worst lateness of a wake.
async fn worst_tick_lateness(stop: Arc<std::sync::atomic::AtomicBool>) -> Duration {
    let mut worst = Duration::ZERO;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let due = Instant::now() + Duration::from_millis(1);
        tokio::time::sleep(Duration::from_millis(1)).await;
        // The timer's own granularity is 1 ms: lateness past it is the runtime's.
        worst = worst.max(Instant::now().saturating_duration_since(due));
    }
    worst
}

/// Spawn + await `/bin/true` in a loop from `tasks` tasks for `secs` (and at least
/// `min_iters` per task): the total count.
async fn spawn_loop(popen: bool, tasks: usize, secs: f64, min_iters: u64) -> io::Result<Value> {
    let cpu0 = raw::rusage_self().0;
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        set.spawn(async move {
            let mut count = 0u64;
            let mut cmd = popen::Command::new("/bin/true");
            while count < min_iters || Instant::now() < deadline {
                let ok = if popen {
                    let mut child =
                        popen::tokio::Child::spawn(&mut cmd).map_err(io::Error::other)?;
                    child.wait().await?.success()
                } else {
                    tokio::process::Command::new("/bin/true")
                        .spawn()?
                        .wait()
                        .await?
                        .success()
                };
                check(ok, "true")?;
                count += 1;
            }
            Ok::<_, io::Error>(count)
        });
    }
    let mut count = 0;
    while let Some(n) = set.join_next().await {
        count += n.map_err(io::Error::other)??;
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu_ns = raw::rusage_self().0 - cpu0;
    Ok(json!({"count": count, "secs": secs, "cpu_ns": cpu_ns}))
}

async fn capture(popen: bool, file: &str) -> io::Result<usize> {
    if popen {
        let opts = popen::RunOptions::new().capture_stdout();
        let done = popen::tokio::run(popen::Command::new("/bin/cat").arg(file), &opts)
            .await
            .map_err(io::Error::other)?;
        check(done.status.success(), "popen")?;
        Ok(done.stdout.len())
    } else {
        let out = tokio::process::Command::new("/bin/cat")
            .arg(file)
            .output()
            .await?;
        check(out.status.success(), "tokio")?;
        Ok(out.stdout.len())
    }
}

/// The duplex input, made once per size and kept.
fn duplex_input(bytes: usize) -> Arc<Vec<u8>> {
    static INPUT: Mutex<Option<Arc<Vec<u8>>>> = Mutex::new(None);
    let mut kept = INPUT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(data) = kept.as_ref().filter(|d| d.len() == bytes) {
        return data.clone();
    }
    *kept = None;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut data = Vec::with_capacity(bytes + 8);
    while data.len() < bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(bytes);
    let data = Arc::new(data);
    *kept = Some(data.clone());
    data
}

async fn duplex(popen: bool, data: &[u8]) -> io::Result<usize> {
    if popen {
        let opts = popen::RunOptions::new().input(data).capture_stdout();
        let done = popen::tokio::run(popen::Command::new("/bin/cat"), &opts)
            .await
            .map_err(io::Error::other)?;
        check(done.status.success(), "popen")?;
        return Ok(done.stdout.len());
    }
    let mut child = tokio::process::Command::new("/bin/cat")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().expect("piped");
    let mut stdout = child.stdout.take().expect("piped");
    let mut out = Vec::new();
    let write = async move {
        stdin.write_all(data).await?;
        drop(stdin);
        Ok::<_, io::Error>(())
    };
    let (written, read) = tokio::join!(write, stdout.read_to_end(&mut out));
    written?;
    read?;
    check(child.wait().await?.success(), "tokio")?;
    Ok(out.len())
}

/// The stamp-exit fixture: latency from its stamp to the awaited wait's return.
async fn wait(popen: bool, req: &Value) -> io::Result<Value> {
    let (fixture, ms, stamp) = wait_args(req)?;
    let t1 = if popen {
        let mut child =
            popen::tokio::Child::spawn(popen::Command::new(fixture).args([ms.as_str(), stamp]))
                .map_err(io::Error::other)?;
        let status = child.wait().await?;
        let t1 = raw::monotonic_ns();
        check(status.success(), "popen")?;
        t1
    } else {
        let mut child = tokio::process::Command::new(fixture)
            .args([ms.as_str(), stamp])
            .spawn()?;
        let status = child.wait().await?;
        let t1 = raw::monotonic_ns();
        check(status.success(), "tokio")?;
        t1
    };
    latency(stamp, t1)
}

fn wait_raw(req: &Value) -> io::Result<Value> {
    let (fixture, ms, stamp) = wait_args(req)?;
    let leak = |s: &str| -> io::Result<&'static std::ffi::CStr> {
        let c = std::ffi::CString::new(s).map_err(io::Error::other)?;
        Ok(Box::leak(c.into_boxed_c_str()))
    };
    let s = Spawner::new(
        leak(fixture)?,
        &[leak(&ms)?, leak(stamp)?],
        RawOpts::default(),
    )?;
    let pid = s.spawn()?;
    let st = raw::waitpid(pid)?;
    let t1 = raw::monotonic_ns();
    raw::expect_success(st)?;
    latency(stamp, t1)
}

fn wait_args(req: &Value) -> io::Result<(&str, String, &str)> {
    let stamp = text(req, "stamp")?;
    let _ = std::fs::remove_file(stamp);
    Ok((
        text(req, "fixture")?,
        (num(req, "sleep_ms")? as u64).to_string(),
        stamp,
    ))
}

fn latency(stamp: &str, t1: i64) -> io::Result<Value> {
    let stamp_ns: i64 = std::fs::read_to_string(stamp)?
        .trim()
        .parse()
        .map_err(io::Error::other)?;
    Ok(json!({"latency_ns": t1 - stamp_ns}))
}

impl Run {
    /// In the benchmark: every async scenario `--only` lets through, each batch visiting the
    /// variants in an order that alternates from batch to batch.
    pub(crate) fn async_scenarios(&mut self, w: &mut Workers) {
        let quick = self.cfg.quick;
        let order = |b: usize, vs: &'static [&'static str]| {
            (0..vs.len()).map(move |i| vs[(b + i) % vs.len()])
        };
        if self.cfg.wants("async_many") {
            let (n, sleep, runs) = if quick {
                (self.cfg.many_n, self.cfg.many_sleep, 1)
            } else {
                (1000, "0.5", self.cfg.many_runs)
            };
            let record = |r: &Value| {
                let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
                vec![
                    ("secs", f("secs")),
                    ("spawn_secs", f("spawn_secs")),
                    ("cpu_ms", f("cpu_ns") / 1e6),
                    ("wakeups", f("wakeups")),
                    ("stall_ms", f("stall_ns") / 1e6),
                ]
            };
            for run in 0..runs {
                for v in order(run, &ASYNC_VARIANTS) {
                    let req = json!({"op": "async_many", "n": n, "sleep": sleep});
                    self.measure(w, at("async_many", 0, v, Some(run)), req, record);
                }
            }
            self.log("async many children done");
        }
        for (key, tasks) in [("async_spawn1", 1), ("async_spawn2", 2)] {
            if !self.cfg.wants(key) {
                continue;
            }
            let record = |r: &Value| {
                let count = r["count"].as_f64().unwrap_or(0.0);
                let secs = r["secs"].as_f64().unwrap_or(f64::NAN);
                let cpu_ns = r["cpu_ns"].as_f64().unwrap_or(f64::NAN);
                vec![
                    ("rate", count / secs),
                    ("count", count),
                    ("cpu_us_per_spawn", cpu_ns / 1e3 / count),
                ]
            };
            // The first batch is a warm-up.
            for b in 0..=self.cfg.batches {
                for v in order(b, &ASYNC_VARIANTS) {
                    let req = json!({"op": "async_spawn", "tasks": tasks,
                        "secs": self.cfg.spawn_secs, "min_iters": self.cfg.min_iters});
                    self.measure(w, at(key, 0, v, b.checked_sub(1)), req, record);
                }
            }
            self.log(&format!("{key} done"));
        }
        let io_record = |r: &Value| {
            let bytes = r["bytes"].as_f64().unwrap_or(0.0);
            let secs = r["secs"].as_f64().unwrap_or(f64::NAN);
            let ms = |key: &str| r[key].as_f64().unwrap_or(f64::NAN) / 1e6;
            vec![
                ("mbps", bytes / secs / 1e6),
                ("secs", secs),
                ("cpu_ms", ms("cpu_ns")),
                ("child_cpu_ms", ms("child_cpu_ns")),
            ]
        };
        if self.cfg.wants("async_capture") {
            match crate::make_capture_file(self.cfg.capture_bytes) {
                Ok(file) => {
                    let req = json!({"op": "async_capture", "file": file.to_str(),
                        "bytes": self.cfg.capture_bytes});
                    for b in 0..=self.cfg.io_batches {
                        for v in order(b, &ASYNC_VARIANTS) {
                            let at = at("async_capture", 0, v, b.checked_sub(1));
                            self.measure(w, at, req.clone(), io_record);
                        }
                    }
                    let _ = std::fs::remove_file(&file);
                }
                Err(e) => self.failures.push(format!("async capture file: {e}")),
            }
        }
        if self.cfg.wants("async_duplex") {
            let req = json!({"op": "async_duplex", "bytes": self.cfg.duplex_bytes});
            for b in 0..=self.cfg.io_batches {
                for v in order(b, &ASYNC_VARIANTS) {
                    let at = at("async_duplex", 0, v, b.checked_sub(1));
                    self.measure(w, at, req.clone(), io_record);
                }
            }
        }
        if self.cfg.wants("async_wait") {
            self.async_wait(w);
        }
        self.log("async scenarios done");
    }

    fn async_wait(&mut self, w: &mut Workers) {
        let fixture = std::env::current_exe()
            .ok()
            .and_then(|p| Some(p.parent()?.join("stamp-exit")))
            .filter(|p| p.exists() || crate::build_stamp_exit());
        let Some(fixture) = fixture else {
            self.failures
                .push("async_wait: the stamp-exit fixture is not built".into());
            return;
        };
        let record = |r: &Value| {
            vec![(
                "latency_us",
                r["latency_ns"].as_f64().unwrap_or(f64::NAN) / 1e3,
            )]
        };
        const VARIANTS: [&str; 3] = ["popen-tokio", "tokio-process", "raw"];
        for rep in 0..self.cfg.latency_reps {
            for i in 0..VARIANTS.len() {
                let v = VARIANTS[(rep + i) % VARIANTS.len()];
                let stamp = format!("/dev/shm/popen-bench-stamp-{}-{v}", std::process::id());
                let req = json!({"op": "async_wait", "fixture": fixture.to_str(),
                    "sleep_ms": self.cfg.latency_sleep_ms, "stamp": stamp});
                self.measure(w, at("async_wait", 0, v, Some(rep)), req, record);
                let _ = std::fs::remove_file(&stamp);
            }
        }
    }
}
