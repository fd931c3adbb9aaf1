//! `sh -c 'sleep 30 & echo hi; sleep 30'` with capture and a 1 s timeout.
//!
//! The background `sleep` inherits the capture pipes, so after the shell is killed the pipes
//! stay open for 30 s; CPython's `run` waits for them (issue 81605). Here the wait after the
//! kill is bounded by a grace period, so `run` returns after about 1 s + 250 ms with the
//! partial output `hi`. Started in a process group of its own, the whole group is killed and
//! the pipes close at once. (The grandchild of the first, plain run is outside any group the
//! library may kill: it ends on its own when its `sleep 30` does.)
//!
//! ```text
//! cargo run --release --example grandchild_timeout
//! ```

use popen::{Command, RunError, RunOptions};
use std::error::Error;
use std::time::{Duration, Instant};

const SCRIPT: &str = "sleep 30 & echo hi; sleep 30";

fn timed_run(cmd: &mut Command) -> Result<Duration, Box<dyn Error>> {
    let opts = RunOptions::new()
        .capture_output()
        .timeout(Duration::from_secs(1));
    let started = Instant::now();
    let result = popen::run(cmd, &opts);
    let elapsed = started.elapsed();
    match result {
        Err(RunError::Timeout(t)) => {
            println!("  error:          {t}");
            println!("  partial stdout: {:?}", String::from_utf8_lossy(&t.stdout));
            println!("  elapsed:        {:.3} s", elapsed.as_secs_f64());
            if t.stdout != b"hi\n" {
                return Err("the partial output should be \"hi\\n\"".into());
            }
            Ok(elapsed)
        }
        other => Err(format!("expected a timeout, got {other:?}").into()),
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let grace = popen::DEFAULT_GRACE_PERIOD;
    println!("{SCRIPT:?}, timeout 1 s, grace period {grace:?}");

    println!("plain child (the grandchild survives the kill and holds the pipes):");
    let plain = timed_run(&mut Command::shell(SCRIPT))?;

    println!("child in a process group of its own (the whole group is killed):");
    let grouped = timed_run(Command::shell(SCRIPT).process_group(0))?;

    let bound = Duration::from_secs(1) + grace + Duration::from_secs(1);
    if plain > bound || grouped > bound {
        return Err(format!("took longer than {bound:?}").into());
    }
    println!("both returned well before the 30 s the grandchild would hold the pipes");
    Ok(())
}
