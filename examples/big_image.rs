//! Peak memory of `csra_segment_image` on large images (issue 8, resource limits).
//!
//!     cargo run --release --example big_image -- [SIZES] [--tile N] [--batch N] [--max-tiles N]
//!
//! SIZES is a comma-separated list of square sides (default 2048,4096,8192);
//! `--max-tiles N` cancels each run after N tiles through the progress callback (a bounded
//! look at an image too slow to finish: the peak then covers the tiles done). Each size runs
//! in a fresh child process (the peak RSS, `VmHWM` of /proc/self/status, is per process) on a
//! synthetic H&E image: the fixture tile `tests/fixtures/tiles/patch1.png` mirrored across
//! the whole canvas. The model is the bundled default (or a random `lite` model in a build
//! without it), probabilities off (`keep_probabilities = 0`), as the header advises for big
//! images. One table row per size:
//!
//! - image: the caller's RGB8 buffer (3 B/pixel); output maps: the class map and the label
//!   map the result holds (1 + 4 B/pixel);
//! - before: RSS once the model and the image exist; peak: the high-water mark after the
//!   segmentation; beyond output: peak - before - output maps, the memory the tiling itself
//!   needs (it should not grow with the image).
use csranet::ffi::model::{
    csra_model_config_default, csra_model_create, csra_model_create_default,
};
use csranet::ffi::segmentation::*;
use csranet::ffi::{csra_last_error_message, CsraStatus};
use std::ffi::{c_void, CStr};
use std::process::Command;
use std::time::Instant;

fn status_kib(key: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| {
            l.strip_prefix(key)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn last_error() -> String {
    unsafe { CStr::from_ptr(csra_last_error_message()) }
        .to_string_lossy()
        .into_owned()
}

struct Progress {
    started: Instant,
    last_percent: u32,
    /// Cancel once this many tiles are done (0: never).
    max_tiles: u32,
    /// Highest RSS seen in the callback, KiB (a cancelled run frees its maps before returning).
    rss_kib: u64,
    /// Tiles in the image.
    total: u32,
}

unsafe extern "C" fn progress(user: *mut c_void, done: u32, total: u32) -> i32 {
    let p = &mut *(user as *mut Progress);
    p.rss_kib = p.rss_kib.max(status_kib("VmRSS:"));
    p.total = total;
    let percent = done * 100 / total.max(1);
    if percent >= p.last_percent + 10 || done == total {
        p.last_percent = percent;
        eprintln!(
            "  {done}/{total} tiles, {:.0} s, RSS {:.0} MiB",
            p.started.elapsed().as_secs_f64(),
            mib(status_kib("VmRSS:"))
        );
    }
    (p.max_tiles != 0 && done >= p.max_tiles) as i32
}

/// The fixture tile mirrored over a `side` x `side` RGB8 canvas.
fn synthetic(side: usize) -> Vec<u8> {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let tile = image::open(root.join("tests/fixtures/tiles/patch1.png"))
        .expect("fixture tile")
        .to_rgb8();
    let (tw, th) = (tile.width() as usize, tile.height() as usize);
    let src = tile.as_raw();
    let mirror = |v: usize, n: usize| {
        let k = v % (2 * n);
        if k < n {
            k
        } else {
            2 * n - 1 - k
        }
    };
    let mut out = vec![0u8; side * side * 3];
    for (y, row) in out.chunks_mut(side * 3).enumerate() {
        let sy = mirror(y, th);
        for x in 0..side {
            let sx = mirror(x, tw);
            row[x * 3..x * 3 + 3].copy_from_slice(&src[(sy * tw + sx) * 3..(sy * tw + sx) * 3 + 3]);
        }
    }
    out
}

fn one(side: usize, tile: u32, batch: u32, max_tiles: u32) {
    let mut model = std::ptr::null_mut();
    let which = unsafe {
        if csra_model_create_default(&mut model) == CsraStatus::CSRA_OK {
            "bundled"
        } else {
            let mut c = std::mem::zeroed();
            assert_eq!(
                csra_model_config_default(std::ptr::null(), &mut c),
                CsraStatus::CSRA_OK
            );
            assert_eq!(
                csra_model_create(&c, &mut model),
                CsraStatus::CSRA_OK,
                "{}",
                last_error()
            );
            "random lite"
        }
    };
    let pixels = synthetic(side);
    let img = CsraImage {
        data: pixels.as_ptr(),
        len: pixels.len(),
        width: side as u32,
        height: side as u32,
        stride: side * 3,
        format: CsraPixelFormat::CSRA_PIXEL_RGB8 as u32,
    };
    let mut o: CsraSegmentOptions = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe { csra_segment_options_default(&mut o) },
        CsraStatus::CSRA_OK
    );
    o.tile_size = tile;
    o.batch_size = batch;
    o.keep_probabilities = 0;
    let before = status_kib("VmRSS:");
    let started = Instant::now();
    let mut p = Progress {
        started,
        last_percent: 0,
        max_tiles,
        rss_kib: 0,
        total: 0,
    };
    let mut seg = std::ptr::null_mut();
    let st = unsafe {
        csra_segment_image(
            model,
            &img,
            &o,
            Some(progress),
            &mut p as *mut Progress as *mut c_void,
            &mut seg,
        )
    };
    let secs = started.elapsed().as_secs_f64();
    let peak = status_kib("VmHWM:");
    let mut n = 0;
    let done = if st == CsraStatus::CSRA_CANCELLED && max_tiles != 0 {
        format!(
            " (cancelled after {max_tiles} tiles; RSS then {:.0} MiB)",
            mib(p.rss_kib)
        )
    } else {
        assert_eq!(st, CsraStatus::CSRA_OK, "{}", last_error());
        assert_eq!(
            unsafe { csra_segmentation_num_instances(seg, &mut n) },
            CsraStatus::CSRA_OK
        );
        String::new()
    };
    let px = (side * side) as u64;
    let image_kib = px * 3 / 1024;
    let mut maps_kib = px * 5 / 1024;
    if !done.is_empty() {
        // Only the rows of tiles done have been written (the maps are zero pages until then).
        maps_kib = maps_kib * max_tiles as u64 / p.total.max(1) as u64;
    }
    println!(
        "| {side}x{side}{done} | {which} | {tile}/{batch} | {secs:.0} | {n} | {:.0} | {:.0} | {:.0} | {:.0} | {}{:.0} |",
        mib(image_kib),
        mib(px * 5 / 1024),
        mib(before),
        mib(peak),
        if done.is_empty() { "" } else { "~" },
        mib(peak.saturating_sub(before).saturating_sub(maps_kib)),
    );
    unsafe {
        csra_segmentation_free(seg);
        csranet::ffi::model::csra_model_free(model);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str, default: u32| -> u32 {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(|v| v.parse().expect("a number"))
            .unwrap_or(default)
    };
    let tile = flag("--tile", 512);
    let batch = flag("--batch", 2);
    let max_tiles = flag("--max-tiles", 0);
    if let Some(i) = args.iter().position(|a| a == "--one") {
        one(args[i + 1].parse().expect("a side"), tile, batch, max_tiles);
        return;
    }
    let sizes = args
        .iter()
        .find(|a| a.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .cloned()
        .unwrap_or_else(|| "2048,4096,8192".into());
    println!(
        "| image | model | tile/batch | seconds | instances | image MiB | output maps MiB | RSS before MiB | peak RSS MiB | peak beyond image, model and output maps MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for s in sizes.split(',') {
        let st = Command::new(std::env::current_exe().unwrap())
            .args([
                "--one",
                s,
                "--tile",
                &tile.to_string(),
                "--batch",
                &batch.to_string(),
                "--max-tiles",
                &max_tiles.to_string(),
            ])
            .status()
            .expect("child");
        assert!(st.success(), "size {s} failed");
    }
}
