//! The machine line and the date printed with every result.

use std::process::Command;

fn first_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .and_then(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .map(|l| l.trim().to_string())
        })
        .unwrap_or_else(|| "?".to_string())
}

fn file_field(path: &str, key: &str) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "?".to_string())
}

fn glibc() -> String {
    // SAFETY: gnu_get_libc_version returns a static NUL-terminated string.
    let v = unsafe { std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) };
    v.to_string_lossy().into_owned()
}

/// One line: cores, kernel, C library, CPU, memory, THP, compiler, Python and peer versions.
pub fn describe() -> String {
    let mem_kib: u64 = file_field("/proc/meminfo", "MemTotal")
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".to_string());
    format!(
        "nproc={} kernel={} glibc {} cpu: {} mem: {} GiB thp={} {}; {}; popen {}, subprocess {}, duct {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        first_line("uname", &["-r"]),
        glibc(),
        file_field("/proc/cpuinfo", "model name"),
        mem_kib / (1 << 20),
        thp,
        first_line("rustc", &["--version"]),
        first_line("python3", &["--version"]),
        env!("BENCH_VERSION_POPEN"),
        env!("BENCH_VERSION_SUBPROCESS"),
        env!("BENCH_VERSION_DUCT"),
    )
}

/// The date and time, UTC.
pub fn date() -> String {
    first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
}
