//! Async `communicate`: feeds the child's stdin and reads its stdout and stderr in one task,
//! each pipe registered with the reactor — the contract of [`Popen::communicate`], awaited.
//!
//! All progress is kept in the [`Child`], never in the future: a call dropped half-way loses
//! no byte, and the next call goes on from where it stopped.
//!
//! [`Popen::communicate`]: crate::Popen::communicate

use std::future::poll_fn;
use std::io;
use std::os::fd::AsFd;
use std::task::{Context, Poll};
use std::time::Duration;

use ::tokio::time::Instant;

use super::child::Child;
use super::pipe::{ChildStderr, ChildStdin, ChildStdout, Pipe};
use crate::capture::{Capture, CaptureLimit, CaptureOptions, ReadOnce, Scratch};
use crate::outcome::{CommunicateError, Output};
use crate::status::ExitStatus;
use crate::sys;
use crate::sys::poll::SigpipeGuard;
use crate::text::Stream;

/// The most bytes one `write` moves: half a grown pipe, so that the child can read one half
/// while the other is filled.
const MAX_WRITE: usize = 512 << 10;
/// The time at least given to reaping a killed child, so that its status is known.
const REAP_AT_LEAST: Duration = Duration::from_millis(50);

const STREAMS: [Stream; 2] = [Stream::Stdout, Stream::Stderr];

fn index(s: Stream) -> usize {
    match s {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    }
}

/// The resumable state of [`Child::communicate`], kept in the handle.
#[derive(Default)]
pub(crate) struct Comm {
    opts: CaptureOptions,
    started: bool,
    grown: bool,
    /// Input left unwritten by a call that returned or was dropped early (a copy, unless it
    /// was already one), and how much of it the child has been given.
    input: Vec<u8>,
    input_pos: usize,
    out: [Capture; 2],
    /// Where bytes beyond a truncating cap are read to and dropped.
    scratch: Scratch,
}

/// How a pump ended.
enum Pumped {
    /// Every pipe reached end of file (or was closed by the child, for stdin).
    Done,
    /// This stream went over its [`CaptureLimit::Error`] cap.
    Over(Stream),
}

/// What one step on one pipe did.
enum Moved {
    /// Bytes moved, or readiness was found stale: step again.
    Some,
    /// Nothing to do until the reactor wakes the task.
    Pending,
    /// The pipe is done with (end of file, or all input written): close it.
    Finished,
    /// The stream went over its error cap.
    Over(Stream),
}

impl Child {
    /// Sets how [`communicate`](Self::communicate) captures: caps, tee, pipe size, kill on
    /// timeout ([`CaptureOptions`]). Takes effect from the next call.
    pub fn capture_options(&mut self, opts: CaptureOptions) -> &mut Child {
        self.comm.get_or_insert_with(Default::default).opts = opts;
        self
    }

    /// Writes `input` to the child's stdin, reads its stdout and stderr until end of file, and
    /// waits for it to exit; all within `timeout` (`None`: no limit). The contract of
    /// [`Popen::communicate`](crate::Popen::communicate), awaited: one task moves all the
    /// data, so no pattern of output can deadlock it; stdin is closed once the input is
    /// written; a child that closes its stdin early is not an error; caps, tee, pipe size and
    /// kill-on-timeout follow [`capture_options`](Self::capture_options).
    ///
    /// On timeout the error carries a copy of every byte read so far; the child is left
    /// running unless [`CaptureOptions::kill_on_timeout`] says otherwise, in which case the
    /// call returns within the timeout plus the grace period even when a grandchild holds a
    /// pipe open. Calling again (with `None` as input) resumes, and the final [`Output`]
    /// holds every byte of each stream exactly once.
    ///
    /// The input is borrowed, not copied, while the call runs.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe. Every byte read is stored in the handle before the future yields, and
    /// when the future is dropped (a `select!` branch that lost, an outer `timeout`) before
    /// the input is all written, the rest of it is copied into the handle: nothing is lost,
    /// and the next call (with `None` as input) writes the rest and returns the whole output.
    /// A future dropped while it kills a child that timed out leaves the child killed; the
    /// next call reaps it.
    ///
    /// # Errors
    ///
    /// As [`Popen::communicate`](crate::Popen::communicate): [`CommunicateError::Timeout`],
    /// [`CommunicateError::LimitExceeded`], [`CommunicateError::Io`] (`InvalidInput` for input
    /// without a piped stdin, or new input once communication has begun).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O and time enabled.
    ///
    /// # Examples
    ///
    /// ```
    /// use popen::{Command, Stdio};
    /// use popen::tokio::Child;
    ///
    /// # ::tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let mut child = Child::spawn(
    ///     Command::new("tr").args(["a-z", "A-Z"]).stdin(Stdio::piped()).stdout(Stdio::piped()),
    /// )?;
    /// let out = child.communicate(Some(b"shout"), None).await?;
    /// assert_eq!(out.stdout, b"SHOUT");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn communicate(
        &mut self,
        input: Option<&[u8]>,
        timeout: Option<Duration>,
    ) -> Result<Output, CommunicateError> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        self.communicate_until(input, deadline, timeout.unwrap_or_default())
            .await
    }

    /// [`communicate`](Self::communicate) with a deadline; `timeout` is what errors report.
    pub(crate) async fn communicate_until(
        &mut self,
        input: Option<&[u8]>,
        deadline: Option<Instant>,
        timeout: Duration,
    ) -> Result<Output, CommunicateError> {
        let input = input.filter(|i| !i.is_empty());
        let has_stdin = self.stdin.is_some();
        let st = self.comm.get_or_insert_with(Default::default);
        if input.is_some() && (st.started || !has_stdin) {
            let why = if st.started {
                "cannot send input after communication has begun"
            } else {
                "input given but the child's stdin is not piped"
            };
            return Err(io::Error::new(io::ErrorKind::InvalidInput, why).into());
        }
        let resumed = st.started;
        st.started = true;
        if !resumed {
            st.input_pos = 0;
        }
        let saved = std::mem::take(&mut st.input);
        let mut feeding = Feeding {
            borrowed: if resumed { None } else { input },
            saved,
            kept: false,
            child: self,
        };
        let Feeding {
            child,
            borrowed,
            saved,
            ..
        } = &mut feeding;
        let input: &[u8] = borrowed.unwrap_or(saved);
        child.grow_pipes();
        let pumped = match deadline {
            None => Some(child.pump(input, false).await),
            Some(d) => ::tokio::time::timeout_at(d, child.pump(input, false))
                .await
                .ok(),
        };
        let over = match pumped {
            Some(Ok(Pumped::Done)) => match child.wait_deadline(deadline).await {
                Ok(Some(status)) => return Ok(child.state().output(status)),
                Ok(None) => None,
                Err(e) => return Err(e.into()),
            },
            None => None,
            Some(Ok(Pumped::Over(stream))) => Some(stream),
            Some(Err(e)) => return Err(e.into()),
        };
        feeding.keep_rest();
        Err(feeding.child.stopped_early(over, timeout).await)
    }

    fn state(&mut self) -> &mut Comm {
        self.comm.get_or_insert_with(Default::default)
    }

    /// Grows the pipes once, as the options ask (best effort: the kernel refuses past the
    /// per-user pipe quota).
    fn grow_pipes(&mut self) {
        let Some(st) = self.comm.as_deref_mut() else {
            return;
        };
        let grow = if st.grown { None } else { st.opts.pipe_size };
        st.grown = true;
        let Some(size) = grow else {
            return;
        };
        let fds = [
            self.stdin.as_ref().map(AsFd::as_fd),
            self.stdout.as_ref().map(AsFd::as_fd),
            self.stderr.as_ref().map(AsFd::as_fd),
        ];
        for fd in fds.into_iter().flatten() {
            if sys::poll::pipe_size(fd).is_ok_and(|cur| cur < size) {
                let _ = sys::fd::set_pipe_size(fd, size);
            }
        }
    }

    /// Moves data between the pipes and the state until every pipe is closed, or a stream
    /// goes over its error cap. When `draining` (after a kill), error caps act as truncating
    /// ones, so the drain goes on. Cancel-safe: all progress is in `self`.
    async fn pump(&mut self, input: &[u8], draining: bool) -> io::Result<Pumped> {
        let Child {
            stdin,
            stdout,
            stderr,
            comm,
            ..
        } = self;
        let st = comm.get_or_insert_with(Default::default);
        poll_fn(|cx| poll_pump(cx, input, draining, stdin, stdout, stderr, st)).await
    }

    /// The error for a timeout (`over` is `None`) or an exceeded cap: kills the child first
    /// when the options say so, and carries the output read so far.
    async fn stopped_early(&mut self, over: Option<Stream>, timeout: Duration) -> CommunicateError {
        let status = match self.state().opts.kill_on_timeout {
            Some(grace) => match self.kill_and_drain(grace).await {
                Ok(status) => Some(status),
                Err(e) => return CommunicateError::Io(e),
            },
            None => None,
        };
        let args = self.args().to_vec();
        let st = self.state();
        let [stdout, stderr] = st.partial(over, status.is_some());
        let status = status.flatten();
        let over = over.map(|s| (s, st.opts.limit(s).map_or(0, CaptureLimit::bytes)));
        CommunicateError::stopped(args, timeout, over, [stdout, stderr], status)
    }

    /// Kills the child (and its own process group), reads what the pipes still give for at
    /// most `grace`, closes them, and reaps the child; its status, unless it could not be
    /// reaped in time.
    async fn kill_and_drain(&mut self, grace: Duration) -> io::Result<Option<ExitStatus>> {
        let now = Instant::now();
        let popen = self.as_popen();
        if popen.process_group() == Some(popen.pid()) {
            // The child leads a group of its own: everything in it goes, grandchildren
            // included. (A group the child merely joined is not ours to kill.)
            let _ = popen.send_signal_group(libc::SIGKILL);
        }
        self.start_kill()?;
        self.stdin = None;
        self.state().input = Vec::new();
        let grace_deadline = now.checked_add(grace);
        let drained = match grace_deadline {
            Some(d) => ::tokio::time::timeout_at(d, self.pump(&[], true))
                .await
                .ok(),
            None => Some(self.pump(&[], true).await),
        };
        // Whatever still holds the pipes open is not waited for any longer.
        self.stdout = None;
        self.stderr = None;
        if let Some(Err(e)) = drained {
            return Err(e);
        }
        let reap_by = grace_deadline.map(|d| d.max(Instant::now() + REAP_AT_LEAST));
        self.wait_deadline(reap_by).await
    }
}

/// A call's input, borrowed from the caller (`borrowed`) or taken from the handle (`saved`,
/// on a resumed call), with the handle. Whatever is left unwritten when the call ends —
/// returned, failed, or dropped mid-way — is put back into the handle ([`keep_rest`]).
///
/// [`keep_rest`]: Feeding::keep_rest
struct Feeding<'c, 'a> {
    child: &'c mut Child,
    borrowed: Option<&'a [u8]>,
    saved: Vec<u8>,
    kept: bool,
}

impl Feeding<'_, '_> {
    /// Puts the input not yet written back into the handle, for the next call; a borrowed
    /// input is copied (only its rest). Once only: later calls do nothing.
    fn keep_rest(&mut self) {
        if std::mem::replace(&mut self.kept, true) {
            return;
        }
        let still_open = self.child.stdin.is_some();
        let st = self.child.state();
        let pos = st.input_pos;
        let input: &[u8] = self.borrowed.unwrap_or(&self.saved);
        if !still_open || pos >= input.len() {
            st.input = Vec::new();
            return;
        }
        match self.borrowed {
            Some(data) => {
                st.input = data[pos..].to_vec();
                st.input_pos = 0;
            }
            None => st.input = std::mem::take(&mut self.saved),
        }
    }
}

impl Drop for Feeding<'_, '_> {
    fn drop(&mut self) {
        self.keep_rest();
    }
}

/// One turn of the loop: steps every open pipe, one read or write each, until none can move
/// without the reactor. A pipe that is done with is closed at once, so that a cancelled call
/// leaves the handle as it found the pipes.
fn poll_pump(
    cx: &mut Context<'_>,
    input: &[u8],
    draining: bool,
    stdin: &mut Option<ChildStdin>,
    stdout: &mut Option<ChildStdout>,
    stderr: &mut Option<ChildStderr>,
    st: &mut Comm,
) -> Poll<io::Result<Pumped>> {
    loop {
        let mut moved = false;
        if stdin.is_some() {
            match write_step(cx, input, stdin, st) {
                Ok(Moved::Some) => moved = true,
                Ok(Moved::Finished) => *stdin = None,
                Ok(_) => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        for s in STREAMS {
            let pipe = match s {
                Stream::Stdout => stdout.as_mut().map(|p| &mut p.pipe),
                Stream::Stderr => stderr.as_mut().map(|p| &mut p.pipe),
            };
            let Some(pipe) = pipe else {
                continue;
            };
            match read_step(cx, pipe, st, s, draining) {
                Ok(Moved::Some) => moved = true,
                Ok(Moved::Pending) => {}
                Ok(Moved::Finished) => match s {
                    Stream::Stdout => *stdout = None,
                    Stream::Stderr => *stderr = None,
                },
                Ok(Moved::Over(s)) => return Poll::Ready(Ok(Pumped::Over(s))),
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        if stdin.is_none() && stdout.is_none() && stderr.is_none() {
            return Poll::Ready(Ok(Pumped::Done));
        }
        if !moved {
            // Every open pipe has registered the task with the reactor.
            return Poll::Pending;
        }
    }
}

/// Writes the next chunk of input, once the pipe can take it.
fn write_step(
    cx: &mut Context<'_>,
    input: &[u8],
    stdin: &mut Option<ChildStdin>,
    st: &mut Comm,
) -> io::Result<Moved> {
    let Some(end) = stdin else {
        return Ok(Moved::Finished);
    };
    if st.input_pos >= input.len() {
        return Ok(Moved::Finished);
    }
    let fd = end.pipe.live()?;
    let Poll::Ready(guard) = fd.poll_write_ready(cx) else {
        return Ok(Moved::Pending);
    };
    let mut guard = guard?;
    let chunk = &input[st.input_pos..input.len().min(st.input_pos + MAX_WRITE)];
    // Keeps a child that closed its stdin from killing this process with SIGPIPE, where the
    // signal is not ignored; never held across an await.
    let sigpipe = SigpipeGuard::new();
    match sys::fd::write(fd.get_ref().as_fd(), chunk) {
        Ok(n) => {
            if n < chunk.len() {
                // The pipe is full: wait for the reactor rather than fail a write.
                guard.clear_ready();
            }
            st.input_pos += n;
            if st.input_pos >= input.len() {
                return Ok(Moved::Finished);
            }
            Ok(Moved::Some)
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            guard.clear_ready();
            Ok(Moved::Some)
        }
        Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {
            // The child does not want the rest (CPython ignores this too).
            sigpipe.consume();
            Ok(Moved::Finished)
        }
        Err(e) => Err(e),
    }
}

/// Reads once from stream `s`, once it is readable, into its capture (or drops the bytes
/// past a truncating cap, or past any cap when `draining`).
fn read_step(
    cx: &mut Context<'_>,
    pipe: &mut Pipe,
    st: &mut Comm,
    s: Stream,
    draining: bool,
) -> io::Result<Moved> {
    let fd = pipe.live()?;
    let Poll::Ready(guard) = fd.poll_read_ready(cx) else {
        return Ok(Moved::Pending);
    };
    let mut guard = guard?;
    let limit = match st.opts.limit(s) {
        Some(CaptureLimit::Error(n)) if draining => Some(CaptureLimit::Truncate(n)),
        other => other,
    };
    let tee = st.opts.tee[index(s)];
    let cap = &mut st.out[index(s)];
    let raw = fd.get_ref().as_fd();
    match cap.read_once(raw, s, (limit, tee), None, &mut st.scratch)? {
        ReadOnce::Eof => Ok(Moved::Finished),
        ReadOnce::Moved { over, emptied, .. } => {
            if emptied {
                // The pipe is most likely empty: wait for the reactor rather than read EAGAIN.
                guard.clear_ready();
            }
            Ok(if over { Moved::Over(s) } else { Moved::Some })
        }
        ReadOnce::WouldBlock | ReadOnce::Full => {
            guard.clear_ready();
            Ok(Moved::Some)
        }
    }
}

impl Comm {
    /// The output for an error: the bytes read, the stream `over` its error cap cut at the
    /// cap. Moved out when the child is gone (`done`), else copied, so that a resumed call
    /// still has them.
    fn partial(&mut self, over: Option<Stream>, done: bool) -> [Vec<u8>; 2] {
        STREAMS.map(|s| {
            let max = over
                .filter(|&o| o == s)
                .and_then(|o| self.opts.limit(o))
                .map(CaptureLimit::bytes);
            let cap = &mut self.out[index(s)];
            let end = max.map_or(cap.buf.len(), |m| cap.buf.len().min(m));
            if !done {
                return cap.buf[..end].to_vec();
            }
            cap.buf.truncate(end);
            cap.take()
        })
    }

    /// The final output: everything read.
    fn output(&mut self, status: ExitStatus) -> Output {
        let [out, err] = &mut self.out;
        Output {
            status,
            stdout: out.take(),
            stderr: err.take(),
            stdout_dropped: std::mem::take(&mut out.dropped),
            stderr_dropped: std::mem::take(&mut err.dropped),
        }
    }
}
