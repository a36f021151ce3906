//! Latency samples over the whole run and per fixed window of it, so that a stall of a few
//! seconds shows in its window instead of vanishing in a long run's percentiles.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::report::Percentiles;

/// Latencies up to an hour in microseconds, 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// One window's percentiles; `start_s` counts from the start of the load.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct WindowPercentiles {
    pub start_s: f64,
    #[serde(flatten)]
    pub percentiles: Percentiles,
}

/// Samples in microseconds, each counted in the whole run's histogram and in the window of
/// the instant it was taken.
pub struct Latencies {
    started: Instant,
    window: Duration,
    total: Histogram<u64>,
    windows: Vec<Histogram<u64>>,
}

impl Latencies {
    pub fn new(started: Instant, window: Duration) -> Self {
        Self {
            started,
            window: window.max(Duration::from_millis(100)),
            total: histogram(),
            windows: Vec::new(),
        }
    }

    /// Counts windows from `at` instead: when the load starts, after the setup that came
    /// before it (no sample is taken during that setup).
    pub fn restart_windows_at(&mut self, at: Instant) {
        self.started = at;
    }

    /// Records `micros`, taken at `at`.
    pub fn record(&mut self, micros: u64, at: Instant) {
        let micros = micros.max(1);
        let _ = self.total.record(micros);
        let index = (at.saturating_duration_since(self.started).as_secs_f64()
            / self.window.as_secs_f64()) as usize;
        if self.windows.len() <= index {
            self.windows.resize_with(index + 1, histogram);
        }
        let _ = self.windows[index].record(micros);
    }

    pub fn total(&self) -> Option<Percentiles> {
        Percentiles::of(&self.total)
    }

    /// Every window that has samples, in order.
    pub fn windows(&self) -> Vec<WindowPercentiles> {
        self.windows
            .iter()
            .enumerate()
            .filter_map(|(i, h)| {
                Percentiles::of(h).map(|percentiles| WindowPercentiles {
                    start_s: i as f64 * self.window.as_secs_f64(),
                    percentiles,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stall_shows_in_its_window_and_not_in_the_others() {
        let started = Instant::now();
        let mut latencies = Latencies::new(started, Duration::from_secs(10));
        for i in 0..3000u64 {
            let at = started + Duration::from_millis(i * 10);
            let micros = if (1000..1100).contains(&i) {
                400_000
            } else {
                2_000
            };
            latencies.record(micros, at);
        }
        let windows = latencies.windows();
        assert_eq!(windows.len(), 3);
        assert_eq!(windows[1].start_s, 10.0);
        assert!(windows[0].percentiles.p999 < 3_000);
        assert!(windows[1].percentiles.p99 > 390_000);
        assert!(windows[2].percentiles.max < 3_000);
        assert_eq!(latencies.total().map(|p| p.count), Some(3000));
    }
}
