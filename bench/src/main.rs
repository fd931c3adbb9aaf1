//! popen-bench: popen side by side with std::process, the subprocess crate, duct, CPython's
//! subprocess and a raw posix_spawn loop, in one run.
//!
//! `cargo run --release -p popen-bench` runs the full benchmark (results in bench/results/);
//! `-- --quick` runs every scenario and variant briefly, checks that each one works, and
//! judges no speed (results in bench/results/tmp/). See bench/README.md.
//!
//! Every variant runs in a worker process that first allocates and touches the scenario's
//! parent memory: a Rust worker (this binary with `--worker`) for the Rust variants and a
//! Python worker (`py/cpython_worker.py`) for CPython, stock (`cpython`) and with the popen
//! module installed (`cpython-popen`, its twin). The two workers of one memory size live
//! side by side, so the variants are interleaved: each batch visits every variant once, in an
//! order rotated from batch to batch.

mod machine;
mod plot;
mod raw;
mod report;
mod tokio_side;
mod variants;
mod worker;

use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use report::{Sample, Samples};

/// Every variant, in table order.
pub const VARIANTS: [&str; 10] = [
    "popen-auto",
    "popen-posix_spawn",
    "popen-vfork",
    "popen-fork",
    "std",
    "subprocess",
    "duct",
    "cpython",
    "cpython-popen",
    "raw",
];

/// The peers: the libraries popen is compared against (not the raw ceiling).
pub const PEERS: [&str; 4] = ["std", "subprocess", "duct", "cpython"];

/// The spawn scenarios: key, spawn options, threads. `fds`: default options while the
/// spawning process holds [`HELD_FDS`] open descriptors.
const SPAWN_SCENARIOS: [(&str, &str, usize); 4] = [
    ("spawn", "default", 1),
    ("spawn_full", "full", 1),
    ("spawn_2threads", "default", 2),
    ("spawn_fds", "fds", 1),
];

/// The open descriptors the worker holds in `spawn_fds` (a server with that many connections).
pub const HELD_FDS: usize = 10_000;

/// Whether spawn scenario `key` runs at parent memory `rss` (`spawn_fds` only without any).
fn spawn_runs_at(key: &str, rss: usize) -> bool {
    key != "spawn_fds" || rss == 0
}

struct Config {
    quick: bool,
    out_dir: PathBuf,
    rss_levels: Vec<usize>,
    batches: usize,
    spawn_secs: f64,
    warm_secs: f64,
    min_iters: u64,
    capture_bytes: usize,
    duplex_bytes: usize,
    io_batches: usize,
    latency_reps: usize,
    latency_sleep_ms: u64,
    cpu_reps: usize,
    cpu_sleep_ms: u64,
    many_n: usize,
    many_sleep: &'static str,
    many_runs: usize,
    only: Option<Vec<String>>,
}

impl Config {
    fn full() -> Config {
        Config {
            quick: false,
            out_dir: bench_dir().join("results"),
            rss_levels: vec![0, 1024, 8192],
            batches: 12,
            spawn_secs: 0.25,
            warm_secs: 0.15,
            min_iters: 3,
            capture_bytes: 512 << 20,
            duplex_bytes: 256 << 20,
            io_batches: 7,
            latency_reps: 10,
            latency_sleep_ms: 200,
            cpu_reps: 3,
            cpu_sleep_ms: 2000,
            many_n: 1000,
            many_sleep: "1",
            many_runs: 5,
            only: None,
        }
    }

    fn quick() -> Config {
        Config {
            quick: true,
            out_dir: bench_dir().join("results").join("tmp"),
            rss_levels: vec![0, 64],
            batches: 1,
            spawn_secs: 0.02,
            warm_secs: 0.0,
            min_iters: 1,
            capture_bytes: 8 << 20,
            duplex_bytes: 4 << 20,
            io_batches: 1,
            latency_reps: 1,
            latency_sleep_ms: 20,
            cpu_reps: 1,
            cpu_sleep_ms: 100,
            many_n: 20,
            many_sleep: "0.1",
            many_runs: 1,
            only: None,
        }
    }

    fn wants(&self, scenario: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|s| scenario.starts_with(s.as_str())))
    }
}

fn bench_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python of the CPython variants: `$POPEN_BENCH_PYTHON`, else the environment that
/// scripts/test-python.sh makes (`target/py-venv`, where the popen module is installed, for the
/// `cpython-popen` twin), else `python3` on `PATH`.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("POPEN_BENCH_PYTHON") {
        return p.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| bench_dir().join("..").join("target"));
    let venv = target.join("py-venv").join("bin").join("python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// One worker process and its protocol pipes.
struct Worker {
    name: String,
    child: Child,
    tx: ChildStdin,
    rx: BufReader<ChildStdout>,
}

impl Worker {
    fn start(name: String, mut cmd: Command) -> io::Result<Worker> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let tx = child.stdin.take().expect("piped");
        let rx = BufReader::new(child.stdout.take().expect("piped"));
        Ok(Worker {
            name,
            child,
            tx,
            rx,
        })
    }

    fn rust(rss_mib: usize) -> io::Result<Worker> {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.args(["--worker", "--rss-mib", &rss_mib.to_string()]);
        Worker::start(format!("rust worker ({rss_mib} MiB)"), cmd)
    }

    fn python(rss_mib: usize) -> io::Result<Worker> {
        let mut cmd = Command::new(python());
        cmd.arg(bench_dir().join("py").join("cpython_worker.py"))
            .args(["--rss-mib", &rss_mib.to_string()]);
        Worker::start(format!("python worker ({rss_mib} MiB)"), cmd)
    }

    fn read_reply(&mut self) -> Result<Value, String> {
        let mut line = String::new();
        match self.rx.read_line(&mut line) {
            Ok(0) => Err(format!("{} closed its output", self.name)),
            Ok(_) => serde_json::from_str(&line).map_err(|e| format!("{}: {e}", self.name)),
            Err(e) => Err(format!("{}: {e}", self.name)),
        }
    }

    fn call(&mut self, req: &Value) -> Result<Value, String> {
        writeln!(self.tx, "{req}").map_err(|e| format!("{}: {e}", self.name))?;
        let reply = self.read_reply()?;
        match reply.get("error") {
            Some(e) => Err(e.as_str().unwrap_or("error").to_string()),
            None => Ok(reply),
        }
    }

    fn quit(mut self) {
        let _ = writeln!(self.tx, "{}", json!({"op": "quit"}));
        let _ = self.child.wait();
    }
}

/// The Rust and the Python worker of one memory size.
struct Workers {
    rust: Worker,
    python: Worker,
}

impl Workers {
    fn start(rss_mib: usize) -> Result<Workers, String> {
        let mut rust = Worker::rust(rss_mib).map_err(|e| format!("rust worker: {e}"))?;
        let mut python = Worker::python(rss_mib).map_err(|e| format!("python worker: {e}"))?;
        let r = rust.read_reply()?;
        let p = python.read_reply()?;
        eprintln!(
            "  workers ready: rust RSS {} MiB, python RSS {} MiB ({}, popen module {})",
            r["rss_kib"].as_u64().unwrap_or(0) / 1024,
            p["rss_kib"].as_u64().unwrap_or(0) / 1024,
            p["version"].as_str().unwrap_or("?"),
            p["popen"].as_str().unwrap_or("not importable"),
        );
        Ok(Workers { rust, python })
    }

    fn call(&mut self, variant: &str, mut req: Value) -> Result<Value, String> {
        req["variant"] = json!(variant);
        if variant.starts_with("cpython") {
            self.python.call(&req)
        } else {
            self.rust.call(&req)
        }
    }

    fn quit(self) {
        self.rust.quit();
        self.python.quit();
    }
}

/// Every variant, starting at `start` (mod their number): the order of one batch.
fn rotated(start: usize) -> impl Iterator<Item = &'static str> {
    (0..VARIANTS.len()).map(move |i| VARIANTS[(start + i) % VARIANTS.len()])
}

/// Where a measurement belongs. `batch: None` marks a warm-up, which is not recorded.
struct At {
    scenario: &'static str,
    rss: usize,
    variant: &'static str,
    batch: Option<usize>,
}

fn at(scenario: &'static str, rss: usize, variant: &'static str, batch: Option<usize>) -> At {
    At {
        scenario,
        rss,
        variant,
        batch,
    }
}

struct Run {
    cfg: Config,
    samples: Samples,
    failures: Vec<String>,
    started: Instant,
}

impl Run {
    fn log(&self, what: &str) {
        eprintln!("[{:6.1}s] {what}", self.started.elapsed().as_secs_f64());
    }

    /// Calls the variant and records its reply with `record` (unless it is a warm-up); a
    /// failure is kept for the end.
    fn measure(
        &mut self,
        w: &mut Workers,
        at: At,
        req: Value,
        record: impl Fn(&Value) -> Vec<(&'static str, f64)>,
    ) {
        let At {
            scenario,
            rss,
            variant,
            batch,
        } = at;
        match w.call(variant, req) {
            Ok(reply) => {
                if let Some(batch) = batch {
                    self.samples.push(Sample {
                        scenario: scenario.to_string(),
                        rss_mib: rss,
                        variant: variant.to_string(),
                        batch,
                        metrics: record(&reply)
                            .into_iter()
                            .map(|(k, v)| (k.to_string(), v))
                            .collect(),
                        path: reply["path"].as_str().map(str::to_string),
                    });
                }
            }
            Err(e) => {
                let msg = format!("{scenario} @ {rss} MiB, {variant}: {e}");
                eprintln!("  FAILED {msg}");
                self.failures.push(msg);
            }
        }
    }

    fn spawn_scenarios(&mut self, w: &mut Workers, rss: usize) {
        let record = |r: &Value| {
            let count = r["count"].as_f64().unwrap_or(0.0);
            let secs = r["secs"].as_f64().unwrap_or(f64::NAN);
            let cpu_ns = r["cpu_ns"].as_f64().unwrap_or(f64::NAN);
            vec![
                ("rate", count / secs),
                ("count", count),
                ("secs", secs),
                ("cpu_us_per_spawn", cpu_ns / 1e3 / count),
            ]
        };
        let scenarios: Vec<_> = SPAWN_SCENARIOS
            .iter()
            .filter(|s| self.cfg.wants(s.0) && spawn_runs_at(s.0, rss))
            .collect();
        if self.cfg.warm_secs > 0.0 {
            for &&(_, opts, threads) in &scenarios {
                for v in VARIANTS {
                    let req = json!({"op": "spawn", "opts": opts, "threads": threads,
                        "secs": self.cfg.warm_secs, "min_iters": 1, "hold_fds": HELD_FDS});
                    self.measure(w, at("warm-up", rss, v, None), req, record);
                }
            }
        }
        for b in 0..self.cfg.batches {
            for (si, &&(key, opts, threads)) in scenarios.iter().enumerate() {
                for v in rotated(b + si * 3) {
                    let req = json!({"op": "spawn", "opts": opts, "threads": threads,
                        "secs": self.cfg.spawn_secs, "min_iters": self.cfg.min_iters,
                        "hold_fds": HELD_FDS});
                    self.measure(w, at(key, rss, v, Some(b)), req, record);
                }
            }
            self.log(&format!(
                "RSS {rss} MiB: spawn batch {}/{}",
                b + 1,
                self.cfg.batches
            ));
        }
    }

    fn io_scenarios(&mut self, w: &mut Workers, file: &Path) {
        let record = |r: &Value| {
            let bytes = r["bytes"].as_f64().unwrap_or(0.0);
            let secs = r["secs"].as_f64().unwrap_or(f64::NAN);
            let ms = |key: &str| r[key].as_f64().unwrap_or(f64::NAN) / 1e6;
            vec![
                ("mbps", bytes / secs / 1e6),
                ("secs", secs),
                ("cpu_ms", ms("cpu_ns")),
                ("child_cpu_ms", ms("child_cpu_ns")),
                ("cpus", ms("cpu_ns") / (secs * 1e3)),
            ]
        };
        let capture = json!({"op": "capture", "file": file.to_str().expect("utf-8 path"),
            "bytes": self.cfg.capture_bytes});
        let duplex = json!({"op": "duplex", "bytes": self.cfg.duplex_bytes});
        // The first call of each variant is a warm-up (duplex: it also builds the input).
        for b in 0..=self.cfg.io_batches {
            let batch = b.checked_sub(1);
            for v in rotated(b) {
                if self.cfg.wants("capture") {
                    self.measure(w, at("capture", 0, v, batch), capture.clone(), record);
                }
                if self.cfg.wants("duplex") {
                    self.measure(w, at("duplex", 0, v, batch), duplex.clone(), record);
                }
            }
        }
        self.log("capture and duplex done");
    }

    fn wait_scenario(&mut self, w: &mut Workers) {
        let fixture = std::env::current_exe()
            .ok()
            .and_then(|p| Some(p.parent()?.join("stamp-exit")))
            .filter(|p| p.exists() || build_stamp_exit());
        let Some(fixture) = fixture else {
            self.failures
                .push("wait: the stamp-exit fixture is not built next to popen-bench".into());
            return;
        };
        let record = |r: &Value| {
            vec![
                (
                    "latency_us",
                    r["latency_ns"].as_f64().unwrap_or(f64::NAN) / 1e3,
                ),
                ("cpu_ms", r["cpu_ns"].as_f64().unwrap_or(f64::NAN) / 1e6),
                ("wakeups", r["wakeups"].as_f64().unwrap_or(f64::NAN)),
            ]
        };
        let plan = [
            (
                "wait_latency",
                self.cfg.latency_reps,
                self.cfg.latency_sleep_ms,
            ),
            ("wait_cpu", self.cfg.cpu_reps, self.cfg.cpu_sleep_ms),
        ];
        for (key, reps, sleep_ms) in plan {
            for rep in 0..reps {
                for v in rotated(rep) {
                    let stamp = format!("/dev/shm/popen-bench-stamp-{}-{v}", std::process::id());
                    let req = json!({"op": "wait", "fixture": fixture.to_str(),
                        "sleep_ms": sleep_ms, "stamp": stamp});
                    self.measure(w, at(key, 0, v, Some(rep)), req, record);
                    let _ = std::fs::remove_file(&stamp);
                }
            }
            self.log(&format!("{key} done"));
        }
    }

    fn many_scenario(&mut self, w: &mut Workers) {
        let record = |r: &Value| {
            vec![
                ("secs", r["secs"].as_f64().unwrap_or(f64::NAN)),
                ("spawn_secs", r["spawn_secs"].as_f64().unwrap_or(f64::NAN)),
            ]
        };
        for run in 0..self.cfg.many_runs {
            for v in rotated(run) {
                let req = json!({"op": "many", "n": self.cfg.many_n, "sleep": self.cfg.many_sleep});
                self.measure(w, at("many", 0, v, Some(run)), req, record);
            }
        }
        self.log("many children done");
    }

    fn run(&mut self) -> Result<(), String> {
        let levels = self.cfg.rss_levels.clone();
        for (i, &rss) in levels.iter().enumerate() {
            let spawn = SPAWN_SCENARIOS.iter().any(|s| self.cfg.wants(s.0));
            let asyncs = tokio_side::ASYNC_SCENARIOS
                .iter()
                .any(|s| self.cfg.wants(s.0));
            let others = i == 0
                && (["capture", "duplex", "wait", "many"]
                    .iter()
                    .any(|s| self.cfg.wants(s))
                    || asyncs);
            if !spawn && !others {
                continue;
            }
            self.log(&format!("starting workers with {rss} MiB resident"));
            let mut w = Workers::start(rss)?;
            if !self.cfg.quick {
                // Let the system settle after touching the memory.
                std::thread::sleep(Duration::from_millis(1500));
            }
            if spawn {
                self.spawn_scenarios(&mut w, rss);
            }
            if others {
                // Wait and many children first: the I/O scenarios leave the workers holding
                // their input, which would slow down the fork-based variants.
                if self.cfg.wants("wait") {
                    self.wait_scenario(&mut w);
                }
                if self.cfg.wants("many") {
                    self.many_scenario(&mut w);
                }
                if self.cfg.wants("capture") || self.cfg.wants("duplex") {
                    let file = make_capture_file(self.cfg.capture_bytes)
                        .map_err(|e| format!("capture file: {e}"))?;
                    self.io_scenarios(&mut w, &file);
                    let _ = std::fs::remove_file(&file);
                }
                if asyncs {
                    self.async_scenarios(&mut w);
                }
            }
            w.quit();
        }
        Ok(())
    }
}

/// A file of `bytes` pseudo-random bytes in /dev/shm, for `cat` to send.
fn make_capture_file(bytes: usize) -> io::Result<PathBuf> {
    let path = PathBuf::from(format!(
        "/dev/shm/popen-bench-capture-{}",
        std::process::id()
    ));
    let mut f = io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut chunk = vec![0u8; 1 << 16];
    let mut left = bytes;
    while left > 0 {
        for word in chunk.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(chunk.len());
        f.write_all(&chunk[..n])?;
        left -= n;
    }
    f.flush()?;
    Ok(path)
}

/// Every (scenario, memory size, variant) that should have a sample and has none.
fn missing(samples: &Samples, cfg: &Config) -> Vec<String> {
    let mut expected: Vec<(&str, usize)> = Vec::new();
    for &rss in &cfg.rss_levels {
        for (key, _, _) in SPAWN_SCENARIOS {
            if spawn_runs_at(key, rss) {
                expected.push((key, rss));
            }
        }
    }
    for key in ["capture", "duplex", "wait_latency", "wait_cpu", "many"] {
        expected.push((key, 0));
    }
    let mut out = Vec::new();
    for (key, variants) in tokio_side::ASYNC_SCENARIOS {
        for v in variants.iter().filter(|_| cfg.wants(key)) {
            if samples.values(key, 0, v, report::primary(key)).is_empty() {
                out.push(format!("{key} @ 0 MiB, {v}: no sample"));
            }
        }
    }
    for (key, rss) in expected {
        if !cfg.wants(key) {
            continue;
        }
        for v in VARIANTS {
            if samples.values(key, rss, v, report::primary(key)).is_empty() {
                out.push(format!("{key} @ {rss} MiB, {v}: no sample"));
            }
        }
    }
    out
}

/// Writes the tables, the JSON and the plot again from a results.json of an earlier run, and
/// prints the tables and target lines.
fn report_again(path: &Path, out: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let mut samples = Samples::default();
    for s in v["samples"].as_array().ok_or("no samples")? {
        samples.push(Sample {
            scenario: s["scenario"].as_str().unwrap_or_default().to_string(),
            rss_mib: s["rss_mib"].as_u64().unwrap_or(0) as usize,
            variant: s["variant"].as_str().unwrap_or_default().to_string(),
            batch: s["batch"].as_u64().unwrap_or(0) as usize,
            metrics: s["metrics"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, x)| (k.clone(), x.as_f64().unwrap_or(f64::NAN)))
                        .collect()
                })
                .unwrap_or_default(),
            path: s["path"].as_str().map(str::to_string),
        });
    }
    let levels: Vec<usize> = v["rss_levels_mib"]
        .as_array()
        .ok_or("no rss_levels_mib")?
        .iter()
        .filter_map(|x| x.as_u64().map(|n| n as usize))
        .collect();
    let failures: Vec<String> = v["failures"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let rep = report::Report {
        samples: &samples,
        machine: v["machine"].as_str().unwrap_or("?"),
        date: v["date"].as_str().unwrap_or("?"),
        quick: v["mode"] == "quick",
        partial: v["partial"].as_bool().unwrap_or(false),
        wall: Duration::from_secs_f64(v["wall_secs"].as_f64().unwrap_or(0.0)),
        rss_levels: &levels,
        failures: &failures,
    };
    rep.write(out).map_err(|e| e.to_string())?;
    print!("{}", rep.markdown());
    Ok(())
}

fn usage() -> ! {
    eprintln!(
        "usage: popen-bench [--quick] [--only SCENARIO,...] [--rss MIB,...] [--batches N] [--out DIR]\n\
         \x20      popen-bench --report RESULTS.json [--out DIR]   (tables and plot again)\n\
         scenarios: spawn, spawn_full, spawn_2threads, spawn_fds, capture, duplex, wait, many,\n\
         \x20          async (async_many, async_spawn1, async_spawn2, async_capture, async_duplex,\n\
         \x20          async_wait)"
    );
    std::process::exit(2)
}

/// `cargo run -p popen-bench` builds only this binary: build the fixture beside it (same
/// profile) with the cargo that started us. Returns whether that worked.
fn build_stamp_exit() -> bool {
    let Some(cargo) = std::env::var_os("CARGO") else {
        return false;
    };
    let release = std::env::current_exe()
        .ok()
        .and_then(|p| Some(p.parent()?.file_name()? == "release"))
        .unwrap_or(false);
    eprintln!("building the stamp-exit fixture");
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["build", "-q", "-p", "popen-bench", "--bin", "stamp-exit"]);
    if release {
        cmd.arg("--release");
    }
    cmd.status().is_ok_and(|s| s.success())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--worker") {
        let rss = match args.get(1..3) {
            Some([flag, n]) if flag == "--rss-mib" => n.parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        };
        if let Err(e) = worker::run(rss) {
            eprintln!("worker: {e}");
            std::process::exit(1);
        }
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--report") {
        let path = PathBuf::from(args.get(i + 1).unwrap_or_else(|| usage()));
        let out = match args.iter().position(|a| a == "--out") {
            Some(j) => PathBuf::from(args.get(j + 1).unwrap_or_else(|| usage())),
            None => path.parent().unwrap_or(Path::new(".")).to_path_buf(),
        };
        if let Err(e) = report_again(&path, &out) {
            eprintln!("{}: {e}", path.display());
            std::process::exit(1);
        }
        return;
    }
    let mut cfg = if args.iter().any(|a| a == "--quick") {
        Config::quick()
    } else {
        Config::full()
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => {}
            "--only" => {
                let list = it.next().unwrap_or_else(|| usage());
                cfg.only = Some(list.split(',').map(str::to_string).collect());
            }
            "--out" => cfg.out_dir = PathBuf::from(it.next().unwrap_or_else(|| usage())),
            "--rss" => {
                let list = it.next().unwrap_or_else(|| usage());
                cfg.rss_levels = list
                    .split(',')
                    .map(|n| n.parse().unwrap_or_else(|_| usage()))
                    .collect();
            }
            "--batches" => {
                let n = it.next().unwrap_or_else(|| usage());
                cfg.batches = n.parse().unwrap_or_else(|_| usage());
            }
            _ => usage(),
        }
    }
    let machine = machine::describe();
    let date = machine::date();
    eprintln!(
        "popen-bench {} run, {date}",
        if cfg.quick { "quick" } else { "full" }
    );
    eprintln!("{machine}");
    let mut run = Run {
        cfg,
        samples: Samples::default(),
        failures: Vec::new(),
        started: Instant::now(),
    };
    if let Err(e) = run.run() {
        run.failures.push(e);
    }
    let wall = run.started.elapsed();
    let out = run.cfg.out_dir.clone();
    let quick = run.cfg.quick;
    if quick {
        let missing = missing(&run.samples, &run.cfg);
        run.failures.extend(missing);
    }
    let rep = report::Report {
        samples: &run.samples,
        machine: &machine,
        date: &date,
        quick,
        partial: run.cfg.only.is_some(),
        wall,
        rss_levels: &run.cfg.rss_levels,
        failures: &run.failures,
    };
    if let Err(e) = rep.write(&out) {
        eprintln!("writing the results to {}: {e}", out.display());
        std::process::exit(1);
    }
    print!("{}", rep.markdown());
    if !quick {
        for line in rep.targets() {
            println!("{}", line.render(true, rep.partial));
        }
    }
    println!(
        "wall time: {:.0} s; results in {}",
        wall.as_secs_f64(),
        out.display()
    );
    if !run.failures.is_empty() {
        eprintln!("{} failure(s):", run.failures.len());
        for f in &run.failures {
            eprintln!("  {f}");
        }
        std::process::exit(1);
    }
    if quick {
        println!("quick run: every scenario ran with every variant (speed not judged)");
    }
}
