//! Image views and segmentation on small sizes: `csra_segment_tile` and
//! `csra_segment_image` (see `csranet_fuzz::segment_input`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| csranet_fuzz::segment_input(data));
