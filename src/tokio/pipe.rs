//! The child's pipes as `AsyncRead`/`AsyncWrite`: non-blocking descriptors registered with the
//! tokio reactor on first use.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use ::tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};
use ::tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

use crate::sys;

/// One end of a pipe, registered with the reactor the first time it is polled — so that a
/// child can be spawned outside a runtime, and a pipe that is never polled costs no
/// registration.
pub(crate) struct Pipe {
    state: State,
    interest: Interest,
}

enum State {
    Idle(OwnedFd),
    Live(AsyncFd<OwnedFd>),
    /// Only within [`Pipe::live`], while switching from `Idle` to `Live`.
    Moving,
}

impl Pipe {
    pub(crate) fn new(fd: OwnedFd, interest: Interest) -> Pipe {
        Pipe {
            state: State::Idle(fd),
            interest,
        }
    }

    /// The descriptor, registered with the current runtime's reactor and non-blocking.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (as every tokio I/O object does).
    pub(crate) fn live(&mut self) -> io::Result<&AsyncFd<OwnedFd>> {
        if let State::Idle(fd) = &self.state {
            sys::fd::set_nonblocking(fd.as_fd(), true)?;
            let State::Idle(fd) = std::mem::replace(&mut self.state, State::Moving) else {
                unreachable!("matched just above")
            };
            self.state = match super::reactor::register(fd, self.interest) {
                Ok(fd) => State::Live(fd),
                Err((fd, e)) => {
                    self.state = State::Idle(fd);
                    return Err(e);
                }
            };
        }
        match &self.state {
            State::Live(fd) => Ok(fd),
            _ => Err(io::Error::from_raw_os_error(libc::EBADF)),
        }
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        match &self.state {
            State::Idle(fd) => fd.as_fd(),
            State::Live(fd) => fd.get_ref().as_fd(),
            State::Moving => unreachable!("only within `live`"),
        }
    }

    /// Takes the descriptor back from the reactor, in blocking mode again.
    fn into_owned(self) -> OwnedFd {
        match self.state {
            State::Idle(fd) => fd,
            State::Live(fd) => {
                let fd = fd.into_inner();
                let _ = sys::fd::set_nonblocking(fd.as_fd(), false);
                fd
            }
            State::Moving => unreachable!("only within `live`"),
        }
    }

    /// Waits until the pipe is readable, then runs `op` on it; an `op` that would block
    /// clears the readiness and waits again.
    pub(crate) fn poll_op<R>(
        &mut self,
        cx: &mut Context<'_>,
        read: bool,
        mut op: impl FnMut(BorrowedFd<'_>) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        let fd = self.live()?;
        loop {
            let mut guard = ready!(poll_ready(fd, cx, read))?;
            match guard.try_io(|fd| op(fd.get_ref().as_fd())) {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }
}

/// Readiness for reading or for writing.
pub(crate) fn poll_ready<'a>(
    fd: &'a AsyncFd<OwnedFd>,
    cx: &mut Context<'_>,
    read: bool,
) -> Poll<io::Result<AsyncFdReadyGuard<'a, OwnedFd>>> {
    if read {
        fd.poll_read_ready(cx)
    } else {
        fd.poll_write_ready(cx)
    }
}

macro_rules! async_pipe_end {
    ($(#[$doc:meta])* $name:ident, $sync:ty, $interest:expr) => {
        $(#[$doc])*
        pub struct $name {
            pub(crate) pipe: Pipe,
        }

        impl $name {
            pub(crate) fn from_sync(end: $sync) -> $name {
                $name { pipe: Pipe::new(OwnedFd::from(end), $interest) }
            }

            /// The descriptor, taken back from the reactor and in blocking mode again.
            pub fn into_owned_fd(self) -> OwnedFd {
                self.pipe.into_owned()
            }
        }

        impl AsFd for $name {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.pipe.fd()
            }
        }

        impl AsRawFd for $name {
            fn as_raw_fd(&self) -> RawFd {
                self.pipe.fd().as_raw_fd()
            }
        }

        impl From<$name> for OwnedFd {
            fn from(end: $name) -> OwnedFd {
                end.into_owned_fd()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).field("fd", &self.as_raw_fd()).finish()
            }
        }
    };
}

async_pipe_end! {
    /// The parent's writing end of the child's stdin pipe, as an [`AsyncWrite`]: non-blocking,
    /// registered with the reactor on first use. Dropping it closes the pipe, which the child
    /// reads as end of file (`shutdown` does not: a pipe has no half-close, and the end stays
    /// usable until dropped, as with `tokio::process`).
    ///
    /// A write to a child that closed its end fails with `BrokenPipe`; as in every Rust
    /// program that keeps the runtime's default, SIGPIPE is ignored and kills nothing.
    ChildStdin, crate::ChildStdin, Interest::WRITABLE
}
async_pipe_end! {
    /// The parent's reading end of the child's stdout pipe, as an [`AsyncRead`]: non-blocking,
    /// registered with the reactor on first use.
    ChildStdout, crate::ChildStdout, Interest::READABLE
}
async_pipe_end! {
    /// The parent's reading end of the child's stderr pipe, as an [`AsyncRead`]: non-blocking,
    /// registered with the reactor on first use.
    ChildStderr, crate::ChildStderr, Interest::READABLE
}

fn poll_read_pipe(
    pipe: &mut Pipe,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
) -> Poll<io::Result<()>> {
    let n = ready!(pipe.poll_op(cx, true, |fd| sys::fd::read(fd, buf.initialize_unfilled())))?;
    buf.advance(n);
    Poll::Ready(Ok(()))
}

impl AsyncRead for ChildStdout {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        poll_read_pipe(&mut self.get_mut().pipe, cx, buf)
    }
}

impl AsyncRead for ChildStderr {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        poll_read_pipe(&mut self.get_mut().pipe, cx, buf)
    }
}

impl AsyncWrite for ChildStdin {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .pipe
            .poll_op(cx, false, |fd| sys::fd::write(fd, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Nothing is buffered: every write goes to the pipe.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A pipe has no half-close: the child sees end of file when this end is dropped.
        Poll::Ready(Ok(()))
    }
}
