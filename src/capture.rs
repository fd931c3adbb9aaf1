//! What a capture keeps: caps on the bytes kept from each stream, tee, the pipe size to ask
//! for, and what happens to the child on timeout; and the one read of a captured stream
//! ([`Capture::read_once`]) under those rules. Shared by
//! [`Popen::communicate`](crate::Popen::communicate), the
//! [`Communicator`](crate::Communicator) loop below it, `run`, pipelines and the async front
//! end.

use std::io::{self, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use crate::sys;
use crate::sys::poll::Prefaulted;
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

/// Room for bytes read only to be dropped (past a truncating cap), reused from read to read.
#[derive(Default)]
pub(crate) struct Scratch {
    buf: Vec<u8>,
    pre: Prefaulted,
}

/// What one [`Capture::read_once`] did.
pub(crate) enum ReadOnce {
    /// End of file.
    Eof,
    /// Nothing to read now.
    WouldBlock,
    /// The lent space was full before the read: nothing read.
    Full,
    /// Bytes were read: whether the stream is now over its error cap, whether the lent space
    /// is now full, and whether the read moved less than it asked for (the pipe is most likely
    /// empty: better to wait for it than to read `EAGAIN`).
    Moved {
        over: bool,
        full: bool,
        emptied: bool,
    },
}

/// The bytes a stream holds from which it is read through a [`Relay`].
const RELAY_FROM: usize = 1 << 20;

/// A pipe of the reader's own between a child's output pipe and the buffer, for large
/// outputs. The kernel copies into and out of a pipe under one lock, so a reader copying out of
/// the child's pipe makes the child's writes wait for each copy. Through the relay, each read
/// first splices what the child's pipe holds into the relay — the kernel moves references to
/// its pages, no byte is copied — and then copies the bytes out of the relay, under the relay's
/// lock, while the child writes on (512 MiB from `cat` on two cores: about 17 % faster). It
/// costs two descriptors (close-on-exec, non-blocking, made at the first large read) and one
/// system call per read, so small outputs do without. Where a descriptor cannot be spliced
/// (not a pipe or socket, or `splice` refused), the stream is read directly.
#[derive(Default)]
enum Relay {
    #[default]
    Untried,
    Ready {
        r: OwnedFd,
        w: OwnedFd,
    },
    Unavailable,
}

impl Relay {
    /// Splices at most `max` bytes from `fd` into the relay (made at the first call); `None`
    /// when there is no relay to use for this stream.
    fn splice_from(&mut self, fd: BorrowedFd<'_>, max: usize) -> Option<io::Result<usize>> {
        if matches!(self, Relay::Untried) {
            *self = Relay::open().unwrap_or(Relay::Unavailable);
        }
        let Relay::Ready { w, .. } = self else {
            return None;
        };
        match sys::poll::splice_pipes(fd, w.as_fd(), max) {
            Err(e) if cannot_splice(&e) => {
                *self = Relay::Unavailable;
                None
            }
            moved => Some(moved),
        }
    }

    /// The relay's read end, once made.
    fn reader(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Relay::Ready { r, .. } => Some(r.as_fd()),
            _ => None,
        }
    }

    fn open() -> io::Result<Relay> {
        let (r, w) = sys::fd::pipe_cloexec()?;
        sys::fd::set_nonblocking(r.as_fd(), true)?;
        sys::fd::set_nonblocking(w.as_fd(), true)?;
        // As large as the reads; a refusal leaves the default, which only makes reads smaller.
        let _ = sys::fd::set_pipe_size(w.as_fd(), MAX_CHUNK);
        Ok(Relay::Ready { r, w })
    }
}

/// Whether `e`, from `splice`, says the descriptor cannot be spliced at all (rather than a
/// failure of this read): then the stream is read directly.
fn cannot_splice(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::ENOSYS | libc::EPERM | libc::EOPNOTSUPP | libc::ESPIPE)
    )
}

/// What one output stream has produced so far: the state every loop that reads pipes
/// (`Communicator`, pipelines, the async front end) keeps for it.
#[derive(Default)]
pub(crate) struct Capture {
    pub(crate) buf: Vec<u8>,
    /// Bytes at the front of `buf` already handed out (by [`Lines`](crate::Lines)).
    pub(crate) taken: usize,
    /// Bytes of the stream no longer in `buf`: the stream offset of `buf[0]`.
    pub(crate) consumed: usize,
    pub(crate) dropped: u64,
    tee_failed: bool,
    prefaulted: Prefaulted,
    /// What is known of the last [`OutputSpace`] lent for this stream.
    lent_prefaulted: Prefaulted,
    relay: Relay,
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

    pub(crate) fn take(&mut self) -> Vec<u8> {
        let mut buf = std::mem::take(&mut self.buf);
        self.consumed += buf.len();
        self.prefaulted = Default::default();
        if self.taken > 0 {
            buf.drain(..self.taken);
            self.taken = 0;
        }
        buf
    }

    /// One `read(2)` of stream `s` from `fd`, under `limit`: into `space` if one is lent, else
    /// into this capture's buffer, or into `scratch`, the bytes counted and dropped, past a
    /// truncating cap. The bytes are copied to this process's own stream too with `tee`.
    /// `EINTR` is retried.
    pub(crate) fn read_once(
        &mut self,
        fd: BorrowedFd<'_>,
        s: Stream,
        (limit, tee): (Option<CaptureLimit>, bool),
        space: Option<&mut OutputSpace<'_>>,
        scratch: &mut Scratch,
    ) -> io::Result<ReadOnce> {
        let held = space.as_ref().map_or(self.held(), |sp| sp.filled);
        let room = space.as_ref().map(|sp| sp.buf.len());
        let (drop, asked) = next_read(limit, held);
        let mut want = asked;
        if !drop && space.as_ref().is_some_and(|sp| sp.is_full()) {
            return Ok(ReadOnce::Full);
        }
        // A large output goes through the relay: what the child's pipe holds is spliced into
        // it, then copied out of it below, all of it, so nothing stays in it between reads.
        let mut source = fd;
        let mut relayed = false;
        if !drop && held >= RELAY_FROM {
            // No more than the lent space has room for: all of it is read out below.
            let max = room.map_or(asked, |room| asked.min(room - held));
            match self.relay.splice_from(fd, max) {
                Some(Ok(0)) => {
                    // The stream is over: its relay's descriptors are not kept past it.
                    self.relay = Relay::default();
                    return Ok(ReadOnce::Eof);
                }
                Some(Ok(m)) => {
                    // The bytes are in the relay now: they are read from there.
                    source = self.relay.reader().unwrap_or(fd);
                    want = m;
                    relayed = true;
                }
                Some(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(ReadOnce::WouldBlock)
                }
                Some(Err(e)) => return Err(e),
                None => {}
            }
        }
        let read = if drop {
            scratch.buf.clear();
            sys::poll::read_append(source, &mut scratch.buf, want, &mut scratch.pre)
                .map(|_| &scratch.buf[..])
        } else if let Some(sp) = space {
            sys::poll::read_into(
                source,
                sp.buf,
                &mut sp.filled,
                want,
                &mut self.lent_prefaulted,
            )
        } else {
            sys::poll::read_append(source, &mut self.buf, want, &mut self.prefaulted)
                .map(|n| &self.buf[self.buf.len() - n..])
        };
        let fresh = match read {
            Ok(fresh) if relayed && fresh.len() < want => {
                // A pipe holding `want` bytes gives them all to a read of `want` into room for
                // them: only a broken kernel contract gets here, and the bytes left in the
                // relay are lost.
                return Err(io::Error::other(format!(
                    "the relay pipe gave back {} of the {want} bytes spliced into it",
                    fresh.len()
                )));
            }
            Ok([]) => return Ok(ReadOnce::Eof),
            Ok(fresh) => fresh,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(ReadOnce::WouldBlock),
            Err(e) => return Err(e),
        };
        let n = fresh.len();
        if tee && !self.tee_failed {
            self.tee_failed = tee_write(s, fresh).is_err();
        }
        let (over, held) = if drop {
            self.dropped += n as u64;
            (false, held)
        } else {
            // The byte past the cap is kept, not lost, in case the caller raises the cap and
            // resumes; errors show only the bytes within the cap.
            let over = matches!(limit, Some(CaptureLimit::Error(max)) if held + n > max);
            (over, held + n)
        };
        Ok(ReadOnce::Moved {
            over,
            full: room == Some(held),
            emptied: n < asked,
        })
    }
}

/// Room the caller lends one [`Communicator::step_into`](crate::Communicator::step_into) to
/// read one output stream into, in place of the communicator's own buffer: a buffer whose
/// first [`filled`](Self::filled) bytes hold what was read before, followed by room the step
/// fills. A binding reads this way straight into the memory of the object it will hand to its
/// own runtime (a Python `bytes`), so the output is never copied after it is read.
///
/// When the room runs out the step returns
/// [`PipeEvent::OutputFull`](crate::PipeEvent::OutputFull); the caller then lends a larger
/// buffer that starts with the same bytes (a reallocation of this one) and steps again:
/// nothing is lost or read twice. Caps ([`CaptureLimit`]) count the bytes the buffer
/// holds, `filled` included.
///
/// # Examples
///
/// ```
/// use popen::{ChildPipes, Communicator, CaptureOptions, Command, OutputSpace, PipeEvent, Stdio, Stream};
/// use std::mem::MaybeUninit;
/// use std::os::fd::AsFd;
///
/// let mut child = Command::shell("printf hello").stdout(Stdio::piped()).spawn()?;
/// let mut stdout = child.stdout.take();
/// let mut comm = Communicator::new(CaptureOptions::new());
/// // Room for 3 bytes, then for 64: the output arrives in the caller's memory.
/// let mut buf = vec![MaybeUninit::<u8>::uninit(); 3];
/// let mut filled = 0;
/// loop {
///     let pipes = ChildPipes { stdout: stdout.as_ref().map(|p| p.as_fd()), ..Default::default() };
///     comm.prepare(pipes)?;
///     let mut space = OutputSpace::new(&mut buf, filled);
///     let event = comm.step_into(pipes, b"", None, [Some(&mut space), None])?;
///     filled = space.filled();
///     match event {
///         PipeEvent::OutputFull(Stream::Stdout) => buf.resize(64, MaybeUninit::uninit()),
///         PipeEvent::Eof(Stream::Stdout) => stdout = None,
///         PipeEvent::Finished => break,
///         other => panic!("{other:?}"),
///     }
/// }
/// // SAFETY: the first `filled` bytes were written by the reads.
/// let out: Vec<u8> = buf[..filled].iter().map(|b| unsafe { b.assume_init() }).collect();
/// assert_eq!(out, b"hello");
/// assert!(child.wait()?.success());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct OutputSpace<'a> {
    buf: &'a mut [MaybeUninit<u8>],
    filled: usize,
}

impl<'a> OutputSpace<'a> {
    /// Lends `buf`, of which the first `filled` bytes are already taken (by earlier output).
    ///
    /// # Panics
    ///
    /// If `filled` is greater than `buf.len()`.
    pub fn new(buf: &'a mut [MaybeUninit<u8>], filled: usize) -> OutputSpace<'a> {
        assert!(filled <= buf.len(), "OutputSpace: filled past the buffer");
        OutputSpace { buf, filled }
    }

    /// How many bytes at the front of the buffer are taken: those given to
    /// [`new`](Self::new), then each byte a step read. The bytes a step read are initialised.
    pub fn filled(&self) -> usize {
        self.filled
    }

    pub(crate) fn is_full(&self) -> bool {
        self.filled == self.buf.len()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// (read end, write end) of a new pipe, the read end non-blocking, as the loops keep them.
    fn pipe() -> (OwnedFd, OwnedFd) {
        let (r, w) = sys::fd::pipe_cloexec().unwrap();
        sys::fd::set_nonblocking(r.as_fd(), true).unwrap();
        (r, w)
    }

    /// Reads `fd` with `read_once` until it would block or ends; the bytes kept.
    fn drain(cap: &mut Capture, fd: BorrowedFd<'_>) -> ReadOnce {
        let mut scratch = Scratch::default();
        loop {
            match cap.read_once(fd, Stream::Stdout, (None, false), None, &mut scratch) {
                Ok(ReadOnce::Moved { .. }) => {}
                Ok(other) => return other,
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn a_large_output_is_read_through_the_relay_in_order() {
        let (r, w) = pipe();
        let mut cap = Capture {
            buf: vec![7; RELAY_FROM],
            ..Capture::default()
        };
        let mut w = std::fs::File::from(w);
        let data: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
        std::io::Write::write_all(&mut w, &data[..60_000]).unwrap();
        assert!(matches!(drain(&mut cap, r.as_fd()), ReadOnce::WouldBlock));
        assert!(cap.relay.reader().is_some(), "the relay is in use");
        // The rest from another thread, more than the pipe holds, while this one reads.
        let rest = data[60_000..].to_vec();
        let writer = std::thread::spawn(move || std::io::Write::write_all(&mut w, &rest));
        let mut scratch = Scratch::default();
        loop {
            let read = cap.read_once(r.as_fd(), Stream::Stdout, (None, false), None, &mut scratch);
            match read.unwrap() {
                ReadOnce::Eof => break,
                ReadOnce::WouldBlock => std::thread::sleep(std::time::Duration::from_millis(1)),
                _ => {}
            }
        }
        writer.join().unwrap().unwrap();
        assert!(cap.buf[RELAY_FROM..] == data[..], "{} bytes", cap.buf.len());
        assert!(
            cap.relay.reader().is_none(),
            "the relay is closed at end of file"
        );
    }

    #[test]
    fn a_lent_space_with_little_room_left_takes_no_more_than_it_holds() {
        let (r, w) = pipe();
        let data: Vec<u8> = (0..10_000u32).flat_map(|i| i.to_le_bytes()).collect();
        std::io::Write::write_all(&mut std::fs::File::from(w), &data).unwrap();
        // Room for 1,000 bytes past the relay's threshold: the rest stays in the pipe.
        let mut buf = vec![MaybeUninit::new(0u8); RELAY_FROM + 1000];
        let mut space = OutputSpace::new(&mut buf, RELAY_FROM);
        let mut cap = Capture::default();
        let mut scratch = Scratch::default();
        let read = cap.read_once(
            r.as_fd(),
            Stream::Stdout,
            (None, false),
            Some(&mut space),
            &mut scratch,
        );
        assert!(matches!(read.unwrap(), ReadOnce::Moved { full: true, .. }));
        assert!(cap.relay.reader().is_some(), "the relay is in use");
        assert_eq!(space.filled(), RELAY_FROM + 1000);
        // The next reads, into the capture's own buffer, go on from there: nothing was left
        // in the relay, nothing lost.
        assert!(matches!(
            drain(&mut cap, r.as_fd()),
            ReadOnce::Eof | ReadOnce::WouldBlock
        ));
        assert_eq!(cap.buf, data[1000..]);
    }

    #[test]
    fn a_descriptor_that_cannot_be_spliced_is_read_directly() {
        // A directory cannot be spliced (EINVAL): the relay is given up, and the direct read
        // answers, here with its own error.
        let dir = OwnedFd::from(std::fs::File::open("/").unwrap());
        let mut cap = Capture {
            buf: vec![0; RELAY_FROM],
            ..Capture::default()
        };
        let mut scratch = Scratch::default();
        let err = cap
            .read_once(
                dir.as_fd(),
                Stream::Stdout,
                (None, false),
                None,
                &mut scratch,
            )
            .err()
            .expect("reading a directory fails");
        assert_eq!(err.raw_os_error(), Some(libc::EISDIR), "{err}");
        assert!(matches!(cap.relay, Relay::Unavailable));
        assert_eq!(cap.buf.len(), RELAY_FROM);
    }
}
