//! Generates `include/csranet.h` from `src/ffi` with cbindgen (pinned in Cargo.toml).
//! The file is only rewritten when its content changes; CI regenerates it and fails on
//! a diff, so the committed header is never stale.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=Cargo.toml");
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let mut config =
        cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    let v = |k: &str| std::env::var(k).unwrap();
    // The shared library's SONAME, libcsranet.so.<major>: hosts linked to it need that file
    // (tools/install.sh installs it with the libcsranet.so link).
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!(
            "cargo:rustc-cdylib-link-arg=-Wl,-soname,libcsranet.so.{}",
            v("CARGO_PKG_VERSION_MAJOR")
        );
    }
    config.after_includes = Some(format!(
        "\n#define CSRA_VERSION_MAJOR {}\n#define CSRA_VERSION_MINOR {}\n#define CSRA_VERSION_PATCH {}\n#define CSRA_VERSION_STRING \"{}\"",
        v("CARGO_PKG_VERSION_MAJOR"),
        v("CARGO_PKG_VERSION_MINOR"),
        v("CARGO_PKG_VERSION_PATCH"),
        v("CARGO_PKG_VERSION")
    ));
    // Only the C ABI's module (cbindgen follows its `mod` items): other public Rust
    // constants stay out of the header.
    let builder = cbindgen::Builder::new()
        .with_config(config)
        .with_src(root.join("src/ffi/mod.rs"));
    let bindings = match builder.generate() {
        Ok(b) => b,
        Err(e) => {
            // Keep the committed header; a parse failure here also fails the Rust build.
            println!("cargo:warning=cbindgen failed: {e}");
            return;
        }
    };
    let mut out = Vec::new();
    bindings.write(&mut out);
    let path = root.join("include/csranet.h");
    if std::fs::read(&path).ok().as_deref() != Some(out.as_slice()) {
        std::fs::create_dir_all(root.join("include")).unwrap();
        std::fs::write(&path, out).unwrap();
    }
}
