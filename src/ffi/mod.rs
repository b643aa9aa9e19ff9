//! The C ABI (`include/csranet.h`): a thin skin over the Rust API.
//!
//! Conventions: names `csra_<object>_<verb>`; opaque handles; every fallible function
//! returns a `CsraStatus` (0 = OK) and on failure sets a thread-local message readable with
//! `csra_last_error_message`; outputs are written only on success; `*_free(NULL)` is a
//! no-op; panics never cross the boundary. Options structs start with `struct_size`.
#![allow(clippy::missing_safety_doc, non_camel_case_types)]

pub mod model;
pub mod segmentation;
pub(crate) mod status;
pub mod trainer;

#[cfg(test)]
mod tests;

pub use status::CsraStatus;

use std::ffi::c_char;

/// Major version (also `CSRA_VERSION_MAJOR` in the header).
pub const CSRA_VERSION_MAJOR: u32 = parse(env!("CARGO_PKG_VERSION_MAJOR"));
/// Minor version.
pub const CSRA_VERSION_MINOR: u32 = parse(env!("CARGO_PKG_VERSION_MINOR"));
/// Patch version.
pub const CSRA_VERSION_PATCH: u32 = parse(env!("CARGO_PKG_VERSION_PATCH"));

const fn parse(s: &str) -> u32 {
    let b = s.as_bytes();
    let mut i = 0;
    let mut v = 0;
    while i < b.len() {
        v = v * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    v
}

/// The library version as `major << 16 | minor << 8 | patch`; compare with
/// `CSRA_VERSION_MAJOR` etc. from the header you compiled against.
#[no_mangle]
pub extern "C" fn csra_version() -> u32 {
    (CSRA_VERSION_MAJOR << 16) | (CSRA_VERSION_MINOR << 8) | CSRA_VERSION_PATCH
}

/// The version as a static NUL-terminated string, e.g. "0.1.0".
#[no_mangle]
pub extern "C" fn csra_version_string() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char
}

/// The message of the last failed call on this thread, "" after a success. Never NULL;
/// valid until the next csranet call on this thread.
#[no_mangle]
pub extern "C" fn csra_last_error_message() -> *const c_char {
    status::last_error_ptr()
}
