//! The library's error type: one [`Error`] with an [`ErrorKind`] that says what went wrong
//! (a bad argument, an unreadable file, malformed weights, a non-finite result, ...), a
//! one-line message for people, and optionally the underlying error as its source.
//!
//! The kind is decided where the failure is detected, never from the message text; the C
//! API turns each kind into its `CsraStatus` (`src/ffi/status.rs`).
//!
//! The network and the custom operations (`model`, `ops`) are candle modules and return
//! `candle_core::Error`; such an error converts into an [`ErrorKind::Internal`] error,
//! unless it carries a csranet [`Error`] (see `From<Error> for candle_core::Error`), whose
//! kind is kept.

use std::fmt;
use std::path::Path;

/// What kind of failure an [`Error`] is. New kinds may be added, so match with a `_` arm.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// An argument, option or configuration value is out of range or inconsistent.
    InvalidArgument,
    /// A file or directory could not be found, read or written.
    Io,
    /// A weights file, checkpoint or buffer is malformed, or does not fit the model.
    BadWeights,
    /// A dataset file is malformed (undecodable image, wrong shape, ids that disagree).
    BadData,
    /// A computation produced NaN or infinity (diverged training, overflowing weights).
    NonFinite,
    /// The caller's progress callback asked to stop.
    Cancelled,
    /// The requested data was not kept or is not present in this build.
    NotAvailable,
    /// A feature this build does not have (e.g. CUDA without the `cuda` feature).
    Unsupported,
    /// A failure inside the library (a tensor operation that should not fail).
    Internal,
}

impl ErrorKind {
    /// A short lower-case name of the kind ("invalid argument", "I/O error", ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::Io => "I/O error",
            ErrorKind::BadWeights => "bad weights",
            ErrorKind::BadData => "bad data",
            ErrorKind::NonFinite => "non-finite value",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::NotAvailable => "not available",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Internal => "internal error",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of every fallible public function of csranet outside the candle modules.
///
/// `Display` writes the message alone (one line, naming the file or the argument at fault);
/// [`Error::kind`] says what kind of failure it is; `source()` gives the underlying error
/// when there is one (an `std::io::Error`, a candle error, a JSON error, ...).
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// `std::result::Result` with csranet's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// [`ErrorKind::InvalidArgument`]: an argument or option is out of range.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    /// [`ErrorKind::Io`] for a file operation on `path`: the message is `PATH: ERROR`, and
    /// `err` is the source.
    pub fn io(path: impl AsRef<Path>, err: std::io::Error) -> Self {
        Self::new(ErrorKind::Io, format!("{}: {err}", path.as_ref().display())).with_source(err)
    }

    /// [`ErrorKind::Io`] with a message of the caller's making (which should name the file).
    pub fn io_msg(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Io, message)
    }

    /// [`ErrorKind::BadWeights`]: a weights file or checkpoint is malformed or does not fit.
    pub fn bad_weights(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadWeights, message)
    }

    /// [`ErrorKind::BadData`]: a dataset file is malformed.
    pub fn bad_data(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadData, message)
    }

    /// [`ErrorKind::NonFinite`]: a computation produced NaN or infinity.
    pub fn non_finite(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NonFinite, message)
    }

    /// [`ErrorKind::Cancelled`]: the caller asked to stop.
    pub fn cancelled(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Cancelled, message)
    }

    /// [`ErrorKind::NotAvailable`]: the requested data was not kept or is not built in.
    pub fn not_available(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotAvailable, message)
    }

    /// [`ErrorKind::Unsupported`]: a feature this build lacks.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }

    /// [`ErrorKind::Internal`]: a failure that is the library's own.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// Attaches the underlying error (returned by `source()`); the message is unchanged.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message (the same text as `Display`).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Prefixes the message with `context` (`CONTEXT: MESSAGE`); the kind and the source
    /// are kept.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// A candle error as a csranet error of `kind`, unless it carries a csranet error,
    /// whose own kind is kept (so a non-finite result detected inside a candle module
    /// stays [`ErrorKind::NonFinite`]). For the public entry points that call candle
    /// code whose failures have a known meaning (a configuration check, a weights parse).
    pub fn from_candle(kind: ErrorKind, err: candle_core::Error) -> Self {
        match carried(err) {
            Ok(e) => e,
            Err(c) => Self::new(kind, c.to_string()).with_source(c),
        }
    }
}

/// The csranet error inside a candle error, or the candle error without its backtrace.
fn carried(err: candle_core::Error) -> std::result::Result<Error, candle_core::Error> {
    use candle_core::Error as C;
    match err {
        C::WithBacktrace { inner, .. } => carried(*inner),
        C::Context { inner, context } => match carried(*inner) {
            Ok(e) => Ok(e.context(context)),
            Err(inner) => Err(C::Context {
                inner: Box::new(inner),
                context,
            }),
        },
        C::WithPath { inner, path } => match carried(*inner) {
            Ok(e) => Ok(e.context(path.display())),
            Err(inner) => Err(C::WithPath {
                inner: Box::new(inner),
                path,
            }),
        },
        C::Io(io) if io.get_ref().is_some_and(|r| r.is::<Error>()) => {
            let inner = io.into_inner().expect("checked above");
            Ok(*inner.downcast::<Error>().expect("checked above"))
        }
        other => Err(other),
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(s) = &self.source {
            d.field("source", s);
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

/// A candle error is [`ErrorKind::Internal`], unless it carries a csranet error (made by
/// `From<Error> for candle_core::Error`), which comes back unchanged. A backtrace candle
/// appended is dropped from the message.
impl From<candle_core::Error> for Error {
    fn from(err: candle_core::Error) -> Self {
        Self::from_candle(ErrorKind::Internal, err)
    }
}

/// An I/O error without a path is [`ErrorKind::Io`]; prefer [`Error::io`], which names
/// the file.
impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        Self::new(ErrorKind::Io, err.to_string()).with_source(err)
    }
}

/// Carries a csranet error through candle code (the `model` and `ops` modules): it
/// displays as its own message and converts back into itself, kind included.
impl From<Error> for candle_core::Error {
    fn from(err: Error) -> Self {
        candle_core::Error::Io(std::io::Error::other(err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_prefixes_the_message_and_keeps_kind_and_source() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let e = Error::io("/x/w.safetensors", io).context("cannot load weights");
        assert_eq!(e.kind(), ErrorKind::Io);
        assert_eq!(e.to_string(), "cannot load weights: /x/w.safetensors: gone");
        let src = std::error::Error::source(&e).expect("source kept");
        assert_eq!(src.to_string(), "gone");
    }

    #[test]
    fn candle_errors_are_internal_without_backtrace() {
        let c = candle_core::Error::Msg("shape mismatch".into());
        let c = candle_core::Error::WithBacktrace {
            inner: Box::new(c),
            backtrace: Box::new(std::backtrace::Backtrace::force_capture()),
        };
        let e = Error::from(c);
        assert_eq!(e.kind(), ErrorKind::Internal);
        assert_eq!(e.to_string(), "shape mismatch");
        let e = Error::from_candle(
            ErrorKind::InvalidArgument,
            candle_core::Error::Msg("config.depth must be 18".into()),
        );
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn a_csranet_error_survives_a_trip_through_candle() {
        let c: candle_core::Error = Error::non_finite("loss is NaN").into();
        assert_eq!(c.to_string(), "loss is NaN");
        let c = c.bt().context("step 3");
        // Whatever kind the caller expects, the carried kind wins.
        let e = Error::from_candle(ErrorKind::InvalidArgument, c);
        assert_eq!(e.kind(), ErrorKind::NonFinite);
        assert_eq!(e.to_string(), "step 3: loss is NaN");
        // A genuine candle I/O error is not mistaken for a carried one.
        let c = candle_core::Error::Io(std::io::Error::other("disk"));
        assert_eq!(Error::from(c).kind(), ErrorKind::Internal);
    }

    #[test]
    fn std_io_errors_are_io() {
        let e = Error::from(std::io::Error::other("full"));
        assert_eq!(e.kind(), ErrorKind::Io);
        assert_eq!(e.to_string(), "full");
    }
}
