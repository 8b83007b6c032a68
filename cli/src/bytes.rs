//! Keys and values on the command line and in the output: hexadecimal, or text with
//! every byte outside printable ASCII escaped.

use crate::args::Encoding;
use crate::Failure;

/// Lower-case hexadecimal of `b`.
pub fn hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(DIGITS[(x >> 4) as usize] as char);
        s.push(DIGITS[(x & 15) as usize] as char);
    }
    s
}

/// The bytes of hexadecimal `s` (either case), or why not.
pub fn unhex(s: &str) -> Result<Vec<u8>, String> {
    let s = s.as_bytes();
    if !s.len().is_multiple_of(2) {
        return Err(format!("{} hex digits: an odd number", s.len()));
    }
    let digit = |c: u8| -> Result<u8, String> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(format!("{:?} is not a hex digit", c as char)),
        }
    };
    s.chunks(2)
        .map(|p| Ok(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// `b` as text: printable ASCII as is (backslash doubled), every other byte as `\xNN`.
pub fn escape(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len());
    for &x in b {
        match x {
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(x as char),
            _ => s.push_str(&format!("\\x{x:02x}")),
        }
    }
    s
}

/// The bytes of text `s` as [`escape`] writes it: `\\` is a backslash, `\xNN` the byte `NN`
/// (hexadecimal), every other character its UTF-8 bytes; or why not (a backslash starting
/// neither).
pub fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        match b.get(i + 1) {
            Some(b'\\') => {
                out.push(b'\\');
                i += 2;
            }
            Some(b'x') => {
                let digits = b
                    .get(i + 2..i + 4)
                    .and_then(|d| std::str::from_utf8(d).ok())
                    .ok_or_else(|| format!("\\x at byte {i} needs two hex digits"))?;
                let byte = unhex(digits).map_err(|e| format!("\\x at byte {i}: {e}"))?;
                out.extend_from_slice(&byte);
                i += 4;
            }
            _ => {
                return Err(format!(
                    "a backslash (byte {i}) starts \\\\ (a backslash) or \\xNN (a byte); use --hex for raw bytes"
                ))
            }
        }
    }
    Ok(out)
}

impl Encoding {
    /// A key (or prefix) given on the command line: hexadecimal with `--hex`, else text as the
    /// output prints it ([`unescape`]).
    pub fn parse_key(&self, s: &str) -> Result<Vec<u8>, Failure> {
        let parsed = if self.hex { unhex(s) } else { unescape(s) };
        parsed.map_err(|e| Failure::Usage(format!("key {s:?}: {e}")))
    }

    /// A key to read, or a key range's bound: as [`Encoding::parse_key`], and not empty (no key
    /// is: the engine refuses to write one, [`ringlog_db::Error::EmptyKey`]).
    pub fn parse_nonempty_key(&self, s: &str) -> Result<Vec<u8>, Failure> {
        let key = self.parse_key(s)?;
        if key.is_empty() {
            return Err(Failure::Usage(format!(
                "key {s:?}: {}",
                ringlog_db::Error::EmptyKey
            )));
        }
        Ok(key)
    }

    /// Bytes for the output.
    pub fn show(&self, b: &[u8]) -> String {
        if self.hex {
            hex(b)
        } else {
            escape(b)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_text_round_trips_and_rejects_bad_escapes() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(unescape(&escape(&all)).unwrap(), all);
        assert_eq!(unescape("a\\\\b").unwrap(), b"a\\b");
        assert_eq!(unescape("caf\\xc3\\xA9").unwrap(), "café".as_bytes());
        assert_eq!(unescape("café").unwrap(), "café".as_bytes());
        assert_eq!(unescape("").unwrap(), Vec::<u8>::new());
        for bad in ["\\", "a\\n", "\\x", "\\x4", "\\xg0", "\\xé"] {
            assert!(unescape(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hex_round_trips_and_rejects_bad_digits() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(unhex(&hex(&all)).unwrap(), all);
        assert_eq!(unhex("ABcd").unwrap(), [0xab, 0xcd]);
        assert!(unhex("abc").is_err());
        assert!(unhex("zz").is_err());
        assert_eq!(unhex("").unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn escape_keeps_printable_text() {
        assert_eq!(escape(b"user:42"), "user:42");
        assert_eq!(escape(b"a\\b\x00\xff\n"), "a\\\\b\\x00\\xff\\x0a");
    }
}
