//! Registration of descriptors with tokio's reactor.
//!
//! # Safety
//!
//! The one `unsafe` call of the async front end: `AsyncFd::register_with_interest`, which
//! requires the descriptor to stay open, and the same, for as long as the `AsyncFd` owns it.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use ::tokio::io::unix::AsyncFd;
use ::tokio::io::Interest;

/// A descriptor whose type guarantees that it stays open, and the same, for as long as the
/// value lives: owned (`OwnedFd`, closed only by its drop) or borrowed (`BorrowedFd`, open for
/// its lifetime by I/O safety).
pub(crate) trait IoSafe: AsRawFd + private::Sealed {}

impl IoSafe for OwnedFd {}
impl IoSafe for BorrowedFd<'_> {}

mod private {
    pub trait Sealed {}
    impl Sealed for std::os::fd::OwnedFd {}
    impl Sealed for std::os::fd::BorrowedFd<'_> {}
}

/// Registers `fd` with the current runtime's reactor for `interest`. On failure the
/// descriptor is given back with the error.
///
/// # Panics
///
/// Outside a tokio runtime with I/O enabled.
pub(crate) fn register<T: IoSafe>(fd: T, interest: Interest) -> Result<AsyncFd<T>, (T, io::Error)> {
    // SAFETY: `T` is an `OwnedFd` (open until its drop, which happens only with the `AsyncFd`
    // or after `into_inner` deregistered it) or a `BorrowedFd` (open for its lifetime, which
    // the `AsyncFd` cannot outlive); `as_raw_fd` of either always returns the same descriptor,
    // and this crate never swaps it through `AsyncFd::get_mut`.
    let registered = unsafe { AsyncFd::register_with_interest(fd, interest) };
    registered.map_err(|e| e.into_parts())
}
