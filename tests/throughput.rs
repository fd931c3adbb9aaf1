//! Capture throughput, measured (not asserted) next to `std::process` in the same run:
//!
//! ```text
//! cargo test --release --test throughput -- --ignored --nocapture
//! ```

mod common;

use common::noise;
use popen::{Command, RunOptions};
use std::io::{Read, Write};
use std::time::Instant;

const MIB: usize = 1 << 20;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn mb_per_s(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

/// Runs `f` `rounds` times and prints the median and range in MB/s.
fn measure(name: &str, bytes: usize, rounds: usize, mut f: impl FnMut() -> usize) -> f64 {
    let mut rates = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        let got = f();
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(got, bytes, "{name}: byte count");
        rates.push(mb_per_s(bytes, secs));
    }
    let (lo, hi) = (
        rates.iter().copied().fold(f64::MAX, f64::min),
        rates.iter().copied().fold(0.0, f64::max),
    );
    let med = median(rates);
    println!("{name:<40} {med:>7.0} MB/s  [{lo:.0}–{hi:.0}]");
    med
}

/// The floor the anchors measured: std spawn with our own pipe, grown to 1 MiB, read 1 MiB at
/// a time into the spare capacity of a vector.
fn raw_read(path: &std::path::Path) -> usize {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the array with two new descriptors we then own.
    let (r, w) = unsafe {
        assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0);
        (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
    };
    // SAFETY: fcntl on a descriptor we own.
    unsafe { libc::fcntl(r.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
    // The command (and with it our copy of the write end) is dropped once the child runs.
    let mut child = std::process::Command::new("cat")
        .arg(path)
        .stdout(w)
        .spawn()
        .unwrap();
    let mut buf: Vec<u8> = Vec::new();
    loop {
        buf.reserve(1 << 20);
        let spare = buf.spare_capacity_mut();
        // SAFETY: reads into the vector's spare capacity, then marks what was read as set.
        let n = unsafe {
            libc::read(
                r.as_raw_fd(),
                spare.as_mut_ptr().cast(),
                spare.len().min(1 << 20),
            )
        };
        assert!(n >= 0);
        if n == 0 {
            break;
        }
        // SAFETY: the kernel initialised `n` more bytes.
        unsafe { buf.set_len(buf.len() + n as usize) };
    }
    child.wait().unwrap();
    buf.len()
}

#[test]
#[ignore = "a measurement: run in release mode with --ignored --nocapture"]
fn capture_throughput() {
    let rounds = 5;
    let size = 512 * MIB;
    let path = std::env::temp_dir().join(format!("popen-throughput-{}", std::process::id()));
    let path = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::Path::new("/dev/shm").join(path.file_name().unwrap())
    } else {
        path
    };
    std::fs::write(&path, noise(size, 0x2545_f491_4f6c_dd1d)).unwrap();

    println!(
        "capture of {} MiB from `cat FILE` ({}):",
        size / MIB,
        path.display()
    );
    for _ in 0..2 {
        measure("popen run(capture_output)", size, rounds, || {
            popen::run(
                Command::new("cat").arg(&path),
                &RunOptions::new().capture_output(),
            )
            .unwrap()
            .stdout
            .len()
        });
        measure("raw 1 MiB read loop, 1 MiB pipe", size, rounds, || {
            raw_read(&path)
        });
        measure("std Command::output", size, rounds, || {
            std::process::Command::new("cat")
                .arg(&path)
                .output()
                .unwrap()
                .stdout
                .len()
        });
    }
    std::fs::remove_file(&path).unwrap();

    let size = 256 * MIB;
    let input = noise(size, 0x2545_f491_4f6c_dd1d);
    println!("{} MiB into `cat` and back:", size / MIB);
    for _ in 0..2 {
        measure("popen run(input, capture_stdout)", size, rounds, || {
            popen::run(
                &mut Command::new("cat"),
                &RunOptions::new().input(&input[..]).capture_stdout(),
            )
            .unwrap()
            .stdout
            .len()
        });
        measure("std writer thread + read_to_end", size, rounds, || {
            let mut child = std::process::Command::new("cat")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            let mut out = Vec::new();
            let input = &input;
            std::thread::scope(|s| {
                // The thread owns stdin, so cat sees end of file when it is done.
                s.spawn(move || stdin.write_all(input).unwrap());
                child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
            });
            child.wait().unwrap();
            out.len()
        });
    }
}
