//! The Java binding (`bindings/java`), against the shared library cargo built for this test run.
//!
//! Runs `bindings/java/test.sh`, which builds the binding with the JDK alone (`javac --release
//! 17`, `jar`) and gcc (the JNI glue, compiled against `include/csranet.h` and linked to this
//! run's `libcsranet.so`), then runs the Java tests under `-Xcheck:jni`: patch1 segmented
//! through Java gives exactly the C API's instances (a C reference program, same library), 8
//! threads segment concurrently, cancellation, closing during use, bad inputs, training steps,
//! tiled segmentation, and loading the library from an explicit path, `java.library.path` and
//! the jar.
//!
//! Needs `javac`, `java` and `jar` (JDK 17 or later) and `gcc`: the test FAILS when they are
//! missing (CI has them), it does not skip.
#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The directory of the `libcsranet.so` built with this test (see `tests/c_api.rs`).
fn find_lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap().to_path_buf();
    [deps.clone(), deps.join("..")]
        .into_iter()
        .find(|d| d.join("libcsranet.so").is_file())
        .map(|d| d.canonicalize().unwrap())
        .unwrap_or_else(|| panic!("no libcsranet.so in {} or its parent", deps.display()))
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            let p = dir.join(tool);
            p.is_file()
                && std::fs::metadata(&p)
                    .map(|m| {
                        use std::os::unix::fs::PermissionsExt;
                        m.permissions().mode() & 0o111 != 0
                    })
                    .unwrap_or(false)
        })
    })
}

/// A scratch directory for this process; those of finished processes are removed.
fn scratch() -> PathBuf {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    if let Ok(entries) = std::fs::read_dir(&tmp) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("java-") {
                if !Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
    let dir = tmp.join(format!("java-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Width, height and RGB bytes of a binary PPM.
fn read_ppm(path: &Path) -> (u32, u32, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut fields = Vec::new();
    let mut i = 0;
    while fields.len() < 4 {
        while bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let start = i;
        while !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        fields.push(String::from_utf8_lossy(&bytes[start..i]).into_owned());
    }
    assert_eq!(fields[0], "P6");
    assert_eq!(fields[3], "255");
    let (w, h): (u32, u32) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    let data = bytes[i + 1..].to_vec();
    assert_eq!(data.len(), (w * h * 3) as usize, "{}", path.display());
    (w, h, data)
}

#[test]
fn java_binding_tests() {
    let missing: Vec<&str> = ["javac", "java", "jar", "gcc"]
        .into_iter()
        .filter(|t| !on_path(t))
        .collect();
    assert!(
        missing.is_empty(),
        "the Java binding tests need a JDK 17 or later (javac, java, jar) and gcc on PATH; \
         missing: {missing:?} (Debian: apt-get install openjdk-17-jdk-headless gcc)"
    );

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let lib_dir = find_lib_dir();
    let dir = scratch();
    let build = dir.join("build");
    let t = Instant::now();
    // build.sh copies the library next to the JNI glue at once, so a concurrent cargo build
    // replacing this one later does not matter.
    let out = Command::new(root.join("bindings/java/test.sh"))
        .env("CSRANET_LIB_DIR", &lib_dir)
        .env("BUILD_DIR", &build)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("cannot run bindings/java/test.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    eprintln!(
        "bindings/java/test.sh with {} -> {} ({:.1}s)",
        lib_dir.join("libcsranet.so").display(),
        out.status,
        t.elapsed().as_secs_f64()
    );
    assert!(out.status.success(), "bindings/java/test.sh failed");
    assert!(
        stdout.contains("test.sh: all Java binding tests passed"),
        "no success line"
    );
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("java tests: "))
        .expect("no summary line");
    assert!(summary.ends_with(" 0 failed"), "{summary}");

    // The tile both sides segmented is the fixture itself: Java's PNG decoding (which wrote
    // the PPM the C reference read) gives the same pixels as the `image` crate.
    let (w, h, rgb) = read_ppm(&build.join("patch1.ppm"));
    let png = image::open(root.join("tests/fixtures/tiles/patch1.png"))
        .unwrap()
        .to_rgb8();
    assert_eq!((w, h), png.dimensions());
    assert!(
        rgb == png.as_raw().as_slice(),
        "Java's decoding of patch1.png differs from the image crate's"
    );
}
