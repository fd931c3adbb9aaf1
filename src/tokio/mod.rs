//! An async front end for tokio (cargo feature `tokio`): the same engine and handle, awaited.
//!
//! - [`Child`]: an async handle. [`wait`](Child::wait) sleeps on the child's pidfd
//!   registered with tokio's reactor (`AsyncFd`): no SIGCHLD handler, no thread per child, no
//!   polling. [`wait_timeout`](Child::wait_timeout), [`kill`](Child::kill), signals,
//!   [`kill_on_drop`](Child::kill_on_drop).
//! - The child's pipes, [`ChildStdin`], [`ChildStdout`], [`ChildStderr`], are
//!   [`AsyncWrite`](::tokio::io::AsyncWrite)/[`AsyncRead`](::tokio::io::AsyncRead): non-blocking
//!   and registered with the reactor.
//! - [`Child::communicate`], [`run`], [`output`], [`status`], [`check_output`]: the contract of
//!   the synchronous ones (input, capture, caps, tee, a timeout that always returns even when
//!   a grandchild holds a pipe, partial output on timeout), awaited and cancel-safe.
//!
//! Spawning stays synchronous: [`Child::spawn`] is [`Command::spawn`](crate::Command::spawn),
//! a few system calls that return once the child has exec'd — about 40 µs of CPU, and the
//! calling thread waits for the exec (about half a millisecond for `/bin/true` on a small
//! machine, as with `tokio::process`) — so it is called from async code directly. Everything
//! works on the current-thread and the multi-thread runtime. Dropping a [`Child`] never
//! blocks: a child still running is reaped by the crate's reaper when it exits.
//!
//! "Wait for the first of many", pipelines, and bounded concurrency are ordinary tokio:
//! `select!` over [`Child::wait`] futures, a `JoinSet` of tasks each owning a child, a
//! [`ChildStdout`] turned into the next child's stdin with [`ChildStdout::into_owned_fd`].
//!
//! ```
//! use popen::{Command, RunOptions, Stdio};
//! use popen::tokio::Child;
//! use std::time::Duration;
//! use tokio::io::AsyncReadExt;
//!
//! # ::tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! // Capture, with a timeout that returns even though `sleep 5` keeps the pipe open.
//! let opts = RunOptions::new().capture_output().timeout(Duration::from_millis(200));
//! let err = popen::tokio::run(Command::shell("sleep 5 & echo hi; exec sleep 30"), &opts)
//!     .await
//!     .unwrap_err();
//! assert_eq!(err.stdout(), b"hi\n");
//!
//! // The first of two children to finish.
//! let mut fast = Child::spawn(Command::new("true"))?;
//! let mut slow = Child::spawn(Command::new("sleep").arg("10"))?;
//! slow.kill_on_drop(true);
//! tokio::select! {
//!     status = fast.wait() => assert!(status?.success()),
//!     _ = slow.wait() => unreachable!(),
//! }
//!
//! // A pipe read as a stream.
//! let mut child = Child::spawn(Command::new("echo").arg("hello").stdout(Stdio::piped()))?;
//! let mut text = String::new();
//! child.stdout.take().unwrap().read_to_string(&mut text).await?;
//! assert_eq!((text.as_str(), child.wait().await?.code()), ("hello\n", Some(0)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod child;
mod communicate;
mod pipe;
mod reactor;
mod run;

pub use child::Child;
pub use pipe::{ChildStderr, ChildStdin, ChildStdout};
pub use run::{check_output, output, run, status};
