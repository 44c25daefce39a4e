//! Stopping on a signal. The first SIGINT or SIGTERM asks the running command (`run`,
//! `simulate`, `bench`) to stop cleanly: it ends what it is doing, prints its summary,
//! writes its report and flushes its storage. A second one exits at once, with code 130.
//!
//! The handlers only note the signal (`signal-hook`'s iterator, async-signal-safe); one
//! thread reads them in order, so that a SIGINT and a SIGTERM arriving at once on two
//! threads still count as a first and a second. Two of the *same* signal that arrive
//! before that thread reads the first may merge into one (the kernel keeps one pending
//! signal of each kind): a second Ctrl-C a moment later is seen. The commands look at the
//! flag where they can stop without losing anything.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// The exit code of a command stopped by a signal before it finished (`simulate`, `bench`),
/// and of a second signal's forced exit: 128 + SIGINT, as shells report an interrupt.
pub const INTERRUPTED: u8 = 130;

/// Whether a stop was asked, shared with the signal handlers.
#[derive(Clone, Debug)]
pub struct StopSignal {
    flag: Arc<AtomicBool>,
}

static HANDLERS: OnceLock<Result<Arc<AtomicBool>, String>> = OnceLock::new();

impl StopSignal {
    /// Installs the handlers of SIGINT and SIGTERM (once per process) and starts with no
    /// stop asked. Fails only when the operating system refuses the handlers.
    pub fn install() -> Result<Self, String> {
        let flag = HANDLERS
            .get_or_init(|| {
                let flag = Arc::new(AtomicBool::new(false));
                let mut signals = signal_hook::iterator::Signals::new([
                    signal_hook::consts::SIGINT,
                    signal_hook::consts::SIGTERM,
                ])
                .map_err(|e| format!("installing the signal handlers: {e}"))?;
                let seen = flag.clone();
                std::thread::Builder::new()
                    .name("ieschain-signals".into())
                    .spawn(move || {
                        for _ in signals.forever() {
                            // The first asks for a stop; one after it exits at once.
                            if seen.swap(true, Ordering::SeqCst) {
                                signal_hook::low_level::exit(i32::from(INTERRUPTED));
                            }
                        }
                    })
                    .map_err(|e| format!("starting the signal thread: {e}"))?;
                Ok(flag)
            })
            .clone()?;
        flag.store(false, Ordering::SeqCst);
        Ok(StopSignal { flag })
    }

    /// A stop signal that no handler sets: for commands run where signals are not theirs.
    pub fn never() -> Self {
        StopSignal {
            flag: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether a stop was asked.
    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Waits, in a tokio runtime, until a stop is asked (it looks every 100 ms).
    pub async fn wait(&self) {
        while !self.requested() {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Asks for a stop, as a signal would.
    pub fn request(&self) {
        self.flag.store(true, Ordering::SeqCst);
    }
}

impl Default for StopSignal {
    fn default() -> Self {
        Self::never()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_seen_and_a_new_install_starts_clear() {
        let stop = StopSignal::install().unwrap();
        assert!(!stop.requested());
        stop.request();
        assert!(stop.requested());
        assert!(!StopSignal::install().unwrap().requested());
        assert!(!StopSignal::never().requested());
    }
}
