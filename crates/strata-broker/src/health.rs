//! What `/readyz` answers: whether the node serves, what it is waiting for while it does not,
//! and the problems that keep a serving node from being ready (a partition it hosts that is
//! offline). A node that cannot become ready says why, here and in its log.

use std::collections::BTreeMap;
use std::sync::Mutex;

use tracing::info;

type Check = Box<dyn Fn() -> Vec<String> + Send + Sync>;

/// The node's readiness, shared by its startup, its subsystems and the admin port.
#[derive(Default)]
pub struct Health {
    state: Mutex<State>,
    /// Asked on every `/readyz`: each answers the problems it sees now.
    checks: Mutex<Vec<Check>>,
}

#[derive(Default)]
struct State {
    serving: bool,
    /// What a node that is not serving is doing (starting, registering, stopping).
    phase: String,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health").finish_non_exhaustive()
    }
}

impl Health {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .expect("no code panics holding the health state")
    }

    /// The node is not serving; `phase` says what it is doing (logged, and shown on `/readyz`).
    pub fn phase(&self, phase: &str) {
        info!(phase, "not ready");
        let mut state = self.lock();
        state.serving = false;
        state.phase = phase.to_string();
    }

    /// The node serves: `/readyz` answers 200 unless a check reports a problem.
    pub fn serving(&self) {
        let mut state = self.lock();
        state.serving = true;
        state.phase.clear();
    }

    /// Adds a check asked on every `/readyz`.
    pub fn add_check(&self, check: impl Fn() -> Vec<String> + Send + Sync + 'static) {
        self.checks
            .lock()
            .expect("no code panics holding the health checks")
            .push(Box::new(check));
    }

    /// `Ok` when ready; otherwise every reason it is not, one per line.
    pub fn report(&self) -> Result<(), String> {
        let (serving, phase) = {
            let state = self.lock();
            (state.serving, state.phase.clone())
        };
        if !serving {
            return Err(if phase.is_empty() {
                "starting".to_string()
            } else {
                phase
            });
        }
        let problems: BTreeMap<usize, String> = self
            .checks
            .lock()
            .expect("no code panics holding the health checks")
            .iter()
            .flat_map(|check| check())
            .enumerate()
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.into_values().collect::<Vec<_>>().join("\n"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_is_ready_only_while_serving_without_problems() {
        let health = Health::default();
        assert_eq!(health.report(), Err("starting".to_string()));
        health.phase("registering with the metadata quorum");
        assert_eq!(
            health.report(),
            Err("registering with the metadata quorum".to_string())
        );
        health.serving();
        assert_eq!(health.report(), Ok(()));
        let broken = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flag = broken.clone();
        health.add_check(move || {
            if flag.load(std::sync::atomic::Ordering::Relaxed) {
                vec!["partition t-0 is offline: fsync failed".to_string()]
            } else {
                Vec::new()
            }
        });
        assert_eq!(
            health.report(),
            Err("partition t-0 is offline: fsync failed".to_string())
        );
        broken.store(false, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(health.report(), Ok(()));
    }
}
