//! `posix_spawnattr_t` as an owned value.
//!
//! # Safety
//!
//! `unsafe` here calls the C library on the object this module owns: initialised in `new`,
//! destroyed once in `Drop`, mutated only through `&mut self`. Signal sets and scheduling
//! parameters are copied by the C library during the call.
#![allow(unsafe_code)]

use std::fmt;
use std::io;
use std::mem::MaybeUninit;

use super::ext::{check, Extension};
use crate::sys::signal::SigSet;

/// `posix_spawnattr_t`: process attributes of the child, applied before its file actions.
///
/// # Examples
///
/// ```
/// use popen::posix_spawn::SpawnAttr;
/// use popen::SigSet;
///
/// let mut attr = SpawnAttr::new()?;
/// attr.setpgroup(0)?;
/// attr.setsigmask(&SigSet::empty())?;
/// assert_eq!(attr.flags(), (libc::POSIX_SPAWN_SETPGROUP | libc::POSIX_SPAWN_SETSIGMASK) as i16);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct SpawnAttr {
    raw: Box<MaybeUninit<libc::posix_spawnattr_t>>,
    flags: libc::c_short,
    pgroup: Option<libc::pid_t>,
}

// SAFETY: the C object is only touched through &mut self or, at spawn, through &self while no
// other mutation can happen; it holds no thread-affine state.
unsafe impl Send for SpawnAttr {}
// SAFETY: as above; &self methods only read.
unsafe impl Sync for SpawnAttr {}

impl SpawnAttr {
    /// Attributes with no flag set: the child keeps the parent's process group, session,
    /// ids, signal mask and dispositions (handled signals reset to the default by exec), and
    /// scheduling.
    ///
    /// # Errors
    ///
    /// `ENOMEM` from `posix_spawnattr_init`.
    ///
    /// # Examples
    ///
    /// ```
    /// let attr = popen::posix_spawn::SpawnAttr::new()?;
    /// assert_eq!(attr.flags(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new() -> io::Result<SpawnAttr> {
        let mut raw = Box::new(MaybeUninit::uninit());
        // SAFETY: init initialises the object behind the pointer.
        check(unsafe { libc::posix_spawnattr_init(raw.as_mut_ptr()) })?;
        Ok(SpawnAttr {
            raw,
            flags: 0,
            pgroup: None,
        })
    }

    fn ptr(&mut self) -> *mut libc::posix_spawnattr_t {
        self.raw.as_mut_ptr()
    }

    pub(crate) fn as_ptr(&self) -> *const libc::posix_spawnattr_t {
        self.raw.as_ptr()
    }

    fn add_flags(&mut self, flags: libc::c_int) -> io::Result<()> {
        let flags = self.flags | flags as libc::c_short;
        // SAFETY: the object is initialised.
        check(unsafe { libc::posix_spawnattr_setflags(self.ptr(), flags) })?;
        self.flags = flags;
        Ok(())
    }

    /// The `POSIX_SPAWN_*` flags set so far.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut attr = popen::posix_spawn::SpawnAttr::new()?;
    /// attr.resetids()?;
    /// assert_eq!(attr.flags(), libc::POSIX_SPAWN_RESETIDS as i16);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn flags(&self) -> i16 {
        self.flags
    }

    /// The process group set with [`setpgroup`](Self::setpgroup), if any (0: a new group led
    /// by the child).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut attr = popen::posix_spawn::SpawnAttr::new()?;
    /// assert_eq!(attr.pgroup(), None);
    /// attr.setpgroup(0)?;
    /// assert_eq!(attr.pgroup(), Some(0));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn pgroup(&self) -> Option<libc::pid_t> {
        self.pgroup
    }

    /// Whether [`setsid`](Self::setsid) was set.
    pub(crate) fn has_setsid(&self) -> bool {
        #[cfg(target_os = "linux")]
        return self.flags & libc::POSIX_SPAWN_SETSID as libc::c_short != 0;
        #[cfg(not(target_os = "linux"))]
        false
    }

    /// Puts the child in process group `pgid` (`POSIX_SPAWN_SETPGROUP`); 0 makes a new group
    /// led by the child.
    ///
    /// # Errors
    ///
    /// `EINVAL` from the C library. Joining a group that does not exist or belongs to another
    /// session fails the spawn (`EPERM`).
    ///
    /// # Examples
    ///
    /// ```
    /// use popen::posix_spawn::{FileActions, SpawnAttr};
    ///
    /// let mut attr = SpawnAttr::new()?;
    /// attr.setpgroup(0)?;
    /// let child = popen::Popen::posix_spawnp("true", &["true"], None, &FileActions::new()?, &attr)?;
    /// assert_eq!(child.process_group(), Some(child.pid()));
    /// child.wait()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn setpgroup(&mut self, pgid: libc::pid_t) -> io::Result<()> {
        // SAFETY: the object is initialised.
        check(unsafe { libc::posix_spawnattr_setpgroup(self.ptr(), pgid) })?;
        self.add_flags(libc::POSIX_SPAWN_SETPGROUP)?;
        self.pgroup = Some(pgid);
        Ok(())
    }

    /// Resets the child's effective user and group ids to the real ones
    /// (`POSIX_SPAWN_RESETIDS`), so a set-user-id parent does not pass its privileges on.
    ///
    /// # Errors
    ///
    /// `EINVAL` from the C library.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut attr = popen::posix_spawn::SpawnAttr::new()?;
    /// attr.resetids()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn resetids(&mut self) -> io::Result<()> {
        self.add_flags(libc::POSIX_SPAWN_RESETIDS)
    }

    /// Starts the child in a new session (`POSIX_SPAWN_SETSID`).
    ///
    /// # Errors
    ///
    /// `Unsupported` where the C library lacks `POSIX_SPAWN_SETSID` ([`Extension::SetSid`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use popen::posix_spawn::{FileActions, SpawnAttr};
    ///
    /// let mut attr = SpawnAttr::new()?;
    /// attr.setsid()?;
    /// let child = popen::Popen::posix_spawnp("true", &["true"], None, &FileActions::new()?, &attr)?;
    /// assert_eq!(child.process_group(), Some(child.pid()));
    /// child.wait()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn setsid(&mut self) -> io::Result<()> {
        if !Extension::SetSid.is_available() {
            return Err(Extension::SetSid.unsupported());
        }
        #[cfg(target_os = "linux")]
        return self.add_flags(libc::POSIX_SPAWN_SETSID as libc::c_int);
        #[cfg(not(target_os = "linux"))]
        Err(Extension::SetSid.unsupported())
    }

    /// The child's signal mask (`POSIX_SPAWN_SETSIGMASK`). Without it the child starts with
    /// the mask of the calling thread.
    ///
    /// # Errors
    ///
    /// `EINVAL` from the C library.
    ///
    /// # Examples
    ///
    /// ```
    /// use popen::SigSet;
    ///
    /// let mut attr = popen::posix_spawn::SpawnAttr::new()?;
    /// attr.setsigmask(&SigSet::from_signals([libc::SIGUSR1])?)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn setsigmask(&mut self, mask: &SigSet) -> io::Result<()> {
        // SAFETY: the object and the set are initialised.
        check(unsafe { libc::posix_spawnattr_setsigmask(self.ptr(), mask.as_raw()) })?;
        self.add_flags(libc::POSIX_SPAWN_SETSIGMASK)
    }

    /// Signals whose disposition is reset to the default in the child
    /// (`POSIX_SPAWN_SETSIGDEF`), ignored ones included.
    ///
    /// # Errors
    ///
    /// `EINVAL` from the C library.
    ///
    /// # Examples
    ///
    /// ```
    /// use popen::SigSet;
    ///
    /// let mut attr = popen::posix_spawn::SpawnAttr::new()?;
    /// attr.setsigdef(&SigSet::from_signals([libc::SIGPIPE, libc::SIGXFSZ])?)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn setsigdef(&mut self, signals: &SigSet) -> io::Result<()> {
        // SAFETY: the object and the set are initialised.
        check(unsafe { libc::posix_spawnattr_setsigdefault(self.ptr(), signals.as_raw()) })?;
        self.add_flags(libc::POSIX_SPAWN_SETSIGDEF)
    }

    /// The child's scheduling policy (`SCHED_OTHER`, `SCHED_FIFO`, `SCHED_RR`) and priority
    /// (`POSIX_SPAWN_SETSCHEDULER` and `POSIX_SPAWN_SETSCHEDPARAM`).
    ///
    /// # Errors
    ///
    /// `EINVAL` for a policy the C library does not accept here. A priority out of the
    /// policy's range, or a real-time policy without the privilege, fails the spawn.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut attr = popen::posix_spawn::SpawnAttr::new()?;
    /// attr.scheduler(libc::SCHED_OTHER, 0)?;
    /// assert!(attr.scheduler(12345, 0).is_err());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn scheduler(&mut self, policy: i32, priority: i32) -> io::Result<()> {
        // SAFETY: the object is initialised.
        check(unsafe { libc::posix_spawnattr_setschedpolicy(self.ptr(), policy) })?;
        self.set_param(priority)?;
        self.add_flags(libc::POSIX_SPAWN_SETSCHEDULER | libc::POSIX_SPAWN_SETSCHEDPARAM)
    }

    /// The child's scheduling priority under the policy it inherits
    /// (`POSIX_SPAWN_SETSCHEDPARAM` alone).
    ///
    /// # Errors
    ///
    /// `EINVAL` from the C library. A priority out of the inherited policy's range fails the
    /// spawn.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut attr = popen::posix_spawn::SpawnAttr::new()?;
    /// attr.schedparam(0)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn schedparam(&mut self, priority: i32) -> io::Result<()> {
        self.set_param(priority)?;
        self.add_flags(libc::POSIX_SPAWN_SETSCHEDPARAM)
    }

    fn set_param(&mut self, priority: i32) -> io::Result<()> {
        // SAFETY: an all-zero sched_param is valid (some C libraries have more fields).
        let mut param: libc::sched_param = unsafe { std::mem::zeroed() };
        param.sched_priority = priority;
        // SAFETY: the object is initialised; `param` is read during the call.
        check(unsafe { libc::posix_spawnattr_setschedparam(self.ptr(), &param) })
    }
}

impl Drop for SpawnAttr {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, destroyed once.
        unsafe { libc::posix_spawnattr_destroy(self.raw.as_mut_ptr()) };
    }
}

impl fmt::Debug for SpawnAttr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpawnAttr")
            .field("flags", &format_args!("{:#x}", self.flags))
            .field("pgroup", &self.pgroup)
            .finish()
    }
}
