//! Thin wrappers over the system calls the library needs.
//!
//! # Safety
//!
//! This is one of the few modules allowed to use `unsafe`. Every wrapper takes and returns
//! safe types (`OwnedFd`, `BorrowedFd`, plain integers), retries `EINTR` where retrying is
//! correct, and turns `-1` into an `io::Error` carrying the errno. Nothing here runs in a
//! child between fork and exec: the child has its own module, `spawn::child`.
#![allow(unsafe_code)]

#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) mod epoll;
pub(crate) mod fd;
pub(crate) mod pgrp;
pub(crate) mod pidfd;
pub(crate) mod poll;
pub(crate) mod signal;
pub(crate) mod wait;

use std::io;

/// Turns a `-1` return into the thread's errno.
pub(crate) fn cvt<T: IsMinusOne>(ret: T) -> io::Result<T> {
    if ret.is_minus_one() {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Like [`cvt`], but retries the call while it fails with `EINTR`.
pub(crate) fn cvt_r<T: IsMinusOne>(mut f: impl FnMut() -> T) -> io::Result<T> {
    loop {
        match cvt(f()) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

pub(crate) trait IsMinusOne {
    fn is_minus_one(&self) -> bool;
}

macro_rules! impl_is_minus_one {
    ($($t:ty)*) => ($(impl IsMinusOne for $t {
        fn is_minus_one(&self) -> bool { *self == -1 }
    })*)
}
impl_is_minus_one! { i32 i64 isize }
