//! Samples, statistics, the Markdown tables, the target lines and the JSON file.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::{PEERS, VARIANTS};

mod tokio_side;

/// One measurement: a batch of one variant in one scenario at one parent size.
pub struct Sample {
    pub scenario: String,
    pub rss_mib: usize,
    pub variant: String,
    pub batch: usize,
    pub metrics: Vec<(String, f64)>,
    /// The spawn path taken, where the variant reports it.
    pub path: Option<String>,
}

#[derive(Default)]
pub struct Samples {
    all: Vec<Sample>,
}

#[derive(Clone, Copy, Debug)]
pub struct Stats {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

fn stats_of(mut v: Vec<f64>) -> Option<Stats> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Stats {
        median,
        min: v[0],
        max: v[n - 1],
        n,
    })
}

/// The metric a scenario's tables and ratios are about.
pub fn primary(scenario: &str) -> &'static str {
    match scenario {
        "capture" | "duplex" | "async_capture" | "async_duplex" => "mbps",
        "wait_latency" | "async_wait" => "latency_us",
        "wait_cpu" => "cpu_ms",
        "many" | "async_many" => "secs",
        _ => "rate",
    }
}

impl Samples {
    pub fn push(&mut self, s: Sample) {
        self.all.push(s);
    }

    pub fn values(&self, scenario: &str, rss: usize, variant: &str, metric: &str) -> Vec<f64> {
        self.all
            .iter()
            .filter(|s| s.scenario == scenario && s.rss_mib == rss && s.variant == variant)
            .filter_map(|s| s.metrics.iter().find(|(k, _)| k == metric).map(|m| m.1))
            .collect()
    }

    pub fn stats(&self, scenario: &str, rss: usize, variant: &str, metric: &str) -> Option<Stats> {
        stats_of(self.values(scenario, rss, variant, metric))
    }

    fn median(&self, scenario: &str, rss: usize, variant: &str) -> Option<f64> {
        self.stats(scenario, rss, variant, primary(scenario))
            .map(|s| s.median)
    }

    /// The ratio `a / b` of the primary metric, batch by batch: each batch visits every
    /// variant once, back to back, so a ratio within one batch cancels the slow drifts of a
    /// shared machine that a ratio of two medians keeps. Stats over the batches both ran.
    fn paired_ratio(&self, scenario: &str, rss: usize, a: &str, b: &str) -> Option<Stats> {
        let metric = primary(scenario);
        let value = |variant: &str, batch: usize| {
            self.all
                .iter()
                .find(|s| {
                    s.scenario == scenario
                        && s.rss_mib == rss
                        && s.variant == variant
                        && s.batch == batch
                })
                .and_then(|s| s.metrics.iter().find(|(k, _)| k == metric).map(|m| m.1))
        };
        let ratios = self
            .all
            .iter()
            .filter(|s| s.scenario == scenario && s.rss_mib == rss && s.variant == a)
            .filter_map(|s| Some(value(a, s.batch)? / value(b, s.batch)?))
            .collect();
        stats_of(ratios)
    }

    /// The spawn path the variant reported (the last one).
    fn path(&self, scenario: &str, rss: usize, variant: &str) -> Option<&str> {
        self.all
            .iter()
            .rev()
            .find(|s| s.scenario == scenario && s.rss_mib == rss && s.variant == variant)
            .and_then(|s| s.path.as_deref())
    }

    fn is_empty(&self, scenario: &str) -> bool {
        !self.all.iter().any(|s| s.scenario == scenario)
    }
}

/// How each variant waits in scenario 5.
fn wait_call(variant: &str) -> &'static str {
    match variant {
        v if v.starts_with("popen") => "`wait_timeout(10 s)` (pidfd + poll)",
        "std" => "`wait()` (blocking: std has no timeout)",
        "subprocess" => "`Job::wait_timeout(10 s)`",
        "duct" => "`Handle::wait_timeout(10 s)`",
        "cpython" => "`Popen.wait(timeout=10)`",
        "cpython-popen" => "`Popen.wait(timeout=10)`, `popen.install()` (pidfd + poll)",
        _ => "`waitpid` (blocking)",
    }
}

fn fmt_num(x: f64) -> String {
    let a = x.abs();
    if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

fn fmt_stats(s: Option<Stats>) -> String {
    match s {
        Some(s) => format!(
            "{} [{}–{}]",
            fmt_num(s.median),
            fmt_num(s.min),
            fmt_num(s.max)
        ),
        None => "—".to_string(),
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or("—".to_string(), |r| format!("{r:.2}×"))
}

fn fmt_rss(mib: usize) -> String {
    if mib >= 1024 && mib.is_multiple_of(1024) {
        format!("{} GiB", mib / 1024)
    } else {
        format!("{mib} MiB")
    }
}

/// One target line.
pub struct Target {
    pub what: String,
    pub measured: String,
    pub goal: String,
    /// `None`: not measured (a variant failed), which counts as a miss.
    pub holds: Option<bool>,
}

impl Target {
    /// The target's line; `judged` is false in a quick run, whose numbers mean nothing, so the
    /// line says so instead of "holds" or "misses". In a `partial` run (`--only`) a target
    /// with no measurement was not run.
    pub fn render(&self, judged: bool, partial: bool) -> String {
        format!(
            "target: {}: {} (goal {}): {}",
            self.what,
            self.measured,
            self.goal,
            match (judged, self.holds) {
                (false, _) => "not judged (quick)",
                (true, Some(true)) => "holds",
                (true, None) if partial => "not run (--only)",
                (true, _) => "misses",
            }
        )
    }

    /// `holds` is null when not judged.
    fn json(&self, judged: bool) -> Value {
        json!({"what": self.what, "measured": self.measured, "goal": self.goal,
            "holds": judged.then_some(self.holds == Some(true))})
    }
}

/// A ratio target: `num / den >= goal` (or `> goal` when `strict`), from two medians.
fn ratio_target(
    what: String,
    num: Option<f64>,
    den: Option<f64>,
    goal: f64,
    strict: bool,
) -> Target {
    let r = num.zip(den).map(|(a, b)| a / b);
    Target {
        what,
        measured: r.map_or("not measured".into(), |r| format!("{r:.3}×")),
        goal: format!("{} {goal:.2}×", if strict { ">" } else { "≥" }),
        holds: r.map(|r| if strict { r > goal } else { r >= goal }),
    }
}

/// A [`side_by_side`] target against the fastest peer in `scenario` at `rss`: "`what` vs best
/// peer (NAME)".
fn vs_best_peer(
    s: &Samples,
    what: &str,
    scenario: &str,
    rss: usize,
    goal: f64,
    strict: bool,
) -> Target {
    let best = best_peer(s, scenario, rss, true).map(|b| b.0);
    let what = format!("{what} vs best peer ({})", best.unwrap_or("none"));
    side_by_side(s, what, scenario, rss, best, goal, strict)
}

/// A target comparing `popen-auto` with `other` (`None`: no such variant measured) in `scenario`
/// at `rss`: judged on the median of per-batch ratios ([`Samples::paired_ratio`]); the line also
/// shows their range and the ratio of the two medians.
#[allow(clippy::too_many_arguments)]
fn side_by_side(
    s: &Samples,
    what: String,
    scenario: &str,
    rss: usize,
    other: Option<&str>,
    goal: f64,
    strict: bool,
) -> Target {
    let auto = "popen-auto";
    let paired = other.and_then(|o| s.paired_ratio(scenario, rss, auto, o));
    let of_medians =
        other.and_then(|o| Some(s.median(scenario, rss, auto)? / s.median(scenario, rss, o)?));
    let r = paired.map(|p| p.median);
    Target {
        what,
        measured: paired.map_or("not measured".into(), |p| {
            format!(
                "{:.3}× (per batch {:.3}–{:.3}, n={}; ratio of medians {})",
                p.median,
                p.min,
                p.max,
                p.n,
                of_medians.map_or("-".into(), |m| format!("{m:.3}×"))
            )
        }),
        goal: format!("{} {goal:.2}×", if strict { ">" } else { "≥" }),
        holds: r.map(|r| if strict { r > goal } else { r >= goal }),
    }
}

pub struct Report<'a> {
    pub samples: &'a Samples,
    pub machine: &'a str,
    pub date: &'a str,
    pub quick: bool,
    /// Only some scenarios ran (`--only`): a target none of them measured was not run, not
    /// missed.
    pub partial: bool,
    pub wall: Duration,
    pub rss_levels: &'a [usize],
    pub failures: &'a [String],
}

impl Report<'_> {
    fn spawn_table(&self, out: &mut String, key: &str, title: &str) {
        let s = self.samples;
        if s.is_empty(key) {
            return;
        }
        // The memory sizes this scenario ran at (`spawn_fds`: only without any).
        let levels: Vec<usize> = self
            .rss_levels
            .iter()
            .copied()
            .filter(|&r| VARIANTS.iter().any(|v| s.median(key, r, v).is_some()))
            .collect();
        let batches = VARIANTS
            .iter()
            .flat_map(|v| levels.iter().map(move |&r| (v, r)))
            .filter_map(|(v, r)| s.stats(key, r, v, "rate").map(|st| st.n))
            .max()
            .unwrap_or(0);
        let _ = writeln!(
            out,
            "\n### {title}\n\nspawns/s, median [min–max] of {batches} batches; × raw = median / median of the raw loop at the same size. \
             CPU µs/spawn = CPU time of the spawning process (all its threads, not the children) per spawn, median.\n"
        );
        let mut head = "| variant | path |".to_string();
        let mut rule = "|---|---|".to_string();
        for &r in &levels {
            let _ = write!(head, " RSS {} | × raw |", fmt_rss(r));
            rule.push_str("---:|---:|");
        }
        let last = *levels.last().unwrap_or(&0);
        // The slow-down with the parent's memory, where the scenario ran at several sizes.
        let by_size = levels.len() > 1;
        if by_size {
            let _ = write!(head, " {} / 0 |", fmt_rss(last));
            rule.push_str("---:|");
        }
        let _ = write!(head, " CPU µs/spawn, RSS {} |", fmt_rss(levels[0]));
        rule.push_str("---:|");
        let _ = writeln!(out, "{head}\n{rule}");
        for v in VARIANTS {
            let path = s.path(key, levels[0], v).unwrap_or("—");
            let _ = write!(out, "| {v} | {path} |");
            for &r in &levels {
                let st = s.stats(key, r, v, "rate");
                let ratio = st.map(|x| x.median).zip(s.median(key, r, "raw"));
                let _ = write!(
                    out,
                    " {} | {} |",
                    fmt_stats(st),
                    fmt_ratio(ratio.map(|(a, b)| a / b))
                );
            }
            if by_size {
                let slow = s.median(key, last, v).zip(s.median(key, 0, v));
                let _ = write!(out, " {} |", fmt_ratio(slow.map(|(a, b)| a / b)));
            }
            let cpu = s.stats(key, levels[0], v, "cpu_us_per_spawn");
            let _ = writeln!(
                out,
                " {} |",
                cpu.map_or("—".into(), |c| format!("{:.1}", c.median))
            );
        }
    }

    fn io_table(&self, out: &mut String, key: &str, title: &str) {
        let s = self.samples;
        if s.is_empty(key) {
            return;
        }
        let _ = writeln!(
            out,
            "\n### {title}\n\n| variant | MB/s median [min–max] | n | × raw | parent CPU ms | parent CPUs busy | `cat` CPU ms |\n|---|---:|---:|---:|---:|---:|---:|"
        );
        let raw = s.median(key, 0, "raw");
        let median = |v: &str, metric: &str| {
            s.stats(key, 0, v, metric)
                .map_or("—".to_string(), |x| fmt_num(x.median))
        };
        for v in VARIANTS {
            let st = s.stats(key, 0, v, "mbps");
            let _ = writeln!(
                out,
                "| {v} | {} | {} | {} | {} | {} | {} |",
                fmt_stats(st),
                st.map_or(0, |x| x.n),
                fmt_ratio(st.map(|x| x.median).zip(raw).map(|(a, b)| a / b)),
                median(v, "cpu_ms"),
                median(v, "cpus"),
                median(v, "child_cpu_ms"),
            );
        }
    }

    fn wait_table(&self, out: &mut String) {
        let s = self.samples;
        if s.is_empty("wait_latency") && s.is_empty("wait_cpu") {
            return;
        }
        let _ = writeln!(
            out,
            "\n### 5. Wait with timeout: reaction latency and the waiter's cost\n\n\
             Latency = CLOCK_MONOTONIC when the wait returned − the child's stamp written just \
             before `_exit` (child lives 200 ms in the full run); CPU and wakeups = \
             getrusage(RUSAGE_SELF) CPU time and context switches of the waiting process from \
             after the spawn to the wait's return (child lives 2 s in the full run). \
             Medians [min–max].\n\n\
             | variant | wait call | latency µs | Δ vs raw µs | n | waiter CPU ms | wakeups | n |\n\
             |---|---|---:|---:|---:|---:|---:|---:|"
        );
        let raw = s.median("wait_latency", 0, "raw");
        for v in VARIANTS {
            let lat = s.stats("wait_latency", 0, v, "latency_us");
            let cpu = s.stats("wait_cpu", 0, v, "cpu_ms");
            let wk = s.stats("wait_cpu", 0, v, "wakeups");
            let delta = lat.map(|l| l.median).zip(raw).map(|(a, b)| a - b);
            let _ = writeln!(
                out,
                "| {v} | {} | {} | {} | {} | {} | {} | {} |",
                wait_call(v),
                fmt_stats(lat),
                delta.map_or("—".into(), |d| format!("{d:+.0}")),
                lat.map_or(0, |x| x.n),
                fmt_stats(cpu),
                fmt_stats(wk),
                cpu.map_or(0, |x| x.n),
            );
        }
    }

    fn many_table(&self, out: &mut String) {
        let s = self.samples;
        if s.is_empty("many") {
            return;
        }
        let _ = writeln!(
            out,
            "\n### 6. Many children: all started, then each waited for in start order\n\n\
             Seconds, median [min–max]; × raw = raw total / variant total (> 1 is faster).\n\n\
             | variant | total s | spawn phase s | n | × raw |\n|---|---:|---:|---:|---:|"
        );
        let raw = s.median("many", 0, "raw");
        for v in VARIANTS {
            let st = s.stats("many", 0, v, "secs");
            let sp = s.stats("many", 0, v, "spawn_secs");
            let _ = writeln!(
                out,
                "| {v} | {} | {} | {} | {} |",
                fmt_stats(st),
                fmt_stats(sp),
                st.map_or(0, |x| x.n),
                fmt_ratio(st.map(|x| x.median).zip(raw).map(|(a, b)| b / a))
            );
        }
    }

    /// The tables, as Markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "## popen-bench results ({} run, {})\n\n```\n{}\n```\n\nWall time {:.0} s.",
            if self.quick { "quick" } else { "full" },
            self.date,
            self.machine,
            self.wall.as_secs_f64()
        );
        if self.quick {
            out.push_str(
                "\nQuick run: tiny sizes and single batches; it checks that everything runs, \
                 and its numbers mean nothing.\n",
            );
        }
        if !self.failures.is_empty() {
            out.push_str("\n**Failures:**\n\n");
            for f in self.failures {
                let _ = writeln!(out, "- {f}");
            }
        }
        self.spawn_table(
            &mut out,
            "spawn",
            "1. spawn + wait `/bin/true`, default options (popen: close_fds on)",
        );
        self.spawn_table(
            &mut out,
            "spawn_full",
            "2. spawn + wait `/bin/true` with close_fds + cwd + a new session (the child leads a new process group)",
        );
        self.spawn_table(
            &mut out,
            "spawn_2threads",
            "3. spawn + wait `/bin/true` from 2 threads at once (total rate), default options",
        );
        self.spawn_table(
            &mut out,
            "spawn_fds",
            "3b. spawn + wait `/bin/true`, default options, while the parent holds 10,000 open descriptors (close-on-exec)",
        );
        self.io_table(
            &mut out,
            "capture",
            "4a. Capture of `cat FILE` stdout (512 MiB file in /dev/shm in the full run)",
        );
        self.io_table(
            &mut out,
            "duplex",
            "4b. Both ways through `cat`: input written while stdout is read (256 MiB in the full run)",
        );
        self.wait_table(&mut out);
        self.many_table(&mut out);
        tokio_side::tables(self.samples, &mut out);
        let targets = self.targets();
        let _ = writeln!(
            out,
            "\n### Targets{}\n\n```",
            if self.quick {
                " (not judged in a quick run)"
            } else {
                ""
            }
        );
        for t in &targets {
            let _ = writeln!(out, "{}", t.render(!self.quick, self.partial));
        }
        out.push_str("```\n");
        out
    }

    /// Every target the benchmark sets, judged on this run.
    pub fn targets(&self) -> Vec<Target> {
        let s = self.samples;
        let mut t = Vec::new();
        let auto = "popen-auto";
        let levels = self.rss_levels;
        for &r in levels {
            t.push(side_by_side(
                s,
                format!(
                    "spawn+wait, auto path, default options, RSS {}: rate vs raw posix_spawn loop",
                    fmt_rss(r)
                ),
                "spawn",
                r,
                Some("raw"),
                0.95,
                false,
            ));
        }
        for &r in levels {
            t.push(side_by_side(
                s,
                format!(
                    "spawn+wait, auto path, default options, RSS {}: rate vs std",
                    fmt_rss(r)
                ),
                "spawn",
                r,
                Some("std"),
                0.97,
                false,
            ));
        }
        let last = *levels.last().unwrap_or(&0);
        t.push(ratio_target(
            format!(
                "spawn+wait, auto path: rate at RSS {} vs at RSS 0",
                fmt_rss(last)
            ),
            s.median("spawn", last, auto),
            s.median("spawn", 0, auto),
            0.90,
            false,
        ));
        for &r in levels {
            t.push(side_by_side(
                s,
                format!(
                    "close_fds+cwd+session, auto path, RSS {}: rate vs raw loop (same options)",
                    fmt_rss(r)
                ),
                "spawn_full",
                r,
                Some("raw"),
                0.90,
                false,
            ));
        }
        for &r in levels {
            t.push(vs_best_peer(
                s,
                &format!("close_fds+cwd+session, auto path, RSS {}: rate", fmt_rss(r)),
                "spawn_full",
                r,
                1.0,
                true,
            ));
        }
        for &r in levels {
            t.push(side_by_side(
                s,
                format!(
                    "2 threads, auto path, RSS {}: total rate vs std from 2 threads",
                    fmt_rss(r)
                ),
                "spawn_2threads",
                r,
                Some("std"),
                1.0,
                false,
            ));
        }
        t.push(vs_best_peer(
            s,
            "spawn+wait with 10,000 descriptors open, auto path: rate",
            "spawn_fds",
            0,
            1.5,
            false,
        ));
        t.push(vs_best_peer(
            s,
            "capture of 512 MiB: popen MB/s",
            "capture",
            0,
            1.0,
            false,
        ));
        t.push(side_by_side(
            s,
            // One thread, no writer thread: its floor on a 2-vCPU machine is below 1.4× (see
            // bench/README.md, "Both ways through cat").
            "256 MiB both ways through cat, one thread: popen MB/s vs std (writer thread)".into(),
            "duplex",
            0,
            Some("std"),
            1.25,
            false,
        ));
        let lat = s.median("wait_latency", 0, auto);
        let floor = s.median("wait_latency", 0, "raw");
        let delta = lat.zip(floor).map(|(a, b)| a - b);
        t.push(Target {
            what: "wait_timeout reaction: popen median latency − blocking waitpid median".into(),
            measured: delta.map_or("not measured".into(), |d| {
                format!(
                    "{:+.3} ms ({:.3} vs {:.3} ms)",
                    d / 1e3,
                    lat.unwrap_or(0.0) / 1e3,
                    floor.unwrap_or(0.0) / 1e3
                )
            }),
            goal: "≤ +0.200 ms".into(),
            holds: delta.map(|d| d <= 200.0),
        });
        let wk = s.stats("wait_cpu", 0, auto, "wakeups");
        t.push(Target {
            what: "wait_timeout during a 2 s wait: wakeups of the waiter (max over runs)".into(),
            measured: wk.map_or("not measured".into(), |w| {
                format!("{:.0} (median {:.0})", w.max, w.median)
            }),
            goal: "≤ 2".into(),
            holds: wk.map(|w| w.max <= 2.0),
        });
        t.extend(python_targets(s));
        let best = best_peer(s, "many", 0, false);
        let ours = s.median("many", 0, auto);
        t.push(Target {
            what: format!(
                "1,000 children started then waited: popen total time vs best peer ({})",
                best.map_or("none", |b| b.0)
            ),
            measured: ours.zip(best).map_or("not measured".into(), |(a, b)| {
                format!("{:.3}× ({a:.3} s vs {:.3} s)", a / b.1, b.1)
            }),
            goal: "≤ 1.05×".into(),
            holds: ours.zip(best).map(|(a, b)| a / b.1 <= 1.05),
        });
        t.extend(tokio_side::targets(s));
        t
    }

    pub fn json(&self) -> Value {
        let samples: Vec<Value> = self
            .samples
            .all
            .iter()
            .map(|s| {
                let metrics: serde_json::Map<String, Value> = s
                    .metrics
                    .iter()
                    .map(|(k, v)| (k.clone(), json!(v)))
                    .collect();
                json!({"scenario": s.scenario, "rss_mib": s.rss_mib, "variant": s.variant,
                    "batch": s.batch, "path": s.path, "metrics": metrics})
            })
            .collect();
        json!({
            "mode": if self.quick { "quick" } else { "full" },
            "partial": self.partial,
            "date": self.date,
            "machine": self.machine,
            "wall_secs": self.wall.as_secs_f64(),
            "rss_levels_mib": self.rss_levels,
            "failures": self.failures,
            "targets": self.targets().iter().map(|t| t.json(!self.quick)).collect::<Vec<_>>(),
            "samples": samples,
        })
    }

    /// Writes results.md, results.json and spawn_rate.png into `dir`.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("results.md"), self.markdown())?;
        let json = serde_json::to_string_pretty(&self.json()).map_err(std::io::Error::other)?;
        std::fs::write(dir.join("results.json"), json + "\n")?;
        crate::plot::spawn_rate(&dir.join("spawn_rate.png"), self.samples, self.rss_levels)
            .map_err(std::io::Error::other)
    }
}

/// CPython with `popen.install()` (`cpython-popen`) against stock CPython (`cpython`), side by
/// side in the same Python worker.
fn python_targets(s: &Samples) -> Vec<Target> {
    let (ours, stock) = ("cpython-popen", "cpython");
    let twin = |what: &str, scenario: &str, goal: f64| {
        let paired = s.paired_ratio(scenario, 0, ours, stock);
        Target {
            what: what.into(),
            measured: paired.map_or("not measured".into(), |p| {
                format!(
                    "{:.3}× (per batch {:.3}–{:.3}, n={}; {} vs {} MB/s)",
                    p.median,
                    p.min,
                    p.max,
                    p.n,
                    s.median(scenario, 0, ours).map_or("-".into(), fmt_num),
                    s.median(scenario, 0, stock).map_or("-".into(), fmt_num),
                )
            }),
            goal: format!("≥ {goal:.2}×"),
            holds: paired.map(|p| p.median >= goal),
        }
    };
    let lat = |v| s.stats("wait_latency", 0, v, "latency_us");
    let wk = |v| s.stats("wait_latency", 0, v, "wakeups");
    vec![
        twin(
            "CPython run(capture_output=True) of 512 MiB: popen.install() MB/s vs stock",
            "capture",
            3.0,
        ),
        twin(
            "CPython run(input=256 MiB) through cat: popen.install() MB/s vs stock",
            "duplex",
            2.0,
        ),
        Target {
            what: "CPython wait(timeout=10), child exits after 200 ms: popen.install() \
                   latency after the exit (median; stock for comparison)"
                .into(),
            measured: lat(ours).map_or("not measured".into(), |l| {
                format!(
                    "{:.3} ms (max {:.3}; stock {})",
                    l.median / 1e3,
                    l.max / 1e3,
                    lat(stock).map_or("-".into(), |x| format!("{:.3} ms", x.median / 1e3))
                )
            }),
            goal: "≤ 1.000 ms".into(),
            holds: lat(ours).map(|l| l.median <= 1000.0),
        },
        Target {
            what: "CPython wait(timeout=10), child exits after 200 ms: popen.install() \
                   wakeups of the waiter (max over runs; stock for comparison)"
                .into(),
            measured: wk(ours).map_or("not measured".into(), |w| {
                format!(
                    "{:.0} (median {:.0}; stock median {})",
                    w.max,
                    w.median,
                    wk(stock).map_or("-".into(), |x| format!("{:.0}", x.median))
                )
            }),
            goal: "≤ 2".into(),
            holds: wk(ours).map(|w| w.max <= 2.0),
        },
    ]
}

/// The best peer: the highest median (`higher_is_better`) or the lowest.
fn best_peer(
    s: &Samples,
    key: &str,
    rss: usize,
    higher_is_better: bool,
) -> Option<(&'static str, f64)> {
    PEERS
        .iter()
        .filter_map(|&p| s.median(key, rss, p).map(|m| (p, m)))
        .reduce(|a, b| {
            if (b.1 > a.1) == higher_is_better {
                b
            } else {
                a
            }
        })
}

/// Median of the primary metric, for the plot.
pub fn spawn_medians(s: &Samples, key: &str, levels: &[usize], variant: &str) -> Vec<(f64, f64)> {
    levels
        .iter()
        .filter_map(|&r| s.median(key, r, variant).map(|m| (r as f64 / 1024.0, m)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(samples: &Samples, quick: bool) -> Report<'_> {
        Report {
            samples,
            machine: "test machine",
            date: "today",
            quick,
            partial: false,
            wall: Duration::from_secs(1),
            rss_levels: &[0],
            failures: &[],
        }
    }

    /// A quick run's numbers mean nothing: its target lines must not say "misses" (nor "holds").
    #[test]
    fn quick_run_judges_no_target() {
        let samples = Samples::default();
        let md = report(&samples, true).markdown();
        let lines: Vec<&str> = md.lines().filter(|l| l.starts_with("target: ")).collect();
        assert!(!lines.is_empty(), "{md}");
        for l in &lines {
            assert!(l.ends_with(": not judged (quick)"), "{l}");
        }
        let json = report(&samples, true).json();
        assert!(json["targets"][0]["holds"].is_null(), "{json}");
    }

    /// A run of some scenarios (`--only`) says a target it did not measure was not run.
    #[test]
    fn partial_run_says_an_unmeasured_target_was_not_run() {
        let samples = Samples::default();
        let rep = Report {
            partial: true,
            ..report(&samples, false)
        };
        let md = rep.markdown();
        let lines: Vec<&str> = md.lines().filter(|l| l.starts_with("target: ")).collect();
        assert!(!lines.is_empty(), "{md}");
        for l in &lines {
            assert!(l.ends_with(": not run (--only)"), "{l}");
        }
    }

    /// A full run judges every target; one without measurements misses.
    #[test]
    fn full_run_judges_every_target() {
        let samples = Samples::default();
        let md = report(&samples, false).markdown();
        let lines: Vec<&str> = md.lines().filter(|l| l.starts_with("target: ")).collect();
        assert!(!lines.is_empty(), "{md}");
        for l in &lines {
            assert!(l.ends_with(": misses"), "{l}");
        }
        assert_eq!(report(&samples, false).json()["targets"][0]["holds"], false);
    }
}
