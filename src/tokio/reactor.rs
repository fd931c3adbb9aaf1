//! Registration of descriptors with tokio's reactor.
//!
//! # Safety
//!
//! The one `unsafe` call of the async front end: `AsyncFd::register_with_interest`, which
//! requires the descriptor to stay open, and the same, for as long as the `AsyncFd` owns it.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::OwnedFd;

use ::tokio::io::unix::AsyncFd;
use ::tokio::io::Interest;

/// Registers `fd` with the current runtime's reactor for `interest`. On failure the
/// descriptor is given back with the error.
///
/// # Panics
///
/// Outside a tokio runtime with I/O enabled.
pub(crate) fn register(
    fd: OwnedFd,
    interest: Interest,
) -> Result<AsyncFd<OwnedFd>, (OwnedFd, io::Error)> {
    // SAFETY: an `OwnedFd` is an open descriptor that only its drop closes, and its
    // `as_raw_fd` always returns that same descriptor. The `AsyncFd` owns it from here on, and
    // this crate never swaps it through `AsyncFd::get_mut`; it is closed only after the
    // registration is dropped (or taken back with `into_inner`, which deregisters first).
    let registered = unsafe { AsyncFd::register_with_interest(fd, interest) };
    registered.map_err(|e| {
        let (fd, error) = e.into_parts();
        (fd, error)
    })
}
