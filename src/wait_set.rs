//! Waiting for many children at once: [`wait_any`] and [`wait_all`] for one-shot sets (one
//! `poll(2)` over their pidfds), and [`WaitSet`], a reusable set on `epoll(7)` that also
//! watches the caller's own descriptors, so that "a child exited, or output is ready, or the
//! caller was cancelled" is one call without threads.
//!
//! Only our own children are reaped, each through its handle ([`Popen::poll`]), where its
//! status is cached: never `waitpid(-1)`, which would steal other code's children.

#[cfg(any(target_os = "linux", target_os = "android"))]
mod set;

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

#[cfg(any(target_os = "linux", target_os = "android"))]
pub use set::{Interest, Ready, Token, WaitSet};

use crate::popen::Popen;
use crate::sys;

/// Without pidfds, how often a child is polled for its exit.
pub(crate) const NO_PIDFD_POLL: Duration = Duration::from_millis(20);

pub(crate) mod sealed {
    /// Keeps [`Waitable`](super::Waitable) to the crate's own handles.
    pub trait Sealed {}
}

/// Something that ends when all of its processes have exited: a [`Popen`] or a
/// [`PipelineChild`](crate::PipelineChild) (or a reference or box of one).
pub trait Waitable: sealed::Sealed {
    /// The handles of its processes.
    fn processes(&self) -> &[Popen];

    /// Whether every process has exited (reaping those that have).
    ///
    /// # Errors
    ///
    /// An unexpected `waitpid` error.
    fn has_ended(&self) -> io::Result<bool> {
        for p in self.processes() {
            if p.poll()?.is_none() {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

impl sealed::Sealed for Popen {}
impl Waitable for Popen {
    fn processes(&self) -> &[Popen] {
        std::slice::from_ref(self)
    }
}

impl<T: Waitable + ?Sized> sealed::Sealed for &T {}
impl<T: Waitable + ?Sized> Waitable for &T {
    fn processes(&self) -> &[Popen] {
        (**self).processes()
    }
}

impl<T: Waitable + ?Sized> sealed::Sealed for &mut T {}
impl<T: Waitable + ?Sized> Waitable for &mut T {
    fn processes(&self) -> &[Popen] {
        (**self).processes()
    }
}

impl<T: Waitable + ?Sized> sealed::Sealed for Box<T> {}
impl<T: Waitable + ?Sized> Waitable for Box<T> {
    fn processes(&self) -> &[Popen] {
        (**self).processes()
    }
}

/// Where one process stands in a one-shot wait.
enum Proc {
    Running,
    Ended,
}

/// Waits until one of `children` has ended (every process of it, for a pipeline) and returns
/// its index; `None` if none has when `timeout` passes (`None`: no timeout), or at once if
/// `children` is empty. A child that had already ended counts: remove the children already
/// handled before calling again.
///
/// The ended child is reaped and its status cached in its handle ([`Popen::poll`] and
/// [`PipelineChild::poll`](crate::PipelineChild::poll) then return it). One `poll(2)` over the pidfds of the processes
/// still running: no thread, no CPU while nothing happens. For large sets waited on again and
/// again, [`WaitSet`] costs less per exit.
///
/// # Errors
///
/// An unexpected `poll`/`waitpid` error.
///
/// # Examples
///
/// ```
/// use popen::Command;
/// use std::time::Duration;
///
/// let mut children = vec![
///     Command::new("sleep").arg("10").spawn()?,
///     Command::new("true").spawn()?,
/// ];
/// let first = popen::wait_any(&children, Some(Duration::from_secs(5)))?;
/// assert_eq!(first, Some(1));
/// assert!(children[1].poll()?.unwrap().success());
/// children[0].kill()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn wait_any<W: Waitable>(
    children: &[W],
    timeout: Option<Duration>,
) -> io::Result<Option<usize>> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    wait_one_shot(children, deadline, false).map(|r| r.first)
}

/// Waits until every one of `children` has ended; `false` if one still runs when `timeout`
/// passes (`None`: no timeout). Statuses are cached in the handles.
///
/// # Errors
///
/// An unexpected `poll`/`waitpid` error.
///
/// # Examples
///
/// ```
/// use popen::Command;
/// use std::time::Duration;
///
/// let children = [Command::new("true").spawn()?, Command::new("false").spawn()?];
/// assert!(popen::wait_all(&children, Some(Duration::from_secs(10)))?);
/// assert_eq!(children[1].poll()?.unwrap().code(), Some(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn wait_all<W: Waitable>(children: &[W], timeout: Option<Duration>) -> io::Result<bool> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    wait_all_deadline(children, deadline)
}

pub(crate) fn wait_all_deadline<W: Waitable>(
    children: &[W],
    deadline: Option<Instant>,
) -> io::Result<bool> {
    wait_one_shot(children, deadline, true).map(|r| r.all)
}

struct OneShot {
    first: Option<usize>,
    all: bool,
}

fn wait_one_shot<W: Waitable>(
    children: &[W],
    deadline: Option<Instant>,
    all: bool,
) -> io::Result<OneShot> {
    if children.is_empty() {
        // Nothing to wait for: all of none have ended, and none can be first.
        return Ok(OneShot {
            first: None,
            all: true,
        });
    }
    let procs: Vec<(usize, &Popen)> = children
        .iter()
        .enumerate()
        .flat_map(|(i, c)| c.processes().iter().map(move |p| (i, p)))
        .collect();
    let mut state: Vec<Proc> = procs.iter().map(|_| Proc::Running).collect();
    let mut fds: Vec<libc::pollfd> = Vec::new();
    let mut owner: Vec<usize> = Vec::new();
    let mut first_pass = true;
    loop {
        fds.clear();
        owner.clear();
        let mut without_pidfd = false;
        for (k, (_, p)) in procs.iter().enumerate() {
            if matches!(state[k], Proc::Ended) {
                continue;
            }
            match p.pidfd() {
                // A pidfd is readable once the process has exited, reaped or not.
                Some(fd) => {
                    fds.push(pollfd(fd));
                    owner.push(k);
                }
                None => {
                    if p.poll()?.is_some() {
                        state[k] = Proc::Ended;
                    } else {
                        without_pidfd = true;
                    }
                }
            }
        }
        if !first_pass || fds.is_empty() {
            let ended = |i: usize| {
                procs
                    .iter()
                    .zip(&state)
                    .filter(|((c, _), _)| *c == i)
                    .all(|(_, s)| matches!(s, Proc::Ended))
            };
            if all {
                if state.iter().all(|s| matches!(s, Proc::Ended)) {
                    return Ok(OneShot {
                        first: None,
                        all: true,
                    });
                }
            } else if let Some(i) = (0..children.len()).find(|&i| ended(i)) {
                return Ok(OneShot {
                    first: Some(i),
                    all: false,
                });
            }
        }
        if !first_pass && deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(OneShot {
                first: None,
                all: false,
            });
        }
        // The first pass only looks (no sleep) for processes that have already exited.
        let wake = if first_pass {
            Some(Instant::now())
        } else if without_pidfd {
            let soon = Instant::now() + NO_PIDFD_POLL;
            Some(deadline.map_or(soon, |d| d.min(soon)))
        } else {
            deadline
        };
        first_pass = false;
        if fds.is_empty() {
            if let Some(w) = wake {
                std::thread::sleep(w.saturating_duration_since(Instant::now()));
            }
            continue;
        }
        let ready = if wake.is_some_and(|w| w <= Instant::now()) {
            poll_now(&mut fds)?
        } else {
            sys::poll::poll(&mut fds, wake)?
        };
        if ready == 0 {
            continue;
        }
        for (fd, &k) in fds.iter().zip(&owner) {
            if fd.revents != 0 && procs[k].1.poll()?.is_some() {
                state[k] = Proc::Ended;
            }
        }
    }
}

/// `poll` with a zero timeout.
fn poll_now(fds: &mut [libc::pollfd]) -> io::Result<usize> {
    // A deadline already past makes one non-blocking pass.
    sys::poll::poll(fds, Some(Instant::now()))
}

fn pollfd(fd: BorrowedFd<'_>) -> libc::pollfd {
    libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }
}
