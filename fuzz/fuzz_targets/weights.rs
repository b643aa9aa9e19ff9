//! Weights from bytes: `csra_model_load_safetensors_buffer` and
//! `csra_model_create_from_safetensors_buffer` (see `csranet_fuzz::weights_input`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| csranet_fuzz::weights_input(data));
