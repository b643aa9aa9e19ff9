//! Status codes, the thread-local last error, the panic boundary and argument checks.

use crate::error::{Error, ErrorKind};
use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Result of every fallible C function; 0 is success.
#[repr(i32)]
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CsraStatus {
    /// Success.
    CSRA_OK = 0,
    /// A required pointer argument was NULL (the message names it).
    CSRA_NULL_ARGUMENT = 1,
    /// An argument was out of range or inconsistent (the message says which).
    CSRA_INVALID_ARGUMENT = 2,
    /// A file could not be read or written.
    CSRA_IO_ERROR = 3,
    /// A weights file or buffer was malformed or did not fit the model; the model is unchanged.
    CSRA_BAD_WEIGHTS = 4,
    /// The progress callback asked to stop; nothing was returned and everything was freed.
    CSRA_CANCELLED = 5,
    /// The requested data was not kept (e.g. probabilities switched off).
    CSRA_NOT_AVAILABLE = 6,
    /// A computation produced NaN or infinity.
    CSRA_NUMERIC_ERROR = 7,
    /// A feature not compiled into this library (e.g. CUDA).
    CSRA_UNSUPPORTED = 8,
    /// An internal error or a caught panic; please report it.
    CSRA_INTERNAL_ERROR = 9,
}

/// An error on its way to the C caller.
pub struct Fail {
    pub status: CsraStatus,
    pub message: String,
}

impl Fail {
    /// A failure with its message; a backtrace that candle appends when the host has
    /// `RUST_BACKTRACE` set is cut off (the message stays one readable line).
    pub fn new(status: CsraStatus, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if let Some(i) = message.find("\n   0: ") {
            message.truncate(i);
        }
        Self { status, message }
    }
}

/// The status of each kind of library error: the one place the C API decides statuses
/// for library failures (NULL pointers and malformed C structs are checked in `ffi`).
pub(crate) fn status_of(kind: ErrorKind) -> CsraStatus {
    match kind {
        ErrorKind::InvalidArgument => CsraStatus::CSRA_INVALID_ARGUMENT,
        // Data the caller passed in (the C API reads no dataset files).
        ErrorKind::BadData => CsraStatus::CSRA_INVALID_ARGUMENT,
        ErrorKind::Io => CsraStatus::CSRA_IO_ERROR,
        ErrorKind::BadWeights => CsraStatus::CSRA_BAD_WEIGHTS,
        ErrorKind::NonFinite => CsraStatus::CSRA_NUMERIC_ERROR,
        ErrorKind::Cancelled => CsraStatus::CSRA_CANCELLED,
        ErrorKind::NotAvailable => CsraStatus::CSRA_NOT_AVAILABLE,
        ErrorKind::Unsupported => CsraStatus::CSRA_UNSUPPORTED,
        ErrorKind::Internal => CsraStatus::CSRA_INTERNAL_ERROR,
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::new(status_of(e.kind()), e.to_string())
    }
}

/// A candle error reaching the C API unconverted is internal (or the kind of the csranet
/// error it carries).
impl From<candle_core::Error> for Fail {
    fn from(e: candle_core::Error) -> Self {
        Error::from(e).into()
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(msg: &str) {
    let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// The message of the last failed call on this thread ("" when the last call succeeded).
pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// Runs an exported function's body: clears the last error, converts a failure into its
/// status and message, and turns a panic into `CSRA_INTERNAL_ERROR` instead of unwinding
/// into the host.
pub(crate) fn guard<F: FnOnce() -> Result<(), Fail>>(f: F) -> CsraStatus {
    set_last_error("");
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => CsraStatus::CSRA_OK,
        Ok(Err(fail)) => {
            set_last_error(&fail.message);
            fail.status
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_last_error(&format!("internal error (caught panic): {what}"));
            CsraStatus::CSRA_INTERNAL_ERROR
        }
    }
}

/// Returns `CSRA_NULL_ARGUMENT` naming the argument when a pointer is NULL.
macro_rules! not_null {
    ($p:expr, $name:literal) => {
        if $p.is_null() {
            return Err($crate::ffi::status::Fail::new(
                $crate::ffi::status::CsraStatus::CSRA_NULL_ARGUMENT,
                concat!("argument `", $name, "` is NULL"),
            ));
        }
    };
}
pub(crate) use not_null;

/// A NUL-terminated UTF-8 path argument.
///
/// # Safety
/// `p` must be non-NULL and point to a NUL-terminated string.
pub(crate) unsafe fn path_arg<'a>(p: *const c_char, name: &str) -> Result<&'a str, Fail> {
    std::ffi::CStr::from_ptr(p).to_str().map_err(|_| {
        Fail::new(
            CsraStatus::CSRA_INVALID_ARGUMENT,
            format!("argument `{name}` is not valid UTF-8"),
        )
    })
}

/// Reads a caller's options struct whose first field is `struct_size` (zlib's
/// `stream_size` pattern): fields past `struct_size` keep the library defaults, a
/// larger size than this library knows is refused.
///
/// # Safety
/// `p` must be non-NULL and point to at least `struct_size` readable bytes.
pub(crate) unsafe fn read_versioned<T: Copy>(
    p: *const T,
    defaults: T,
    what: &str,
) -> Result<T, Fail> {
    let size = std::ptr::read_unaligned(p as *const usize);
    let full = std::mem::size_of::<T>();
    if size < std::mem::size_of::<usize>() || size > full {
        return Err(Fail::new(
            CsraStatus::CSRA_INVALID_ARGUMENT,
            format!(
                "{what}.struct_size is {size}; this library accepts {}..={full} (set it to sizeof({what}))",
                std::mem::size_of::<usize>()
            ),
        ));
    }
    let mut out = defaults;
    std::ptr::copy_nonoverlapping(p as *const u8, &mut out as *mut T as *mut u8, size);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use CsraStatus::*;

    /// The kind -> status table, in full: a new kind must be added here and in the header.
    #[test]
    fn every_kind_has_its_status() {
        let table = [
            (ErrorKind::InvalidArgument, CSRA_INVALID_ARGUMENT),
            (ErrorKind::BadData, CSRA_INVALID_ARGUMENT),
            (ErrorKind::Io, CSRA_IO_ERROR),
            (ErrorKind::BadWeights, CSRA_BAD_WEIGHTS),
            (ErrorKind::NonFinite, CSRA_NUMERIC_ERROR),
            (ErrorKind::Cancelled, CSRA_CANCELLED),
            (ErrorKind::NotAvailable, CSRA_NOT_AVAILABLE),
            (ErrorKind::Unsupported, CSRA_UNSUPPORTED),
            (ErrorKind::Internal, CSRA_INTERNAL_ERROR),
        ];
        for (kind, status) in table {
            assert_eq!(status_of(kind), status, "{kind:?}");
            let fail = Fail::from(Error::new(kind, "what happened"));
            assert_eq!(
                (fail.status, fail.message.as_str()),
                (status, "what happened")
            );
        }
    }

    #[test]
    fn candle_errors_are_internal_unless_they_carry_a_kind() {
        let f = Fail::from(candle_core::Error::Msg("broadcast failed".into()));
        assert_eq!(f.status, CSRA_INTERNAL_ERROR);
        let carried: candle_core::Error = Error::non_finite("non-finite probabilities").into();
        assert_eq!(Fail::from(carried).status, CSRA_NUMERIC_ERROR);
    }

    #[test]
    fn a_backtrace_in_the_message_is_cut() {
        let f = Fail::new(CSRA_INTERNAL_ERROR, "boom\n   0: std::backtrace");
        assert_eq!(f.message, "boom");
    }
}
