//! Streaming both outputs: the child's stdout and stderr line by line, each line tagged with
//! the stream it came from, as the one poll loop reads them — or stderr's lines alone while
//! stdout is captured. Neither pipe can fill up and stall the child.

use std::io;
use std::time::{Duration, Instant};

use crate::communicate::{CommState, Pumped};
use crate::communicator::{index, Stop, STREAMS};
use crate::lines::Ending;
use crate::outcome::{CommunicateError, Output};
use crate::popen::Popen;
use crate::text::{DecodeError, Stream};

/// Past this many handed-out bytes at the front of a stream's buffer, the buffer is compacted.
const COMPACT_AT: usize = 64 << 10;

/// One line of a child's output and the stream it came from, made by [`OutputLines`].
///
/// # Examples
///
/// ```
/// use popen::{Line, Stream};
///
/// let line = Line { stream: Stream::Stderr, text: "warning".into() };
/// assert_eq!(line.to_string(), "stderr: warning");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Line {
    /// The stream the line was read from.
    pub stream: Stream,
    /// The line without its `"\n"` (or `"\r\n"`).
    pub text: String,
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.stream, self.text)
    }
}

/// A line handed out: its stream, its offset in the stream, and
/// its bytes with the newline.
struct RawLine {
    stream: Stream,
    start: usize,
    bytes: Vec<u8>,
}

/// Where the splitting of one stream stands.
#[derive(Clone, Copy, Debug, Default)]
struct Cursor {
    /// Whether this stream's lines are handed out (else it is only captured).
    split: bool,
    /// Where the search for the next newline resumes in the stream's buffer.
    scan: usize,
    /// The end of the next line, and the number of the pump that read its last byte.
    ready: Option<(u64, usize)>,
    /// The buffer's length when last looked at, and the number of the pump that last grew it.
    seen: usize,
    grown: u64,
    /// End of file, and every byte handed out.
    done: bool,
}

/// An iterator over the lines of a child's stdout and stderr, tagged by stream, made by
/// [`Popen::output_lines`].
///
/// Each line is yielded as soon as it is complete, without its `"\n"` (or `"\r\n"`), decoded
/// as strict UTF-8; [`next_bytes`](Self::next_bytes) gives the raw bytes instead. The lines of
/// one stream come in the order the child wrote them. Across the two streams they come in the
/// order the reads saw them: two pipes share no clock, so lines written close together on both
/// streams may come in either order. A last line without a newline is yielded at the stream's
/// end of file; a stream the child closes early simply stops yielding while the other goes on.
/// A stream that is not piped yields nothing. stdin is left alone. The capture options of the
/// handle apply: caps bound the bytes buffered for one line, tee copies the output to this
/// process's own streams.
///
/// After the last line, [`finish`](Self::finish) waits for the child and returns its status.
///
/// # Drop behavior
///
/// Dropping the iterator early keeps what it read in the handle and gives the pipes back in
/// blocking mode: a later [`communicate`](Popen::communicate), or another line iterator, goes
/// on with every byte not yet handed out as a line. The child is neither waited for nor
/// signalled.
///
/// # Examples
///
/// ```
/// use popen::{Command, Line, Stdio, Stream};
///
/// let mut child = Command::shell("echo out; sleep 0.1; echo err >&2")
///     .stdout(Stdio::piped())
///     .stderr(Stdio::piped())
///     .spawn()?;
/// let mut lines = child.output_lines();
/// let mut seen = Vec::new();
/// for line in &mut lines {
///     let Line { stream, text } = line?;
///     seen.push((stream, text));
/// }
/// assert_eq!(
///     seen,
///     [(Stream::Stdout, "out".to_string()), (Stream::Stderr, "err".to_string())]
/// );
/// assert!(lines.finish()?.status.success());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct OutputLines<'a> {
    popen: &'a mut Popen,
    st: Option<Box<CommState>>,
    deadline: Option<Instant>,
    timeout: Duration,
    /// Per stream, indexed as [`STREAMS`].
    cursors: [Cursor; 2],
    /// How many times the loop has run: orders lines found after different reads.
    pumps: u64,
    ending: Ending,
}

/// An iterator over the lines of a child's stderr as they arrive, made by
/// [`Popen::stderr_lines`]. Meanwhile stdout is read into memory
/// ([`stdout`](Self::stdout), bounded by the handle's caps), so a child that writes much to
/// stdout cannot block. [`OutputLines`] with stdout captured rather than split: the same line
/// rules, timeout and [`finish`](Self::finish).
///
/// # Drop behavior
///
/// As for [`OutputLines`]: a later [`communicate`](Popen::communicate) returns the stdout read so
/// far and the rest of both streams.
///
/// # Examples
///
/// ```
/// use popen::{Command, Stdio};
///
/// let mut child = Command::shell("echo data; echo 'progress 50%' >&2; echo 'progress 100%' >&2")
///     .stdout(Stdio::piped())
///     .stderr(Stdio::piped())
///     .spawn()?;
/// let mut progress = child.stderr_lines();
/// let seen: Vec<String> = (&mut progress).collect::<Result<_, _>>()?;
/// assert_eq!(seen, ["progress 50%", "progress 100%"]);
/// let out = progress.finish()?;
/// assert_eq!(out.stdout, b"data\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct StderrLines<'a> {
    inner: OutputLines<'a>,
}

impl Popen {
    /// Iterates over the lines of the child's stdout and stderr as they arrive, each tagged
    /// with its stream. See [`OutputLines`].
    ///
    /// # Examples
    ///
    /// ```
    /// use popen::{Command, Stdio, Stream};
    ///
    /// let mut child = Command::shell("echo a; echo b >&2")
    ///     .stdout(Stdio::piped())
    ///     .stderr(Stdio::piped())
    ///     .spawn()?;
    /// let mut errors = Vec::new();
    /// for line in child.output_lines() {
    ///     let line = line?;
    ///     if line.stream == Stream::Stderr {
    ///         errors.push(line.text);
    ///     }
    /// }
    /// assert_eq!(errors, ["b"]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn output_lines(&mut self) -> OutputLines<'_> {
        OutputLines::new(self, [true, true])
    }

    /// Iterates over the lines of the child's stderr as they arrive, capturing stdout at the
    /// same time. See [`StderrLines`].
    ///
    /// # Examples
    ///
    /// ```
    /// use popen::{Command, Stdio};
    ///
    /// let mut child = Command::shell("echo oops >&2").stderr(Stdio::piped()).spawn()?;
    /// let lines: Vec<String> = child.stderr_lines().collect::<Result<_, _>>()?;
    /// assert_eq!(lines, ["oops"]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stderr_lines(&mut self) -> StderrLines<'_> {
        StderrLines {
            inner: OutputLines::new(self, [false, true]),
        }
    }
}

impl<'a> OutputLines<'a> {
    fn new(popen: &'a mut Popen, split: [bool; 2]) -> OutputLines<'a> {
        let mut st: Box<CommState> = popen.take_io_state().unwrap_or_default();
        st.started = true;
        let ending = Ending::new(popen.prepare_read_ends(&mut st));
        // Bytes an earlier line iterator handed out may still sit at the front of a buffer.
        let cursors = STREAMS.map(|s| Cursor {
            split: split[index(s)],
            scan: st.comm.out[index(s)].taken,
            ..Cursor::default()
        });
        OutputLines {
            popen,
            st: Some(st),
            deadline: None,
            timeout: Duration::ZERO,
            cursors,
            pumps: 0,
            ending,
        }
    }

    /// Gives the whole iteration, and [`finish`](Self::finish), at most `timeout` from now. When
    /// it expires, the iterator yields an error of kind `TimedOut` (the child is left running,
    /// unless [`CaptureOptions::kill_on_timeout`](crate::CaptureOptions::kill_on_timeout) is
    /// set) — also when a grandchild keeps a pipe open after the child exited — then ends;
    /// [`Popen::output_lines`] again goes on from there.
    ///
    /// # Examples
    ///
    /// ```
    /// use popen::{Command, Stdio};
    /// use std::io::ErrorKind;
    /// use std::time::Duration;
    ///
    /// let mut child = Command::shell("echo first >&2; exec sleep 10")
    ///     .stdout(Stdio::piped())
    ///     .stderr(Stdio::piped())
    ///     .spawn()?;
    /// let mut lines = child.output_lines().timeout(Duration::from_millis(300));
    /// assert_eq!(lines.next().unwrap()?.text, "first");
    /// assert_eq!(lines.next().unwrap().unwrap_err().kind(), ErrorKind::TimedOut);
    /// drop(lines);
    /// child.kill()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> OutputLines<'a> {
        self.deadline = Instant::now().checked_add(timeout);
        self.timeout = timeout;
        self
    }

    /// The next line as raw bytes with its stream, with its `"\n"` (the last line of a stream
    /// may lack one).
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
    /// use popen::{Command, Stdio, Stream};
    ///
    /// let mut child = Command::shell("printf '\\377' >&2").stderr(Stdio::piped()).spawn()?;
    /// let mut lines = child.output_lines();
    /// assert_eq!(lines.next_bytes().unwrap()?, (Stream::Stderr, b"\xff".to_vec()));
    /// assert!(lines.next_bytes().is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn next_bytes(&mut self) -> Option<Result<(Stream, Vec<u8>), CommunicateError>> {
        self.next_raw()
            .map(|next| next.map(|line| (line.stream, line.bytes)))
    }

    fn next_raw(&mut self) -> Option<Result<RawLine, CommunicateError>> {
        if let Some(early) = self.ending.before() {
            return early;
        }
        let mut st = self.st.take()?;
        let next = self.next_in(&mut st);
        self.st = Some(st);
        self.ending.after(next)
    }

    fn next_in(&mut self, st: &mut CommState) -> Option<Result<RawLine, CommunicateError>> {
        loop {
            for s in STREAMS {
                self.look(st, s);
            }
            // The line found after the earliest read goes first; stdout first on a tie.
            let next = STREAMS
                .into_iter()
                .filter_map(|s| Some((self.cursors[index(s)].ready?, s)))
                .min_by_key(|&((pump, _), s)| (pump, index(s)));
            if let Some(((_, end), s)) = next {
                return Some(Ok(self.hand_out(st, s, end)));
            }
            let watch = STREAMS.map(|s| {
                let c = &self.cursors[index(s)];
                (c.split && !c.done).then(|| st.comm.out[index(s)].buf.len())
            });
            if watch.iter().all(Option::is_none) {
                return None;
            }
            let pumped = self.popen.pump(st, None, self.deadline, Stop::Past(watch));
            self.pumps += 1;
            match pumped {
                Ok(Pumped::Done) => {}
                Ok(Pumped::TimedOut) => {
                    return Some(Err(self.popen.stopped_early(st, None, self.timeout)))
                }
                Ok(Pumped::Over(s)) if self.has_newline(st, s) => {
                    // Complete lines arrived with the bytes that went over the cap: hand
                    // them out first; the cap is reported when no whole line is left.
                    continue;
                }
                Ok(Pumped::Over(s)) => {
                    return Some(Err(self.popen.stopped_early(st, Some(s), self.timeout)))
                }
                Err(e) => return Some(Err(CommunicateError::Io(e))),
            }
        }
    }

    /// Whether stream `s` is split and holds a newline not yet searched for.
    fn has_newline(&self, st: &CommState, s: Stream) -> bool {
        let c = &self.cursors[index(s)];
        let buf = &st.comm.out[index(s)].buf;
        c.split && buf.get(c.scan..).is_some_and(|rest| rest.contains(&b'\n'))
    }

    /// Looks for the next line of stream `s`: a newline, or the rest at end of file.
    fn look(&mut self, st: &CommState, s: Stream) {
        let open = match s {
            Stream::Stdout => self.popen.stdout.is_some(),
            Stream::Stderr => self.popen.stderr.is_some(),
        };
        let out = &st.comm.out[index(s)];
        let c = &mut self.cursors[index(s)];
        if !c.split || c.done {
            return;
        }
        // A kill on timeout moves the buffers out.
        if c.scan > out.buf.len() || c.ready.is_some_and(|(_, end)| end > out.buf.len()) {
            c.scan = out.taken;
            c.ready = None;
        }
        if out.buf.len() != c.seen {
            c.seen = out.buf.len();
            c.grown = self.pumps;
        }
        if c.ready.is_some() {
            return;
        }
        if let Some(i) = out.buf[c.scan..].iter().position(|&b| b == b'\n') {
            c.ready = Some((self.pumps, c.scan + i + 1));
            return;
        }
        c.scan = out.buf.len();
        if !open {
            // End of file: the last line lacks its newline, or there is none. It ranks by the
            // read of its last byte, not by the end of file, which may come much later.
            if out.held() > 0 {
                c.ready = Some((c.grown, out.buf.len()));
            } else {
                c.done = true;
            }
        }
    }

    /// Hands out the bytes of stream `s` up to `end`, compacting the buffer now and then.
    fn hand_out(&mut self, st: &mut CommState, s: Stream, end: usize) -> RawLine {
        let out = &mut st.comm.out[index(s)];
        let c = &mut self.cursors[index(s)];
        let start = out.consumed + out.taken;
        let line = out.buf[out.taken..end].to_vec();
        out.taken = end;
        c.scan = end;
        c.ready = None;
        if out.taken == out.buf.len() || out.taken >= COMPACT_AT {
            let taken = out.taken;
            out.buf.drain(..taken);
            out.taken = 0;
            c.scan -= taken;
            c.seen -= taken;
            out.consumed += taken;
        }
        RawLine {
            stream: s,
            start,
            bytes: line,
        }
    }

    /// Waits for the child after the last line: reads the rest of both pipes and returns its
    /// status, and any output not handed out as lines.
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

impl RawLine {
    /// Strips the newline (`"\n"` or `"\r\n"`) and decodes the line as strict UTF-8.
    fn decode(self) -> io::Result<Line> {
        let RawLine {
            stream,
            start,
            bytes: mut line,
        } = self;
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        match String::from_utf8(line) {
            Ok(text) => Ok(Line { stream, text }),
            Err(e) => Err(DecodeError::at(stream, e.utf8_error(), start).into()),
        }
    }
}

impl Iterator for OutputLines<'_> {
    type Item = io::Result<Line>;

    fn next(&mut self) -> Option<io::Result<Line>> {
        Some(match self.next_raw()? {
            Ok(line) => line.decode(),
            Err(e) => Err(e.into()),
        })
    }
}

impl Drop for OutputLines<'_> {
    fn drop(&mut self) {
        if let Some(st) = self.st.take() {
            crate::lines::give_back(self.popen, st);
        }
    }
}

impl<'a> StderrLines<'a> {
    /// As [`OutputLines::timeout`].
    ///
    /// # Examples
    ///
    /// ```
    /// use popen::{Command, Stdio};
    /// use std::time::Duration;
    ///
    /// let mut child = Command::shell("exec sleep 10").stderr(Stdio::piped()).spawn()?;
    /// let mut lines = child.stderr_lines().timeout(Duration::from_millis(100));
    /// assert!(lines.next().unwrap().is_err());
    /// drop(lines);
    /// child.kill()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn timeout(self, timeout: Duration) -> StderrLines<'a> {
        StderrLines {
            inner: self.inner.timeout(timeout),
        }
    }

    /// The stdout captured so far.
    ///
    /// # Examples
    ///
    /// ```
    /// use popen::{Command, Stdio};
    ///
    /// let mut child = Command::shell("echo out; sleep 0.1; echo warn >&2")
    ///     .stdout(Stdio::piped())
    ///     .stderr(Stdio::piped())
    ///     .spawn()?;
    /// let mut lines = child.stderr_lines();
    /// assert_eq!(lines.next().unwrap()?, "warn");
    /// assert_eq!(lines.stdout(), b"out\n");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stdout(&self) -> &[u8] {
        self.inner.st.as_ref().map_or(&[], |st| {
            let out = &st.comm.out[index(Stream::Stdout)];
            &out.buf[out.taken..]
        })
    }

    /// The next line as raw bytes, with its `"\n"` (the last line may lack one).
    ///
    /// # Errors
    ///
    /// As [`OutputLines::next_bytes`].
    pub fn next_bytes(&mut self) -> Option<Result<Vec<u8>, CommunicateError>> {
        self.inner
            .next_bytes()
            .map(|next| next.map(|(_, line)| line))
    }

    /// As [`OutputLines::finish`]: the status, stdout, and any stderr not handed out.
    ///
    /// # Errors
    ///
    /// As [`Popen::communicate`], within the iterator's [`timeout`](Self::timeout).
    pub fn finish(self) -> Result<Output, CommunicateError> {
        self.inner.finish()
    }
}

impl Iterator for StderrLines<'_> {
    type Item = io::Result<String>;

    fn next(&mut self) -> Option<io::Result<String>> {
        Some(self.inner.next()?.map(|line| line.text))
    }
}
