//! `communicate`: feed the child's stdin and read its stdout and stderr at the same time, in
//! one thread, with `poll(2)` over non-blocking pipes — so no pattern of child output can
//! deadlock it — and return when the timeout says so.
//!
//! The loop is a [`Communicator`] (in `communicator.rs`), whose state the [`Popen`] handle
//! keeps, so a call that timed out can be resumed without losing or repeating a byte. Reads go
//! straight into the spare capacity of the capture buffers, up to 1 MiB at a time, and the
//! pipes are grown to 1 MiB first: on Linux the pipe size, not the read size, bounds the
//! throughput of a capture.

use std::io;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use crate::capture::{CaptureLimit, CaptureOptions};
use crate::communicator::{index, ChildPipes, Communicator, PipeEvent, Stop, STREAMS};
use crate::outcome::{CommunicateError, Output};
use crate::popen::Popen;
use crate::status::ExitStatus;
use crate::text::Stream;
/// The time at least given to reaping a killed child, so that its status is known.
const REAP_AT_LEAST: Duration = Duration::from_millis(50);

/// The default grace period after a kill: how long [`run`](crate::run) waits for the pipes'
/// end of file once it has killed a child that timed out.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_millis(250);

/// The resumable state of `communicate`, kept in the [`Popen`].
#[derive(Default)]
pub(crate) struct CommState {
    /// The loop's state: input offset (into `input` once a call has returned early), output.
    pub(crate) comm: Communicator,
    /// Whether a `communicate` (or `lines`) has begun: later calls may not bring new input.
    pub(crate) started: bool,
    /// Input not yet written when a call returned early.
    input: Vec<u8>,
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
        st.comm.opts = opts;
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
        let data = if resumed {
            &saved[..]
        } else {
            st.comm.input_offset = 0;
            input.unwrap_or_default()
        };
        if st.comm.input_offset >= data.len() {
            // Nothing (left) to write: the child sees end of file now.
            self.stdin = None;
        }
        if let Err(e) = self.prepare_pipes(st) {
            self.set_pipes_blocking();
            return Err(e.into());
        }
        let pumped = self.pump(st, Some(data), deadline, Stop::Events);
        if self.stdin.is_some() && st.comm.input_offset < data.len() {
            if resumed {
                st.input = saved;
            } else {
                st.input = data[st.comm.input_offset..].to_vec();
                st.comm.input_offset = 0;
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
                self.set_pipes_blocking();
                return Err(e.into());
            }
        };
        if st.comm.opts.kill_on_timeout.is_none() {
            // The child runs on: give the pipes back in blocking mode.
            self.set_pipes_blocking();
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
        let status = match st.comm.opts.kill_on_timeout {
            Some(grace) => match self.kill_and_drain(st, grace) {
                Ok(status) => Some(status),
                Err(e) => return CommunicateError::Io(e),
            },
            None => None,
        };
        let [stdout, stderr] = st.partial(over, status.is_some());
        let status = status.flatten();
        let args = self.args().to_vec();
        let over = over.map(|s| (s, st.comm.opts.limit(s).map_or(0, CaptureLimit::bytes)));
        CommunicateError::stopped(args, timeout, over, [stdout, stderr], status)
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
        let saved_limits = st.comm.opts.limits;
        for limit in st.comm.opts.limits.iter_mut().flatten() {
            *limit = CaptureLimit::Truncate(limit.bytes());
        }
        let drained = self.pump(st, None, grace_deadline, Stop::Events);
        st.comm.opts.limits = saved_limits;
        // Whatever still holds the pipes open is not waited for any longer.
        self.stdout = None;
        self.stderr = None;
        drained?;
        let reap_by = grace_deadline.map(|d| d.max(Instant::now() + REAP_AT_LEAST));
        self.wait_deadline(reap_by)
    }

    /// Makes the pipes non-blocking, and grows them once as the options ask.
    pub(crate) fn prepare_pipes(&mut self, st: &mut CommState) -> io::Result<()> {
        st.comm.prepare(self.pipes(true))
    }

    /// Gives the pipes still open back in blocking mode (errors ignored).
    pub(crate) fn set_pipes_blocking(&self) {
        Communicator::release(self.pipes(true));
    }

    /// The pipes still open, stdin only `with_stdin`.
    fn pipes(&self, with_stdin: bool) -> ChildPipes<'_> {
        ChildPipes {
            stdin: self.stdin.as_ref().filter(|_| with_stdin).map(AsFd::as_fd),
            stdout: self.stdout.as_ref().map(AsFd::as_fd),
            stderr: self.stderr.as_ref().map(AsFd::as_fd),
        }
    }

    /// The loop: moves data between the pipes and `st` until `stop`, the deadline, or a cap,
    /// closing each pipe the loop is done with.
    ///
    /// With `input` `Some`, writes what is left of it (from `st.comm.input_offset`) to stdin
    /// and closes stdin once it is all written (or the child closed its end); with `None`,
    /// leaves stdin alone. The pipes must be non-blocking.
    pub(crate) fn pump(
        &mut self,
        st: &mut CommState,
        input: Option<&[u8]>,
        deadline: Option<Instant>,
        stop: Stop,
    ) -> io::Result<Pumped> {
        loop {
            let pipes = self.pipes(input.is_some());
            let event = st.comm.step_until(
                pipes,
                input.unwrap_or_default(),
                deadline,
                stop,
                [None, None],
            )?;
            match event {
                PipeEvent::InputDone => self.stdin = None,
                PipeEvent::Eof(Stream::Stdout) => self.stdout = None,
                PipeEvent::Eof(Stream::Stderr) => self.stderr = None,
                PipeEvent::Finished => return Ok(Pumped::Done),
                PipeEvent::TimedOut => return Ok(Pumped::TimedOut),
                PipeEvent::LimitExceeded(s) => return Ok(Pumped::Over(s)),
                // The handle's communicator never asks to be woken by signals, and reads
                // into its own buffers, which grow.
                PipeEvent::Interrupted | PipeEvent::OutputFull(_) => {}
            }
        }
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
                .and_then(|o| self.comm.opts.limit(o))
                .map(CaptureLimit::bytes);
            let cap = &mut self.comm.out[index(s)];
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
        let [stdout, stderr] = &mut self.comm.out;
        Output {
            status,
            stdout: stdout.take(),
            stderr: stderr.take(),
            stdout_dropped: std::mem::take(&mut stdout.dropped),
            stderr_dropped: std::mem::take(&mut stderr.dropped),
        }
    }
}
