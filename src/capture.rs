//! What a capture keeps: caps on the bytes kept from each stream, tee, the pipe size to ask
//! for, and what happens to the child on timeout. Shared by [`Popen::communicate`](crate::Popen::communicate),
//! the [`Communicator`](crate::Communicator) loop below it, and `run`.

use std::io::{self, Write};
use std::time::Duration;

use crate::text::Stream;

/// The slot of stream `s` in per-stream arrays: stdout first.
pub(crate) fn index(s: Stream) -> usize {
    match s {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    }
}

/// The most bytes one `read` of a captured stream moves.
pub(crate) const MAX_CHUNK: usize = 1 << 20;
/// The smallest read: reads grow with what a stream has produced, so a short output does not
/// cost a large buffer.
const MIN_CHUNK: usize = 8 << 10;

/// The next read of a stream that holds `held` bytes under `limit`: whether its bytes are only
/// to be dropped (past a truncating cap), and how many it may move. Under an error cap it asks
/// for one byte more than the cap allows, which tells that the cap is exceeded.
pub(crate) fn next_read(limit: Option<CaptureLimit>, held: usize) -> (bool, usize) {
    let target = held.clamp(MIN_CHUNK, MAX_CHUNK);
    match limit {
        None => (false, target),
        Some(CaptureLimit::Error(n)) => (false, target.min(n.saturating_sub(held) + 1)),
        Some(CaptureLimit::Truncate(n)) if held < n => (false, target.min(n - held)),
        Some(CaptureLimit::Truncate(_)) => (true, MAX_CHUNK),
    }
}

/// Copies captured bytes of stream `s` to this process's own stdout or stderr (tee).
pub(crate) fn tee_write(s: Stream, bytes: &[u8]) -> io::Result<()> {
    match s {
        Stream::Stdout => {
            let mut out = io::stdout().lock();
            out.write_all(bytes)?;
            out.flush()
        }
        Stream::Stderr => io::stderr().lock().write_all(bytes),
    }
}

/// The pipe size [`CaptureOptions`] asks for by default.
const DEFAULT_PIPE_SIZE: usize = 1 << 20;

/// A cap on the bytes captured from one stream, so that a runaway child cannot exhaust memory.
///
/// # Examples
///
/// ```
/// use popen::{CaptureLimit, Command, RunOptions};
///
/// let opts = RunOptions::new()
///     .capture_output()
///     .stdout_limit(CaptureLimit::Truncate(3));
/// let done = popen::run(Command::shell("echo 0123456789"), &opts)?;
/// assert_eq!(done.stdout, b"012");
/// assert!(done.status.success());
/// # Ok::<(), popen::RunError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CaptureLimit {
    /// Keep at most this many bytes; one more is an error
    /// ([`LimitExceeded`](crate::LimitExceeded)) that carries the bytes kept.
    Error(usize),
    /// Keep the first this many bytes; read and drop the rest, so the child runs on unaware.
    /// The bytes dropped are counted in [`Output::stdout_dropped`](crate::Output::stdout_dropped) / [`Output::stderr_dropped`](crate::Output::stderr_dropped).
    Truncate(usize),
}

impl CaptureLimit {
    /// The cap, in bytes.
    pub fn bytes(self) -> usize {
        match self {
            CaptureLimit::Error(n) | CaptureLimit::Truncate(n) => n,
        }
    }
}

/// How [`Popen::communicate`](crate::Popen::communicate) and [`Popen::lines`](crate::Popen::lines) capture: caps, tee, pipe size, and what
/// happens to the child on timeout. Set with [`Popen::capture_options`](crate::Popen::capture_options);
/// [`RunOptions`](crate::RunOptions) has the same settings.
///
/// # Examples
///
/// ```
/// use popen::{CaptureLimit, CaptureOptions, Command, Stdio};
///
/// let mut child = Command::shell("yes | head -c 100000")
///     .stdout(Stdio::piped())
///     .spawn()?;
/// let out = child
///     .capture_options(CaptureOptions::new().stdout_limit(CaptureLimit::Truncate(10)))
///     .communicate(None, None)?;
/// assert_eq!((out.stdout.len(), out.stdout_dropped), (10, 99_990));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureOptions {
    pub(crate) limits: [Option<CaptureLimit>; 2],
    pub(crate) tee: [bool; 2],
    pub(crate) pipe_size: Option<usize>,
    pub(crate) kill_on_timeout: Option<Duration>,
}

impl Default for CaptureOptions {
    fn default() -> CaptureOptions {
        CaptureOptions {
            limits: [None, None],
            tee: [false, false],
            pipe_size: Some(DEFAULT_PIPE_SIZE),
            kill_on_timeout: None,
        }
    }
}

impl CaptureOptions {
    /// No caps, no tee, pipes grown to 1 MiB, the child left running on timeout.
    pub fn new() -> CaptureOptions {
        CaptureOptions::default()
    }

    /// Caps the bytes captured from stdout.
    pub fn stdout_limit(mut self, limit: CaptureLimit) -> CaptureOptions {
        self.limits[0] = Some(limit);
        self
    }

    /// Caps the bytes captured from stderr.
    pub fn stderr_limit(mut self, limit: CaptureLimit) -> CaptureOptions {
        self.limits[1] = Some(limit);
        self
    }

    /// Also copies the child's stdout to this process's stdout as it arrives (every byte, even
    /// those a cap drops). If writing there fails, the copy stops and capture goes on.
    pub fn tee_stdout(mut self, on: bool) -> CaptureOptions {
        self.tee[0] = on;
        self
    }

    /// Also copies the child's stderr to this process's stderr as it arrives.
    pub fn tee_stderr(mut self, on: bool) -> CaptureOptions {
        self.tee[1] = on;
        self
    }

    /// The pipe buffer size to ask for (`F_SETPIPE_SZ`) before moving data, where the pipe is
    /// smaller; `None` leaves the pipes alone. Default: 1 MiB, which roughly doubles capture
    /// throughput on Linux. A refusal by the kernel (a per-user pipe quota) is ignored.
    pub fn pipe_size(mut self, bytes: Option<usize>) -> CaptureOptions {
        self.pipe_size = bytes;
        self
    }

    /// On timeout, or when a stream exceeds a [`CaptureLimit::Error`] cap: kill the child —
    /// and its whole process group when it leads one of its own (started with
    /// [`start_new_session`](crate::Command::start_new_session) or
    /// [`process_group(0)`](crate::Command::process_group)) — then keep reading until the pipes
    /// reach end of file, but for at most `grace`, close them, reap the child, and return the
    /// error with everything read and the child's status.
    ///
    /// The grace period bounds the wait for a grandchild that still holds a pipe open (the
    /// case where CPython's `run` hangs past its timeout); such a grandchild, when it is not in
    /// the child's own group, keeps running, and sees a closed pipe when it next writes.
    /// Reaping the killed child is given at least 50 ms. Default: off (CPython's
    /// `communicate`, which leaves the child running).
    ///
    /// # Examples
    ///
    /// ```
    /// use popen::{CaptureOptions, Command, CommunicateError, Stdio};
    /// use std::time::{Duration, Instant};
    ///
    /// // The background `sleep` keeps stdout open long after the shell is killed.
    /// let mut child = Command::shell("sleep 5 & echo hi; exec sleep 30")
    ///     .stdout(Stdio::piped())
    ///     .spawn()?;
    /// let started = Instant::now();
    /// let err = child
    ///     .capture_options(CaptureOptions::new().kill_on_timeout(Some(Duration::from_millis(100))))
    ///     .communicate(None, Some(Duration::from_millis(300)))
    ///     .unwrap_err();
    /// assert!(started.elapsed() < Duration::from_secs(10));
    /// let CommunicateError::Timeout(t) = err else { panic!("{err}") };
    /// assert_eq!(t.stdout, b"hi\n");
    /// assert_eq!(t.status.and_then(|s| s.signal()), Some(libc::SIGKILL));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn kill_on_timeout(mut self, grace: Option<Duration>) -> CaptureOptions {
        self.kill_on_timeout = grace;
        self
    }

    pub(crate) fn limit(&self, s: Stream) -> Option<CaptureLimit> {
        self.limits[index(s)]
    }

    pub(crate) fn tee(&self, s: Stream) -> bool {
        self.tee[index(s)]
    }
}
