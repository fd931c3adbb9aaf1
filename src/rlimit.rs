//! Resource limits a child can be started with.

/// A resource whose limit [`Command::rlimit`](crate::Command::rlimit) sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Resource {
    /// Address space (`RLIMIT_AS`).
    AddressSpace,
    /// Core file size (`RLIMIT_CORE`).
    Core,
    /// CPU seconds (`RLIMIT_CPU`).
    Cpu,
    /// Data segment (`RLIMIT_DATA`).
    Data,
    /// Largest file the process may create (`RLIMIT_FSIZE`).
    FileSize,
    /// Locked memory (`RLIMIT_MEMLOCK`).
    MemLock,
    /// Open descriptors (`RLIMIT_NOFILE`).
    NoFile,
    /// Processes of the user (`RLIMIT_NPROC`).
    NProc,
    /// Stack size (`RLIMIT_STACK`).
    Stack,
}

impl Resource {
    pub(crate) fn as_raw(self) -> libc::c_int {
        (match self {
            Resource::AddressSpace => libc::RLIMIT_AS,
            Resource::Core => libc::RLIMIT_CORE,
            Resource::Cpu => libc::RLIMIT_CPU,
            Resource::Data => libc::RLIMIT_DATA,
            Resource::FileSize => libc::RLIMIT_FSIZE,
            Resource::MemLock => libc::RLIMIT_MEMLOCK,
            Resource::NoFile => libc::RLIMIT_NOFILE,
            Resource::NProc => libc::RLIMIT_NPROC,
            Resource::Stack => libc::RLIMIT_STACK,
        }) as libc::c_int
    }
}

/// No limit (`RLIM_INFINITY`).
pub const INFINITY: u64 = libc::RLIM_INFINITY;
