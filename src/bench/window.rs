//! The window and urgency experiment (issue 6 §4): what the paper's window n and urgency bit
//! (SPEC §4.4, paper §2.2) cost and buy, measured.
//!
//! The paper claims, without numbers, that the urgency bit and the window keep delivery
//! efficient and reduce congestion. This experiment runs the built-in four-party federation
//! in the deterministic simulator ([`Simulation`]: virtual time, seeded workload, no
//! faults), with the same seed and workload every time, and varies two settings:
//! - the window n over 1, 2, 4, 6 and the largest the capacities allow (7 by default);
//! - urgency on (an urgent consortium block makes the relay send at once) and off (every
//!   block waits for the window: `timing.urgency = false`). Members still close their
//!   consortium block at an urgent record either way; only the relay's window ignores the
//!   bit.
//!
//! `max_wait` is none, the paper's exact window, and the relay term (`period`) outlasts the
//! run, so that nothing but n and the urgency bit cut relay blocks: a rotation would drain
//! the window. For
//! each configuration it reports the relay blocks broadcast, the bytes on the transport,
//! and urgent and non-urgent latency (p50 and p99, creation to arrival at the last relay,
//! [`Stats`]).
//!
//! [`run`] returns the results as JSON; [`table`] prints them and [`svg`] plots them.
//! `ieschain bench --experiment window` runs it; `BENCHMARKS.md` holds the figures.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use plotters::prelude::*;
use serde_json::{json, Value};

use crate::config::FederationConfig;
use crate::federation::Stats;
use crate::simulation::Simulation;

/// The seed of keys and workload, the same for every configuration.
pub const SEED: u64 = 1;

/// One configuration of the experiment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Setting {
    window: u32,
    urgency: bool,
}

/// Runs every configuration and returns the results: `{experiment, federation, seed,
/// virtual_s, max_wait, windows, runs: [{window, urgency, relay_blocks, urgent_flushes,
/// records_committed, records_per_relay_block, transport_bytes, transport_envelopes,
/// latency_ms: {urgent: {p50, p99, count}, normal: {…}}, invariants_broken}], wall_s}`.
///
/// `quick` simulates 20 virtual seconds per configuration instead of 120. The runs are
/// deterministic: the same build gives the same figures (`wall_s` aside). They run on as
/// many threads as there are cores, each simulation on its own paused-clock runtime.
pub fn run(quick: bool) -> anyhow::Result<Value> {
    let started = std::time::Instant::now();
    let base = experiment_config();
    base.check().map_err(|e| anyhow!("{e}"))?;
    let until_ms = if quick { 20_000 } else { 120_000 };
    let windows = windows(&base);
    let settings: Vec<Setting> = windows
        .iter()
        .flat_map(|&window| [true, false].map(|urgency| Setting { window, urgency }))
        .collect();

    let results: Mutex<Vec<Option<anyhow::Result<Value>>>> =
        Mutex::new(settings.iter().map(|_| None).collect());
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(settings.len());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(setting) = settings.get(i) else {
                    break;
                };
                let result = run_one(&base, *setting, until_ms);
                if let Ok(mut results) = results.lock() {
                    results[i] = Some(result);
                }
            });
        }
    });
    let runs = results
        .into_inner()
        .map_err(|_| anyhow!("a simulation thread panicked"))?
        .into_iter()
        .zip(&settings)
        .map(|(result, setting)| {
            result.ok_or_else(|| {
                anyhow!(
                    "window {} urgency {}: no result",
                    setting.window,
                    setting.urgency
                )
            })?
        })
        .collect::<anyhow::Result<Vec<Value>>>()?;

    Ok(json!({
        "experiment": "window",
        "federation": "four-party (built-in)",
        "seed": SEED,
        "virtual_s": until_ms as f64 / 1000.0,
        "max_wait": "none",
        "period_s": base.timing.period.as_secs(),
        "windows": windows,
        "runs": runs,
        "wall_s": round3(started.elapsed().as_secs_f64()),
    }))
}

/// The built-in four-party federation, with the paper's exact window (`max_wait` none) and
/// a relay term longer than the run, so that no rotation drains a window: only n and the
/// urgency bit cut relay blocks.
fn experiment_config() -> FederationConfig {
    let mut config = FederationConfig::four_party();
    config.timing.max_wait = None;
    config.timing.period = Duration::from_secs(3_600);
    config
}

/// 1, 2, 4, 6 and the largest window the capacities allow, in order, without repeats.
fn windows(config: &FederationConfig) -> Vec<u32> {
    let max = config.capacities().max_window();
    let mut windows: Vec<u32> = [1, 2, 4, 6, max]
        .into_iter()
        .filter(|&n| (1..=max).contains(&n))
        .collect();
    windows.sort_unstable();
    windows.dedup();
    windows
}

fn run_one(base: &FederationConfig, setting: Setting, until_ms: u64) -> anyhow::Result<Value> {
    let mut config = base.clone();
    config.timing.window = setting.window;
    config.timing.urgency = setting.urgency;
    let outcome = Simulation::new(config, SEED, until_ms)
        .run()
        .with_context(|| {
            format!(
                "window {} urgency {}",
                setting.window,
                on_off(setting.urgency)
            )
        })?;
    Ok(run_json(setting, &outcome.stats, &outcome.broken))
}

fn run_json(setting: Setting, stats: &Stats, broken: &[String]) -> Value {
    let per_block = if stats.relay_blocks == 0 {
        0.0
    } else {
        stats.records_committed as f64 / stats.relay_blocks as f64
    };
    let latency = |p: &crate::federation::Percentiles| json!({ "p50": p.p50, "p99": p.p99, "count": p.count });
    json!({
        "window": setting.window,
        "urgency": setting.urgency,
        "relay_blocks": stats.relay_blocks,
        "urgent_flushes": stats.urgent_flushes,
        "records_committed": stats.records_committed,
        "records_per_relay_block": round3(per_block),
        "transport_bytes": stats.transport.bytes,
        "transport_envelopes": stats.transport.delivered,
        "latency_ms": {
            "urgent": latency(&stats.urgent),
            "normal": latency(&stats.normal),
        },
        // With urgency off, urgent records wait for the window: the urgent-latency
        // invariant (L2) is expected to break, and says by how much.
        "invariants_broken": broken,
    })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn on_off(urgency: bool) -> &'static str {
    if urgency {
        "on"
    } else {
        "off"
    }
}

fn runs(result: &Value) -> &[Value] {
    result["runs"].as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn number(value: &Value) -> f64 {
    value.as_f64().unwrap_or(f64::NAN)
}

/// The results of [`run`] as a text table, one line per configuration.
pub fn table(result: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Window and urgency experiment: {}, seed {}, {} virtual s per run, max_wait {}, \
         no rotation (relay term {} s)",
        result["federation"].as_str().unwrap_or("?"),
        result["seed"],
        result["virtual_s"],
        result["max_wait"].as_str().unwrap_or("?"),
        result["period_s"],
    );
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_header([
            "window",
            "urgency",
            "relay blocks",
            "records/block",
            "transport MB",
            "urgent p50 ms",
            "urgent p99 ms",
            "normal p50 ms",
            "normal p99 ms",
        ]);
    for run in runs(result) {
        table.add_row(row(run));
    }
    for index in [0, 2, 3, 4, 5, 6, 7, 8] {
        if let Some(column) = table.column_mut(index) {
            column.set_cell_alignment(comfy_table::CellAlignment::Right);
        }
    }
    let _ = writeln!(out, "{table}");
    out
}

/// The table as Markdown, for `BENCHMARKS.md`.
pub fn markdown(result: &Value) -> String {
    crate::markdown::table(
        &[
            ("window n", true),
            ("urgency", false),
            ("relay blocks", true),
            ("records per relay block", true),
            ("transport MB", true),
            ("urgent p50 ms", true),
            ("urgent p99 ms", true),
            ("non-urgent p50 ms", true),
            ("non-urgent p99 ms", true),
        ],
        runs(result).iter().map(row),
    )
}

/// One configuration's cells, for both tables.
fn row(run: &Value) -> Vec<String> {
    let latency = &run["latency_ms"];
    vec![
        run["window"].as_u64().unwrap_or(0).to_string(),
        on_off(run["urgency"].as_bool().unwrap_or(true)).to_string(),
        run["relay_blocks"].as_u64().unwrap_or(0).to_string(),
        format!("{:.2}", number(&run["records_per_relay_block"])),
        format!("{:.3}", number(&run["transport_bytes"]) / 1e6),
        format!("{:.0}", number(&latency["urgent"]["p50"])),
        format!("{:.0}", number(&latency["urgent"]["p99"])),
        format!("{:.0}", number(&latency["normal"]["p50"])),
        format!("{:.0}", number(&latency["normal"]["p99"])),
    ]
}

/// One line of a panel: (label, urgency, dashed, the value of a run).
type Series = (&'static str, bool, bool, fn(&Value) -> f64);

/// One panel of the plot: a metric against the window n.
struct Panel {
    title: &'static str,
    series: Vec<Series>,
    /// Where the legend sits clear of the lines.
    legend: SeriesLabelPosition,
}

/// A latency panel: p99 and p50 (dashed), urgency on and off, with `p50` and `p99` the
/// values of a run.
fn latency_panel(title: &'static str, p50: fn(&Value) -> f64, p99: fn(&Value) -> f64) -> Panel {
    Panel {
        title,
        series: vec![
            ("p99, urgency on", true, false, p99),
            ("p50, urgency on", true, true, p50),
            ("p99, urgency off", false, false, p99),
            ("p50, urgency off", false, true, p50),
        ],
        legend: SeriesLabelPosition::UpperLeft,
    }
}

/// The results of [`run`] as an SVG plot, drawn with `plotters`: four panels against the
/// window n (relay blocks, transport bytes, urgent and non-urgent latency p50 and p99),
/// urgency on in blue and off in orange, p50 dashed.
pub fn svg(result: &Value) -> anyhow::Result<String> {
    let panels = [
        Panel {
            title: "Relay blocks broadcast",
            series: vec![
                ("urgency on", true, false, |r| number(&r["relay_blocks"])),
                ("urgency off", false, false, |r| number(&r["relay_blocks"])),
            ],
            legend: SeriesLabelPosition::MiddleRight,
        },
        Panel {
            title: "Bytes on the transport (MB)",
            series: vec![
                ("urgency on", true, false, |r| {
                    number(&r["transport_bytes"]) / 1e6
                }),
                ("urgency off", false, false, |r| {
                    number(&r["transport_bytes"]) / 1e6
                }),
            ],
            legend: SeriesLabelPosition::LowerRight,
        },
        latency_panel(
            "Urgent latency, creation to last relay (ms)",
            |r| number(&r["latency_ms"]["urgent"]["p50"]),
            |r| number(&r["latency_ms"]["urgent"]["p99"]),
        ),
        latency_panel(
            "Non-urgent latency, creation to last relay (ms)",
            |r| number(&r["latency_ms"]["normal"]["p50"]),
            |r| number(&r["latency_ms"]["normal"]["p99"]),
        ),
    ];
    let title = format!(
        "Window n and urgency: {}, seed {}, {} virtual s per run, max_wait {}, no rotation",
        result["federation"].as_str().unwrap_or("?"),
        result["seed"],
        result["virtual_s"],
        result["max_wait"].as_str().unwrap_or("?"),
    );
    let runs = runs(result);
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (960, 720)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let root = root
            .titled(&title, ("sans-serif", 17))
            .map_err(plot_error)?;
        for (panel, area) in panels.iter().zip(root.split_evenly((2, 2))) {
            draw_panel(&area, panel, runs)?;
        }
        root.present().map_err(plot_error)?;
    }
    Ok(out)
}

const BLUE: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const ORANGE: RGBColor = RGBColor(0xff, 0x7f, 0x0e);

fn plot_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing the window plot: {e}")
}

fn draw_panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    panel: &Panel,
    runs: &[Value],
) -> anyhow::Result<()> {
    let windows: Vec<f64> = runs.iter().map(|r| number(&r["window"])).collect();
    let x_max = windows.iter().copied().fold(1.0, f64::max);
    let x_min = windows.iter().copied().fold(x_max, f64::min);
    let v_max = panel
        .series
        .iter()
        .flat_map(|(_, _, _, f)| runs.iter().map(f))
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let y_max = (v_max * 1.1).max(1e-9);
    let x_range = if x_max > x_min {
        x_min - 0.25..x_max + 0.25
    } else {
        x_min - 1.0..x_max + 1.0
    };
    let mut chart = ChartBuilder::on(area)
        .caption(panel.title, ("sans-serif", 14))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(x_range, 0.0..y_max)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("window n")
        .x_labels(windows.len().max(2))
        .x_label_formatter(&|x| tick_label(*x))
        .y_label_formatter(&|y| tick_label(*y))
        .draw()
        .map_err(plot_error)?;
    for &(label, urgency, dashed, value) in &panel.series {
        let points: Vec<(f64, f64)> = runs
            .iter()
            .filter(|r| r["urgency"].as_bool() == Some(urgency))
            .map(|r| (number(&r["window"]), value(r)))
            .filter(|(_, v)| v.is_finite())
            .collect();
        let colour = if urgency { BLUE } else { ORANGE };
        let style = colour.stroke_width(2);
        let drawn = if dashed {
            chart.draw_series(DashedLineSeries::new(points.clone(), 6, 4, style))
        } else {
            chart.draw_series(LineSeries::new(points.clone(), style))
        }
        .map_err(plot_error)?;
        // Two strokes per legend key: joined for a solid line, apart for a dashed one.
        let gap = if dashed { 5 } else { 0 };
        drawn.label(label).legend(move |(x, y)| {
            EmptyElement::at((x, y))
                + PathElement::new(vec![(0, 0), (8, 0)], colour.stroke_width(2))
                + PathElement::new(vec![(8 + gap, 0), (20, 0)], colour.stroke_width(2))
        });
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))
            .map_err(plot_error)?;
    }
    chart
        .configure_series_labels()
        .position(panel.legend.clone())
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)?;
    Ok(())
}

fn tick_label(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 10.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_the_papers_and_the_largest() {
        assert_eq!(windows(&experiment_config()), [1, 2, 4, 6, 7]);
    }

    /// `timing.urgency` reaches the relay's window; while on (the default) it stays out
    /// of the canonical bytes, so existing configurations keep their hash.
    #[test]
    fn the_urgency_switch_reaches_the_window() {
        let on = FederationConfig::four_party();
        let off = FederationConfig::from_toml_str(
            &crate::config::FOUR_PARTY_TOML.replace("urgency = true", "urgency = false"),
            "test",
        )
        .unwrap();
        assert!(on.window_config().urgency);
        assert!(!off.window_config().urgency);
        let canonical = String::from_utf8(on.canonical_bytes().unwrap()).unwrap();
        assert!(!canonical.contains("urgency"));
        assert_ne!(on.config_hash().unwrap(), off.config_hash().unwrap());
    }

    /// The plot draws every panel, both urgency settings and the legend, as SVG text.
    #[test]
    fn the_plot_has_every_panel_and_series() {
        let run = |window: u32, urgency: bool| {
            let scale = if urgency { 1.0 } else { 2.0 };
            json!({
                "window": window,
                "urgency": urgency,
                "relay_blocks": 100.0 / f64::from(window),
                "transport_bytes": 2.0e6 * scale,
                "latency_ms": {
                    "urgent": {"p50": 3.0 * scale, "p99": 9.0 * scale},
                    "normal": {"p50": 40.0 * f64::from(window), "p99": 90.0 * f64::from(window)},
                },
            })
        };
        let result = json!({
            "federation": "four-party <test>",
            "seed": 1,
            "virtual_s": 20,
            "max_wait": "none",
            "runs": [run(1, true), run(1, false), run(4, true), run(4, false)],
        });
        let svg = svg(&result).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        assert!(svg.trim_end().ends_with("</svg>"));
        for text in [
            "Relay blocks broadcast",
            "Bytes on the transport (MB)",
            "Urgent latency, creation to last relay (ms)",
            "Non-urgent latency, creation to last relay (ms)",
            "window n",
            "p50, urgency off",
            "four-party &lt;test&gt;",
        ] {
            assert!(svg.contains(text), "the plot lacks {text:?}");
        }
        assert!(svg.matches("<circle").count() >= 4 * 4, "one dot per point");
    }
}
