//! Redirections of the child's standard streams, and the parent's ends of its pipes.

use std::fmt;
use std::fs::File;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

use crate::sys;

/// What one of the child's standard streams is connected to.
///
/// | CPython | popen |
/// |---|---|
/// | `None` | [`Stdio::inherit`] |
/// | `PIPE` | [`Stdio::piped`] |
/// | `DEVNULL` | [`Stdio::null`] |
/// | an fd or file object | [`Stdio::from`]`(OwnedFd / File)`, [`Stdio::borrowed`] |
/// | `stderr=STDOUT` | [`Stdio::same_as_stdout`] |
///
/// # Examples
///
/// ```
/// use popen::{Command, Stdio};
/// use std::io::Read;
///
/// let mut child = Command::shell("echo out; echo err >&2")
///     .stdout(Stdio::piped())
///     .stderr(Stdio::same_as_stdout())
///     .spawn()?;
/// let mut text = String::new();
/// child.stdout.take().unwrap().read_to_string(&mut text)?;
/// child.wait()?;
/// assert_eq!(text, "out\nerr\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Stdio(pub(crate) StdioKind);

pub(crate) enum StdioKind {
    Inherit,
    Pipe,
    Null,
    Fd(OwnedFd),
    SameAsStdout,
    SameAsStderr,
}

impl Stdio {
    /// The child uses the parent's stream (the default).
    pub fn inherit() -> Stdio {
        Stdio(StdioKind::Inherit)
    }

    /// A new pipe; the parent's end appears on the [`Popen`](crate::Popen) handle.
    pub fn piped() -> Stdio {
        Stdio(StdioKind::Pipe)
    }

    /// The null device (`/dev/null`).
    pub fn null() -> Stdio {
        Stdio(StdioKind::Null)
    }

    /// For stderr: the same descriptor as the child's stdout (CPython's `stderr=STDOUT`).
    ///
    /// With stdout inherited, that is this process's fd 1 as the spawn finds it; if fd 1 is
    /// closed, [`spawn`](crate::Command::spawn) fails with [`Step::Dup2`](crate::Step::Dup2)
    /// (`EBADF`), before any process exists.
    pub fn same_as_stdout() -> Stdio {
        Stdio(StdioKind::SameAsStdout)
    }

    /// For stdout: the same descriptor as the child's stderr. With stderr inherited, that is
    /// this process's fd 2 as the spawn finds it (see [`same_as_stdout`](Self::same_as_stdout)).
    pub fn same_as_stderr() -> Stdio {
        Stdio(StdioKind::SameAsStderr)
    }

    /// A descriptor the caller keeps: a close-on-exec duplicate of it is taken now.
    ///
    /// # Errors
    ///
    /// The error of `fcntl(F_DUPFD_CLOEXEC)` (e.g. `EMFILE`).
    pub fn borrowed(fd: BorrowedFd<'_>) -> io::Result<Stdio> {
        Ok(Stdio(StdioKind::Fd(sys::fd::dup_cloexec_min(fd, 3)?)))
    }

    pub(crate) fn describe(&self) -> &'static str {
        match self.0 {
            StdioKind::Inherit => "inherit",
            StdioKind::Pipe => "pipe",
            StdioKind::Null => "null",
            StdioKind::Fd(_) => "fd",
            StdioKind::SameAsStdout => "same as stdout",
            StdioKind::SameAsStderr => "same as stderr",
        }
    }
}

impl Default for Stdio {
    fn default() -> Stdio {
        Stdio::inherit()
    }
}

impl fmt::Debug for Stdio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            StdioKind::Fd(fd) => write!(f, "Stdio(fd {})", fd.as_raw_fd()),
            _ => write!(f, "Stdio({})", self.describe()),
        }
    }
}

impl From<OwnedFd> for Stdio {
    fn from(fd: OwnedFd) -> Stdio {
        Stdio(StdioKind::Fd(fd))
    }
}

impl From<File> for Stdio {
    fn from(f: File) -> Stdio {
        Stdio(StdioKind::Fd(f.into()))
    }
}

macro_rules! pipe_end {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub struct $name {
            file: File,
        }

        impl $name {
            pub(crate) fn from_owned(fd: OwnedFd) -> $name {
                $name { file: File::from(fd) }
            }

            /// Sets or clears `O_NONBLOCK` on this end.
            ///
            /// # Errors
            ///
            /// The error of `fcntl`.
            pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
                sys::fd::set_nonblocking(self.file.as_fd(), on)
            }
        }

        impl AsFd for $name {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.file.as_fd()
            }
        }

        impl AsRawFd for $name {
            fn as_raw_fd(&self) -> RawFd {
                self.file.as_raw_fd()
            }
        }

        impl IntoRawFd for $name {
            fn into_raw_fd(self) -> RawFd {
                self.file.into_raw_fd()
            }
        }

        impl From<$name> for OwnedFd {
            fn from(p: $name) -> OwnedFd {
                p.file.into()
            }
        }

        impl From<$name> for Stdio {
            fn from(p: $name) -> Stdio {
                Stdio(StdioKind::Fd(p.file.into()))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).field("fd", &self.file.as_raw_fd()).finish()
            }
        }
    };
}

pipe_end! {
    /// The parent's writing end of the child's stdin pipe. Dropping it closes the pipe, which
    /// the child reads as end of file.
    ChildStdin
}
pipe_end! {
    /// The parent's reading end of the child's stdout pipe.
    ChildStdout
}
pipe_end! {
    /// The parent's reading end of the child's stderr pipe.
    ChildStderr
}

fn retry<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

impl Write for ChildStdin {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        retry(|| self.file.write(buf))
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        retry(|| self.file.write_vectored(bufs))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &ChildStdin {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        retry(|| (&self.file).write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

macro_rules! reader {
    ($name:ident) => {
        impl Read for $name {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                retry(|| self.file.read(buf))
            }

            fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
                retry(|| self.file.read_vectored(bufs))
            }

            fn read_to_end(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
                self.file.read_to_end(buf)
            }
        }

        impl Read for &$name {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                retry(|| (&self.file).read(buf))
            }
        }
    };
}
reader!(ChildStdout);
reader!(ChildStderr);

/// Builds a `Stdio` from a raw descriptor, taking ownership of it.
#[allow(unsafe_code)]
impl FromRawFd for Stdio {
    /// # Safety
    ///
    /// `fd` must be an open descriptor that nothing else owns or will close.
    unsafe fn from_raw_fd(fd: RawFd) -> Stdio {
        // SAFETY: the caller hands over ownership of an open descriptor.
        Stdio(StdioKind::Fd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }
}
