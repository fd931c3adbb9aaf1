//! Children whose handles were dropped while they still ran: reaped so none stays a zombie.
//!
//! Each such child is kept in a process-wide list. With pidfds, one background thread sleeps in
//! `poll` on the pidfds of at most [`MAX_WATCHED`] of them (no CPU while they run) and reaps
//! each as it exits. The others are held by pid only, so that a program that drops many
//! running children does not have its descriptor table filled by ours: they are reaped by the
//! sweep that follows every exit of a watched child and every spawn (as CPython's `_cleanup`
//! does), and promoted into the slots that free up. Their pids cannot be recycled before we
//! reap them (an exited child stays a zombie until then), so a `waitpid(pid, WNOHANG)` on them,
//! or a `pidfd_open`, cannot reach another process. Without pidfds the list is only swept.
//!
//! While the kernel reaps children itself (SIGCHLD ignored or `SA_NOCLDWAIT`), a dropped child
//! is not kept at all: there is nothing left for us to reap, and its pid is not ours to wait on.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use crate::sys;

/// The most pidfds the reaper holds at once.
pub(crate) const MAX_WATCHED: usize = 64;

struct Orphan {
    pid: libc::pid_t,
    /// Held for at most [`MAX_WATCHED`] orphans at a time.
    pidfd: Option<OwnedFd>,
}

impl Orphan {
    /// Whether the child still runs; reaps it if it has exited. Gone (reaped elsewhere) counts
    /// as not running.
    fn still_runs(&self) -> bool {
        let reaped = match &self.pidfd {
            Some(fd) => sys::wait::waitid_pidfd(fd.as_fd(), libc::WNOHANG),
            None => sys::wait::waitpid_nohang(self.pid),
        };
        matches!(reaped, Ok(None))
    }
}

static ORPHANS: Mutex<Vec<Orphan>> = Mutex::new(Vec::new());
static ANY: AtomicBool = AtomicBool::new(false);

fn orphans() -> MutexGuard<'static, Vec<Orphan>> {
    ORPHANS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Reaps every listed child that has exited, and gives the pidfd slots that freed up to
/// children held by pid only. Cheap when the list is empty.
pub(crate) fn reap_orphans() {
    if !ANY.load(Ordering::Relaxed) {
        return;
    }
    let promoted = {
        let mut list = orphans();
        list.retain(Orphan::still_runs);
        ANY.store(!list.is_empty(), Ordering::Relaxed);
        promote(&mut list)
    };
    if promoted {
        // The reaper thread sleeps on the old set: have it take the new pidfds in.
        wake_reaper();
    }
}

/// Opens pidfds for unwatched orphans while there are free slots; whether any was opened. Each
/// listed orphan is an unreaped child of ours (the caller just swept the list under its lock),
/// so its pid names it.
fn promote(list: &mut [Orphan]) -> bool {
    let mut watched = list.iter().filter(|o| o.pidfd.is_some()).count();
    let mut promoted = false;
    for orphan in list.iter_mut().filter(|o| o.pidfd.is_none()) {
        if watched >= MAX_WATCHED {
            break;
        }
        match sys::pidfd::pidfd_open(orphan.pid) {
            Ok(Some(fd)) => {
                orphan.pidfd = Some(fd);
                watched += 1;
                promoted = true;
            }
            // No pidfds, or no descriptor to spare now: the sweeps still reap it.
            _ => break,
        }
    }
    promoted
}

/// The number of children dropped while running and not reaped yet.
pub(crate) fn pending_orphans() -> usize {
    orphans().len()
}

/// Takes over a child whose handle is dropped while it runs.
pub(crate) fn adopt(pid: libc::pid_t, pidfd: Option<OwnedFd>) {
    if sys::wait::children_reaped_by_kernel() {
        return;
    }
    let watched = {
        let mut list = orphans();
        let room = list.iter().filter(|o| o.pidfd.is_some()).count() < MAX_WATCHED;
        // Past the cap the pidfd is closed here: the child is reaped by pid.
        let pidfd = pidfd.filter(|_| room);
        let watched = pidfd.is_some();
        list.push(Orphan { pid, pidfd });
        ANY.store(true, Ordering::Relaxed);
        watched
    };
    if watched {
        wake_reaper();
    }
}

/// Wakes the reaper thread (starting it on first use), so that it polls the current set.
fn wake_reaper() {
    if let Some(wake) = reaper_thread() {
        let _ = sys::fd::write(wake.as_fd(), &[1]);
    }
}

/// The write end of the reaper thread's wake-up pipe, starting the thread on first use.
fn reaper_thread() -> Option<&'static OwnedFd> {
    static WAKE: OnceLock<Option<OwnedFd>> = OnceLock::new();
    WAKE.get_or_init(|| {
        let (read, write) = sys::fd::pipe_cloexec().ok()?;
        sys::fd::set_nonblocking(read.as_fd(), true).ok()?;
        sys::fd::set_nonblocking(write.as_fd(), true).ok()?;
        std::thread::Builder::new()
            .name("popen-reaper".into())
            .spawn(move || reaper_loop(read))
            .ok()?;
        Some(write)
    })
    .as_ref()
}

fn reaper_loop(wake: OwnedFd) -> ! {
    let mut fds: Vec<libc::pollfd> = Vec::with_capacity(MAX_WATCHED + 1);
    loop {
        reap_orphans();
        fds.clear();
        fds.push(libc::pollfd {
            fd: wake.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        // The descriptors stay open while we poll, unless a spawn's sweep reaps and closes
        // one meanwhile: its number can then at worst wake us spuriously, and the sweep wakes
        // us anyway when it hands the slot to another orphan.
        fds.extend(
            orphans()
                .iter()
                .filter_map(|o| o.pidfd.as_ref())
                .map(|fd| libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                }),
        );
        #[allow(unsafe_code)]
        // SAFETY: `fds` is a valid array of pollfd of the given length.
        let _ = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        let mut buf = [0u8; 64];
        while matches!(sys::fd::read(wake.as_fd(), &mut buf), Ok(n) if n > 0) {}
    }
}
