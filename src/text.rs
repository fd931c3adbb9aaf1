//! Captured bytes as text: strict or lossy UTF-8 decoding, and universal newlines.

use std::borrow::Cow;
use std::error::Error;
use std::fmt;

/// One of the child's output streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    /// The child's standard output.
    Stdout,
    /// The child's standard error.
    Stderr,
}

impl Stream {
    /// `"stdout"` or `"stderr"`.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How to turn captured bytes into text (CPython's `text=True` / `errors=`): strict or lossy
/// UTF-8, with or without universal newlines.
///
/// Universal newlines (CPython's default whenever output is text) turn `"\r\n"` and a lone
/// `"\r"` into `"\n"`.
///
/// # Examples
///
/// ```
/// use popen::{Stream, Text};
///
/// let text = Text::strict().universal_newlines(true);
/// assert_eq!(text.decode(b"a\r\nb\rc\n", Stream::Stdout)?, "a\nb\nc\n");
///
/// let err = Text::strict().decode(b"ok\xff", Stream::Stderr).unwrap_err();
/// assert_eq!((err.stream(), err.offset()), (Stream::Stderr, 2));
///
/// assert_eq!(Text::lossy().decode(b"ok\xff", Stream::Stdout)?, "ok\u{FFFD}");
/// # Ok::<(), popen::DecodeError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Text {
    lossy: bool,
    universal_newlines: bool,
}

impl Text {
    /// Strict UTF-8: invalid input is a [`DecodeError`]. Newlines are kept as they are.
    pub fn strict() -> Text {
        Text {
            lossy: false,
            universal_newlines: false,
        }
    }

    /// Lossy UTF-8: each invalid sequence becomes U+FFFD. Newlines are kept as they are.
    pub fn lossy() -> Text {
        Text {
            lossy: true,
            universal_newlines: false,
        }
    }

    /// Whether to translate `"\r\n"` and `"\r"` into `"\n"`.
    pub fn universal_newlines(mut self, on: bool) -> Text {
        self.universal_newlines = on;
        self
    }

    /// Whether decoding is lossy.
    pub fn is_lossy(self) -> bool {
        self.lossy
    }

    /// Decodes `bytes` read from `stream`, borrowing them when nothing has to change.
    ///
    /// # Errors
    ///
    /// In strict mode, a [`DecodeError`] naming `stream` and the offset of the first invalid
    /// byte.
    ///
    /// # Examples
    ///
    /// ```
    /// use popen::{Stream, Text};
    /// use std::borrow::Cow;
    ///
    /// let text = Text::strict().decode(b"plain\n", Stream::Stdout)?;
    /// assert!(matches!(text, Cow::Borrowed("plain\n")));
    /// # Ok::<(), popen::DecodeError>(())
    /// ```
    pub fn decode<'a>(self, bytes: &'a [u8], stream: Stream) -> Result<Cow<'a, str>, DecodeError> {
        let text = if self.lossy {
            String::from_utf8_lossy(bytes)
        } else {
            Cow::Borrowed(
                std::str::from_utf8(bytes).map_err(|e| DecodeError::from_utf8(stream, e))?,
            )
        };
        if !self.universal_newlines {
            return Ok(text);
        }
        Ok(match translate_newlines(&text) {
            Cow::Borrowed(_) => text,
            Cow::Owned(s) => Cow::Owned(s),
        })
    }

    /// Decodes owned bytes without copying them when they are valid and nothing changes.
    ///
    /// # Errors
    ///
    /// As [`decode`](Self::decode).
    ///
    /// # Examples
    ///
    /// ```
    /// use popen::{Stream, Text};
    ///
    /// let s = Text::lossy().universal_newlines(true).decode_vec(b"a\r\n".to_vec(), Stream::Stdout)?;
    /// assert_eq!(s, "a\n");
    /// # Ok::<(), popen::DecodeError>(())
    /// ```
    pub fn decode_vec(self, bytes: Vec<u8>, stream: Stream) -> Result<String, DecodeError> {
        let text = match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) if self.lossy => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            Err(e) => return Err(DecodeError::from_utf8(stream, e.utf8_error())),
        };
        if !self.universal_newlines {
            return Ok(text);
        }
        Ok(match translate_newlines(&text) {
            Cow::Borrowed(_) => text,
            Cow::Owned(s) => s,
        })
    }
}

/// Universal newlines: `"\r\n"` and a lone `"\r"` become `"\n"`. Borrows when there is no
/// `'\r'`.
///
/// # Examples
///
/// ```
/// assert_eq!(popen::translate_newlines("a\r\nb\rc\r"), "a\nb\nc\n");
/// ```
pub fn translate_newlines(text: &str) -> Cow<'_, str> {
    let Some(first) = text.find('\r') else {
        return Cow::Borrowed(text);
    };
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..first]);
    let mut rest = first;
    // Invariant: `rest` is at a '\r' or past the end; '\r' and '\n' are ASCII, so every cut
    // below falls on a char boundary.
    while rest < bytes.len() {
        out.push('\n');
        let after = if bytes.get(rest + 1) == Some(&b'\n') {
            rest + 2
        } else {
            rest + 1
        };
        let next = text[after..].find('\r').map_or(bytes.len(), |i| after + i);
        out.push_str(&text[after..next]);
        rest = next;
    }
    Cow::Owned(out)
}

/// Captured output that is not valid UTF-8: names the stream and the offset of the first bad
/// byte.
///
/// # Examples
///
/// ```
/// use popen::{Stream, Text};
///
/// let err = Text::strict().decode(b"caf\xe9!", Stream::Stdout).unwrap_err();
/// assert_eq!(err.offset(), 3);
/// assert_eq!(err.to_string(), "stdout is not valid UTF-8: invalid byte sequence at offset 3");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeError {
    stream: Stream,
    offset: usize,
    invalid_len: Option<usize>,
}

impl DecodeError {
    fn from_utf8(stream: Stream, e: std::str::Utf8Error) -> DecodeError {
        DecodeError {
            stream,
            offset: e.valid_up_to(),
            invalid_len: e.error_len(),
        }
    }

    /// The error for bytes of `stream` that start at offset `base` in it.
    pub(crate) fn at(stream: Stream, e: std::str::Utf8Error, base: usize) -> DecodeError {
        let mut err = DecodeError::from_utf8(stream, e);
        err.offset += base;
        err
    }

    /// The stream whose bytes were invalid.
    pub fn stream(&self) -> Stream {
        self.stream
    }

    /// The offset of the first invalid byte in the stream's captured bytes.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The length of the invalid sequence, or `None` when the bytes end in the middle of a
    /// character.
    pub fn invalid_len(&self) -> Option<usize> {
        self.invalid_len
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.invalid_len {
            Some(_) => write!(
                f,
                "{} is not valid UTF-8: invalid byte sequence at offset {}",
                self.stream, self.offset
            ),
            None => write!(
                f,
                "{} is not valid UTF-8: incomplete character at offset {} (end of output)",
                self.stream, self.offset
            ),
        }
    }
}

impl Error for DecodeError {}

impl From<DecodeError> for std::io::Error {
    fn from(e: DecodeError) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newlines() {
        assert_eq!(translate_newlines(""), "");
        assert_eq!(translate_newlines("\r"), "\n");
        assert_eq!(translate_newlines("\r\r\n\n"), "\n\n\n");
        assert_eq!(translate_newlines("é\r\né"), "é\né");
        assert!(matches!(translate_newlines("a\nb"), Cow::Borrowed(_)));
    }
}
