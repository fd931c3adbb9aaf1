//! A child that prints for 3 s; `communicate` with a 1 s timeout prints what was read so far,
//! then a second `communicate` resumes and gets the rest — every byte once.
//!
//! ```text
//! cargo run --release --example communicate_timeout
//! ```

use popen::{Command, CommunicateError, Stdio};
use std::error::Error;
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn Error>> {
    let mut child = Command::shell("for i in 1 2 3 4 5 6; do echo \"tick $i\"; sleep 0.5; done")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let started = Instant::now();

    let partial = match child.communicate(None, Some(Duration::from_secs(1))) {
        Err(CommunicateError::Timeout(t)) => {
            println!(
                "after {:.2} s: {t}\nread so far:\n{}",
                started.elapsed().as_secs_f64(),
                String::from_utf8_lossy(&t.stdout)
            );
            t.stdout
        }
        other => return Err(format!("expected a timeout, got {other:?}").into()),
    };

    // Resume: the final output holds the whole stream, so the rest starts where the partial
    // output ended.
    let out = child.communicate(None, None)?;
    assert!(out.stdout.starts_with(&partial));
    println!(
        "after {:.2} s: the child ended ({}); the rest:\n{}",
        started.elapsed().as_secs_f64(),
        out.status,
        String::from_utf8_lossy(&out.stdout[partial.len()..])
    );
    let ticks = out
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    if ticks != 6 || !out.status.success() {
        return Err(format!(
            "expected 6 ticks and success, got {ticks} and {}",
            out.status
        )
        .into());
    }
    println!("all 6 ticks, each once");
    Ok(())
}
