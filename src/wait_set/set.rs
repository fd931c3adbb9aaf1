//! [`WaitSet`]: a reusable set of children and of the caller's own descriptors, on `epoll(7)`
//! and pidfds.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use super::{Waitable, NO_PIDFD_POLL};
#[cfg(doc)]
use crate::popen::Popen;
use crate::sys;

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
/// Children ([`Popen`], [`PipelineChild`](crate::PipelineChild), or references to them) are moved in with
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
    /// `timeout` passes (`None`: no timeout); returns everything found, empty on timeout — or
    /// at once when the set holds no child and watches no descriptor.
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
        if self.children.is_empty() && self.fds.is_empty() {
            return Ok(out);
        }
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
