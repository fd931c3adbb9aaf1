//! `run`, `check_output` and `getstatusoutput` on real commands.
//!
//! ```text
//! cargo run --release --example capture
//! ```

use popen::{Command, RunError, RunOptions, Text};
use std::error::Error;
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn Error>> {
    // run: capture both streams, check the status, bound the time.
    let done = popen::run(
        Command::new("uname").arg("-sr"),
        &RunOptions::new()
            .capture_output()
            .check()
            .timeout(Duration::from_secs(10)),
    )?;
    println!(
        "run(uname -sr)            -> {:?} ({})",
        done.stdout_text(Text::lossy())?.trim_end(),
        done.status
    );

    // run with input: sort reads it from its stdin.
    let sorted = popen::run(
        &mut Command::new("sort"),
        &RunOptions::new()
            .input(&b"pear\napple\nfig\n"[..])
            .capture_stdout(),
    )?;
    println!(
        "run(sort, input)          -> {:?}",
        sorted.stdout_text(Text::strict())?
    );

    // check_output: stdout, or an error carrying it.
    let listing = popen::check_output(Command::new("ls").arg("/"))?;
    println!(
        "check_output(ls /)        -> {} entries",
        listing
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .count()
    );
    match popen::check_output(Command::shell("echo some output; exit 2")) {
        Err(RunError::Failed(e)) => println!(
            "check_output(exit 2)      -> error: {e}; output carried: {:?}",
            String::from_utf8_lossy(&e.stdout)
        ),
        other => return Err(format!("expected a check error, got {other:?}").into()),
    }

    // getstatusoutput / getoutput: a shell line, stderr merged, trailing newline dropped.
    let (code, text) = popen::getstatusoutput("echo to stdout; echo to stderr >&2; exit 3")?;
    println!("getstatusoutput(...)      -> ({code}, {text:?})");
    println!(
        "getoutput(date +%Y)       -> {:?}",
        popen::getoutput("date +%Y")?
    );

    // A large capture: 256 MiB from head, through a 1 MiB pipe, into one buffer.
    let started = Instant::now();
    let big = popen::check_output(Command::new("head").args(["-c", "268435456", "/dev/zero"]))?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "check_output(head -c 256M) -> {} MiB in {:.3} s ({:.0} MB/s)",
        big.len() >> 20,
        secs,
        big.len() as f64 / secs / 1e6
    );
    Ok(())
}
