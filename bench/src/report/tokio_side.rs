//! The async scenarios' tables and targets: `popen::tokio` against `tokio::process`.

use std::fmt::Write as _;

use super::{fmt_ratio, fmt_stats, ratio_target, Samples, Stats, Target};

const OURS: &str = "popen-tokio";
const THEIRS: &str = "tokio-process";

/// `ours / theirs` of the primary metric, batch by batch (the variants of one batch ran back
/// to back), as a target line that also shows the range and the ratio of the medians.
fn paired(s: &Samples, what: String, key: &str, goal: f64, at_most: bool) -> Target {
    let p: Option<Stats> = s.paired_ratio(key, 0, OURS, THEIRS);
    let of_medians = s.median(key, 0, OURS).zip(s.median(key, 0, THEIRS));
    Target {
        what,
        measured: p.map_or("not measured".into(), |p| {
            format!(
                "{:.3}× (per batch {:.3}–{:.3}, n={}; ratio of medians {})",
                p.median,
                p.min,
                p.max,
                p.n,
                fmt_ratio(of_medians.map(|(a, b)| a / b))
            )
        }),
        goal: format!("{} {goal:.2}×", if at_most { "≤" } else { "≥" }),
        holds: p.map(|p| {
            if at_most {
                p.median <= goal
            } else {
                p.median >= goal
            }
        }),
    }
}

/// The async tables, appended to the Markdown report.
pub fn tables(s: &Samples, out: &mut String) {
    let any = [
        "async_many",
        "async_spawn1",
        "async_spawn2",
        "async_capture",
    ]
    .iter()
    .chain(&["async_duplex", "async_wait"])
    .any(|k| !s.is_empty(k));
    if !any {
        return;
    }
    let _ = writeln!(
        out,
        "\n### 7. Async: `popen::tokio` vs `tokio::process` (multi-thread runtime, 2 workers)\n\n\
         median [min–max]. Many: N × `sleep 0.5` spawned from one task and each awaited by a task \
         of its own; CPU and context switches of the whole parent; stall = worst lateness of a \
         1 ms ticker task during the run. Spawn: spawn + await `/bin/true` in a loop. \
         Capture: `cat FILE`'s stdout; both ways: input through `cat` while its stdout is read.\n\n\
         | variant | many: s | spawning s | parent CPU ms | context switches | stall ms | \
         spawn 1 task /s | spawn 2 tasks /s | capture MB/s | both ways MB/s | exit → wait µs |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for v in [OURS, THEIRS, "raw"] {
        let st = |key: &str, metric: &str| fmt_stats(s.stats(key, 0, v, metric));
        let _ = writeln!(
            out,
            "| {v} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            st("async_many", "secs"),
            st("async_many", "spawn_secs"),
            st("async_many", "cpu_ms"),
            st("async_many", "wakeups"),
            st("async_many", "stall_ms"),
            st("async_spawn1", "rate"),
            st("async_spawn2", "rate"),
            st("async_capture", "mbps"),
            st("async_duplex", "mbps"),
            st("async_wait", "latency_us"),
        );
    }
}

/// The async targets.
pub fn targets(s: &Samples) -> Vec<Target> {
    let mut t = vec![
        paired(
            s,
            "async: 1,000 concurrent sleep 0.5, total time: popen::tokio vs tokio::process".into(),
            "async_many",
            1.0,
            true,
        ),
        ratio_target(
            "async: 1,000 concurrent sleep 0.5, parent CPU: tokio::process vs popen::tokio \
             (> 1: popen uses less)"
                .into(),
            s.stats("async_many", 0, THEIRS, "cpu_ms").map(|x| x.median),
            s.stats("async_many", 0, OURS, "cpu_ms").map(|x| x.median),
            1.0,
            true,
        ),
        paired(
            s,
            "async: spawn+await /bin/true, 1 task: rate popen::tokio vs tokio::process".into(),
            "async_spawn1",
            1.0,
            false,
        ),
        paired(
            s,
            "async: spawn+await /bin/true, 2 tasks: rate popen::tokio vs tokio::process".into(),
            "async_spawn2",
            1.0,
            false,
        ),
        paired(
            s,
            "async: capture of 512 MiB: MB/s popen::tokio vs tokio::process".into(),
            "async_capture",
            1.2,
            false,
        ),
        paired(
            s,
            "async: 256 MiB both ways through cat: MB/s popen::tokio vs tokio::process".into(),
            "async_duplex",
            1.2,
            false,
        ),
    ];
    let lat = s.median("async_wait", 0, OURS);
    let floor = s.median("async_wait", 0, "raw");
    let delta = lat.zip(floor).map(|(a, b)| a - b);
    t.push(Target {
        what: "async: wait reaction: popen::tokio median latency − blocking waitpid median".into(),
        measured: delta.map_or("not measured".into(), |d| {
            format!(
                "{:+.3} ms ({:.3} vs {:.3} ms; tokio::process {})",
                d / 1e3,
                lat.unwrap_or(0.0) / 1e3,
                floor.unwrap_or(0.0) / 1e3,
                s.median("async_wait", 0, THEIRS)
                    .map_or("-".into(), |x| format!("{:.3} ms", x / 1e3))
            )
        }),
        goal: "≤ +0.200 ms".into(),
        holds: delta.map(|d| d <= 200.0),
    });
    t
}
