//! Starts 20 `sleep` children of random lengths and prints them in the order they exit, each
//! reaped the moment it does.
//!
//! ```text
//! cargo run --example wait_any
//! ```

use popen::{Command, Popen};
use std::error::Error;
use std::time::{Duration, Instant, SystemTime};

fn main() -> Result<(), Box<dyn Error>> {
    let mut seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)?
        .as_nanos() as u64
        | 1;
    let mut random_ms = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % 1000
    };
    let started = Instant::now();
    let mut children: Vec<(u64, Popen)> = (0..20)
        .map(|_| {
            let ms = random_ms();
            let child = Command::new("sleep")
                .arg(format!("{}.{:03}", ms / 1000, ms % 1000))
                .spawn()?;
            Ok((ms, child))
        })
        .collect::<Result<_, popen::SpawnError>>()?;
    while !children.is_empty() {
        let handles: Vec<&Popen> = children.iter().map(|(_, c)| c).collect();
        let i = popen::wait_any(&handles, Some(Duration::from_secs(10)))?
            .ok_or("no child exited within 10 s")?;
        let (ms, child) = children.swap_remove(i);
        let status = child.poll()?.expect("reaped by wait_any");
        println!(
            "pid {:>7}  sleep {:>4} ms  exited after {:>4} ms  {status}",
            child.pid(),
            ms,
            started.elapsed().as_millis()
        );
    }
    Ok(())
}
