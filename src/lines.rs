//! Streaming: the child's stdout line by line as it arrives, while its stderr is captured in
//! the same poll loop, so neither pipe can fill up and stall the child.

use std::io;
use std::time::{Duration, Instant};

use crate::communicate::{CommState, Pumped};
use crate::communicator::Stop;
use crate::outcome::{CommunicateError, Output};
use crate::popen::Popen;
use crate::text::{DecodeError, Stream};

/// Past this many handed-out bytes at the front of the stdout buffer, the buffer is compacted.
const COMPACT_AT: usize = 64 << 10;

/// An iterator over the lines of a child's stdout, made by [`Popen::lines`].
///
/// Each line is yielded as soon as it is complete, without its `"\n"` (or `"\r\n"`), decoded
/// as strict UTF-8; [`next_bytes`](Self::next_bytes) gives the raw bytes instead. Meanwhile
/// stderr is read into memory ([`stderr`](Self::stderr)), so a child that writes much to
/// stderr cannot block. stdin is left alone. The capture options of the handle apply: caps
/// bound the bytes buffered for one line, tee copies the output to this process's own streams.
///
/// After the last line, [`finish`](Self::finish) waits for the child and returns its status
/// and stderr. Dropping the iterator early keeps the state in the handle: a later
/// [`communicate`](Popen::communicate) returns the rest of stdout.
///
/// # Examples
///
/// ```
/// use popen::{Command, Stdio};
///
/// let mut child = Command::shell("for i in 1 2 3; do echo line $i; echo noise >&2; done")
///     .stdout(Stdio::piped())
///     .stderr(Stdio::piped())
///     .spawn()?;
/// let mut lines = child.lines();
/// let mut seen = Vec::new();
/// for line in &mut lines {
///     seen.push(line?);
/// }
/// assert_eq!(seen, ["line 1", "line 2", "line 3"]);
/// let out = lines.finish()?;
/// assert_eq!(out.stderr, b"noise\nnoise\nnoise\n");
/// assert!(out.status.success());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Lines<'a> {
    popen: &'a mut Popen,
    st: Option<Box<CommState>>,
    deadline: Option<Instant>,
    timeout: Duration,
    /// Where the search for the next newline resumes in the stdout buffer.
    scan: usize,
    ending: Ending,
}

/// How a line iterator ends: after the error from preparing the pipes, if there was one, or
/// after any error it yields. A timeout, a cap or a failed call, asked again, would come back
/// at once, and a `flatten()` would spin on it for ever; a new iterator on the same child
/// resumes where the ended one stopped.
pub(crate) struct Ending {
    /// An error from preparing the pipes, yielded by the first call.
    failed: Option<io::Error>,
    /// An error was yielded: the iteration is over.
    ended: bool,
}

impl Ending {
    /// For an iterator whose pipes were prepared with `prepared`.
    pub(crate) fn new(prepared: io::Result<()>) -> Ending {
        Ending {
            failed: prepared.err(),
            ended: false,
        }
    }

    /// What `next` returns without a step: `None` once ended, the preparation's error first.
    pub(crate) fn before<T>(&mut self) -> Option<Option<Result<T, CommunicateError>>> {
        if self.ended {
            return Some(None);
        }
        let failed = self.failed.take()?;
        self.ended = true;
        Some(Some(Err(CommunicateError::Io(failed))))
    }

    /// `next`'s result, `next`, noting an error as the end.
    pub(crate) fn after<T>(
        &mut self,
        next: Option<Result<T, CommunicateError>>,
    ) -> Option<Result<T, CommunicateError>> {
        self.ended = matches!(next, Some(Err(_)));
        next
    }
}

impl Popen {
    /// Iterates over the lines of the child's stdout as they arrive, capturing stderr at the
    /// same time. See [`Lines`].
    ///
    /// # Examples
    ///
    /// ```
    /// use popen::{Command, Stdio};
    ///
    /// let mut child = Command::new("printf").arg("a\nb").stdout(Stdio::piped()).spawn()?;
    /// let lines: Vec<String> = child.lines().collect::<Result<_, _>>()?;
    /// assert_eq!(lines, ["a", "b"]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn lines(&mut self) -> Lines<'_> {
        let mut st: Box<CommState> = self.take_io_state().unwrap_or_default();
        st.started = true;
        let ending = Ending::new(self.prepare_read_ends(&mut st));
        // Lines an earlier iterator handed out may still sit at the front of the buffer.
        let scan = st.comm.out[0].taken;
        Lines {
            popen: self,
            st: Some(st),
            deadline: None,
            timeout: Duration::ZERO,
            scan,
            ending,
        }
    }

    /// Makes the read ends non-blocking (grown once as the options ask); stdin is left alone.
    pub(crate) fn prepare_read_ends(&mut self, st: &mut CommState) -> io::Result<()> {
        // stdin is not ours here: prepare only the read ends.
        let stdin = self.stdin.take();
        let result = self.prepare_pipes(st);
        self.stdin = stdin;
        result
    }
}

impl<'a> Lines<'a> {
    /// Gives the whole iteration, and [`finish`](Self::finish), at most `timeout` from now. When
    /// it expires, the iterator yields an error of kind `TimedOut` (the child is left running,
    /// unless [`CaptureOptions::kill_on_timeout`](crate::CaptureOptions::kill_on_timeout) is
    /// set), then ends; [`Popen::lines`] again goes on from there.
    ///
    /// # Examples
    ///
    /// ```
    /// use popen::{Command, Stdio};
    /// use std::io::ErrorKind;
    /// use std::time::Duration;
    ///
    /// let mut child = Command::shell("echo first; exec sleep 10").stdout(Stdio::piped()).spawn()?;
    /// let mut lines = child.lines().timeout(Duration::from_millis(300));
    /// assert_eq!(lines.next().unwrap()?, "first");
    /// assert_eq!(lines.next().unwrap().unwrap_err().kind(), ErrorKind::TimedOut);
    /// assert!(lines.next().is_none());
    /// drop(lines);
    /// child.kill()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Lines<'a> {
        self.deadline = Instant::now().checked_add(timeout);
        self.timeout = timeout;
        self
    }

    /// The stderr captured so far.
    ///
    /// # Examples
    ///
    /// ```
    /// use popen::{Command, Stdio};
    ///
    /// let mut child = Command::shell("echo warn >&2; sleep 0.1; echo out")
    ///     .stdout(Stdio::piped())
    ///     .stderr(Stdio::piped())
    ///     .spawn()?;
    /// let mut lines = child.lines();
    /// assert_eq!(lines.next().unwrap()?, "out");
    /// assert_eq!(lines.stderr(), b"warn\n");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stderr(&self) -> &[u8] {
        self.st.as_ref().map_or(&[], |st| &st.comm.out[1].buf[..])
    }

    /// The next line as raw bytes, with its `"\n"` (the last line may lack one).
    ///
    /// # Errors
    ///
    /// As [`Popen::communicate`]: a timeout, an exceeded cap (both carrying the bytes not yet
    /// handed out), or a failing system call. After an error the iteration is over (`None`); a
    /// new iterator on the same child resumes where this one stopped, losing no byte.
    ///
    /// # Examples
    ///
    /// ```
    /// use popen::{Command, Stdio};
    ///
    /// let mut child = Command::new("printf").arg("\\377\\n").stdout(Stdio::piped()).spawn()?;
    /// let mut lines = child.lines();
    /// assert_eq!(lines.next_bytes().unwrap()?, b"\xff\n");
    /// assert!(lines.next_bytes().is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn next_bytes(&mut self) -> Option<Result<Vec<u8>, CommunicateError>> {
        if let Some(early) = self.ending.before() {
            return early;
        }
        let mut st = self.st.take()?;
        let next = self.next_in(&mut st);
        self.st = Some(st);
        self.ending.after(next)
    }

    fn next_in(&mut self, st: &mut CommState) -> Option<Result<Vec<u8>, CommunicateError>> {
        loop {
            let out = &mut st.comm.out[0];
            // A kill on timeout moves the buffer out.
            self.scan = self.scan.min(out.buf.len());
            if let Some(i) = out.buf[self.scan..].iter().position(|&b| b == b'\n') {
                let end = self.scan + i + 1;
                return Some(Ok(self.hand_out(st, end)));
            }
            self.scan = out.buf.len();
            if self.popen.stdout.is_none() {
                // End of file: the last line lacks its newline, or there is none.
                return (out.held() > 0).then(|| Ok(self.hand_out(st, self.scan)));
            }
            let len = out.buf.len();
            match self
                .popen
                .pump(st, None, self.deadline, Stop::Past([Some(len), None]))
            {
                Ok(Pumped::Done) => {}
                Ok(Pumped::TimedOut) => {
                    return Some(Err(self.popen.stopped_early(st, None, self.timeout)))
                }
                Ok(Pumped::Over(_)) if st.comm.out[0].buf[self.scan..].contains(&b'\n') => {
                    // Complete lines arrived with the bytes that went over the cap: hand
                    // them out first; the cap is reported when no whole line is left.
                    continue;
                }
                Ok(Pumped::Over(stream)) => {
                    return Some(Err(self.popen.stopped_early(
                        st,
                        Some(stream),
                        self.timeout,
                    )))
                }
                Err(e) => return Some(Err(CommunicateError::Io(e))),
            }
        }
    }

    /// Hands out the stdout bytes up to `end`, compacting the buffer now and then.
    fn hand_out(&mut self, st: &mut CommState, end: usize) -> Vec<u8> {
        let out = &mut st.comm.out[0];
        let line = out.buf[out.taken..end].to_vec();
        out.taken = end;
        self.scan = end;
        if out.taken == out.buf.len() || out.taken >= COMPACT_AT {
            let taken = out.taken;
            out.buf.drain(..taken);
            out.taken = 0;
            self.scan -= taken;
            out.consumed += taken;
        }
        line
    }

    /// Waits for the child after the last line: reads the rest of both pipes and returns its
    /// status, stderr, and any stdout not handed out as lines.
    ///
    /// # Errors
    ///
    /// As [`Popen::communicate`], within the iterator's [`timeout`](Self::timeout).
    pub fn finish(mut self) -> Result<Output, CommunicateError> {
        if let Some(st) = self.st.take() {
            self.popen.put_io_state(st);
        }
        self.popen
            .communicate_until(None, self.deadline, self.timeout)
    }
}

impl Iterator for Lines<'_> {
    type Item = io::Result<String>;

    fn next(&mut self) -> Option<io::Result<String>> {
        let start = self.st.as_ref().map_or(0, |st| {
            let out = &st.comm.out[0];
            out.consumed + out.taken
        });
        let mut line = match self.next_bytes()? {
            Ok(line) => line,
            Err(e) => return Some(Err(e.into())),
        };
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        Some(
            String::from_utf8(line)
                .map_err(|e| DecodeError::at(Stream::Stdout, e.utf8_error(), start).into()),
        )
    }
}

/// Hands a line iterator's state back to the handle, for the next `communicate` or iterator,
/// and its read ends back in blocking mode (stdin was never touched).
pub(crate) fn give_back(popen: &mut Popen, st: Box<CommState>) {
    popen.put_io_state(st);
    let stdin = popen.stdin.take();
    popen.set_pipes_blocking();
    popen.stdin = stdin;
}

impl Drop for Lines<'_> {
    fn drop(&mut self) {
        if let Some(st) = self.st.take() {
            give_back(self.popen, st);
        }
    }
}
