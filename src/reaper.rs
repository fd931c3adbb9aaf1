//! Children whose handles were dropped while they still ran: reaped so none stays a zombie.
//!
//! Each such child is kept in a process-wide list. With pidfds, one background thread sleeps in
//! `poll` on their pidfds (no CPU while they run) and reaps each as it exits. Without pidfds the
//! list is swept on every spawn, as CPython's `_cleanup` does.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use crate::sys;

struct Orphan {
    pid: libc::pid_t,
    pidfd: Option<OwnedFd>,
}

static ORPHANS: Mutex<Vec<Orphan>> = Mutex::new(Vec::new());
static ANY: AtomicBool = AtomicBool::new(false);

fn orphans() -> MutexGuard<'static, Vec<Orphan>> {
    ORPHANS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Reaps every listed child that has exited. Cheap when the list is empty.
pub(crate) fn reap_orphans() {
    if !ANY.load(Ordering::Relaxed) {
        return;
    }
    let mut list = orphans();
    list.retain(|o| matches!(sys::wait::waitpid_nohang(o.pid), Ok(None)));
    ANY.store(!list.is_empty(), Ordering::Relaxed);
}

/// The number of children dropped while running and not reaped yet.
pub fn pending_orphans() -> usize {
    orphans().len()
}

/// Takes over a child whose handle is dropped while it runs.
pub(crate) fn adopt(pid: libc::pid_t, pidfd: Option<OwnedFd>) {
    let has_pidfd = pidfd.is_some();
    orphans().push(Orphan { pid, pidfd });
    ANY.store(true, Ordering::Relaxed);
    if has_pidfd {
        if let Some(wake) = reaper_thread() {
            let _ = sys::fd::write(wake.as_fd(), &[1]);
        }
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
    let mut fds: Vec<libc::pollfd> = Vec::new();
    loop {
        reap_orphans();
        fds.clear();
        fds.push(libc::pollfd {
            fd: wake.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        // The descriptors stay open while we poll: only this thread and reap_orphans remove
        // entries, and a removed entry's descriptor number can at worst wake us spuriously.
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
