//! Progress of `run`, `simulate` and `bench`: an `indicatif` bar on a terminal, plain
//! lines on standard output otherwise (at most one every [`PLAIN_EVERY`], and at the end),
//! so that logs and CI output stay readable.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a plain progress line is printed when not on a terminal.
pub const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// A progress display of `len` units (ms of a run, virtual ms of a simulation, steps of a
/// bench).
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    last_plain: Mutex<Option<Instant>>,
}

impl Progress {
    /// A progress of `len` units, `unit` naming them in the bar (`s`, `virtual s`, `steps`).
    pub fn new(len: u64, unit: &str) -> Self {
        Self::with_target(len, unit, std::io::stderr().is_terminal())
    }

    fn with_target(len: u64, unit: &str, terminal: bool) -> Self {
        let bar = terminal.then(|| {
            let template = match unit {
                "steps" => "{elapsed:>4} [{bar:30}] {pos}/{len} {msg}".to_string(),
                _ => format!("{{elapsed:>4}} [{{bar:30}}] {{percent:>3}}% of the {unit} {{msg}}"),
            };
            let style = ProgressStyle::with_template(&template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr()).with_style(style)
        });
        Progress {
            bar,
            started: Instant::now(),
            last_plain: Mutex::new(None),
        }
    }

    /// Whether a bar is drawn (standard error is a terminal).
    pub fn is_bar(&self) -> bool {
        self.bar.is_some()
    }

    /// Moves to `position` and shows `message`: on the bar, or as a plain line with the
    /// wall time when [`PLAIN_EVERY`] has passed since the last one (or `force`).
    pub fn update(&self, position: u64, message: impl FnOnce() -> String, force: bool) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(position);
                bar.set_message(message());
            }
            None => {
                let Ok(mut last) = self.last_plain.lock() else {
                    return;
                };
                if force || last.is_none_or(|t| t.elapsed() >= PLAIN_EVERY) {
                    *last = Some(Instant::now());
                    println!(
                        "{:>6.1}s  {}",
                        self.started.elapsed().as_secs_f64(),
                        message()
                    );
                }
            }
        }
    }

    /// Starts step `done + 1`, named `message`, with `done` steps behind it: on the bar, or
    /// as a plain line (every step is printed: steps are few and long).
    pub fn step(&self, done: u64, message: &str) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(done);
                bar.set_message(message.to_string());
            }
            None => println!("{:>6.1}s  {message}", self.started.elapsed().as_secs_f64()),
        }
    }

    /// Removes the bar (plain lines stay).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    /// A bar left behind by an early return (an error, a stop) is cleared too.
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_are_throttled_but_forced_ones_print() {
        let progress = Progress::with_target(100, "s", false);
        assert!(!progress.is_bar());
        let mut shown = 0;
        for i in 0..100 {
            progress.update(
                i,
                || {
                    shown += 1;
                    String::new()
                },
                false,
            );
        }
        assert_eq!(shown, 1, "one line in the first five seconds");
        progress.update(
            100,
            || {
                shown += 1;
                String::new()
            },
            true,
        );
        assert_eq!(shown, 2);
    }
}
