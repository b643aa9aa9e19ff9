//! `csranet`: nucleus segmentation from the command line.
//!
//! - `csranet segment IMAGE...`: QuPath GeoJSON, overlay PNG and a per-class table per image;
//! - `csranet eval --data DIR`: pixel and instance metrics on an annotated dataset;
//! - `csranet bench`: forward-pass and `segment_image` throughput of a model on this computer;
//! - `csranet train --data DIR`: a training run with checkpoints and a final evaluation;
//! - `csranet convert --weights W --out F [--f16]`: rewrite a weights file.
//!
//! Errors are printed as one `error: ...` line on stderr with exit status 1 (2 for bad
//! command-line usage); tables go to stdout, progress and warnings to stderr.

mod cli;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// CSRA-Net nucleus segmentation for H&E images.
#[derive(Parser, Debug)]
#[command(name = "csranet", version, about, long_about = None)]
#[command(after_help = "Run `csranet <COMMAND> --help` for the options of each command.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Segment nuclei in images: QuPath GeoJSON, overlay PNG and a per-class table.
    Segment(cli::segment::SegmentArgs),
    /// Evaluate on an annotated dataset: pixel and instance metrics (PQ, bPQ, mPQ, AJI, ...).
    Eval(cli::eval::EvalArgs),
    /// Time forward passes (tiles/s) and segment_image (MP/s) of a model on this computer.
    Bench(cli::bench::BenchArgs),
    /// Train a model (supervised, FixMatch, UniMatch or CSRA-Net) on a CoNSeP-style dataset.
    Train(cli::train::TrainArgs),
    /// Rewrite a weights file: f16 storage, or a configuration for a file that has none.
    Convert(cli::convert::ConvertArgs),
}

fn main() -> ExitCode {
    // Error messages are for users: keep library errors (candle's `bail!`) free of backtraces even
    // when RUST_BACKTRACE is set (panics still honour it). Set before any thread starts.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    let args = Cli::parse();
    let result = std::panic::catch_unwind(|| match args.command {
        Command::Segment(a) => cli::segment::run(a),
        Command::Eval(a) => cli::eval::run(a),
        Command::Bench(a) => cli::bench::run(a),
        Command::Train(a) => cli::train::run(a),
        Command::Convert(a) => cli::convert::run(a),
    });
    match result {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            // The panic message has already been printed by the panic hook.
            eprintln!("error: internal error (a bug in csranet; please report it)");
            ExitCode::from(101)
        }
    }
}
