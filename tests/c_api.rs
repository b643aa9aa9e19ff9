//! The C ABI from C and C++, against the shared library cargo built for this test run.
//!
//! - `examples/c/segment.c` and `examples/cpp/segment.cpp` (through
//!   `bindings/cpp/csranet.hpp`) build with `-Wall -Wextra -Werror` and report the same
//!   results for the same weights and image; `-` (random seed-42 weights) matches a
//!   seed-42 model saved from Rust.
//! - `tests/c/abi_test.c`, under AddressSanitizer and UBSan, checks the ABI contract
//!   (NULL arguments, `struct_size`, image validation, statuses and messages, all-or-nothing
//!   loading); it must name every function of `include/csranet.h`.
//! - The C and C++ examples run under AddressSanitizer with LeakSanitizer (leaks inside the
//!   Rust library count; a probe that leaks a model proves they are seen), and the C
//!   example under valgrind when it is installed (`tests/valgrind.supp` documents the
//!   one suppression).
//!
//! Needs `gcc`, `g++` and `nm` (Linux); set `CSRANET_SKIP_C_TESTS=1` to skip.
#![cfg(target_os = "linux")]

use candle_core::Device;
use csranet::io::weights;
use csranet::{Config, CsraNet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Instant;

/// The shared library's SONAME (set by build.rs).
const SONAME: &str = concat!("libcsranet.so.", env!("CARGO_PKG_VERSION_MAJOR"));

/// What every test shares: built once, in a scratch directory of this process.
struct Setup {
    root: PathBuf,
    /// Directory holding this process's copy of `libcsranet.so`.
    lib_dir: PathBuf,
    scratch: PathBuf,
    /// `tests/fixtures/tiles/patch1.png` as a binary PPM (256x256).
    ppm: PathBuf,
    /// Its top-left 64x64 corner (for valgrind).
    crop_ppm: PathBuf,
    /// A `lite` model with seed 42, saved from Rust.
    weights: PathBuf,
}

fn skip() -> bool {
    if std::env::var_os("CSRANET_SKIP_C_TESTS").is_some_and(|v| v == "1") {
        eprintln!("CSRANET_SKIP_C_TESTS=1: skipping the C ABI tests");
        return true;
    }
    false
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let t = Instant::now();
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let built = find_lib_dir();

        // One scratch directory per test process; those of finished processes are removed.
        let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        if let Ok(entries) = std::fs::read_dir(&tmp) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix("c_api-") {
                    if !Path::new("/proc").join(pid).exists() {
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                }
            }
        }
        let scratch = tmp.join(format!("c_api-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch).unwrap();

        // A private copy of the library: another `cargo build` sharing this target
        // directory may replace or remove the original while the programs run.
        let lib_dir = scratch.join("lib");
        std::fs::create_dir_all(&lib_dir).unwrap();
        std::fs::copy(built.join("libcsranet.so"), lib_dir.join("libcsranet.so")).unwrap();
        // Programs linked with -lcsranet load the library by its SONAME.
        std::os::unix::fs::symlink("libcsranet.so", lib_dir.join(SONAME)).unwrap();

        let rgb = image::open(root.join("tests/fixtures/tiles/patch1.png"))
            .expect("fixture tile")
            .to_rgb8();
        let ppm = scratch.join("patch1.ppm");
        write_ppm(&ppm, &rgb);
        let crop = image::imageops::crop_imm(&rgb, 0, 0, 64, 64).to_image();
        let crop_ppm = scratch.join("patch1_64.ppm");
        write_ppm(&crop_ppm, &crop);

        let net = CsraNet::new(&Config::lite(), &Device::Cpu, 42).unwrap();
        let weights_path = scratch.join("lite_seed42.safetensors");
        weights::save_file(&net, &weights_path, false).unwrap();

        eprintln!(
            "setup: library from {}, scratch {} ({:.1}s)",
            built.display(),
            scratch.display(),
            t.elapsed().as_secs_f64()
        );
        Setup {
            root,
            lib_dir,
            scratch,
            ppm,
            crop_ppm,
            weights: weights_path,
        }
    })
}

/// The directory of the `libcsranet.so` built with this test: integration tests live in
/// `target/<profile>/deps`, where cargo writes the library first (the copy one level up is
/// not refreshed by every build, so it is only a fallback).
fn find_lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap().to_path_buf();
    [deps.clone(), deps.join("..")]
        .into_iter()
        .find(|d| d.join("libcsranet.so").is_file())
        .map(|d| d.canonicalize().unwrap())
        .unwrap_or_else(|| panic!("no libcsranet.so in {} or its parent", deps.display()))
}

fn write_ppm(path: &Path, img: &image::RgbImage) {
    let mut bytes = format!("P6\n{} {}\n255\n", img.width(), img.height()).into_bytes();
    bytes.extend_from_slice(img.as_raw());
    std::fs::write(path, bytes).unwrap();
}

fn run(cmd: &mut Command) -> Output {
    let what = format!("{cmd:?}");
    let t = Instant::now();
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    eprintln!(
        "[{:5.1}s] {what} -> {}",
        t.elapsed().as_secs_f64(),
        out.status
    );
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn expect_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({})\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Compiles `sources` into `scratch/name`, linked against libcsranet.so (found at run
/// time through the rpath).
fn compile(
    compiler: &str,
    std_flag: &str,
    sources: &[&str],
    name: &str,
    extra: &[&str],
) -> PathBuf {
    let s = setup();
    let out_path = s.scratch.join(name);
    let mut cmd = Command::new(compiler);
    cmd.current_dir(&s.root)
        .args([std_flag, "-Wall", "-Wextra", "-Werror", "-g"])
        .args(["-Iinclude", "-Ibindings/cpp"])
        .args(extra)
        .args(sources)
        .arg("-o")
        .arg(&out_path)
        .arg(format!("-L{}", s.lib_dir.display()))
        .arg("-lcsranet")
        .arg(format!("-Wl,-rpath,{}", s.lib_dir.display()));
    let out = run(&mut cmd);
    expect_success(&out, &format!("compiling {sources:?}"));
    // It must load the library under test: `cargo test` puts `target/<profile>` (whose
    // copy of the library may be stale) first in LD_LIBRARY_PATH, which beats the rpath;
    // `program` removes it.
    let ldd = run(program(Path::new("ldd")).arg(&out_path));
    let want = s.lib_dir.join(SONAME);
    assert!(
        text(&ldd.stdout).contains(&format!("{SONAME} => {}", want.display())),
        "{} does not load {}:\n{}",
        out_path.display(),
        want.display(),
        text(&ldd.stdout)
    );
    out_path
}

/// A command for a compiled program: the library comes from its rpath only.
fn program(bin: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env_remove("LD_LIBRARY_PATH");
    cmd
}

const ASAN: &[&str] = &["-fsanitize=address", "-fno-omit-frame-pointer"];

/// Runs a sanitized binary: leaks and UB are fatal, reports go to stderr.
fn sanitized(bin: &Path) -> Command {
    let mut cmd = program(bin);
    cmd.env(
        "ASAN_OPTIONS",
        "detect_leaks=1:halt_on_error=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1",
    )
    .env("LSAN_OPTIONS", "report_objects=1")
    .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1");
    cmd
}

fn assert_no_sanitizer_report(out: &Output, what: &str) {
    let err = text(&out.stderr);
    for marker in [
        "ERROR: AddressSanitizer",
        "ERROR: LeakSanitizer",
        "runtime error:",
        "SUMMARY:",
    ] {
        assert!(
            !err.contains(marker),
            "{what}: sanitizer report ({marker})\n{err}"
        );
    }
    expect_success(out, what);
}

/// The binary really has AddressSanitizer compiled in.
fn assert_asan_linked(bin: &Path) {
    let out = run(Command::new("nm").arg(bin));
    expect_success(&out, "nm");
    assert!(
        text(&out.stdout).contains("__asan_init"),
        "{} does not reference __asan_init",
        bin.display()
    );
}

/// The `key: value` lines the examples print, in order.
fn report(stdout: &str) -> Vec<String> {
    stdout.lines().map(str::to_owned).collect()
}

fn value(lines: &[String], key: &str) -> Option<usize> {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
}

#[test]
fn abi_test_names_every_header_function() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let header = std::fs::read_to_string(root.join("include/csranet.h")).unwrap();
    let test = std::fs::read_to_string(root.join("tests/c/abi_test.c")).unwrap();
    let mut functions: Vec<&str> = header
        .lines()
        .filter(|l| !l.trim_start().starts_with("//") && !l.trim_start().starts_with('*'))
        .filter_map(|l| {
            let start = l.find("csra_")?;
            let rest = &l[start..];
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
            rest[end..].starts_with('(').then_some(&rest[..end])
        })
        .collect();
    functions.sort();
    functions.dedup();
    assert!(functions.len() >= 22, "parsed only {functions:?}");
    let missing: Vec<_> = functions
        .iter()
        .filter(|f| !test.contains(&format!("{f}(")))
        .collect();
    assert!(
        missing.is_empty(),
        "tests/c/abi_test.c does not call {missing:?}"
    );
}

#[test]
fn c_and_cpp_examples_agree() {
    if skip() {
        return;
    }
    let s = setup();
    let c = compile(
        "gcc",
        "-std=c11",
        &["examples/c/segment.c"],
        "segment_c",
        &[],
    );
    let cpp = compile(
        "g++",
        "-std=c++17",
        &["examples/cpp/segment.cpp"],
        "segment_cpp",
        &[],
    );

    let c_out = run(program(&c).arg(&s.weights).arg(&s.ppm));
    expect_success(&c_out, "C example");
    let cpp_out = run(program(&cpp).arg(&s.weights).arg(&s.ppm));
    expect_success(&cpp_out, "C++ example");
    let c_lines = report(&text(&c_out.stdout));
    let cpp_lines = report(&text(&cpp_out.stdout));

    let n = value(&c_lines, "instances:").expect("C: no `instances:` line");
    let tiled = value(&c_lines, "tiled instances:").expect("C: no `tiled instances:` line");
    assert!(c_lines.iter().any(|l| l == "image: 256x256"), "{c_lines:?}");
    assert!(
        c_lines.iter().any(|l| l.starts_with("progress: ")),
        "{c_lines:?}"
    );
    assert_eq!(
        c_lines.iter().filter(|l| l.starts_with("class ")).count(),
        4,
        "one line per non-background class: {c_lines:?}"
    );
    // Names and colours from the model (defaults of a 5-class model: CoNSeP's; "other" in
    // QuPath's colour for its class "Other").
    for prefix in [
        "class 1 (other, #ffc800): ",
        "class 2 (inflammatory, #00d200): ",
        "class 3 (epithelial, #ff8c00): ",
        "class 4 (spindle-shaped, #00c8ff): ",
    ] {
        assert!(
            c_lines.iter().any(|l| l.starts_with(prefix)),
            "no line `{prefix}...`: {c_lines:?}"
        );
    }
    eprintln!("C: {n} instances in one pass, {tiled} by tiles");

    // The C++ program prints the same, then its error and cancellation checks.
    let tail = cpp_lines.len().saturating_sub(2);
    assert_eq!(
        cpp_lines[tail..],
        ["missing weights: CSRA_IO_ERROR", "cancelled: after 2 tiles"],
        "{cpp_lines:?}"
    );
    assert_eq!(c_lines, cpp_lines[..tail], "C and C++ disagree");

    // `-` builds the same seed-42 model from C as Rust saved.
    let random = run(program(&c).arg("-").arg(&s.ppm));
    expect_success(&random, "C example with `-`");
    assert_eq!(
        report(&text(&random.stdout)),
        c_lines,
        "a seed-42 model from C differs from the one saved from Rust"
    );

    // Failures print the library's message and exit 1; bad usage exits 2.
    let missing = s.scratch.join("does-not-exist.safetensors");
    let out = run(program(&c).arg(&missing).arg(&s.ppm));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("status 3") && err.contains("does-not-exist.safetensors"),
        "{err}"
    );
    let out = run(program(&cpp).arg(&missing).arg(&s.ppm));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("CSRA_IO_ERROR"),
        "{}",
        text(&out.stderr)
    );
    let out = run(program(&c).arg("-"));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn abi_contract_under_asan_and_ubsan() {
    if skip() {
        return;
    }
    let s = setup();
    let bin = compile(
        "gcc",
        "-std=c11",
        &["tests/c/abi_test.c"],
        "abi_test",
        &[
            "-fsanitize=address,undefined",
            "-fno-omit-frame-pointer",
            "-fno-sanitize-recover=undefined",
            "-pthread",
            "-lm",
        ],
    );
    assert_asan_linked(&bin);
    let dir = s.scratch.join("abi");
    std::fs::create_dir_all(&dir).unwrap();
    // RUST_BACKTRACE=1 makes candle attach backtraces to its errors; messages must stay
    // one line regardless.
    let out = run(sanitized(&bin)
        .env("RUST_BACKTRACE", "1")
        .arg(&s.weights)
        .arg(&s.ppm)
        .arg(&dir));
    print!("{}", text(&out.stdout));
    assert_no_sanitizer_report(&out, "abi_test");
    assert!(
        text(&out.stdout).contains(" 0 failed"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn examples_are_clean_under_asan() {
    if skip() {
        return;
    }
    let s = setup();

    // Positive control: a model that is never freed must be reported, from inside the
    // Rust library; otherwise a clean run below would prove nothing.
    let probe_src = s.scratch.join("lsan_probe.c");
    std::fs::write(
        &probe_src,
        r#"#include <csranet.h>
#include <stdio.h>
static CsraModel *volatile sink;
static int make(void) {
  CsraModelConfig c;
  CsraModel *m = NULL;
  if (csra_model_config_default(NULL, &c) != CSRA_OK || csra_model_create(&c, &m) != CSRA_OK) {
    fprintf(stderr, "%s\n", csra_last_error_message());
    return 3;
  }
  sink = m;
  return 0;
}
int main(void) {
  int rc = make();
  sink = NULL; /* the model is forgotten, never freed */
  return rc;
}
"#,
    )
    .unwrap();
    let probe = compile(
        "gcc",
        "-std=c11",
        &[probe_src.to_str().unwrap()],
        "lsan_probe",
        ASAN,
    );
    assert_asan_linked(&probe);
    let out = run(&mut sanitized(&probe));
    let err = text(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("ERROR: LeakSanitizer: detected memory leaks")
            && (err.contains("csranet::ffi::model") || err.contains("csra_model_create")),
        "LeakSanitizer did not report a leaked model ({}):\n{err}",
        out.status
    );

    let c = compile(
        "gcc",
        "-std=c11",
        &["examples/c/segment.c"],
        "segment_c_asan",
        ASAN,
    );
    assert_asan_linked(&c);
    let out = run(sanitized(&c).arg(&s.weights).arg(&s.ppm));
    assert_no_sanitizer_report(&out, "C example under ASan");
    assert!(value(&report(&text(&out.stdout)), "instances:").is_some());

    // The C++ wrapper too: exceptions, the progress trampoline, the RAII handles.
    let cpp = compile(
        "g++",
        "-std=c++17",
        &["examples/cpp/segment.cpp"],
        "segment_cpp_asan",
        ASAN,
    );
    assert_asan_linked(&cpp);
    let out = run(sanitized(&cpp).arg(&s.weights).arg(&s.ppm));
    assert_no_sanitizer_report(&out, "C++ example under ASan");
}

#[test]
fn c_example_is_clean_under_valgrind() {
    if skip() {
        return;
    }
    if Command::new("valgrind").arg("--version").output().is_err() {
        eprintln!("valgrind is not installed: skipped");
        return;
    }
    let s = setup();
    let c = compile(
        "gcc",
        "-std=c11",
        &["examples/c/segment.c"],
        "segment_c_vg",
        &[],
    );
    let supp = s.root.join("tests/valgrind.supp");
    let out = run(program(Path::new("valgrind"))
        .args([
            "--error-exitcode=1",
            "--leak-check=full",
            "--show-leak-kinds=definite,possible",
            "--errors-for-leak-kinds=definite,possible",
        ])
        .arg(format!("--suppressions={}", supp.display()))
        .arg(&c)
        .arg(&s.weights)
        .arg(&s.crop_ppm));
    let err = text(&out.stderr);
    expect_success(&out, "C example under valgrind");
    assert!(err.contains("ERROR SUMMARY: 0 errors"), "{err}");
    let lines = report(&text(&out.stdout));
    assert!(lines.iter().any(|l| l == "image: 64x64"), "{lines:?}");
    assert!(value(&lines, "tiled instances:").is_some(), "{lines:?}");
}
