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

/// Bytes of the kernel's signal set: 64 signals, the `sigsetsize` argument of `rt_sigprocmask`
/// and `rt_sigaction`. A `sigset_t` starts with the same words in the same order.
pub(crate) const KERNEL_SIGSET_SIZE: usize = 8;

/// `rt_sigprocmask(how, set, old)` on the calling thread, straight to the kernel: unlike
/// `pthread_sigmask`, the C library does not take its internal signals (glibc's SIGCANCEL and
/// SIGSETXID, 32 and 33) out of `set`. Async-signal-safe. Returns the errno on failure.
///
/// # Safety
///
/// `set` and `old` are null or point to valid signal sets.
pub(crate) unsafe fn rt_sigprocmask(
    how: libc::c_int,
    set: *const libc::sigset_t,
    old: *mut libc::sigset_t,
) -> Result<(), i32> {
    // SAFETY: the kernel reads `KERNEL_SIGSET_SIZE` bytes of `set` and writes as many of `old`;
    // a `sigset_t` is larger (`size_of` is checked in the tests) and the caller vouches for the
    // pointers.
    let ret = unsafe { libc::syscall(libc::SYS_rt_sigprocmask, how, set, old, KERNEL_SIGSET_SIZE) };
    if ret == -1 {
        // SAFETY: errno of the calling thread, read right after the call.
        return Err(unsafe { *libc::__errno_location() });
    }
    Ok(())
}

/// Sets `sig`'s disposition to the default with the raw `rt_sigaction` system call, which,
/// unlike `sigaction`, accepts the C library's internal signals. Async-signal-safe; a number the
/// kernel does not know is left alone.
///
/// # Safety
///
/// Changes a process-wide disposition: for a child between fork/clone and exec.
pub(crate) unsafe fn rt_sigaction_default(sig: libc::c_int) {
    // The kernel's `struct sigaction` is a handler, flags, maybe a restorer, and a mask, in an
    // order that depends on the architecture; all zeroes is SIG_DFL, no flags, an empty mask in
    // every one of them. Eight words are more than any of them needs.
    let default = [0usize; 8];
    // SAFETY: the kernel reads its `struct sigaction` from `default` (large enough); a null
    // old action is not written.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            sig,
            default.as_ptr(),
            std::ptr::null_mut::<usize>(),
            KERNEL_SIGSET_SIZE,
        )
    };
}

/// Blocks every signal in the calling thread until dropped, then restores the old mask.
///
/// Held around `clone(CLONE_VM | CLONE_VFORK)` and `fork`: no handler of ours may run in the
/// child before it has reset the dispositions. "Every signal" is all 64 the kernel knows, the C
/// library's internal ones included (as glibc's own `posix_spawn` blocks them): the raw system
/// call, because `sigfillset` and `pthread_sigmask` leave those out.
pub(crate) struct SignalBlockGuard {
    old: SigSet,
}

impl SignalBlockGuard {
    pub(crate) fn block_all() -> SignalBlockGuard {
        let mut all = SigSet::empty();
        // SAFETY: sets every bit of a plain-data `sigset_t` we own.
        unsafe {
            std::ptr::write_bytes(
                (&mut all.raw as *mut libc::sigset_t).cast::<u8>(),
                0xff,
                std::mem::size_of::<libc::sigset_t>(),
            )
        };
        let mut old = SigSet::empty();
        // SAFETY: both sets are initialised and ours. SIG_SETMASK with valid pointers cannot
        // fail (EFAULT, EINVAL are excluded by construction).
        let blocked = unsafe { rt_sigprocmask(libc::SIG_SETMASK, all.as_raw(), &mut old.raw) };
        debug_assert_eq!(blocked, Ok(()));
        SignalBlockGuard { old }
    }

    /// The mask the thread had before the guard blocked everything, as the kernel holds it (the
    /// C library's internal signals included).
    pub(crate) fn old_mask(&self) -> &SigSet {
        &self.old
    }
}

impl Drop for SignalBlockGuard {
    fn drop(&mut self) {
        // SAFETY: restores, bit for bit, a mask the kernel returned.
        let restored =
            unsafe { rt_sigprocmask(libc::SIG_SETMASK, self.old.as_raw(), std::ptr::null_mut()) };
        debug_assert_eq!(restored, Ok(()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calling thread's mask as the kernel holds it.
    fn kernel_mask() -> u64 {
        let mut cur = SigSet::empty();
        // SAFETY: a null new set only reads the mask into `cur`.
        unsafe { rt_sigprocmask(libc::SIG_SETMASK, std::ptr::null(), &mut cur.raw) }.unwrap();
        // SAFETY: a `sigset_t` is at least 8 bytes; read unaligned-safe as bytes.
        let bytes: [u8; 8] =
            unsafe { std::ptr::read((&cur.raw as *const libc::sigset_t).cast::<[u8; 8]>()) };
        if cfg!(target_pointer_width = "64") {
            u64::from_ne_bytes(bytes)
        } else {
            // Two 32-bit words, low signals first.
            let lo = u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as u64;
            let hi = u32::from_ne_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as u64;
            lo | hi << 32
        }
    }

    #[test]
    fn a_sigset_holds_the_kernel_set() {
        assert!(std::mem::size_of::<libc::sigset_t>() >= KERNEL_SIGSET_SIZE);
    }

    #[test]
    fn the_guard_blocks_all_64_signals_and_restores_the_mask_exactly() {
        // Runs on a thread of its own: the mask is per thread.
        std::thread::spawn(|| {
            let before = kernel_mask();
            {
                let guard = SignalBlockGuard::block_all();
                // The C library's internal signals (32, 33 with glibc) too; the kernel never
                // blocks SIGKILL and SIGSTOP.
                let unblockable = 1 << (libc::SIGKILL - 1) | 1 << (libc::SIGSTOP - 1);
                assert_eq!(kernel_mask(), !unblockable, "{:#x}", kernel_mask());
                assert_eq!(kernel_mask_of(guard.old_mask()), before);
            }
            assert_eq!(kernel_mask(), before);
        })
        .join()
        .unwrap();
    }

    fn kernel_mask_of(set: &SigSet) -> u64 {
        (1..=64)
            .filter(|&s| set.contains(s))
            .fold(0, |m, s| m | 1 << (s - 1))
    }
}
