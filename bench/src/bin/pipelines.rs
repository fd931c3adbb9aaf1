//! popen-bench's pipeline and many-children scenarios, side by side with duct and the
//! subprocess crate (pipelines) and with a thread per child or a polling loop (many children).
//!
//! ```text
//! cargo run --release -p popen-bench --bin pipelines            # full: about 3 minutes
//! cargo run --release -p popen-bench --bin pipelines -- --quick # every variant once, briefly
//! cargo run --release -p popen-bench --bin pipelines -- --only rate,cat,wait
//! ```
//!
//! - `rate`: `echo hi | cat | cat` with stdout captured, started and finished back to back for
//!   a fixed time: pipelines per second. Variants interleaved, order rotated per batch.
//! - `cat`: 256 MiB fed from memory through `cat | cat` and captured: MB/s.
//! - `wait`: N children (this binary again, waiting for end of file on a shared gate pipe,
//!   then sleeping a random length under one second; the gate opens once all have started),
//!   waited for until all are reaped: CPU time and context switches (wakeups) of
//!   this process per exit, for N = 100, 1,000, 10,000 as `RLIMIT_NOFILE` allows.
//!
//! Each table ends with a `target:` line: popen at least 1.0× the best peer (rate and MB/s:
//! median of the per-batch ratios); for `wait`, popen's WaitSet CPU per exit at most the best
//! baseline's, and flat (10,000 vs 100 within 2×).

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use popen::{Command, Pipeline, Popen, RunOptions, WaitSet};

struct Cfg {
    batches: usize,
    rate_secs: f64,
    cat_bytes: usize,
    cat_batches: usize,
    wait_sizes: Vec<usize>,
    only: Option<Vec<String>>,
}

impl Cfg {
    fn wants(&self, s: &str) -> bool {
        self.only.as_ref().is_none_or(|o| o.iter().any(|x| x == s))
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// (CPU ns, context switches) of this process, all threads.
fn rusage() -> (u64, u64) {
    // SAFETY: `ru` is a valid rusage for the kernel to fill.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
    (
        ns(ru.ru_utime) + ns(ru.ru_stime),
        (ru.ru_nvcsw + ru.ru_nivcsw) as u64,
    )
}

const PEERS: [&str; 2] = ["duct", "subprocess"];
const VARIANTS: [&str; 3] = ["popen", "duct", "subprocess"];

fn check(ok: bool, what: &str) -> io::Result<()> {
    if ok {
        Ok(())
    } else {
        Err(io::Error::other(format!("{what}: unexpected result")))
    }
}

/// One `echo hi | cat | cat` with stdout captured.
fn one_pipeline(v: &str) -> io::Result<()> {
    match v {
        "popen" => {
            let out = Command::new("/bin/echo")
                .arg("hi")
                .pipe(Command::new("/bin/cat"))
                .pipe(Command::new("/bin/cat"))
                .run(&RunOptions::new().capture_stdout())?;
            check(out.stdout == b"hi\n" && out.status.all_success(), v)
        }
        "duct" => {
            let out = duct::cmd!("/bin/echo", "hi")
                .pipe(duct::cmd!("/bin/cat"))
                .pipe(duct::cmd!("/bin/cat"))
                .stdout_capture()
                .run()?;
            check(out.stdout == b"hi\n", v)
        }
        "subprocess" => {
            let out = (subprocess::Exec::cmd("/bin/echo").arg("hi")
                | subprocess::Exec::cmd("/bin/cat")
                | subprocess::Exec::cmd("/bin/cat"))
            .capture()?;
            check(out.stdout == b"hi\n" && out.exit_status.success(), v)
        }
        _ => unreachable!(),
    }
}

struct Shared(Arc<Vec<u8>>);

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// `data` through `cat | cat`, captured; returns the seconds it took. Input set-up that a
/// variant needs (copies, expressions) is done before the clock starts.
fn through_cat(v: &str, data: &Arc<Vec<u8>>) -> io::Result<f64> {
    let start;
    let len = match v {
        "popen" => {
            let mut p = Pipeline::new([Command::new("/bin/cat"), Command::new("/bin/cat")]);
            let opts = RunOptions::new().input(&data[..]).capture_stdout();
            start = Instant::now();
            p.run(&opts)?.stdout.len()
        }
        "duct" => {
            let expr = duct::cmd!("/bin/cat")
                .pipe(duct::cmd!("/bin/cat"))
                .stdin_bytes(data.as_slice())
                .stdout_capture();
            start = Instant::now();
            expr.run()?.stdout.len()
        }
        "subprocess" => {
            let p = (subprocess::Exec::cmd("/bin/cat") | subprocess::Exec::cmd("/bin/cat"))
                .stdin(subprocess::InputData::from_bytes(Shared(data.clone())));
            start = Instant::now();
            p.capture()?.stdout.len()
        }
        _ => unreachable!(),
    };
    let secs = start.elapsed().as_secs_f64();
    check(len == data.len(), v)?;
    Ok(secs)
}

fn target_line(what: &str, ratios: &mut [f64], pass: f64) -> String {
    let r = median(ratios);
    format!(
        "target: {what}: popen / best peer = {r:.2}× (median of {} batches; need ≥ {pass:.1}×) — {}",
        ratios.len(),
        if r >= pass { "PASS" } else { "FAIL" }
    )
}

fn rate_scenario(cfg: &Cfg) -> io::Result<()> {
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
    for v in VARIANTS {
        one_pipeline(v)?; // warm-up
    }
    for b in 0..cfg.batches {
        for k in 0..VARIANTS.len() {
            let vi = (b + k) % VARIANTS.len();
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed().as_secs_f64() < cfg.rate_secs || n < 3 {
                one_pipeline(VARIANTS[vi])?;
                n += 1;
            }
            rates[vi].push(n as f64 / start.elapsed().as_secs_f64());
        }
    }
    println!("\n### 3-stage pipeline start + finish (`echo hi | cat | cat`, stdout captured)\n");
    println!("| variant | pipelines/s (median) | min | max | batches |\n|---|---|---|---|---|");
    for (v, r) in VARIANTS.iter().zip(&rates) {
        let mut s = r.clone();
        let (lo, hi) = (
            s.iter().cloned().fold(f64::INFINITY, f64::min),
            s.iter().cloned().fold(0.0, f64::max),
        );
        println!(
            "| {v} | {:.0} | {lo:.0} | {hi:.0} | {} |",
            median(&mut s),
            s.len()
        );
    }
    let mut ratios: Vec<f64> = (0..cfg.batches)
        .map(|b| rates[0][b] / PEERS.iter().map(|p| rates[vi(p)][b]).fold(0.0, f64::max))
        .collect();
    println!(
        "\n{}",
        target_line("3-stage pipeline rate", &mut ratios, 1.0)
    );
    Ok(())
}

fn vi(name: &str) -> usize {
    VARIANTS.iter().position(|v| *v == name).expect("a variant")
}

fn cat_scenario(cfg: &Cfg) -> io::Result<()> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let data: Vec<u8> = (0..cfg.cat_bytes / 8)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()
        })
        .collect();
    let data = Arc::new(data);
    let mut mbps: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
    for b in 0..=cfg.cat_batches {
        for k in 0..VARIANTS.len() {
            let v = (b + k) % VARIANTS.len();
            let secs = through_cat(VARIANTS[v], &data)?;
            if b > 0 {
                mbps[v].push(data.len() as f64 / secs / 1e6);
            }
        }
    }
    println!(
        "\n### {} MiB through `cat | cat` (input from memory, stdout captured)\n",
        cfg.cat_bytes >> 20
    );
    println!("| variant | MB/s (median) | min | max | batches |\n|---|---|---|---|---|");
    for (v, r) in VARIANTS.iter().zip(&mbps) {
        let mut s = r.clone();
        let (lo, hi) = (
            s.iter().cloned().fold(f64::INFINITY, f64::min),
            s.iter().cloned().fold(0.0, f64::max),
        );
        println!(
            "| {v} | {:.0} | {lo:.0} | {hi:.0} | {} |",
            median(&mut s),
            s.len()
        );
    }
    let mut ratios: Vec<f64> = (0..cfg.cat_batches)
        .map(|b| mbps[0][b] / PEERS.iter().map(|p| mbps[vi(p)][b]).fold(0.0, f64::max))
        .collect();
    println!(
        "\n{}",
        target_line("cat | cat throughput", &mut ratios, 1.0)
    );
    Ok(())
}

/// Raises the soft descriptor limit to the hard one; returns the soft limit then.
fn raise_nofile() -> u64 {
    // SAFETY: getrlimit/setrlimit with a valid rlimit struct.
    unsafe {
        let mut rl: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
        rl.rlim_cur = rl.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
        rl.rlim_cur
    }
}

const WAIT_VARIANTS: [&str; 4] = [
    "popen WaitSet",
    "popen wait_any",
    "thread per child",
    "polling",
];

struct WaitResult {
    cpu_us_per_exit: f64,
    wakeups_per_exit: f64,
    early: usize,
    wall: f64,
}

/// Sleep lengths, spread at random over one second.
fn sleep_args(n: usize, seed: u64) -> Vec<String> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!("{:.3}", (x % 1000) as f64 / 1000.0)
        })
        .collect()
}

/// The child of the wait scenario (this binary, `--gate-sleep SECS`): waits for end of file on
/// its stdin (the gate, one pipe shared by all), then sleeps SECS and exits — so no child
/// exits before the last has started and the clock runs, and opening the gate costs no exec.
fn gate_sleep(secs: &str) -> ! {
    let mut sink = [0u8; 16];
    let mut stdin = io::stdin().lock();
    while !matches!(io::Read::read(&mut stdin, &mut sink), Ok(0) | Err(_)) {}
    std::thread::sleep(Duration::from_secs_f64(secs.parse().unwrap_or(0.0)));
    std::process::exit(0)
}

fn wait_run(v: &str, n: usize, seed: u64) -> io::Result<WaitResult> {
    let args = sleep_args(n, seed);
    let (gate_r, gate_w) = std::io::pipe()?;
    let gate_r = std::os::fd::OwnedFd::from(gate_r);
    let me = std::env::current_exe()?;
    let popen_child = |a: &str| -> io::Result<Popen> {
        Ok(Command::new(&me)
            .args(["--gate-sleep", a])
            .stdin(gate_r.try_clone()?)
            .spawn()?)
    };
    let std_child = |a: &str| -> io::Result<std::process::Child> {
        std::process::Command::new(&me)
            .args(["--gate-sleep", a])
            .stdin(gate_r.try_clone()?)
            .spawn()
    };
    let open = |gate_w| {
        drop(gate_w);
        (Instant::now(), rusage())
    };
    let early;
    let (wait_start, before);
    match v {
        "popen WaitSet" | "popen wait_any" => {
            let mut kids = Vec::with_capacity(n);
            for a in &args {
                kids.push(popen_child(a)?);
            }
            early = kids
                .iter()
                .filter(|k| matches!(k.poll(), Ok(Some(_))))
                .count();
            (wait_start, before) = open(gate_w);
            if v == "popen WaitSet" {
                let mut set: WaitSet<Popen> = WaitSet::new()?;
                for k in kids {
                    set.insert(k)?;
                }
                while !set.is_empty() {
                    for r in set.wait(None)? {
                        if let popen::Ready::Exited(_, c) = r {
                            check(c.poll()?.is_some_and(|s| s.success()), v)?;
                        }
                    }
                }
            } else {
                while !kids.is_empty() {
                    let i = popen::wait_any(&kids, None)?.expect("no timeout");
                    let c = kids.swap_remove(i);
                    check(c.poll()?.is_some_and(|s| s.success()), v)?;
                }
            }
        }
        "thread per child" => {
            let (tx, rx) = std::sync::mpsc::channel();
            for a in &args {
                let mut child = std_child(a)?;
                let tx = tx.clone();
                std::thread::Builder::new()
                    .stack_size(64 << 10)
                    .spawn(move || {
                        let _ = tx.send(child.wait().map(|s| s.success()));
                    })?;
            }
            drop(tx);
            early = 0;
            (wait_start, before) = open(gate_w);
            for _ in 0..n {
                check(rx.recv().map_err(io::Error::other)??, v)?;
            }
        }
        "polling" => {
            let mut kids = Vec::with_capacity(n);
            for a in &args {
                kids.push(std_child(a)?);
            }
            // std caches a status try_wait found, so this reaps nothing twice.
            early = kids
                .iter_mut()
                .map(|k| k.try_wait())
                .filter(|r| matches!(r, Ok(Some(_))))
                .count();
            (wait_start, before) = open(gate_w);
            while !kids.is_empty() {
                let mut i = 0;
                while i < kids.len() {
                    match kids[i].try_wait()? {
                        Some(s) => {
                            check(s.success(), v)?;
                            // Reaped by try_wait: dropping the handle leaves no zombie.
                            drop(kids.swap_remove(i));
                        }
                        None => i += 1,
                    }
                }
                if !kids.is_empty() {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
        _ => unreachable!(),
    }
    let after = rusage();
    let wall = wait_start.elapsed().as_secs_f64();
    Ok(WaitResult {
        cpu_us_per_exit: (after.0 - before.0) as f64 / 1e3 / n as f64,
        wakeups_per_exit: (after.1 - before.1) as f64 / n as f64,
        early,
        wall,
    })
}

fn wait_scenario(cfg: &Cfg) -> io::Result<()> {
    let limit = raise_nofile();
    println!("\n### Waiting for N children exiting in random order (RLIMIT_NOFILE {limit})\n");
    println!(
        "CPU and wakeups (context switches) of this process, all threads, from the last start to \
         the last reap, per exit; children: this binary, waiting for a gate pipe to close, then \
         sleeping a random length under 1 s; the gate closes as the clock starts.\n"
    );
    println!("| N | variant | CPU µs / exit | wakeups / exit | wait s | exited before the wait |");
    println!("|---|---|---|---|---|---|");
    let mut waitset_cpu: Vec<(usize, f64)> = Vec::new();
    let mut best_other: Vec<(usize, f64)> = Vec::new();
    for &n in &cfg.wait_sizes {
        if (n as u64) + 256 > limit {
            println!("| {n} | (skipped: RLIMIT_NOFILE {limit} too low for {n} pidfds) | | | | |");
            continue;
        }
        let mut best = f64::INFINITY;
        let turn = cfg.wait_sizes.iter().position(|&m| m == n).unwrap_or(0);
        for k in 0..WAIT_VARIANTS.len() {
            let v = WAIT_VARIANTS[(k + turn) % WAIT_VARIANTS.len()];
            // One wait_any over N pidfds per exit is O(N²); a thread per child at 10,000 would
            // take 10,000 extra tasks on a shared machine.
            if n > 1000 && matches!(v, "popen wait_any" | "thread per child") {
                println!("| {n} | {v} | (not run above 1,000) | | | |");
                continue;
            }
            let r = wait_run(v, n, 0x9E37_79B9_7F4A_7C15 ^ n as u64)?;
            println!(
                "| {n} | {v} | {:.1} | {:.3} | {:.2} | {} |",
                r.cpu_us_per_exit, r.wakeups_per_exit, r.wall, r.early
            );
            if v == "popen WaitSet" {
                waitset_cpu.push((n, r.cpu_us_per_exit));
            } else if !v.starts_with("popen") {
                best = best.min(r.cpu_us_per_exit);
            }
        }
        best_other.push((n, best));
    }
    for ((n, ours), (_, best)) in waitset_cpu.iter().zip(&best_other) {
        println!(
            "target: wait {n}: WaitSet CPU per exit {ours:.1} µs vs best baseline {best:.1} µs \
             (need ≤) — {}",
            if ours <= best { "PASS" } else { "FAIL" }
        );
    }
    if let (Some(first), Some(last)) = (waitset_cpu.first(), waitset_cpu.last()) {
        let r = last.1 / first.1;
        println!(
            "target: WaitSet CPU per exit flat: N={} / N={} = {r:.2}× (need ≤ 2) — {}",
            last.0,
            first.0,
            if r <= 2.0 { "PASS" } else { "FAIL" }
        );
    }
    Ok(())
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, secs] = &args[..] {
        if flag == "--gate-sleep" {
            gate_sleep(secs);
        }
    }
    let quick = args.iter().any(|a| a == "--quick");
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|l| l.split(',').map(str::to_string).collect());
    let cfg = if quick {
        Cfg {
            batches: 1,
            rate_secs: 0.05,
            cat_bytes: 8 << 20,
            cat_batches: 1,
            wait_sizes: vec![20, 50],
            only,
        }
    } else {
        Cfg {
            batches: 10,
            rate_secs: 0.5,
            cat_bytes: 256 << 20,
            cat_batches: 7,
            wait_sizes: vec![100, 1000, 10000],
            only,
        }
    };
    if cfg.wants("rate") {
        rate_scenario(&cfg)?;
    }
    if cfg.wants("cat") {
        cat_scenario(&cfg)?;
    }
    if cfg.wants("wait") {
        wait_scenario(&cfg)?;
    }
    Ok(())
}
