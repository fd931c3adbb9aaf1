//! The async front end on a tokio runtime: capture with a timeout, input and output at once,
//! a stream read line by line, and a two-stage pipeline.
//!
//! ```text
//! cargo run --features tokio --example async_capture
//! ```

use std::error::Error;
use std::time::{Duration, Instant};

use popen::tokio::Child;
use popen::{Command, RunError, RunOptions, Stdio};
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    // run: capture both streams, check the status, bound the time.
    let done = popen::tokio::run(
        Command::new("uname").arg("-sr"),
        &RunOptions::new()
            .capture_output()
            .check()
            .timeout(Duration::from_secs(10)),
    )
    .await?;
    println!(
        "run(uname -sr)           -> {:?} ({})",
        String::from_utf8_lossy(&done.stdout).trim_end(),
        done.status
    );

    // communicate: 8 MiB in and out of `cat` in one task, with no deadlock.
    let mut cat = Child::spawn(
        Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
    )?;
    let out = cat.communicate(Some(&vec![b'x'; 8 << 20]), None).await?;
    println!(
        "communicate(cat, 8 MiB)  -> {} bytes back ({})",
        out.stdout.len(),
        out.status
    );

    // A timeout that returns although a grandchild keeps the pipe open, with the output so far.
    let started = Instant::now();
    let err = popen::tokio::run(
        Command::shell("sleep 5 & echo partial; exec sleep 30"),
        &RunOptions::new()
            .capture_output()
            .timeout(Duration::from_millis(300)),
    )
    .await
    .unwrap_err();
    let RunError::Timeout(t) = err else {
        return Err(err.into());
    };
    println!(
        "run(timeout 300 ms)      -> {:?} after {:?} ({:?})",
        String::from_utf8_lossy(&t.stdout),
        started.elapsed(),
        t.status
    );

    // A stream read line by line while the child runs.
    let mut child = Child::spawn(
        Command::shell("for i in 1 2 3; do echo line $i; sleep 0.05; done").stdout(Stdio::piped()),
    )?;
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    while let Some(line) = lines.next_line().await? {
        println!("lines()                  -> {line:?}");
    }
    child.wait().await?;

    // A pipeline: the first child's stdout is the second child's stdin.
    let mut producer = Child::spawn(Command::new("seq").arg("1000").stdout(Stdio::piped()))?;
    let pipe = producer.stdout.take().expect("piped").into_owned_fd();
    let out = popen::tokio::output(Command::new("wc").arg("-l").stdin(Stdio::from(pipe))).await?;
    producer.wait().await?;
    println!(
        "seq 1000 | wc -l         -> {}",
        String::from_utf8_lossy(&out.stdout).trim()
    );
    Ok(())
}
