//! The child's environment, built in the parent.
//!
//! A child never reads the parent's `environ` itself: another thread may be changing it
//! (`std::env::set_var` is safe to call), and a child reading it mid-change gets a moved array
//! (exec fails with `EFAULT`) or garbage entries. So the parent copies the environment under
//! the standard library's environment lock (`std::env::vars_os`), applies the command's
//! changes, and hands the child the result.
//!
//! The copy is one buffer of `NAME=value\0` entries back to back plus the pointer array: a few
//! allocations whatever the number of variables, on top of the standard library's own copy.

use std::ffi::{c_char, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use crate::error::SpawnError;

/// Bytes reserved per inherited entry before copying them.
const TYPICAL_ENTRY: usize = 64;

/// A NULL-terminated array of pointers to `NAME=value` C strings, all in one owned buffer.
pub(crate) struct EnvBlock {
    /// Every entry with its terminating NUL, back to back. Never changed once built: the
    /// pointers point into it.
    buf: Vec<u8>,
    /// Where each entry starts in `buf`.
    starts: Vec<usize>,
    ptrs: Vec<*const c_char>,
}

// SAFETY: the pointers point into `buf`, which the block owns and never mutates.
#[allow(unsafe_code)]
unsafe impl Send for EnvBlock {}
// SAFETY: as above; shared access only reads.
#[allow(unsafe_code)]
unsafe impl Sync for EnvBlock {}

impl EnvBlock {
    /// A block of `count` entries of about `bytes` bytes in all (NULs included), filled by
    /// `fill`.
    fn build(count: usize, bytes: usize, fill: impl FnOnce(&mut Builder)) -> EnvBlock {
        let mut b = Builder {
            buf: Vec::with_capacity(bytes),
            starts: Vec::with_capacity(count),
        };
        fill(&mut b);
        let Builder { buf, starts } = b;
        let mut ptrs = Vec::with_capacity(starts.len() + 1);
        // The buffer is complete: its heap memory does not move any more.
        ptrs.extend(starts.iter().map(|&s| buf[s..].as_ptr().cast::<c_char>()));
        ptrs.push(std::ptr::null());
        EnvBlock { buf, starts, ptrs }
    }

    /// A block from `NAME=value` entries given whole; `Err(i)` names an entry that holds a NUL
    /// byte.
    pub(crate) fn from_entries<S: AsRef<OsStr>>(entries: &[S]) -> Result<EnvBlock, usize> {
        if let Some(i) = entries
            .iter()
            .position(|e| e.as_ref().as_bytes().contains(&0))
        {
            return Err(i);
        }
        let bytes = entries.iter().map(|e| e.as_ref().len() + 1).sum();
        Ok(EnvBlock::build(entries.len(), bytes, |b| {
            for e in entries {
                b.push(&[e.as_ref().as_bytes()]);
            }
        }))
    }

    /// This process's environment, copied under the standard library's environment lock.
    pub(crate) fn snapshot() -> EnvBlock {
        let vars = std::env::vars_os();
        // The count is exact; the size is a guess (most entries are shorter), so the buffer
        // rarely grows. Streaming beats collecting to size it exactly.
        let count = vars.size_hint().0;
        EnvBlock::build(count, count * TYPICAL_ENTRY, |b| {
            for (k, v) in vars {
                b.push(&[k.as_bytes(), b"=", v.as_bytes()]);
            }
        })
    }

    /// The NULL-terminated pointer array, valid as long as the block.
    pub(crate) fn as_ptr(&self) -> *const *const c_char {
        self.ptrs.as_ptr()
    }

    /// Each entry, `NAME=value`, without its NUL.
    pub(crate) fn entries(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let ends = self.starts.iter().skip(1).copied().chain([self.buf.len()]);
        self.starts
            .iter()
            .zip(ends)
            .map(|(&start, end)| &self.buf[start..end - 1])
    }

    /// The value of `name`, if the block sets it.
    pub(crate) fn get(&self, name: &[u8]) -> Option<&OsStr> {
        self.entries().find_map(|e| {
            let value = e.strip_prefix(name)?.strip_prefix(b"=")?;
            Some(OsStr::from_bytes(value))
        })
    }
}

impl std::fmt::Debug for EnvBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries().map(OsStr::from_bytes))
            .finish()
    }
}

/// Appends entries to a block being built.
struct Builder {
    buf: Vec<u8>,
    starts: Vec<usize>,
}

impl Builder {
    /// Appends one entry made of `parts`, NUL-terminated.
    fn push(&mut self, parts: &[&[u8]]) {
        self.starts.push(self.buf.len());
        for p in parts {
            self.buf.extend_from_slice(p);
        }
        self.buf.push(0);
    }
}

/// The environment a child gets: a snapshot of this process's (unless `clear`), with `changes`
/// (a value to set, or `None` to remove) applied in place, and the variables only `changes`
/// sets after the inherited ones.
pub(crate) fn build(
    clear: bool,
    changes: &[(OsString, Option<OsString>)],
) -> Result<EnvBlock, SpawnError> {
    for (k, v) in changes {
        if k.is_empty() || k.as_bytes()[1..].contains(&b'=') {
            return Err(SpawnError::invalid(format!(
                "invalid environment variable name: {k:?}"
            )));
        }
        if k.as_bytes().contains(&0) {
            return Err(SpawnError::invalid(format!(
                "environment variable name contains a NUL byte: {k:?}"
            )));
        }
        if let Some(v) = v.as_ref().filter(|v| v.as_bytes().contains(&0)) {
            return Err(SpawnError::invalid(format!(
                "environment variable value contains a NUL byte: {v:?}"
            )));
        }
    }
    if changes.is_empty() {
        return Ok(if clear {
            EnvBlock::build(0, 0, |_| {})
        } else {
            EnvBlock::snapshot()
        });
    }
    let inherited: Vec<(OsString, OsString)> = if clear {
        Vec::new()
    } else {
        std::env::vars_os().collect()
    };
    // Each inherited variable with the command's value for it, if the command sets or removes
    // it; then the variables only the command sets.
    let overridden: Vec<(&OsStr, Option<&OsStr>)> = inherited
        .iter()
        .map(|(k, v)| match changes.iter().find(|(ck, _)| ck == k) {
            Some((_, cv)) => (k.as_os_str(), cv.as_deref()),
            None => (k.as_os_str(), Some(v.as_os_str())),
        })
        .chain(
            changes
                .iter()
                .filter(|(k, _)| !inherited.iter().any(|(ik, _)| ik == k))
                .map(|(k, v)| (k.as_os_str(), v.as_deref())),
        )
        .collect();
    let set = || overridden.iter().filter_map(|&(k, v)| Some((k, v?)));
    let count = set().count();
    let bytes = set().map(|(k, v)| k.len() + v.len() + 2).sum();
    Ok(EnvBlock::build(count, bytes, |b| {
        for (k, v) in set() {
            b.push(&[k.as_bytes(), b"=", v.as_bytes()]);
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_the_array_ends_with_null() {
        let block = EnvBlock::from_entries(&["A=1", "PATH=/x:/y", "EMPTY="]).unwrap();
        let entries: Vec<&[u8]> = block.entries().collect();
        assert_eq!(entries, [&b"A=1"[..], b"PATH=/x:/y", b"EMPTY="]);
        assert_eq!(block.get(b"PATH"), Some(OsStr::new("/x:/y")));
        assert_eq!(block.get(b"PAT"), None);
        // SAFETY: the array holds three pointers then NULL, all into the block's buffer.
        #[allow(unsafe_code)]
        unsafe {
            let p = block.as_ptr();
            assert_eq!(
                std::ffi::CStr::from_ptr(*p.add(1)).to_bytes(),
                b"PATH=/x:/y"
            );
            assert!((*p.add(3)).is_null());
        }
        assert_eq!(EnvBlock::from_entries(&["A=1", "B=\0"]).err(), Some(1));
    }

    #[test]
    fn the_changes_apply_in_place_and_additions_come_last() {
        let changes = [("B", Some("2")), ("A", Some("1")), ("C", None)]
            .map(|(k, v)| (OsString::from(k), v.map(OsString::from)));
        let block = build(true, &changes).unwrap();
        let entries: Vec<&[u8]> = block.entries().collect();
        assert_eq!(entries, [&b"B=2"[..], b"A=1"]);
    }
}
