//! One error type whose kind tells the binding which JavaScript error to throw.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Wrong type or shape of an argument (JavaScript `TypeError`).
    Type,
    /// A value outside its allowed range (JavaScript `RangeError`).
    Range,
    /// Work stopped on request between batches (JavaScript `AbortError`).
    Aborted,
    /// The loss or the weights became NaN or infinite.
    Diverged,
    /// Anything else, e.g. a model in the wrong state (JavaScript `Error`).
    Other,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

impl Error {
    pub fn range(message: impl Into<String>) -> Self {
        Error { kind: ErrorKind::Range, message: message.into() }
    }
    pub fn type_(message: impl Into<String>) -> Self {
        Error { kind: ErrorKind::Type, message: message.into() }
    }
    pub fn aborted() -> Self {
        Error { kind: ErrorKind::Aborted, message: "the operation was aborted".into() }
    }
    pub fn diverged(message: impl Into<String>) -> Self {
        Error { kind: ErrorKind::Diverged, message: message.into() }
    }
    pub fn other(message: impl Into<String>) -> Self {
        Error { kind: ErrorKind::Other, message: message.into() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;
