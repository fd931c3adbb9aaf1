//! The error pipe: one small fixed-size record from a child that could not exec.
//!
//! The pipe is close-on-exec, so a successful exec closes the child's end and the parent reads
//! end-of-file. A failing child writes one [`RECORD_LEN`]-byte record (a magic number, the
//! step, the errno), far below `PIPE_BUF`, so it arrives whole, then exits.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use crate::error::Step;
use crate::sys;

const MAGIC: [u8; 4] = *b"pOpN";
pub(crate) const RECORD_LEN: usize = 12;

/// The record for `step` failing with `errno`. Allocation-free: callable in the child.
pub(crate) fn encode(step: Step, errno: i32) -> [u8; RECORD_LEN] {
    let mut rec = [0u8; RECORD_LEN];
    let code = step.to_code().to_ne_bytes();
    let errno = errno.to_ne_bytes();
    let mut i = 0;
    while i < 4 {
        rec[i] = MAGIC[i];
        rec[4 + i] = code[i];
        rec[8 + i] = errno[i];
        i += 1;
    }
    rec
}

/// Reads the read end to end-of-file. `Ok(None)`: the child exec'd. `Ok(Some((step, errno)))`:
/// it reported a failure. A short or malformed record is a bug and comes back as an error.
pub(crate) fn read_report(read_end: &OwnedFd) -> io::Result<Option<(Step, i32)>> {
    let mut buf = [0u8; RECORD_LEN];
    let mut len = 0;
    while len < RECORD_LEN {
        let n = sys::fd::read(read_end.as_fd(), &mut buf[len..])?;
        if n == 0 {
            break;
        }
        len += n;
    }
    match len {
        0 => Ok(None),
        RECORD_LEN if buf[..4] == MAGIC => {
            let code = u32::from_ne_bytes([buf[4], buf[5], buf[6], buf[7]]);
            let errno = i32::from_ne_bytes([buf[8], buf[9], buf[10], buf[11]]);
            let step = Step::from_code(code).ok_or_else(|| bad_record(&buf[..len]))?;
            Ok(Some((step, errno)))
        }
        _ => Err(bad_record(&buf[..len])),
    }
}

fn bad_record(data: &[u8]) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("bad error record from child: {data:?}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips() {
        let (r, w) = sys::fd::pipe_cloexec().unwrap();
        sys::fd::write(w.as_fd(), &encode(Step::Chdir, libc::ENOENT)).unwrap();
        drop(w);
        assert_eq!(read_report(&r).unwrap(), Some((Step::Chdir, libc::ENOENT)));
    }

    #[test]
    fn eof_means_exec_succeeded() {
        let (r, w) = sys::fd::pipe_cloexec().unwrap();
        drop(w);
        assert_eq!(read_report(&r).unwrap(), None);
    }

    #[test]
    fn short_record_is_an_error() {
        let (r, w) = sys::fd::pipe_cloexec().unwrap();
        sys::fd::write(w.as_fd(), b"pOpN\x01").unwrap();
        drop(w);
        assert_eq!(
            read_report(&r).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }
}
