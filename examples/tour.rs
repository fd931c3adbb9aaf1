//! A tour of popen: redirections, a failed exec as a typed error, a wait with a timeout, a kill,
//! and which spawn path each child took.
//!
//! Run with `cargo run --release --example tour`.

use popen::{Command, Stdio, Step};
use std::error::Error;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn Error>> {
    // 1. Pipes both ways: feed `tr` through its stdin, read its stdout.
    let mut tr = Command::new("tr")
        .arg("a-z")
        .arg("A-Z")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    tr.stdin
        .take()
        .expect("piped")
        .write_all(b"hello from the parent\n")?;
    let mut upper = String::new();
    tr.stdout
        .take()
        .expect("piped")
        .read_to_string(&mut upper)?;
    println!(
        "1. tr said {:?} and exited with {} (spawned by {})",
        upper.trim_end(),
        tr.wait()?,
        tr.spawn_path()
    );

    // 2. stderr merged into stdout, in a shell, in another directory, with one more variable.
    let mut sh =
        Command::shell("echo \"in $(pwd) as $GREETING\"; echo 'and this went to stderr' >&2");
    sh.cwd("/tmp")
        .env("GREETING", "hi")
        .stdout(Stdio::piped())
        .stderr(Stdio::same_as_stdout());
    let mut child = sh.spawn()?;
    let mut both = String::new();
    child
        .stdout
        .take()
        .expect("piped")
        .read_to_string(&mut both)?;
    child.wait()?;
    println!(
        "2. merged output:\n   {}",
        both.trim_end().replace('\n', "\n   ")
    );

    // 3. Options that push other libraries onto fork keep a fast path here.
    let mut cmd = Command::new("true");
    cmd.start_new_session(true).umask(0o077);
    println!(
        "3. with a new session and a umask the path is: {}",
        cmd.choose_path()
    );
    // SAFETY: the hook only returns.
    unsafe { cmd.pre_exec(|| Ok(())) };
    println!(
        "   with a pre-exec hook as well:              {}",
        cmd.choose_path()
    );

    // 4. A program that does not exist: a typed error naming the step, errno and path.
    match Command::new("no-such-program-here").spawn() {
        Ok(_) => unreachable!("the program should not exist"),
        Err(e) => {
            assert_eq!(e.step(), Step::Exec);
            println!(
                "4. {e}\n   step: {}, kind: {:?}, errno: {:?}",
                e.step(),
                e.kind(),
                e.raw_os_error()
            );
        }
    }
    let err = Command::new("true")
        .cwd("/no/such/directory")
        .spawn()
        .expect_err("missing cwd");
    println!("   {err}");

    // 5. Wait with a timeout (it sleeps on a pidfd, no polling), then kill.
    let sleeper = Command::new("sleep").arg("30").spawn()?;
    let start = Instant::now();
    let waited = sleeper.wait_timeout(Duration::from_millis(300))?;
    println!(
        "5. after {:?} the sleeper is still running: {}",
        start.elapsed(),
        waited.is_none()
    );
    sleeper.kill()?;
    let status = sleeper.wait_shared()?;
    println!("   killed: {status} (returncode {})", status.returncode());
    sleeper.kill()?; // already reaped: signals nobody, not an error

    // 6. A short child: the timed wait returns as soon as it exits, not at the timeout.
    let quick = Command::new("sleep").arg("0.1").spawn()?;
    let start = Instant::now();
    let status = quick
        .wait_timeout(Duration::from_secs(60))?
        .expect("exited");
    println!(
        "6. a 0.1 s child, waited with a 60 s timeout: {status} after {:?}",
        start.elapsed()
    );
    Ok(())
}
