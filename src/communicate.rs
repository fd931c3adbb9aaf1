//! `communicate`: feed the child's stdin and read its stdout and stderr at the same time, in
//! one thread, with `poll(2)` over non-blocking pipes — so no pattern of child output can
//! deadlock it — and return when the timeout says so.
//!
//! The loop keeps its state in the [`Popen`] handle, so a call that timed out can be resumed
//! without losing or repeating a byte. Reads go straight into the spare capacity of the capture
//! buffers, up to 1 MiB at a time, and the pipes are grown to 1 MiB first: on Linux the pipe
//! size, not the read size, bounds the throughput of a capture.

use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use crate::outcome::{CommunicateError, LimitExceeded, Output, TimeoutExpired};
use crate::popen::Popen;
use crate::status::ExitStatus;
use crate::sys;
use crate::sys::poll::SigpipeGuard;
use crate::text::Stream;

/// The most bytes one `read` moves.
const MAX_CHUNK: usize = 1 << 20;
/// The most bytes one `write` moves: half the default pipe. The kernel holds the pipe's lock
/// for the whole copy of a write, so a write of the whole pipe keeps the child from reading
/// until it is done; with half a pipe per write the child can read one half while this thread
/// reads its output (256 MiB through `cat`: 4–13 % faster than 1 MiB writes, in interleaved
/// runs).
const MAX_WRITE: usize = 512 << 10;
/// The smallest read: reads grow with what a stream has produced, so a short output does not
/// cost a large buffer.
const MIN_CHUNK: usize = 8 << 10;
/// The pipe size [`CaptureOptions`] asks for by default.
const DEFAULT_PIPE_SIZE: usize = 1 << 20;
/// The time at least given to reaping a killed child, so that its status is known.
const REAP_AT_LEAST: Duration = Duration::from_millis(50);

/// The default grace period after a kill: how long [`run`](crate::run) waits for the pipes'
/// end of file once it has killed a child that timed out.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_millis(250);

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
    /// ([`LimitExceeded`]) that carries the bytes kept.
    Error(usize),
    /// Keep the first this many bytes; read and drop the rest, so the child runs on unaware.
    /// The bytes dropped are counted in [`Output::stdout_dropped`] / [`Output::stderr_dropped`].
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

/// How [`Popen::communicate`] and [`Popen::lines`] capture: caps, tee, pipe size, and what
/// happens to the child on timeout. Set with [`Popen::capture_options`];
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
    limits: [Option<CaptureLimit>; 2],
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
}

fn index(s: Stream) -> usize {
    match s {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    }
}

const STREAMS: [Stream; 2] = [Stream::Stdout, Stream::Stderr];

/// What one output stream has produced so far.
#[derive(Default)]
pub(crate) struct Capture {
    pub(crate) buf: Vec<u8>,
    /// Bytes at the front of `buf` already handed out (by [`Lines`](crate::Lines)).
    pub(crate) taken: usize,
    dropped: u64,
    tee_failed: bool,
    prefaulted: sys::poll::Prefaulted,
}

impl Capture {
    pub(crate) fn held(&self) -> usize {
        self.buf.len() - self.taken
    }

    /// A copy of the bytes not yet handed out, at most `max` of them.
    pub(crate) fn copy(&self, max: Option<usize>) -> Vec<u8> {
        let end = max.map_or(self.buf.len(), |m| self.buf.len().min(self.taken + m));
        self.buf[self.taken..end].to_vec()
    }

    fn take(&mut self) -> Vec<u8> {
        let mut buf = std::mem::take(&mut self.buf);
        self.prefaulted = Default::default();
        if self.taken > 0 {
            buf.drain(..self.taken);
            self.taken = 0;
        }
        buf
    }
}

/// The resumable state of `communicate`, kept in the [`Popen`].
#[derive(Default)]
pub(crate) struct CommState {
    pub(crate) opts: CaptureOptions,
    /// Whether a `communicate` (or `lines`) has begun: later calls may not bring new input.
    pub(crate) started: bool,
    grown: bool,
    /// Input not yet written when a call returned early, and the position reached in it.
    input: Vec<u8>,
    input_pos: usize,
    pub(crate) out: [Capture; 2],
    /// Where bytes beyond a truncating cap are read to and dropped.
    scratch: Vec<u8>,
    scratch_pre: sys::poll::Prefaulted,
}

/// When [`Popen::pump`] should return besides end of file on every pipe.
#[derive(Clone, Copy)]
pub(crate) enum Stop {
    /// Only once every pipe is at end of file.
    Eof,
    /// As soon as stdout holds more than this many bytes, or is at end of file.
    StdoutPast(usize),
}

/// How [`Popen::pump`] returned.
pub(crate) enum Pumped {
    /// The stop condition was met.
    Done,
    /// The deadline passed.
    TimedOut,
    /// This stream exceeded its [`CaptureLimit::Error`] cap.
    Over(Stream),
}

#[derive(Clone, Copy)]
enum Slot {
    Stdin,
    Out(Stream),
}

impl Popen {
    /// Sets how [`communicate`](Self::communicate) and [`lines`](Self::lines) capture: caps,
    /// tee, pipe size, kill on timeout. Takes effect from the next call.
    ///
    /// # Examples
    ///
    /// ```
    /// use popen::{CaptureLimit, CaptureOptions, Command, CommunicateError, Stdio};
    ///
    /// let mut child = Command::shell("echo 0123456789").stdout(Stdio::piped()).spawn()?;
    /// let err = child
    ///     .capture_options(CaptureOptions::new().stdout_limit(CaptureLimit::Error(5)))
    ///     .communicate(None, None)
    ///     .unwrap_err();
    /// assert!(matches!(err, CommunicateError::LimitExceeded(e) if e.stdout == b"01234"));
    /// # child.kill()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn capture_options(&mut self, opts: CaptureOptions) -> &mut Popen {
        let mut st: Box<CommState> = self.take_io_state().unwrap_or_default();
        st.opts = opts;
        self.put_io_state(st);
        self
    }

    /// Writes `input` to the child's stdin, reads its stdout and stderr until end of file, and
    /// waits for it to exit; all within `timeout` (`None`: no limit). CPython's
    /// `Popen.communicate`.
    ///
    /// One thread moves all the data, with `poll(2)` over non-blocking pipes, so no pattern of
    /// output can deadlock it: a child that floods stderr while we feed its stdin, or never
    /// reads its stdin, is fine. stdin is closed once the input is written (at once without
    /// input); a child that exits or closes its stdin before reading everything is not an
    /// error (`EPIPE` is swallowed, as CPython does; SIGPIPE is kept from killing this process
    /// even where it is not ignored). The pipes are closed when the call succeeds.
    ///
    /// On timeout, the error carries a copy of every byte read so far, and the child is left
    /// running (unless [`CaptureOptions::kill_on_timeout`] says otherwise). Calling
    /// `communicate` again (with `None` as input) resumes: the remaining input is written,
    /// and the final [`Output`] holds the whole of each stream, every byte exactly once —
    /// CPython's contract. Signals never break the call (`EINTR` is retried with the time
    /// left).
    ///
    /// # Errors
    ///
    /// - [`CommunicateError::Timeout`] when `timeout` expires;
    /// - [`CommunicateError::LimitExceeded`] when a stream exceeds a
    ///   [`CaptureLimit::Error`] cap (the child is left running unless killing on timeout was
    ///   asked for);
    /// - [`CommunicateError::Io`] with `InvalidInput` for input when stdin is not piped, or for
    ///   new input after communication has begun; else the failing system call's error.
    ///
    /// # Examples
    ///
    /// ```
    /// use popen::{Command, Stdio};
    ///
    /// let mut child = Command::new("tr")
    ///     .arg("a-z")
    ///     .arg("A-Z")
    ///     .stdin(Stdio::piped())
    ///     .stdout(Stdio::piped())
    ///     .spawn()?;
    /// let out = child.communicate(Some(b"shout"), None)?;
    /// assert_eq!(out.stdout, b"SHOUT");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Resuming after a timeout:
    ///
    /// ```
    /// use popen::{Command, CommunicateError, Stdio};
    /// use std::time::Duration;
    ///
    /// let mut child = Command::shell("echo one; sleep 1; echo two")
    ///     .stdout(Stdio::piped())
    ///     .spawn()?;
    /// match child.communicate(None, Some(Duration::from_millis(300))) {
    ///     Err(CommunicateError::Timeout(t)) => assert_eq!(t.stdout, b"one\n"),
    ///     other => panic!("{other:?}"),
    /// }
    /// let out = child.communicate(None, None)?;
    /// assert_eq!(out.stdout, b"one\ntwo\n");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn communicate(
        &mut self,
        input: Option<&[u8]>,
        timeout: Option<Duration>,
    ) -> Result<Output, CommunicateError> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        self.communicate_until(input, deadline, timeout.unwrap_or_default())
    }

    /// [`communicate`](Self::communicate) with a deadline; `timeout` is what errors report.
    pub(crate) fn communicate_until(
        &mut self,
        input: Option<&[u8]>,
        deadline: Option<Instant>,
        timeout: Duration,
    ) -> Result<Output, CommunicateError> {
        let mut st: Box<CommState> = self.take_io_state().unwrap_or_default();
        let result = self.communicate_with_state(&mut st, input, deadline, timeout);
        self.put_io_state(st);
        result
    }

    fn communicate_with_state(
        &mut self,
        st: &mut CommState,
        input: Option<&[u8]>,
        deadline: Option<Instant>,
        timeout: Duration,
    ) -> Result<Output, CommunicateError> {
        let input = input.filter(|i| !i.is_empty());
        let resumed = st.started;
        if input.is_some() && (resumed || self.stdin.is_none()) {
            let why = if resumed {
                "cannot send input after communication has begun"
            } else {
                "input given but the child's stdin is not piped"
            };
            return Err(io::Error::new(io::ErrorKind::InvalidInput, why).into());
        }
        st.started = true;
        let saved = std::mem::take(&mut st.input);
        let (data, mut pos) = if resumed {
            (&saved[..], st.input_pos)
        } else {
            (input.unwrap_or_default(), 0)
        };
        if pos >= data.len() {
            // Nothing (left) to write: the child sees end of file now.
            self.stdin = None;
        }
        if let Err(e) = self.prepare_pipes(st) {
            self.set_pipes_nonblocking(false);
            return Err(e.into());
        }
        let pumped = self.pump(st, Some(data), &mut pos, deadline, Stop::Eof);
        if self.stdin.is_some() && pos < data.len() {
            if resumed {
                st.input = saved;
                st.input_pos = pos;
            } else {
                st.input = data[pos..].to_vec();
                st.input_pos = 0;
            }
        }
        let over = match pumped {
            Ok(Pumped::Done) => match self.wait_deadline(deadline) {
                Ok(Some(status)) => return Ok(st.output(status)),
                Ok(None) => None,
                Err(e) => return Err(e.into()),
            },
            Ok(Pumped::TimedOut) => None,
            Ok(Pumped::Over(stream)) => Some(stream),
            Err(e) => {
                self.set_pipes_nonblocking(false);
                return Err(e.into());
            }
        };
        if st.opts.kill_on_timeout.is_none() {
            // The child runs on: give the pipes back in blocking mode.
            self.set_pipes_nonblocking(false);
        }
        Err(self.stopped_early(st, over, timeout))
    }

    /// The error for a timeout (`over` is `None`) or an exceeded cap: kills the child first
    /// when the options say so, and carries the output read so far.
    pub(crate) fn stopped_early(
        &mut self,
        st: &mut CommState,
        over: Option<Stream>,
        timeout: Duration,
    ) -> CommunicateError {
        let status = match st.opts.kill_on_timeout {
            Some(grace) => match self.kill_and_drain(st, grace) {
                Ok(status) => Some(status),
                Err(e) => return CommunicateError::Io(e),
            },
            None => None,
        };
        let [stdout, stderr] = st.partial(over, status.is_some());
        let status = status.flatten();
        let args = self.args().to_vec();
        match over {
            None => CommunicateError::Timeout(TimeoutExpired {
                args,
                timeout,
                stdout,
                stderr,
                status,
            }),
            Some(stream) => CommunicateError::LimitExceeded(LimitExceeded {
                args,
                stream,
                limit: st.opts.limit(stream).map_or(0, CaptureLimit::bytes),
                stdout,
                stderr,
                status,
            }),
        }
    }

    /// Kills the child (and its own process group), reads what the pipes still give for at
    /// most `grace`, closes them, and reaps the child; its status, unless it could not be
    /// reaped in time.
    fn kill_and_drain(
        &mut self,
        st: &mut CommState,
        grace: Duration,
    ) -> io::Result<Option<ExitStatus>> {
        let now = Instant::now();
        if self.process_group() == Some(self.pid()) {
            // The child leads a group of its own: everything in it goes, grandchildren
            // included. (A group the child merely joined is not ours to kill.)
            let _ = self.send_signal_group(libc::SIGKILL);
        }
        self.kill()?;
        self.stdin = None;
        let grace_deadline = now.checked_add(grace);
        // Bytes past a cap that failed are dropped from now on, so the drain can go on.
        let saved_limits = st.opts.limits;
        for limit in st.opts.limits.iter_mut().flatten() {
            *limit = CaptureLimit::Truncate(limit.bytes());
        }
        let drained = self.pump(st, Some(&[]), &mut 0, grace_deadline, Stop::Eof);
        st.opts.limits = saved_limits;
        // Whatever still holds the pipes open is not waited for any longer.
        self.stdout = None;
        self.stderr = None;
        drained?;
        let reap_by = grace_deadline.map(|d| d.max(Instant::now() + REAP_AT_LEAST));
        self.wait_deadline(reap_by)
    }

    /// Makes the pipes non-blocking, and grows them once as the options ask.
    pub(crate) fn prepare_pipes(&mut self, st: &mut CommState) -> io::Result<()> {
        let grow = if st.grown { None } else { st.opts.pipe_size };
        st.grown = true;
        for fd in self.pipe_fds().into_iter().flatten() {
            sys::fd::set_nonblocking(fd, true)?;
            if let Some(size) = grow {
                if sys::poll::pipe_size(fd).is_ok_and(|cur| cur < size) {
                    // Best effort: the kernel refuses past the per-user pipe quota.
                    let _ = sys::fd::set_pipe_size(fd, size);
                }
            }
        }
        Ok(())
    }

    /// Sets or clears `O_NONBLOCK` on the pipes still open (errors ignored: used to give the
    /// pipes back in blocking mode).
    pub(crate) fn set_pipes_nonblocking(&self, on: bool) {
        for fd in self.pipe_fds().into_iter().flatten() {
            let _ = sys::fd::set_nonblocking(fd, on);
        }
    }

    fn pipe_fds(&self) -> [Option<BorrowedFd<'_>>; 3] {
        [
            self.stdin.as_ref().map(AsFd::as_fd),
            self.stdout.as_ref().map(AsFd::as_fd),
            self.stderr.as_ref().map(AsFd::as_fd),
        ]
    }

    fn read_end(&self, s: Stream) -> Option<BorrowedFd<'_>> {
        match s {
            Stream::Stdout => self.stdout.as_ref().map(AsFd::as_fd),
            Stream::Stderr => self.stderr.as_ref().map(AsFd::as_fd),
        }
    }

    fn close_read_end(&mut self, s: Stream) {
        match s {
            Stream::Stdout => self.stdout = None,
            Stream::Stderr => self.stderr = None,
        }
    }

    /// The loop: moves data between the pipes and `st` until `stop`, the deadline, or a cap.
    ///
    /// With `input` `Some`, writes `input[*pos..]` to stdin and closes stdin once it is all
    /// written (or the child closed its end); with `None`, leaves stdin alone. A pipe at end
    /// of file is closed. The pipes must be non-blocking.
    pub(crate) fn pump(
        &mut self,
        st: &mut CommState,
        input: Option<&[u8]>,
        pos: &mut usize,
        deadline: Option<Instant>,
        stop: Stop,
    ) -> io::Result<Pumped> {
        let sigpipe = (input.is_some() && self.stdin.is_some()).then(SigpipeGuard::new);
        loop {
            if let Stop::StdoutPast(len) = stop {
                if self.stdout.is_none() || st.out[0].buf.len() > len {
                    return Ok(Pumped::Done);
                }
            }
            let mut fds = [libc::pollfd {
                fd: -1,
                events: 0,
                revents: 0,
            }; 3];
            let mut slots = [Slot::Stdin; 3];
            let mut n = 0;
            if let (Some(data), Some(stdin)) = (input, &self.stdin) {
                if *pos < data.len() {
                    fds[n] = pollfd(stdin.as_fd(), libc::POLLOUT);
                    n += 1;
                }
            }
            for s in STREAMS {
                if let Some(fd) = self.read_end(s) {
                    fds[n] = pollfd(fd, libc::POLLIN);
                    slots[n] = Slot::Out(s);
                    n += 1;
                }
            }
            if n == 0 {
                return Ok(Pumped::Done);
            }
            // Checked on every turn, so that a child that never stops writing still times out.
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(Pumped::TimedOut);
            }
            if sys::poll::poll(&mut fds[..n], deadline)? == 0 {
                return Ok(Pumped::TimedOut);
            }
            for (fd, slot) in fds[..n].iter().zip(slots) {
                if fd.revents & libc::POLLNVAL != 0 {
                    return Err(io::Error::from_raw_os_error(libc::EBADF));
                }
                if fd.revents == 0 {
                    continue;
                }
                match slot {
                    Slot::Stdin => {
                        if let Some(data) = input {
                            self.write_input(data, pos, sigpipe.as_ref())?;
                        }
                    }
                    Slot::Out(s) => {
                        if let Some(over) = self.read_output(st, s)? {
                            return Ok(Pumped::Over(over));
                        }
                    }
                }
            }
        }
    }

    /// Writes the next chunk of input; closes stdin when all is written or the child has
    /// closed its end.
    fn write_input(
        &mut self,
        data: &[u8],
        pos: &mut usize,
        sigpipe: Option<&SigpipeGuard>,
    ) -> io::Result<()> {
        let Some(stdin) = &self.stdin else {
            return Ok(());
        };
        let end = data.len().min(*pos + MAX_WRITE);
        match sys::fd::write(stdin.as_fd(), &data[*pos..end]) {
            Ok(n) => {
                *pos += n;
                if *pos >= data.len() {
                    self.stdin = None;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {
                // The child does not want the rest (CPython ignores this too).
                if let Some(guard) = sigpipe {
                    guard.consume();
                }
                self.stdin = None;
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Reads what stream `s` has, until it would block; closes it at end of file. Returns the
    /// stream if it went over an error cap.
    fn read_output(&mut self, st: &mut CommState, s: Stream) -> io::Result<Option<Stream>> {
        let Some(fd) = self.read_end(s) else {
            return Ok(None);
        };
        let limit = st.opts.limit(s);
        let tee = st.opts.tee[index(s)];
        let cap = &mut st.out[index(s)];
        let eof = loop {
            let held = cap.held();
            let target = held.clamp(MIN_CHUNK, MAX_CHUNK);
            let (drop, want) = match limit {
                None => (false, target),
                // One byte more than the cap allows tells that the cap is exceeded.
                Some(CaptureLimit::Error(n)) => (false, target.min(n.saturating_sub(held) + 1)),
                Some(CaptureLimit::Truncate(n)) if held < n => (false, target.min(n - held)),
                Some(CaptureLimit::Truncate(_)) => (true, MAX_CHUNK),
            };
            let start = cap.buf.len();
            let read = if drop {
                st.scratch.clear();
                sys::poll::read_append(fd, &mut st.scratch, want, &mut st.scratch_pre)
            } else {
                sys::poll::read_append(fd, &mut cap.buf, want, &mut cap.prefaulted)
            };
            let n = match read {
                Ok(0) => break true,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                Err(e) => return Err(e),
            };
            if tee && !cap.tee_failed {
                let bytes = if drop {
                    &st.scratch[..]
                } else {
                    &cap.buf[start..]
                };
                cap.tee_failed = tee_write(s, bytes).is_err();
            }
            if drop {
                cap.dropped += n as u64;
            } else if let Some(CaptureLimit::Error(max)) = limit {
                if cap.held() > max {
                    // The byte past the cap is kept, not lost, in case the caller raises the
                    // cap and resumes; errors show only the bytes within the cap.
                    return Ok(Some(s));
                }
            }
            if n < want {
                // The pipe is most likely empty: back to poll rather than an EAGAIN read.
                break false;
            }
        };
        if eof {
            self.close_read_end(s);
        }
        Ok(None)
    }
}

impl CommState {
    /// The output for an error: the bytes not yet handed out, the stream `over` its error cap
    /// cut at the cap. Moved out when the child is gone (`done`), else copied, so that a
    /// resumed call still has them.
    pub(crate) fn partial(&mut self, over: Option<Stream>, done: bool) -> [Vec<u8>; 2] {
        STREAMS.map(|s| {
            let max = over
                .filter(|&o| o == s)
                .and_then(|o| self.opts.limit(o))
                .map(CaptureLimit::bytes);
            let cap = &mut self.out[index(s)];
            if !done {
                return cap.copy(max);
            }
            if let Some(max) = max {
                cap.buf.truncate(cap.buf.len().min(cap.taken + max));
            }
            cap.take()
        })
    }

    /// The final output: everything not yet handed out.
    fn output(&mut self, status: ExitStatus) -> Output {
        Output {
            status,
            stdout: self.out[0].take(),
            stderr: self.out[1].take(),
            stdout_dropped: std::mem::take(&mut self.out[0].dropped),
            stderr_dropped: std::mem::take(&mut self.out[1].dropped),
        }
    }
}

fn pollfd(fd: BorrowedFd<'_>, events: libc::c_short) -> libc::pollfd {
    use std::os::fd::AsRawFd;
    libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    }
}

/// Copies `bytes` to this process's own stdout or stderr.
fn tee_write(s: Stream, bytes: &[u8]) -> io::Result<()> {
    match s {
        Stream::Stdout => {
            let mut out = io::stdout().lock();
            out.write_all(bytes)?;
            out.flush()
        }
        Stream::Stderr => io::stderr().lock().write_all(bytes),
    }
}
