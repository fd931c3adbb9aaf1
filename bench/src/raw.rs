//! The ceiling: `posix_spawn` + `waitpid` written directly on libc, with every C object built
//! once before the loop and no checks beyond the exit status.
//!
//! # Safety
//!
//! Each wrapper owns its initialised C object for its whole life and destroys it in `Drop`;
//! the C strings it points to are `'static` literals.

use std::ffi::{c_char, CStr};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

extern "C" {
    static environ: *const *const c_char;
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(ret))
    }
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Options of a raw spawn beyond the plain call.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawOpts {
    /// `addchdir_np("/tmp")` + `addclosefrom_np(3)` + `POSIX_SPAWN_SETSID`: the same work as
    /// the benchmark's "full options" scenario.
    pub full: bool,
    /// `adddup2(fd, 0)`.
    pub stdin: Option<RawFd>,
    /// `adddup2(fd, 1)`.
    pub stdout: Option<RawFd>,
}

/// A prepared `posix_spawn` call: program, argv, file actions and attributes.
pub struct Spawner {
    path: &'static CStr,
    argv: Vec<*const c_char>,
    actions: Option<Box<MaybeUninit<libc::posix_spawn_file_actions_t>>>,
    attr: Option<Box<MaybeUninit<libc::posix_spawnattr_t>>>,
}

// SAFETY: the pointers are to 'static C strings and to C objects this value owns; posix_spawn
// only reads them, so sharing between threads is sound.
unsafe impl Send for Spawner {}
// SAFETY: as above.
unsafe impl Sync for Spawner {}

impl Spawner {
    /// Prepares `path` with `args` (`argv[0]` is `path`).
    pub fn new(path: &'static CStr, args: &[&'static CStr], opts: RawOpts) -> io::Result<Spawner> {
        let mut argv: Vec<*const c_char> = vec![path.as_ptr()];
        argv.extend(args.iter().map(|a| a.as_ptr()));
        argv.push(std::ptr::null());
        let mut s = Spawner {
            path,
            argv,
            actions: None,
            attr: None,
        };
        if opts.full || opts.stdin.is_some() || opts.stdout.is_some() {
            let mut fa = Box::new(MaybeUninit::uninit());
            // SAFETY: init initialises the object behind the pointer.
            check(unsafe { libc::posix_spawn_file_actions_init(fa.as_mut_ptr()) })?;
            let fa = s.actions.insert(fa).as_mut_ptr();
            // SAFETY (block): `fa` is initialised; the strings are 'static.
            unsafe {
                if let Some(fd) = opts.stdin {
                    check(libc::posix_spawn_file_actions_adddup2(fa, fd, 0))?;
                }
                if let Some(fd) = opts.stdout {
                    check(libc::posix_spawn_file_actions_adddup2(fa, fd, 1))?;
                }
                if opts.full {
                    check(libc::posix_spawn_file_actions_addchdir_np(
                        fa,
                        c"/tmp".as_ptr(),
                    ))?;
                    check(libc::posix_spawn_file_actions_addclosefrom_np(fa, 3))?;
                }
            }
        }
        if opts.full {
            let mut at = Box::new(MaybeUninit::uninit());
            // SAFETY: init initialises the object behind the pointer.
            check(unsafe { libc::posix_spawnattr_init(at.as_mut_ptr()) })?;
            let at = s.attr.insert(at).as_mut_ptr();
            // SAFETY: `at` is initialised.
            check(unsafe { libc::posix_spawnattr_setflags(at, libc::POSIX_SPAWN_SETSID as _) })?;
        }
        Ok(s)
    }

    /// `posix_spawn`: the child's pid.
    pub fn spawn(&self) -> io::Result<libc::pid_t> {
        let mut pid = 0;
        let actions = self
            .actions
            .as_ref()
            .map_or(std::ptr::null(), |a| a.as_ptr());
        let attr = self.attr.as_ref().map_or(std::ptr::null(), |a| a.as_ptr());
        // SAFETY: every pointer is valid (see the type's invariant); argv and environ are
        // NULL-terminated.
        check(unsafe {
            libc::posix_spawn(
                &mut pid,
                self.path.as_ptr(),
                actions,
                attr,
                self.argv.as_ptr() as *const *mut c_char,
                environ as *const *mut c_char,
            )
        })?;
        Ok(pid)
    }

    /// Spawns, waits, and checks for exit status 0.
    pub fn spawn_wait(&self) -> io::Result<()> {
        let pid = self.spawn()?;
        expect_success(waitpid(pid)?)
    }
}

impl Drop for Spawner {
    fn drop(&mut self) {
        // SAFETY: each object was initialised in `new` and is destroyed once.
        unsafe {
            if let Some(a) = &mut self.actions {
                libc::posix_spawn_file_actions_destroy(a.as_mut_ptr());
            }
            if let Some(a) = &mut self.attr {
                libc::posix_spawnattr_destroy(a.as_mut_ptr());
            }
        }
    }
}

/// Blocking `waitpid`, retrying `EINTR`: the raw wait status.
pub fn waitpid(pid: libc::pid_t) -> io::Result<libc::c_int> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid int for the kernel to fill.
        match cvt(unsafe { libc::waitpid(pid, &mut status, 0) }) {
            Ok(_) => return Ok(status),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

pub fn expect_success(status: libc::c_int) -> io::Result<()> {
    if status == 0 {
        Ok(())
    } else {
        Err(io::Error::other(format!("child wait status {status:#x}")))
    }
}

/// `pipe2(O_CLOEXEC)`: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: the kernel returned two fresh descriptors that nobody else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// `fcntl(F_SETPIPE_SZ)`.
pub fn set_pipe_size(fd: &OwnedFd, bytes: usize) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, bytes as libc::c_int) }).map(drop)
}

/// Sets `O_NONBLOCK`.
pub fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own.
    let flags = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) }).map(drop)
}

/// `read` into the spare capacity of `buf`, at most `max` bytes: bytes read (0 at end of file).
pub fn read_into(fd: &OwnedFd, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
    if buf.capacity() - buf.len() < max {
        buf.reserve(max);
    }
    let spare = buf.spare_capacity_mut();
    let n = spare.len().min(max);
    // SAFETY: `spare` has room for `n` bytes; read writes at most that many.
    let ret = unsafe { libc::read(fd.as_raw_fd(), spare.as_mut_ptr().cast(), n) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    let got = ret as usize;
    // SAFETY: the kernel initialised `got` bytes past the old length.
    unsafe { buf.set_len(buf.len() + got) };
    Ok(got)
}

/// `write`: bytes written.
pub fn write_from(fd: &OwnedFd, data: &[u8]) -> io::Result<usize> {
    // SAFETY: `data` is valid for reads of its length.
    let ret = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// `poll` on up to two descriptors; `EINTR` is retried.
pub fn poll(fds: &mut [libc::pollfd]) -> io::Result<()> {
    loop {
        // SAFETY: `fds` is a valid array of pollfd of that length.
        match cvt(unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) }) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// `clock_gettime(CLOCK_MONOTONIC)` in nanoseconds.
pub fn monotonic_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the kernel to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// CPU time (user + system) of the whole process in ns, and its context switches
/// (voluntary + involuntary), from `getrusage(RUSAGE_SELF)`.
pub fn rusage_self() -> (u64, u64) {
    rusage(libc::RUSAGE_SELF)
}

/// CPU time (ns) and context switches of the children this process has reaped.
pub fn rusage_children() -> (u64, u64) {
    rusage(libc::RUSAGE_CHILDREN)
}

fn rusage(who: libc::c_int) -> (u64, u64) {
    // SAFETY: `ru` is a valid rusage for the kernel to fill.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
    (
        tv(ru.ru_utime) + tv(ru.ru_stime),
        (ru.ru_nvcsw + ru.ru_nivcsw) as u64,
    )
}

/// What the "full options" variants of std, the subprocess crate and duct run in the forked
/// child: a new session, and every descriptor ≥ 3 marked close-on-exec (their `close_fds`).
pub fn child_session_close_fds() -> io::Result<()> {
    // SAFETY: setsid and close_range are async-signal-safe system calls on no memory.
    unsafe {
        if libc::setsid() == -1 {
            return Err(io::Error::last_os_error());
        }
        if libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        ) == -1
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
