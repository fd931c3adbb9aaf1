//! Fixture child for the wait-reaction scenario: `stamp-exit MILLIS FILE` sleeps MILLIS ms,
//! writes the CLOCK_MONOTONIC time in nanoseconds to FILE, and exits with status 0 at once.
//!
//! FILE is opened before the sleep, so only one `write` separates the stamp from `_exit`.

use std::io::Write;
use std::time::Duration;

fn monotonic_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the kernel to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: stamp-exit MILLIS FILE");
        std::process::exit(2);
    }
    let millis: u64 = args[1].parse().expect("MILLIS is a number");
    let mut file = std::fs::File::create(&args[2]).expect("FILE can be created");
    std::thread::sleep(Duration::from_millis(millis));
    let stamp = monotonic_ns().to_string();
    let ok = file.write_all(stamp.as_bytes()).is_ok();
    // SAFETY: _exit ends the process without running destructors, which is what we want: the
    // stamp is the last thing the process does.
    unsafe { libc::_exit(if ok { 0 } else { 1 }) }
}
