//! The communicate loop itself, over pipe descriptors it borrows: [`Communicator`] feeds a
//! child's stdin and reads its stdout and stderr at the same time, in one thread, with
//! `poll(2)` over non-blocking pipes, and keeps everything it needs to resume after a timeout —
//! the input offset and the output read so far. It never closes a descriptor: when a pipe is
//! finished it says so ([`PipeEvent`]), and the owner of the descriptor closes it.
//!
//! [`Popen::communicate`](crate::Popen::communicate) and [`Popen::lines`](crate::Popen::lines)
//! drive it on the pipes the handle owns; a binding drives it on descriptors another runtime
//! owns (CPython's file objects).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Instant;

pub(crate) use crate::capture::index;
pub use crate::capture::OutputSpace;
use crate::capture::{Capture, CaptureOptions, ReadOnce, Scratch};
use crate::sys;
use crate::sys::poll::SigpipeGuard;
use crate::text::Stream;

/// The most bytes one `write` moves: half the default pipe. The kernel holds the pipe's lock
/// for the whole copy of a write, so a write of the whole pipe keeps the child from reading
/// until it is done; with half a pipe per write the child can read one half while this thread
/// reads its output (256 MiB through `cat`: 4–13 % faster than 1 MiB writes, in interleaved
/// runs).
const MAX_WRITE: usize = 512 << 10;

pub(crate) const STREAMS: [Stream; 2] = [Stream::Stdout, Stream::Stderr];

/// The parent's ends of a child's pipes, borrowed for one call of the loop. `None` for a pipe
/// that is not there, or that the loop must leave alone.
///
/// # Examples
///
/// ```
/// use popen::ChildPipes;
/// use std::os::fd::AsFd;
///
/// let (reader, _writer) = std::io::pipe()?;
/// let pipes = ChildPipes { stdout: Some(reader.as_fd()), ..ChildPipes::default() };
/// assert!(pipes.stdin.is_none());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct ChildPipes<'a> {
    /// The write end of the child's stdin.
    pub stdin: Option<BorrowedFd<'a>>,
    /// The read end of the child's stdout.
    pub stdout: Option<BorrowedFd<'a>>,
    /// The read end of the child's stderr.
    pub stderr: Option<BorrowedFd<'a>>,
}

impl ChildPipes<'_> {
    fn all(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        [self.stdin, self.stdout, self.stderr].into_iter().flatten()
    }

    fn read_end(&self, s: Stream) -> Option<BorrowedFd<'_>> {
        match s {
            Stream::Stdout => self.stdout,
            Stream::Stderr => self.stderr,
        }
    }
}

/// Why [`Communicator::step`] returned. After [`InputDone`](Self::InputDone) and
/// [`Eof`](Self::Eof) the caller closes that pipe (the child sees end of file on its stdin only
/// then) and calls `step` again without it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PipeEvent {
    /// Every byte of the input is written, or the child closed its stdin (`EPIPE`, swallowed as
    /// CPython does): close stdin.
    InputDone,
    /// This stream reached end of file: close it.
    Eof(Stream),
    /// Nothing is left to do: no pipe was given, or none is left that the loop watches.
    Finished,
    /// The deadline passed.
    TimedOut,
    /// This stream exceeded its [`CaptureLimit::Error`](crate::CaptureLimit::Error) cap.
    LimitExceeded(Stream),
    /// The [`OutputSpace`] lent for this stream is full (only from
    /// [`step_into`](Communicator::step_into)): lend a larger one and step again.
    OutputFull(Stream),
    /// A signal interrupted the wait (only with
    /// [`return_on_signal`](Communicator::return_on_signal)).
    Interrupted,
}

/// When [`Communicator::step_until`] returns besides on an event.
#[derive(Clone, Copy)]
pub(crate) enum Stop {
    /// Only on the events of [`Communicator::step`].
    Events,
    /// Also as soon as a stream with `Some(len)` holds more than `len` bytes, or is not given
    /// (indexed as [`STREAMS`]).
    Past([Option<usize>; 2]),
}

#[derive(Clone, Copy)]
enum Slot {
    Stdin,
    Out(Stream),
}

/// The resumable state of one child's communication: how much of the input is written, and
/// what stdout and stderr have produced so far. Each [`step`](Self::step) moves data through
/// the pipes it is given until something the caller must act on happens; a step that timed
/// out can be followed by another, later, that goes on where it stopped, without losing or
/// repeating a byte — the contract of CPython's `communicate`.
///
/// The descriptors are borrowed for each step, never closed, and must be non-blocking
/// ([`prepare`](Self::prepare) sets that up; [`release`](Self::release) undoes it).
///
/// # Examples
///
/// Driving `cat` on descriptors this code owns:
///
/// ```
/// use popen::{ChildPipes, Communicator, CaptureOptions, Command, PipeEvent, Stdio, Stream};
/// use std::os::fd::AsFd;
///
/// let mut child = Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
/// let (mut stdin, mut stdout) = (child.stdin.take(), child.stdout.take());
/// let input = b"hello";
/// let mut comm = Communicator::new(CaptureOptions::new());
/// loop {
///     let pipes = ChildPipes {
///         stdin: stdin.as_ref().map(|p| p.as_fd()),
///         stdout: stdout.as_ref().map(|p| p.as_fd()),
///         stderr: None,
///     };
///     comm.prepare(pipes)?;
///     match comm.step(pipes, input, None)? {
///         PipeEvent::InputDone => stdin = None,
///         PipeEvent::Eof(Stream::Stdout) => stdout = None,
///         PipeEvent::Finished => break,
///         other => panic!("{other:?}"),
///     }
/// }
/// assert_eq!(comm.input_offset(), 5);
/// assert_eq!(comm.take_output(Stream::Stdout), b"hello");
/// assert!(child.wait()?.success());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Default)]
pub struct Communicator {
    pub(crate) opts: CaptureOptions,
    grown: bool,
    pub(crate) input_offset: usize,
    pub(crate) out: [Capture; 2],
    /// Where bytes beyond a truncating cap are read to and dropped.
    scratch: Scratch,
    return_on_signal: bool,
}

impl Communicator {
    /// A communication that has not begun, capturing as `opts` says (caps, tee, pipe size; the
    /// kill on timeout is the caller's business).
    pub fn new(opts: CaptureOptions) -> Communicator {
        Communicator {
            opts,
            ..Communicator::default()
        }
    }

    /// The capture options.
    pub fn options(&self) -> &CaptureOptions {
        &self.opts
    }

    /// With `true`, a signal that interrupts the wait makes [`step`](Self::step) return
    /// [`PipeEvent::Interrupted`], so that the caller can run its signal handlers before the
    /// next step; with `false` (the default) the wait resumes with the time left.
    pub fn return_on_signal(&mut self, on: bool) -> &mut Communicator {
        self.return_on_signal = on;
        self
    }

    /// How many bytes of the input are written.
    pub fn input_offset(&self) -> usize {
        self.input_offset
    }

    /// The bytes read from `stream` so far (those not yet handed out by
    /// [`Lines`](crate::Lines)).
    pub fn output(&self, stream: Stream) -> &[u8] {
        let cap = &self.out[index(stream)];
        &cap.buf[cap.taken..]
    }

    /// Moves out the bytes read from `stream` so far; later reads start a new buffer.
    pub fn take_output(&mut self, stream: Stream) -> Vec<u8> {
        self.out[index(stream)].take()
    }

    /// The bytes of `stream` read and dropped past a
    /// [`CaptureLimit::Truncate`](crate::CaptureLimit::Truncate) cap.
    pub fn dropped(&self, stream: Stream) -> u64 {
        self.out[index(stream)].dropped
    }

    /// Makes the pipes non-blocking, and, the first time, grows each one smaller than the
    /// options' [`pipe_size`](CaptureOptions::pipe_size) to that size (best effort: a refusal
    /// by the kernel, such as a per-user pipe quota, is ignored).
    ///
    /// # Errors
    ///
    /// The `fcntl(2)` error setting `O_NONBLOCK` (a descriptor that is not open: `EBADF`).
    pub fn prepare(&mut self, pipes: ChildPipes<'_>) -> io::Result<()> {
        let grow = if self.grown {
            None
        } else {
            self.opts.pipe_size
        };
        self.grown = true;
        for fd in pipes.all() {
            sys::fd::set_nonblocking(fd, true)?;
            if let Some(size) = grow {
                if sys::poll::pipe_size(fd).is_ok_and(|cur| cur < size) {
                    let _ = sys::fd::set_pipe_size(fd, size);
                }
            }
        }
        Ok(())
    }

    /// Gives the pipes back in blocking mode (errors ignored).
    pub fn release(pipes: ChildPipes<'_>) {
        for fd in pipes.all() {
            let _ = sys::fd::set_nonblocking(fd, false);
        }
    }

    /// Moves data until an event: writes `input[self.input_offset()..]` to `pipes.stdin`, reads
    /// `pipes.stdout` and `pipes.stderr` into the captured output, and returns when a pipe is
    /// finished, when `deadline` passes (`None`: never), or when a cap is exceeded. The same
    /// `input` must be passed to every step of one communication. With `pipes.stdin` `None`,
    /// stdin is left alone.
    ///
    /// # Errors
    ///
    /// The failing system call's error (`EBADF` for a descriptor that is not open). `EINTR`
    /// never escapes: see [`return_on_signal`](Self::return_on_signal).
    pub fn step(
        &mut self,
        pipes: ChildPipes<'_>,
        input: &[u8],
        deadline: Option<Instant>,
    ) -> io::Result<PipeEvent> {
        self.step_until(pipes, input, deadline, Stop::Events, [None, None])
    }

    /// [`step`](Self::step), reading stdout and stderr into the [`OutputSpace`]s given for them
    /// (`[stdout, stderr]`) instead of the communicator's own buffers (a stream without one
    /// goes to the communicator's buffer, as with `step`). Returns
    /// [`PipeEvent::OutputFull`] as soon as a lent space is full, before any other read of
    /// that stream. What the step read is counted in each space's
    /// [`filled`](OutputSpace::filled); the bytes read into a lent space never reach
    /// [`output`](Self::output).
    ///
    /// # Errors
    ///
    /// As [`step`](Self::step).
    pub fn step_into(
        &mut self,
        pipes: ChildPipes<'_>,
        input: &[u8],
        deadline: Option<Instant>,
        spaces: [Option<&mut OutputSpace<'_>>; 2],
    ) -> io::Result<PipeEvent> {
        self.step_until(pipes, input, deadline, Stop::Events, spaces)
    }

    /// [`step`](Self::step), which also returns [`PipeEvent::Finished`] when `stop` says so.
    pub(crate) fn step_until(
        &mut self,
        pipes: ChildPipes<'_>,
        input: &[u8],
        deadline: Option<Instant>,
        stop: Stop,
        mut spaces: [Option<&mut OutputSpace<'_>>; 2],
    ) -> io::Result<PipeEvent> {
        if pipes.stdin.is_some() && self.input_offset >= input.len() {
            return Ok(PipeEvent::InputDone);
        }
        for s in STREAMS {
            let full = spaces[index(s)].as_ref().is_some_and(|sp| sp.is_full());
            if full && pipes.read_end(s).is_some() {
                return Ok(PipeEvent::OutputFull(s));
            }
        }
        let sigpipe = pipes.stdin.is_some().then(SigpipeGuard::new);
        loop {
            if let Stop::Past(lens) = stop {
                let past = STREAMS.into_iter().zip(lens).any(|(s, len)| {
                    len.is_some_and(|len| {
                        pipes.read_end(s).is_none() || self.out[index(s)].buf.len() > len
                    })
                });
                if past {
                    return Ok(PipeEvent::Finished);
                }
            }
            let mut fds = [libc::pollfd {
                fd: -1,
                events: 0,
                revents: 0,
            }; 3];
            let mut slots = [Slot::Stdin; 3];
            let mut n = 0;
            if let Some(stdin) = pipes.stdin {
                fds[n] = pollfd(stdin, libc::POLLOUT);
                n += 1;
            }
            for s in STREAMS {
                if let Some(fd) = pipes.read_end(s) {
                    fds[n] = pollfd(fd, libc::POLLIN);
                    slots[n] = Slot::Out(s);
                    n += 1;
                }
            }
            if n == 0 {
                return Ok(PipeEvent::Finished);
            }
            // Checked on every turn, so that a child that never stops writing still times out.
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(PipeEvent::TimedOut);
            }
            let ready = if self.return_on_signal {
                match sys::poll::poll_or_signal(&mut fds[..n], deadline)? {
                    Some(ready) => ready,
                    None => return Ok(PipeEvent::Interrupted),
                }
            } else {
                sys::poll::poll(&mut fds[..n], deadline)?
            };
            if ready == 0 {
                return Ok(PipeEvent::TimedOut);
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
                        if let Some(stdin) = pipes.stdin {
                            if self.write_input(stdin, input, sigpipe.as_ref())? {
                                return Ok(PipeEvent::InputDone);
                            }
                        }
                    }
                    Slot::Out(s) => {
                        if let Some(fd) = pipes.read_end(s) {
                            let space = spaces[index(s)].as_deref_mut();
                            match self.read_output(fd, s, space)? {
                                Read::More => {}
                                Read::Eof => return Ok(PipeEvent::Eof(s)),
                                Read::Over => return Ok(PipeEvent::LimitExceeded(s)),
                                Read::Full => return Ok(PipeEvent::OutputFull(s)),
                            }
                        }
                    }
                }
            }
        }
    }

    /// Writes the next chunk of input; whether stdin is finished (all written, or the child
    /// closed its end).
    fn write_input(
        &mut self,
        stdin: BorrowedFd<'_>,
        data: &[u8],
        sigpipe: Option<&SigpipeGuard>,
    ) -> io::Result<bool> {
        let pos = self.input_offset;
        let end = data.len().min(pos + MAX_WRITE);
        match sys::fd::write(stdin, &data[pos..end]) {
            Ok(n) => {
                self.input_offset += n;
                Ok(self.input_offset >= data.len())
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {
                // The child does not want the rest (CPython ignores this too).
                if let Some(guard) = sigpipe {
                    guard.consume();
                }
                Ok(true)
            }
            Err(e) => Err(e),
        }
    }

    /// Reads what stream `s` has, until it would block, into `space` if one is lent, else into
    /// the stream's own buffer.
    fn read_output(
        &mut self,
        fd: BorrowedFd<'_>,
        s: Stream,
        mut space: Option<&mut OutputSpace<'_>>,
    ) -> io::Result<Read> {
        let rule = (self.opts.limit(s), self.opts.tee(s));
        let cap = &mut self.out[index(s)];
        loop {
            let space = space.as_deref_mut();
            let read = match cap.read_once(fd, s, rule, space, &mut self.scratch)? {
                ReadOnce::Eof => Read::Eof,
                ReadOnce::WouldBlock => Read::More,
                ReadOnce::Full => Read::Full,
                ReadOnce::Moved { over: true, .. } => Read::Over,
                ReadOnce::Moved { full: true, .. } => Read::Full,
                // The pipe is most likely empty: back to poll rather than an EAGAIN read.
                ReadOnce::Moved { emptied: true, .. } => Read::More,
                ReadOnce::Moved { .. } => continue,
            };
            return Ok(read);
        }
    }
}

/// How a read of one stream ended.
enum Read {
    More,
    Eof,
    Over,
    /// The lent space is full.
    Full,
}

fn pollfd(fd: BorrowedFd<'_>, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    }
}
