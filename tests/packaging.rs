//! Installing csranet for C and C++ hosts (README, "Installing for C and C++ hosts").
//!
//! `tools/install.sh --no-build --strip --profile-dir <this run's library>` installs into a
//! scratch prefix; the test checks the layout (SONAME `libcsranet.so.<major>`, the
//! `libcsranet.so` link, headers, pkg-config and CMake files), then builds against that prefix
//! only:
//! - `examples/c` and `examples/cpp` with CMake (`find_package(csranet <major>.<minor>)`,
//!   `csranet::csranet`), found at run time through CMake's build run path;
//! - `examples/c` with CMake and `csranet::csranet_static` (no libcsranet.so needed);
//! - `examples/c/segment.c` with `pkg-config --cflags --libs csranet` (run with
//!   `LD_LIBRARY_PATH`) and statically with the archive plus `Libs.private`.
//!
//! It runs them all: they print the same report (a seed-42 `lite` model on a 160x160 crop of
//! `tests/fixtures/tiles/patch1.png`). The CMake version file accepts this version and
//! older ones of the same major version, and refuses newer ones and other major versions.
//!
//! Needs `cmake`, `pkg-config`, `cc`, `c++`, `readelf` and `strip`: without them the test fails
//! (it does not skip); `.ci/run` installs cmake and pkg-config.
#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Instant;

/// What every test shares: the installed prefix and the reference report.
struct Setup {
    root: PathBuf,
    scratch: PathBuf,
    prefix: PathBuf,
    ppm: PathBuf,
    /// The report of `segment.c` built with pkg-config against the shared library.
    reference: Vec<String>,
}

const TOOLS: &[(&str, &str)] = &[
    ("cmake", "apt-get install cmake"),
    ("pkg-config", "apt-get install pkg-config"),
    ("cc", "apt-get install gcc"),
    ("c++", "apt-get install g++"),
    ("readelf", "apt-get install binutils"),
    ("strip", "apt-get install binutils"),
];

fn soname() -> String {
    format!("libcsranet.so.{}", env!("CARGO_PKG_VERSION_MAJOR"))
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let t = Instant::now();
        let missing: Vec<String> = TOOLS
            .iter()
            .filter(|(tool, _)| !on_path(tool))
            .map(|(tool, how)| format!("{tool} ({how})"))
            .collect();
        assert!(
            missing.is_empty(),
            "the packaging test needs these tools on PATH: {}",
            missing.join(", ")
        );

        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        // One scratch directory per test process; those of finished processes are removed.
        if let Ok(entries) = std::fs::read_dir(&tmp) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix("packaging-") {
                    if !Path::new("/proc").join(pid).exists() {
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                }
            }
        }
        let scratch = tmp.join(format!("packaging-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch).unwrap();

        let prefix = scratch.join("prefix");
        let lib_dir = find_lib_dir();
        let out = run(Command::new("bash")
            .current_dir(&root)
            .env_remove("DESTDIR")
            .env_remove("CSRANET_PROFILE_DIR")
            .arg("tools/install.sh")
            .arg("--no-build")
            .arg("--strip")
            .arg("--profile-dir")
            .arg(&lib_dir)
            .arg(&prefix));
        expect_success(&out, "tools/install.sh --no-build");

        let rgb = image::open(root.join("tests/fixtures/tiles/patch1.png"))
            .expect("fixture tile")
            .to_rgb8();
        let crop = image::imageops::crop_imm(&rgb, 0, 0, 160, 160).to_image();
        let ppm = scratch.join("patch1_160.ppm");
        let mut bytes = format!("P6\n{} {}\n255\n", crop.width(), crop.height()).into_bytes();
        bytes.extend_from_slice(crop.as_raw());
        std::fs::write(&ppm, bytes).unwrap();

        // The reference: segment.c through pkg-config, against the shared library.
        let flags = pkg_config(&prefix, &["--cflags", "--libs", "csranet"]);
        let bin = scratch.join("segment_pkgconfig");
        let out = run(Command::new("cc")
            .current_dir(&root)
            .args(["-std=c11", "-Wall", "-Wextra", "-Werror"])
            .arg("examples/c/segment.c")
            .args(flags.split_whitespace())
            .arg("-o")
            .arg(&bin));
        expect_success(
            &out,
            "cc examples/c/segment.c $(pkg-config --cflags --libs csranet)",
        );
        assert_eq!(
            needed(&bin),
            [soname()],
            "the pkg-config build should need only {}",
            soname()
        );
        let lib = prefix.join("lib");
        let out = run(Command::new(&bin)
            .env("LD_LIBRARY_PATH", &lib)
            .arg("-")
            .arg(&ppm));
        expect_success(&out, "segment (pkg-config build)");
        let reference = lines(&out);
        check_report(&reference);
        eprintln!(
            "setup: installed into {} ({:.1}s)",
            prefix.display(),
            t.elapsed().as_secs_f64()
        );
        Setup {
            root,
            scratch,
            prefix,
            ppm,
            reference,
        }
    })
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            let file = dir.join(tool);
            file.is_file()
                && std::fs::metadata(&file)
                    .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
                    .unwrap_or(false)
        })
    })
}

/// The directory of the library cargo built with this test (see `tests/c_api.rs`): integration
/// tests live in `target/<profile>/deps`, where cargo writes `libcsranet.{so,a}` first.
fn find_lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap().to_path_buf();
    [deps.clone(), deps.join("..")]
        .into_iter()
        .find(|d| d.join("libcsranet.so").is_file() && d.join("libcsranet.a").is_file())
        .map(|d| d.canonicalize().unwrap())
        .unwrap_or_else(|| {
            panic!(
                "no libcsranet.so and .a in {} or its parent",
                deps.display()
            )
        })
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

fn lines(out: &Output) -> Vec<String> {
    text(&out.stdout).lines().map(str::to_owned).collect()
}

/// The report of `segment.c`: version, image size, counts and progress.
fn check_report(lines: &[String]) {
    assert_eq!(
        lines.first().map(String::as_str),
        Some(concat!("csranet ", env!("CARGO_PKG_VERSION"))),
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l == "image: 160x160"), "{lines:?}");
    for key in ["instances: ", "tiled instances: ", "progress: "] {
        assert!(
            lines.iter().any(|l| l.starts_with(key)),
            "no {key:?}: {lines:?}"
        );
    }
}

/// `pkg-config ARGS` with only the scratch prefix's pkgconfig directory added.
fn pkg_config(prefix: &Path, args: &[&str]) -> String {
    let out = run(Command::new("pkg-config")
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
        .args(args));
    expect_success(&out, &format!("pkg-config {args:?}"));
    text(&out.stdout).trim().to_owned()
}

/// The DT_NEEDED entries of an ELF file that name csranet.
fn needed(file: &Path) -> Vec<String> {
    dynamic_entries(file, "NEEDED")
        .into_iter()
        .filter(|n| n.contains("csranet"))
        .collect()
}

/// The values of one tag (`NEEDED`, `SONAME`) in an ELF file's dynamic section.
fn dynamic_entries(file: &Path, tag: &str) -> Vec<String> {
    let out = run(Command::new("readelf").arg("-d").arg(file));
    expect_success(&out, "readelf -d");
    text(&out.stdout)
        .lines()
        .filter(|l| l.contains(&format!("({tag})")))
        .filter_map(|l| Some(l[l.find('[')? + 1..l.rfind(']')?].to_owned()))
        .collect()
}

/// Configures and builds `source_dir` with CMake against the scratch prefix; returns the
/// `segment` executable.
fn cmake_build(source_dir: &str, name: &str, extra: &[&str]) -> PathBuf {
    let s = setup();
    let build = s.scratch.join(name);
    let _ = std::fs::remove_dir_all(&build);
    let out = run(Command::new("cmake")
        .current_dir(&s.root)
        .env_remove("CMAKE_PREFIX_PATH")
        .arg("-S")
        .arg(source_dir)
        .arg("-B")
        .arg(&build)
        .arg(format!("-DCMAKE_PREFIX_PATH={}", s.prefix.display()))
        .args([
            "-DCMAKE_BUILD_TYPE=Debug",
            "-DCMAKE_C_FLAGS=-Wall -Wextra -Werror",
            "-DCMAKE_CXX_FLAGS=-Wall -Wextra -Werror",
        ])
        .args(extra));
    expect_success(&out, &format!("cmake -S {source_dir}"));
    let config = text(&out.stdout);
    assert!(
        !config.contains("CMake Warning"),
        "CMake warned:\n{config}\n{}",
        text(&out.stderr)
    );
    let out = run(Command::new("cmake").arg("--build").arg(&build));
    expect_success(&out, &format!("cmake --build ({source_dir})"));
    let bin = build.join("segment");
    assert!(bin.is_file(), "{} was not built", bin.display());
    bin
}

/// Runs an example with the library found through its run path alone.
fn run_example(bin: &Path) -> Vec<String> {
    let s = setup();
    let out = run(Command::new(bin)
        .env_remove("LD_LIBRARY_PATH")
        .arg("-")
        .arg(&s.ppm));
    expect_success(&out, &bin.display().to_string());
    lines(&out)
}

/// With the shared library: the executable needs the SONAME and loads it from the prefix.
fn assert_loads_installed(bin: &Path) {
    let s = setup();
    assert_eq!(needed(bin), [soname()], "{}", bin.display());
    let out = run(Command::new("ldd").env_remove("LD_LIBRARY_PATH").arg(bin));
    expect_success(&out, "ldd");
    let want = format!(
        "{} => {}",
        soname(),
        s.prefix.join("lib").join(soname()).display()
    );
    assert!(
        text(&out.stdout).contains(&want),
        "{} does not load the installed library ({want}):\n{}",
        bin.display(),
        text(&out.stdout)
    );
}

#[test]
fn installed_layout() {
    let s = setup();
    let lib = s.prefix.join("lib");
    for f in [
        lib.join(soname()),
        lib.join("libcsranet.a"),
        s.prefix.join("include/csranet.h"),
        s.prefix.join("include/csranet.hpp"),
        lib.join("pkgconfig/csranet.pc"),
        lib.join("cmake/csranet/csranetConfig.cmake"),
        lib.join("cmake/csranet/csranetConfigVersion.cmake"),
    ] {
        assert!(f.is_file(), "{} is missing", f.display());
    }
    let link = lib.join("libcsranet.so");
    assert_eq!(
        std::fs::read_link(&link).unwrap_or_else(|e| panic!("{}: {e}", link.display())),
        PathBuf::from(soname())
    );
    assert_eq!(dynamic_entries(&lib.join(soname()), "SONAME"), [soname()]);
    // The headers are the repository's.
    for (installed, source) in [
        ("include/csranet.h", "include/csranet.h"),
        ("include/csranet.hpp", "bindings/cpp/csranet.hpp"),
    ] {
        assert_eq!(
            std::fs::read(s.prefix.join(installed)).unwrap(),
            std::fs::read(s.root.join(source)).unwrap(),
            "{installed}"
        );
    }

    assert_eq!(
        pkg_config(&s.prefix, &["--modversion", "csranet"]),
        env!("CARGO_PKG_VERSION")
    );
    let libs = pkg_config(&s.prefix, &["--libs", "csranet"]);
    assert_eq!(
        libs,
        format!("-L{} -lcsranet", lib.display()),
        "pkg-config --libs"
    );
    let static_libs = pkg_config(&s.prefix, &["--static", "--libs", "csranet"]);
    for flag in ["-lcsranet", "-lpthread", "-lm", "-ldl"] {
        assert!(
            static_libs.split_whitespace().any(|f| f == flag),
            "pkg-config --static --libs lacks {flag}: {static_libs}"
        );
    }
}

#[test]
fn pkg_config_static_link() {
    let s = setup();
    let libdir = pkg_config(&s.prefix, &["--variable=libdir", "csranet"]);
    let system = pkg_config(&s.prefix, &["--variable=native_static_libs", "csranet"]);
    let cflags = pkg_config(&s.prefix, &["--cflags", "csranet"]);
    let bin = s.scratch.join("segment_pkgconfig_static");
    let out = run(Command::new("cc")
        .current_dir(&s.root)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror"])
        .args(cflags.split_whitespace())
        .arg("examples/c/segment.c")
        .arg(Path::new(&libdir).join("libcsranet.a"))
        .args(system.split_whitespace())
        .arg("-o")
        .arg(&bin));
    expect_success(&out, "cc segment.c libcsranet.a $native_static_libs");
    assert!(needed(&bin).is_empty(), "{:?}", needed(&bin));
    assert_eq!(run_example(&bin), s.reference);
}

#[test]
fn cmake_c_shared() {
    let s = setup();
    let bin = cmake_build("examples/c", "cmake-c-shared", &[]);
    assert_loads_installed(&bin);
    assert_eq!(run_example(&bin), s.reference);
}

#[test]
fn cmake_c_static() {
    let s = setup();
    let bin = cmake_build("examples/c", "cmake-c-static", &["-DCSRANET_STATIC=ON"]);
    assert!(needed(&bin).is_empty(), "{:?}", needed(&bin));
    assert_eq!(run_example(&bin), s.reference);
}

#[test]
fn cmake_cpp_shared() {
    let s = setup();
    let bin = cmake_build("examples/cpp", "cmake-cpp-shared", &[]);
    assert_loads_installed(&bin);
    let lines = run_example(&bin);
    // The C++ example prints the C report, then its error and cancellation checks.
    let tail = lines.len().saturating_sub(2);
    assert!(
        lines[tail..][0] == "missing weights: CSRA_IO_ERROR"
            && lines[tail + 1].starts_with("cancelled: after "),
        "{lines:?}"
    );
    assert_eq!(lines[..tail], s.reference, "C and C++ disagree");
}

/// `find_package(csranet VERSION)` against the installed version file.
#[test]
fn cmake_version_check() {
    let s = setup();
    let major: u32 = env!("CARGO_PKG_VERSION_MAJOR").parse().unwrap();
    let minor: u32 = env!("CARGO_PKG_VERSION_MINOR").parse().unwrap();
    let cases = [
        (format!("{major}.{minor}"), true),
        (format!("{major}"), true),
        (String::new(), true),
        (format!("{} EXACT", env!("CARGO_PKG_VERSION")), true),
        (format!("{major}.{}", minor + 1), false),
        (format!("{}.0", major + 1), false),
    ];
    for (i, (request, ok)) in cases.iter().enumerate() {
        let dir = s.scratch.join(format!("version-{i}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("CMakeLists.txt"),
            format!(
                "cmake_minimum_required(VERSION 3.16)\nproject(v LANGUAGES NONE)\n\
                 find_package(csranet {request} REQUIRED)\n\
                 if(NOT TARGET csranet::csranet OR NOT TARGET csranet::csranet_static)\n  \
                 message(FATAL_ERROR \"targets missing\")\nendif()\n\
                 message(STATUS \"csranet_VERSION=${{csranet_VERSION}}\")\n"
            ),
        )
        .unwrap();
        let out = run(Command::new("cmake")
            .env_remove("CMAKE_PREFIX_PATH")
            .arg("-S")
            .arg(&dir)
            .arg("-B")
            .arg(dir.join("build"))
            .arg(format!("-DCMAKE_PREFIX_PATH={}", s.prefix.display())));
        assert_eq!(
            out.status.success(),
            *ok,
            "find_package(csranet {request})\n{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        if *ok {
            assert!(
                text(&out.stdout)
                    .contains(&format!("csranet_VERSION={}", env!("CARGO_PKG_VERSION"))),
                "{}",
                text(&out.stdout)
            );
        }
    }
}
