//! Progress bars (indicatif) and Ctrl-C: the first Ctrl-C asks the running job to stop cleanly
//! (nothing half-written is kept); a second one exits at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use borderlens_app::Progress;
use indicatif::{ProgressBar, ProgressStyle};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub fn install_interrupt_handler() {
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nborderlens: stopping (press Ctrl-C again to quit at once)");
    });
}

/// Bars on stderr; hidden with `--json` or when stderr is not a terminal.
pub struct Bars {
    visible: bool,
    bar: Mutex<Option<ProgressBar>>,
}

impl Bars {
    pub fn new(visible: bool) -> Bars {
        Bars {
            visible,
            bar: Mutex::new(None),
        }
    }
}

impl Progress for Bars {
    fn start(&self, phase: &str, total: Option<u64>) {
        if !self.visible {
            return;
        }
        let bar = match total {
            Some(total) if total > 0 => ProgressBar::new(total).with_style(
                ProgressStyle::with_template("{msg:30} [{bar:40}] {pos}/{len} ({eta})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            ),
            _ => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{spinner} {msg} {pos}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        };
        bar.set_message(phase.to_string());
        if let Ok(mut slot) = self.bar.lock() {
            *slot = Some(bar);
        }
    }

    fn advance(&self, done: u64) {
        if let Ok(slot) = self.bar.lock() {
            if let Some(bar) = slot.as_ref() {
                bar.set_position(done);
            }
        }
    }

    fn finish(&self) {
        if let Ok(mut slot) = self.bar.lock() {
            if let Some(bar) = slot.take() {
                bar.finish_and_clear();
            }
        }
    }

    fn interrupted(&self) -> bool {
        INTERRUPTED.load(Ordering::SeqCst)
    }
}
