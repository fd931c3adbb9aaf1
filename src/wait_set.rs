//! Waiting for many children at once: [`wait_any`] and [`wait_all`] for one-shot sets (one
//! `poll(2)` over their pidfds), and [`WaitSet`], a reusable set on `epoll(7)` that also
//! watches the caller's own descriptors, so that "a child exited, or output is ready, or the
//! caller was cancelled" is one call without threads.
//!
//! Only our own children are reaped, each through its handle ([`Popen::poll`]), where its
//! status is cached: never `waitpid(-1)`, which would steal other code's children.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::pipeline::PipelineChild;
use crate::popen::Popen;
use crate::sys;

/// Without pidfds, how often a child is polled for its exit.
const NO_PIDFD_POLL: Duration = Duration::from_millis(20);

mod sealed {
    pub trait Sealed {}
}

/// Something that ends when all of its processes have exited: a [`Popen`] or a
/// [`PipelineChild`] (or a reference or box of one).
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

impl sealed::Sealed for PipelineChild {}
impl Waitable for PipelineChild {
    fn processes(&self) -> &[Popen] {
        self.stages()
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
/// its index; `None` if none has when `timeout` passes (`None`: no timeout). A child that had
/// already ended counts: remove the children already handled before calling again.
///
/// The ended child is reaped and its status cached in its handle ([`Popen::poll`] and
/// [`PipelineChild::poll`] then return it). One `poll(2)` over the pidfds of the processes
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

/// Names an entry of a [`WaitSet`]: a child or a watched descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(u64);

impl Token {
    /// The token's number, unique within its set.
    pub fn id(self) -> u64 {
        self.0
    }
}

/// What a descriptor watched by a [`WaitSet`] is waited for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Interest {
    /// Readable (or at end of file, or in error).
    Read,
    /// Writable (or in error).
    Write,
}

/// One thing a [`WaitSet::wait`] found.
#[derive(Debug)]
pub enum Ready<T> {
    /// A child ended (every process of it), was reaped (its status is cached in its handle),
    /// and left the set.
    Exited(Token, T),
    /// A watched descriptor is ready. It stays watched.
    Fd(Token),
}

/// Bits of an epoll tag: the token in the high bits, the process index in the low ones.
const INDEX_BITS: u32 = 20;

struct Entry<T> {
    child: T,
    /// Processes not yet reaped.
    left: usize,
    /// Per process: its pidfd, registered with the set while it runs.
    registered: Vec<Option<RawFd>>,
}

/// A reusable set of children — and of the caller's own descriptors — to wait on, built on
/// `epoll(7)` and pidfds: a wait costs what became ready, not the size of the set, and the
/// set sleeps without CPU until something happens.
///
/// Children ([`Popen`], [`PipelineChild`], or references to them) are moved in with
/// [`insert`](Self::insert) and come back out in [`Ready::Exited`], reaped, once they have
/// ended — or with [`remove`](Self::remove). Descriptors the caller owns (a pipe, an eventfd
/// used to cancel the wait from another thread, a socket) are watched with
/// [`watch_fd`](Self::watch_fd).
///
/// Where the kernel has no pidfds (Linux < 5.3), children are polled every 20 ms instead.
///
/// # Drop behavior
///
/// Dropping the set drops the children still in it (see [`Popen`]'s drop behavior) and closes
/// its epoll descriptor; watched descriptors stay the caller's.
///
/// # Examples
///
/// ```
/// use popen::{Command, Ready, WaitSet};
/// use std::time::Duration;
///
/// let mut set = WaitSet::new()?;
/// let slow = set.insert(Command::new("sleep").arg("10").spawn()?)?;
/// let quick = set.insert(Command::new("true").spawn()?)?;
/// let ready = set.wait(Some(Duration::from_secs(5)))?;
/// let [Ready::Exited(token, child)] = &ready[..] else { panic!("{ready:?}") };
/// assert_eq!(*token, quick);
/// assert!(child.poll()?.unwrap().success());
/// set.remove(slow).unwrap().kill()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct WaitSet<T: Waitable> {
    epoll: OwnedFd,
    children: HashMap<u64, Entry<T>>,
    fds: HashMap<u64, RawFd>,
    /// Children with a process that has no pidfd (old kernels): polled.
    polled: Vec<u64>,
    /// Children that had ended before they were inserted.
    ended: Vec<u64>,
    next: u64,
    events: Vec<libc::epoll_event>,
}

impl<T: Waitable> WaitSet<T> {
    /// An empty set.
    ///
    /// # Errors
    ///
    /// The error of `epoll_create1` (e.g. `EMFILE`).
    pub fn new() -> io::Result<WaitSet<T>> {
        Ok(WaitSet {
            epoll: sys::epoll::epoll_create()?,
            children: HashMap::new(),
            fds: HashMap::new(),
            polled: Vec::new(),
            ended: Vec::new(),
            next: 1,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; 256],
        })
    }

    fn token(&mut self) -> Token {
        let t = Token(self.next);
        self.next += 1;
        t
    }

    /// Adds `child` to the set.
    ///
    /// # Errors
    ///
    /// The error of `pidfd_open`/`epoll_ctl` (e.g. `EMFILE`, `ENOSPC` past
    /// `max_user_watches`); the child is dropped then.
    pub fn insert(&mut self, child: T) -> io::Result<Token> {
        let token = self.token();
        let procs = child.processes();
        if procs.len() >= 1 << INDEX_BITS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "too many processes in one child",
            ));
        }
        let mut registered = vec![None; procs.len()];
        let mut left = 0;
        let mut polled = false;
        for (i, p) in procs.iter().enumerate() {
            if p.poll()?.is_some() {
                continue;
            }
            left += 1;
            match p.pidfd() {
                Some(fd) => {
                    let tag = (token.0 << INDEX_BITS) | i as u64;
                    if let Err(e) =
                        sys::epoll::epoll_add(self.epoll.as_fd(), fd, libc::EPOLLIN as u32, tag)
                    {
                        self.unregister(&registered);
                        return Err(e);
                    }
                    registered[i] = Some(fd.as_raw_fd());
                }
                None => polled = true,
            }
        }
        if polled {
            self.polled.push(token.0);
        }
        if left == 0 {
            self.ended.push(token.0);
        }
        self.children.insert(
            token.0,
            Entry {
                child,
                left,
                registered,
            },
        );
        Ok(token)
    }

    fn unregister(&self, registered: &[Option<RawFd>]) {
        for fd in registered.iter().flatten() {
            let _ = sys::epoll::epoll_del(self.epoll.as_fd(), *fd);
        }
    }

    /// Takes a child out of the set, running or not.
    pub fn remove(&mut self, token: Token) -> Option<T> {
        let entry = self.children.remove(&token.0)?;
        self.unregister(&entry.registered);
        self.polled.retain(|&t| t != token.0);
        self.ended.retain(|&t| t != token.0);
        Some(entry.child)
    }

    /// The child named by `token`, while it is in the set.
    pub fn get(&self, token: Token) -> Option<&T> {
        self.children.get(&token.0).map(|e| &e.child)
    }

    /// The number of children in the set (watched descriptors not counted).
    pub fn len(&self) -> usize {
        self.children.len()
    }

    /// Whether no child is in the set.
    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }

    /// Watches one of the caller's descriptors: [`wait`](Self::wait) returns [`Ready::Fd`]
    /// while it is ready (level-triggered: drain or unwatch it). The descriptor stays the
    /// caller's; unwatch it before closing it.
    ///
    /// # Errors
    ///
    /// The error of `epoll_ctl` (`EPERM` for a regular file, `EEXIST` if already watched).
    pub fn watch_fd(&mut self, fd: BorrowedFd<'_>, interest: Interest) -> io::Result<Token> {
        let token = self.token();
        let events = match interest {
            Interest::Read => libc::EPOLLIN | libc::EPOLLRDHUP,
            Interest::Write => libc::EPOLLOUT,
        } as u32;
        sys::epoll::epoll_add(self.epoll.as_fd(), fd, events, token.0 << INDEX_BITS)?;
        self.fds.insert(token.0, fd.as_raw_fd());
        Ok(token)
    }

    /// Stops watching a descriptor. Unknown tokens are ignored.
    ///
    /// # Errors
    ///
    /// The error of `epoll_ctl`.
    pub fn unwatch_fd(&mut self, token: Token) -> io::Result<()> {
        match self.fds.remove(&token.0) {
            Some(fd) => sys::epoll::epoll_del(self.epoll.as_fd(), fd),
            None => Ok(()),
        }
    }

    /// Waits until at least one child has ended or one watched descriptor is ready, or
    /// `timeout` passes (`None`: no timeout); returns everything found, empty on timeout.
    ///
    /// # Errors
    ///
    /// An unexpected `epoll_wait`/`waitpid` error.
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<Vec<Ready<T>>> {
        self.wait_deadline(timeout.and_then(|t| Instant::now().checked_add(t)))
    }

    /// [`wait`](Self::wait) until `deadline` (`None`: none).
    ///
    /// # Errors
    ///
    /// As [`wait`](Self::wait).
    pub fn wait_deadline(&mut self, deadline: Option<Instant>) -> io::Result<Vec<Ready<T>>> {
        let mut out = Vec::new();
        loop {
            for t in std::mem::take(&mut self.ended) {
                if let Some(e) = self.children.remove(&t) {
                    out.push(Ready::Exited(Token(t), e.child));
                }
            }
            let polled = std::mem::take(&mut self.polled);
            for t in polled {
                if let Some(e) = self.children.get(&t) {
                    if e.child.has_ended()? {
                        let e = self.children.remove(&t).expect("present");
                        self.unregister(&e.registered);
                        out.push(Ready::Exited(Token(t), e.child));
                        continue;
                    }
                    self.polled.push(t);
                }
            }
            let wake = if !out.is_empty() {
                Some(Instant::now())
            } else if !self.polled.is_empty() {
                let soon = Instant::now() + NO_PIDFD_POLL;
                Some(deadline.map_or(soon, |d| d.min(soon)))
            } else {
                deadline
            };
            let n = sys::epoll::epoll_wait(self.epoll.as_fd(), &mut self.events, wake)?;
            for k in 0..n {
                let tag = self.events[k].u64;
                let (t, i) = (tag >> INDEX_BITS, (tag & ((1 << INDEX_BITS) - 1)) as usize);
                if self.fds.contains_key(&t) {
                    out.push(Ready::Fd(Token(t)));
                    continue;
                }
                let Some(e) = self.children.get_mut(&t) else {
                    continue;
                };
                if e.child.processes()[i].poll()?.is_none() {
                    continue;
                }
                // Reaped: its pidfd stays readable, so it leaves the interest list.
                if let Some(fd) = e.registered[i].take() {
                    sys::epoll::epoll_del(self.epoll.as_fd(), fd)?;
                    e.left -= 1;
                }
                if e.left == 0 {
                    let e = self.children.remove(&t).expect("present");
                    self.unregister(&e.registered);
                    self.polled.retain(|&p| p != t);
                    out.push(Ready::Exited(Token(t), e.child));
                }
            }
            if !out.is_empty() || deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(out);
            }
        }
    }
}

impl<T: Waitable> fmt::Debug for WaitSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitSet")
            .field("epoll", &self.epoll.as_raw_fd())
            .field("children", &self.children.len())
            .field("fds", &self.fds.len())
            .finish()
    }
}
