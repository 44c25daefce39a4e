//! The window and urgency experiment (issue 6 §4) with its plot: runs
//! [`ieschain::bench::window::run`] (the same as `ieschain bench --experiment window`),
//! prints the table, and writes the SVG plot and the Markdown table that `BENCHMARKS.md`
//! holds. Deterministic: the simulations run in virtual time from one seed, so the same
//! build gives the same figures.
//!
//! ```text
//! cargo run --example window_experiment                         # 120 virtual s per run
//! cargo run --example window_experiment -- --quick              # 20 virtual s per run
//! cargo run --example window_experiment -- --svg docs/window-experiment.svg
//! ```

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use ieschain::bench::window;

fn main() -> Result<()> {
    let mut quick = false;
    let mut svg = PathBuf::from("docs/window-experiment.svg");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--svg" => svg = args.next().context("--svg needs a file")?.into(),
            other => bail!("unknown argument {other}; try --quick or --svg FILE"),
        }
    }
    let result = window::run(quick)?;
    print!("{}", window::table(&result));
    println!();
    print!("{}", window::markdown(&result));
    if let Some(dir) = svg.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&svg, window::svg(&result)?)
        .with_context(|| format!("writing {}", svg.display()))?;
    println!("plot written to {}", svg.display());
    Ok(())
}
