//! Signal sets and the guard that blocks every signal around a shared-memory child.
#![allow(unsafe_code)]

use std::fmt;
use std::io;
use std::mem::MaybeUninit;

/// A set of signals (`sigset_t`), used for the child's signal mask and for
/// [`posix_spawn`](crate::posix_spawn) attributes.
///
/// # Examples
///
/// ```
/// use popen::SigSet;
///
/// let mut set = SigSet::empty();
/// set.add(libc::SIGUSR1).unwrap();
/// assert!(set.contains(libc::SIGUSR1));
/// assert!(!set.contains(libc::SIGUSR2));
/// ```
#[derive(Clone, Copy)]
pub struct SigSet {
    raw: libc::sigset_t,
}

impl SigSet {
    /// The empty set.
    pub fn empty() -> SigSet {
        let mut raw = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset initialises the whole set it is given.
        unsafe { libc::sigemptyset(raw.as_mut_ptr()) };
        // SAFETY: initialised just above.
        SigSet {
            raw: unsafe { raw.assume_init() },
        }
    }

    /// The set of every signal.
    pub fn full() -> SigSet {
        let mut raw = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigfillset initialises the whole set it is given.
        unsafe { libc::sigfillset(raw.as_mut_ptr()) };
        // SAFETY: initialised just above.
        SigSet {
            raw: unsafe { raw.assume_init() },
        }
    }

    /// A set holding the given signals.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if a number is not a valid signal.
    pub fn from_signals(signals: impl IntoIterator<Item = i32>) -> io::Result<SigSet> {
        let mut set = SigSet::empty();
        for sig in signals {
            set.add(sig)?;
        }
        Ok(set)
    }

    /// The signal mask of the calling thread.
    pub fn current_mask() -> SigSet {
        let mut raw = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: with a null new set, pthread_sigmask only writes the current mask.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, std::ptr::null(), raw.as_mut_ptr()) };
        // SAFETY: pthread_sigmask cannot fail with these arguments and filled the set.
        SigSet {
            raw: unsafe { raw.assume_init() },
        }
    }

    /// Adds `signal`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `signal` is not a valid signal number.
    pub fn add(&mut self, signal: i32) -> io::Result<()> {
        // SAFETY: `self.raw` is an initialised set.
        if unsafe { libc::sigaddset(&mut self.raw, signal) } == -1 {
            return Err(invalid_signal(signal));
        }
        Ok(())
    }

    /// Removes `signal`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `signal` is not a valid signal number.
    pub fn remove(&mut self, signal: i32) -> io::Result<()> {
        // SAFETY: `self.raw` is an initialised set.
        if unsafe { libc::sigdelset(&mut self.raw, signal) } == -1 {
            return Err(invalid_signal(signal));
        }
        Ok(())
    }

    /// Whether `signal` is in the set (false for an invalid number).
    pub fn contains(&self, signal: i32) -> bool {
        // SAFETY: `self.raw` is an initialised set.
        unsafe { libc::sigismember(&self.raw, signal) == 1 }
    }

    /// The signals in the set, in increasing order.
    pub fn signals(&self) -> impl Iterator<Item = i32> + '_ {
        (1..max_signal()).filter(move |&s| self.contains(s))
    }

    pub(crate) fn as_raw(&self) -> &libc::sigset_t {
        &self.raw
    }
}

impl fmt::Debug for SigSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.signals()).finish()
    }
}

impl PartialEq for SigSet {
    fn eq(&self, other: &SigSet) -> bool {
        (1..max_signal()).all(|s| self.contains(s) == other.contains(s))
    }
}

impl Eq for SigSet {}

/// One past the highest signal number.
pub(crate) fn max_signal() -> i32 {
    #[cfg(target_os = "linux")]
    {
        libc::SIGRTMAX() + 1
    }
    #[cfg(not(target_os = "linux"))]
    {
        33
    }
}

fn invalid_signal(signal: i32) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{signal} is not a valid signal number"),
    )
}

/// Blocks every signal in the calling thread until dropped, then restores the old mask.
///
/// Held around `clone(CLONE_VM | CLONE_VFORK)`: the child shares our memory, so no handler of
/// ours may run in it before it has reset the dispositions.
pub(crate) struct SignalBlockGuard {
    old: SigSet,
}

impl SignalBlockGuard {
    pub(crate) fn block_all() -> SignalBlockGuard {
        let all = SigSet::full();
        let mut old = SigSet::empty();
        // SAFETY: both sets are initialised; SIG_SETMASK with a full set cannot fail.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, all.as_raw(), &mut old.raw) };
        SignalBlockGuard { old }
    }

    /// The mask the thread had before the guard blocked everything.
    pub(crate) fn old_mask(&self) -> &SigSet {
        &self.old
    }
}

impl Drop for SignalBlockGuard {
    fn drop(&mut self) {
        // SAFETY: restores a mask previously returned by the kernel.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, self.old.as_raw(), std::ptr::null_mut())
        };
    }
}
