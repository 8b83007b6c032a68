//! Choosing the backend: io_uring when the kernel offers it, the portable path otherwise.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::{PosixVfs, UringVfs, Vfs};

/// Which I/O path to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum IoChoice {
    /// io_uring if the probe succeeds, else portable (the default). The `RINGLOG_IO` environment
    /// variable, when set, decides instead — for `Auto` only.
    #[default]
    Auto,
    /// io_uring; if it is unavailable, opening fails with the probe's reason.
    Uring,
    /// pwrite + fdatasync.
    Portable,
}

/// The environment variable that overrides [`IoChoice`]: `uring`, `portable` or `auto`.
pub const IO_ENV: &str = "RINGLOG_IO";

impl IoChoice {
    /// The choice named by `RINGLOG_IO`, if it is set. A value that is set but not understood is
    /// an error rather than silently ignored.
    ///
    /// # Errors
    ///
    /// [`ParseIoChoiceError`] when `RINGLOG_IO` is set to something other than `uring`, `portable` or `auto`.
    pub fn from_env() -> Result<Option<IoChoice>, ParseIoChoiceError> {
        match std::env::var(IO_ENV) {
            Ok(v) if v.trim().is_empty() => Ok(None),
            Ok(v) => v.parse().map(Some),
            Err(_) => Ok(None),
        }
    }
}

/// `RINGLOG_IO` (or a parsed string) held something other than `uring`, `portable` or `auto`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseIoChoiceError(pub String);

impl fmt::Display for ParseIoChoiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid I/O path {:?}: expected uring, portable or auto",
            self.0
        )
    }
}

impl std::error::Error for ParseIoChoiceError {}

impl FromStr for IoChoice {
    type Err = ParseIoChoiceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(IoChoice::Auto),
            "uring" | "io_uring" | "io-uring" => Ok(IoChoice::Uring),
            "portable" | "posix" => Ok(IoChoice::Portable),
            _ => Err(ParseIoChoiceError(s.to_string())),
        }
    }
}

impl IoChoice {
    /// The name `RINGLOG_IO` and [`FromStr`] accept for this choice.
    pub fn name(self) -> &'static str {
        match self {
            IoChoice::Auto => "auto",
            IoChoice::Uring => "uring",
            IoChoice::Portable => "portable",
        }
    }
}

impl fmt::Display for IoChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Builds the backend for `choice`. Only `Auto` consults `RINGLOG_IO` (`uring`, `portable`,
/// `auto`; anything else is an `InvalidInput` error): an explicit `Uring` or `Portable` is never
/// overridden. With `Auto` and no variable, an io_uring
/// that cannot be set up (ENOSYS, EPERM, ENOMEM, missing opcodes) selects the portable path and
/// the reason is logged and kept in [`crate::BackendInfo::reason`]. Forcing `Uring` where it is
/// unavailable is an error carrying the probe's reason.
///
/// # Errors
///
/// `InvalidInput` for an unknown `RINGLOG_IO` value (with `Auto`); `Unsupported`, with the probe's reason, when `Uring` is forced where io_uring is unavailable.
pub fn select(choice: IoChoice) -> std::io::Result<Arc<dyn Vfs>> {
    // The environment decides only what the code left to it: a program (or a test) that asks for
    // a path gets that path, whatever the variable says.
    let (choice, source) = match choice {
        IoChoice::Auto => match IoChoice::from_env() {
            Ok(Some(env)) => (env, format!("{IO_ENV}={env}")),
            Ok(None) => (choice, format!("option {choice}")),
            Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)),
        },
        asked => (asked, format!("option {asked}")),
    };
    match choice {
        IoChoice::Portable => Ok(Arc::new(PosixVfs::new(format!("forced by {source}")))),
        IoChoice::Uring => match crate::uring::probe() {
            Ok(desc) => Ok(Arc::new(UringVfs::new(format!(
                "forced by {source}; {desc}"
            )))),
            Err(why) => Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                format!("io_uring forced by {source} but unavailable: {why}"),
            )),
        },
        IoChoice::Auto => {
            match crate::uring::probe() {
                Ok(desc) => Ok(Arc::new(UringVfs::new(format!("auto: {desc}")))),
                Err(why) => {
                    crate::warn_once(&FALLBACK_LOGGED, format_args!("io_uring unavailable ({why}); using the portable pwrite/fdatasync path"));
                    Ok(Arc::new(PosixVfs::new(format!(
                        "auto: io_uring unavailable: {why}"
                    ))))
                }
            }
        }
    }
}

static FALLBACK_LOGGED: std::sync::Once = std::sync::Once::new();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_choices() {
        assert_eq!("uring".parse::<IoChoice>().unwrap(), IoChoice::Uring);
        assert_eq!(
            " Portable ".parse::<IoChoice>().unwrap(),
            IoChoice::Portable
        );
        assert_eq!("auto".parse::<IoChoice>().unwrap(), IoChoice::Auto);
        assert!("fast".parse::<IoChoice>().is_err());
    }
}
