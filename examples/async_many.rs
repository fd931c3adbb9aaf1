//! Many children at once on a multi-thread runtime: spawned from tasks, awaited on their
//! pidfds through the reactor (no thread per child, no SIGCHLD handler), then the first of
//! several to finish, with a `JoinSet` and with `select!`.
//!
//! ```text
//! cargo run --release --features tokio --example async_many -- 1000
//! ```

use std::error::Error;
use std::time::{Duration, Instant};

use popen::tokio::Child;
use popen::Command;
use tokio::task::JoinSet;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let count: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(100);

    // `count` children sleeping 0.5 s, all at once.
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..count {
        tasks.spawn(async {
            // Spawning is synchronous: a few system calls, done when the child has exec'd.
            let mut child = Child::spawn(Command::new("sleep").arg("0.5"))?;
            child.wait().await
        });
    }
    let mut ok = 0;
    while let Some(status) = tasks.join_next().await {
        ok += usize::from(status??.success());
    }
    println!(
        "{count} x sleep 0.5 -> {ok} succeeded in {:?}",
        started.elapsed()
    );

    // The first of several children to finish; the others are killed when dropped.
    let mut racers = JoinSet::new();
    for secs in ["0.3", "0.1", "0.2"] {
        racers.spawn(async move {
            let mut child = Child::spawn(Command::new("sleep").arg(secs))?;
            child.kill_on_drop(true);
            child.wait().await.map(|_| secs)
        });
    }
    let first = racers.join_next().await.expect("three racers")??;
    racers.abort_all();
    println!("first of sleep 0.3/0.1/0.2 -> sleep {first}");

    // The same with select!, and a deadline.
    let mut slow = Child::spawn(Command::new("sleep").arg("10"))?;
    slow.kill_on_drop(true);
    tokio::select! {
        status = slow.wait() => println!("sleep 10 ended early: {}", status?),
        _ = tokio::time::sleep(Duration::from_millis(100)) => {
            println!("select!(sleep 10, 100 ms) -> the deadline; killed: {}", slow.kill().await?);
        }
    }
    Ok(())
}
