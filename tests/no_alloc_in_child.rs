//! The child between clone/fork and exec must not allocate: this test binary's allocator kills
//! any process other than the test process that calls it.

mod common;

use popen::{Command, Resource, SpawnPath, Stdio};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI32, Ordering};

/// The pid allowed to allocate; 0 before the test arms the check.
static ALLOWED_PID: AtomicI32 = AtomicI32::new(0);

struct ChildMustNotAllocate;

impl ChildMustNotAllocate {
    fn check() {
        let allowed = ALLOWED_PID.load(Ordering::Relaxed);
        if allowed != 0 {
            // SAFETY: raw getpid (never cached), then abort: both async-signal-safe.
            unsafe {
                if libc::syscall(libc::SYS_getpid) as i32 != allowed {
                    libc::abort();
                }
            }
        }
    }
}

// SAFETY: forwards to the system allocator after the check.
unsafe impl GlobalAlloc for ChildMustNotAllocate {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::check();
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        Self::check();
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: ChildMustNotAllocate = ChildMustNotAllocate;

#[test]
fn the_child_never_allocates_on_any_path() {
    ALLOWED_PID.store(std::process::id() as i32, Ordering::Relaxed);
    for path in SpawnPath::ALL {
        let mut cmd = Command::shell("echo ok; echo err >&2");
        cmd.cwd("/")
            .env("A", "1")
            .env_remove("HOME")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::same_as_stdout())
            .start_new_session(true)
            .spawn_path(path);
        if path != SpawnPath::PosixSpawn {
            cmd.umask(0o022)
                .rlimit(Resource::Core, 0, 0)
                .parent_death_signal(libc::SIGKILL);
        }
        let mut child = cmd.spawn().unwrap();
        let out = common::read_all(&mut child);
        let status = child.wait().unwrap();
        // An allocation in the child would have aborted it before exec.
        assert_eq!(status.signal(), None, "{path}");
        assert_eq!(out, "ok\nerr\n", "{path}");
        // And a failing exec reports through the error pipe without allocating either.
        let err = Command::new("popen-missing")
            .spawn_path(path)
            .spawn()
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT), "{path}");
    }
}

#[test]
fn the_check_catches_an_allocating_child() {
    ALLOWED_PID.store(std::process::id() as i32, Ordering::Relaxed);
    let mut cmd = Command::new("true");
    // SAFETY: deliberately breaks the hook contract to prove the allocator check works; the
    // forked copy is killed by it before it could do harm.
    unsafe {
        cmd.pre_exec(|| {
            std::hint::black_box(vec![1u8; 64]);
            Ok(())
        });
    }
    let status = cmd.spawn().map(|c| c.wait_shared().unwrap());
    assert_eq!(status.ok().and_then(|s| s.signal()), Some(libc::SIGABRT));
}
