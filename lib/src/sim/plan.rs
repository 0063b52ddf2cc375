//! The planner's search: simulate a grid of ScaledObject settings on the same traffic and keep
//! the cheapest (pod-seconds) that meets the oldest-message-age SLO.

use super::hpa::{Behavior, Rules};
use super::keda::Settings;
use super::model::{Scenario, Summary, simulate};

/// One set of settings, simulated.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// How the table names it.
    pub name: String,
    /// The settings.
    pub settings: Settings,
    /// How the run went.
    pub summary: Summary,
    /// Whether every message stayed younger than the SLO and the queue drained.
    pub meets_slo: bool,
}

/// KEDA's defaults (queueLength 5, polling 30, cooldown 300, min 0, max 100).
pub fn keda_defaults() -> Settings {
    Settings::default()
}

/// scale-eks-with-keda's settings: min 1, max 50, polling 10, cooldown 500, queueLength 10.
pub fn original_settings() -> Settings {
    Settings {
        queue_length: 10,
        polling_interval: 10,
        cooldown_period: 500,
        min_replicas: 1,
        max_replicas: 50,
        ..Settings::default()
    }
}

/// A behavior that scales down after one minute instead of five.
fn quick_down() -> Behavior {
    let default = Behavior::default();
    Behavior {
        scale_down: Rules {
            stabilization_seconds: 60,
            ..default.scale_down.clone()
        },
        ..default
    }
}

/// The grid the search walks.
pub fn candidates() -> Vec<(String, Settings)> {
    let mut grid = Vec::new();
    for queue_length in [1, 2, 5, 10, 20, 50] {
        for polling_interval in [5, 10, 30] {
            for min_replicas in [0, 1] {
                for max_replicas in [10, 25, 50, 100] {
                    for (preset, behavior) in [("legacy", None), ("quick-down", Some(quick_down()))] {
                        grid.push((
                            format!("queueLength {queue_length}, polling {polling_interval}, min {min_replicas}, max {max_replicas}, {preset}"),
                            Settings {
                                queue_length,
                                polling_interval,
                                min_replicas,
                                max_replicas,
                                behavior,
                                ..Settings::default()
                            },
                        ));
                    }
                }
            }
        }
    }
    grid
}

fn evaluate(base: &Scenario, name: String, settings: Settings, slo_max_age: u64) -> Evaluation {
    let scenario = Scenario {
        keda: settings.clone(),
        initial_replicas: settings.min_replicas,
        ..base.clone()
    };
    let run = simulate(&scenario);
    let summary = run.summary();
    // Nothing may still wait at the end that arrived more than the SLO before it.
    let end = run.samples.len() as u64;
    let due: u64 = run
        .samples
        .iter()
        .filter(|s| s.second + slo_max_age < end)
        .map(|s| s.arrivals)
        .sum();
    let drained = run.samples.last().is_some_and(|s| s.stored >= due);
    Evaluation {
        name,
        settings,
        meets_slo: drained && summary.age_max <= slo_max_age,
        summary,
    }
}

/// The cheapest candidate meeting the SLO (if any), then KEDA's defaults and scale-eks-with-keda's
/// settings on the same traffic.
pub fn search(base: &Scenario, slo_max_age: u64) -> (Option<Evaluation>, Evaluation, Evaluation) {
    let best = candidates()
        .into_iter()
        .map(|(name, settings)| evaluate(base, name, settings, slo_max_age))
        .filter(|e| e.meets_slo)
        .min_by_key(|e| (e.summary.pod_seconds, e.summary.age_max));
    (
        best,
        evaluate(base, "KEDA defaults".into(), keda_defaults(), slo_max_age),
        evaluate(
            base,
            "scale-eks-with-keda's settings".into(),
            original_settings(),
            slo_max_age,
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::hpa::KubernetesVersion;
    use crate::sim::model::{Consumer, Traffic};

    fn bursty() -> Scenario {
        Scenario {
            seconds: 1_800,
            traffic: Traffic::Steps(vec![(0, 1.0), (300, 6.0), (420, 1.0)]),
            delay_seconds: 2,
            visibility_timeout: 30,
            consumer: Consumer {
                batch_size: 10,
                work_seconds: 2,
                process_delay: 0,
                poll_backoff: 2,
                startup_seconds: 10,
            },
            keda: Settings::default(),
            initial_replicas: 0,
            kills: vec![],
            kubernetes: KubernetesVersion::DEFAULT,
        }
    }

    #[test]
    fn the_search_finds_settings_that_meet_the_slo_at_no_more_cost_than_the_comparisons_that_do() {
        let (best, defaults, original) = search(&bursty(), 60);
        let best = best.expect("some settings meet a 60 s SLO");
        assert!(best.meets_slo && best.summary.age_max <= 60, "{best:?}");
        for other in [&defaults, &original] {
            if other.meets_slo {
                assert!(
                    best.summary.pod_seconds <= other.summary.pod_seconds,
                    "{best:?} vs {other:?}"
                );
            }
        }
        assert_eq!(original.settings.queue_length, 10);
        assert_eq!(defaults.settings.polling_interval, 30);
    }

    #[test]
    fn an_impossible_slo_has_no_answer() {
        let (best, _, _) = search(&bursty(), 0);
        assert!(best.is_none(), "messages are delayed 2 s, so no age can be 0");
    }
}
