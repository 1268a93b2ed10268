//! `consort evm state-test`: one JSON line per case, then a summary.

use consort_evm::statetest::{collect_files, run_file, Filter};
use rayon::prelude::*;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// State test files or directories (searched recursively for .json files).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Only run this fork (as the tests name it: Berlin, London, Merge, Shanghai, Cancun, Prague).
    #[arg(long)]
    fork: Option<String>,
    /// Only run tests whose name contains this text.
    #[arg(long = "run", value_name = "TEXT")]
    name: Option<String>,
    /// Print only failing cases and the summary.
    #[arg(long)]
    quiet: bool,
}

pub fn run(args: Args) -> ExitCode {
    let files = match collect_files(&args.paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let filter = Filter {
        fork: args.fork,
        name: args.name,
    };
    let reports: Vec<_> = files
        .par_iter()
        .map(|f| (f, run_file(f, &filter)))
        .collect();
    let (mut passed, mut failed, mut skipped, mut broken) = (0usize, 0usize, 0usize, 0usize);
    for (file, report) in reports {
        match report {
            Ok(report) => {
                for case in &report.cases {
                    if case.pass {
                        passed += 1;
                    } else {
                        failed += 1;
                    }
                    if !args.quiet || !case.pass {
                        println!("{}", serde_json::to_string(case).unwrap_or_default());
                    }
                }
                for skip in &report.skipped {
                    skipped += 1;
                    if !args.quiet {
                        println!(
                            "{}",
                            serde_json::json!({ "name": skip.name, "fork": skip.fork, "skipped": skip.reason })
                        );
                    }
                }
            }
            Err(e) => {
                broken += 1;
                println!(
                    "{}",
                    serde_json::json!({ "file": file.display().to_string(), "pass": false, "error": e })
                );
            }
        }
    }
    eprintln!("state tests: {} files, {passed} passed, {failed} failed, {skipped} skipped, {broken} unreadable", files.len());
    if failed == 0 && broken == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
