//! Status codes, the thread-local last error, the panic boundary and argument checks.

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

/// Maps a library error to a status of the caller's choosing.
pub trait OrStatus<T> {
    fn or_status(self, status: CsraStatus) -> Result<T, Fail>;
}

impl<T, E: std::fmt::Display> OrStatus<T> for Result<T, E> {
    fn or_status(self, status: CsraStatus) -> Result<T, Fail> {
        self.map_err(|e| Fail::new(status, e.to_string()))
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
