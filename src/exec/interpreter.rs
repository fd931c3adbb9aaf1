//! Why an exec that failed with `ENOENT` found a file: the kernel reports a missing `#!`
//! interpreter (or a binary's missing dynamic loader) as the program itself missing.

use std::ffi::{CString, OsStr};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::MissingInterpreter;

/// How far into a script its `#!` line is read (the kernel reads at most 256 bytes of it).
const FIRST_LINE_MAX: usize = 256;

/// For an exec of `candidates` that failed with `ENOENT`: the first candidate that exists (a
/// relative one resolved from `cwd`), and what it names as its interpreter. `None` when no
/// candidate exists, so the program itself is what is missing.
pub(crate) fn explain_enoent(
    candidates: &[CString],
    cwd: Option<&OsStr>,
) -> Option<MissingInterpreter> {
    let path = candidates.iter().find_map(|c| {
        let p = Path::new(OsStr::from_bytes(c.to_bytes()));
        let p = match cwd {
            Some(dir) if p.is_relative() => Path::new(dir).join(p),
            _ => p.to_owned(),
        };
        std::fs::metadata(&p)
            .is_ok_and(|m| m.is_file())
            .then_some(p)
    })?;
    Some(MissingInterpreter {
        interpreter: shebang_interpreter(&path),
    })
}

/// The interpreter named on `script`'s `#!` line, if it is a script and the line is readable.
fn shebang_interpreter(script: &Path) -> Option<PathBuf> {
    let mut head = [0u8; FIRST_LINE_MAX];
    let mut file = std::fs::File::open(script).ok()?;
    let mut len = 0;
    while len < head.len() {
        match file.read(&mut head[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    let line = head[..len].strip_prefix(b"#!")?;
    let line = line.split(|&b| b == b'\n').next().unwrap_or(line);
    line.split(|&b| b == b' ' || b == b'\t')
        .find(|w| !w.is_empty())
        .map(|w| PathBuf::from(OsStr::from_bytes(w)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_has_no_explanation() {
        let c = [CString::new("/surely/no/such/program").unwrap()];
        assert!(explain_enoent(&c, None).is_none());
    }

    #[test]
    fn the_interpreter_is_the_first_word_after_the_hash_bang() {
        let dir = std::env::temp_dir().join(format!("popen-shebang-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("s");
        std::fs::write(&script, b"#! \t/opt/x/python3 -u\nprint()\n").unwrap();
        assert_eq!(
            shebang_interpreter(&script),
            Some(PathBuf::from("/opt/x/python3"))
        );
        std::fs::write(&script, b"\x7fELF").unwrap();
        assert_eq!(shebang_interpreter(&script), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
