//! KEDA's part of scaling on an SQS queue: the `aws-sqs-queue` metric, activation, and the
//! moves to and from zero that the HPA cannot make; between one and the maximum the HPA
//! (driven by KEDA's metric) decides, every 15 s.

use super::hpa::{Autoscaler, Behavior, KubernetesVersion, SYNC_SECONDS};

pub use kedaform_common::queues::QueueCounts;

/// A ScaledObject's settings; `Default` is KEDA's defaults with queueLength 5.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `queueLength`: target messages per replica.
    pub queue_length: u32,
    /// `activationQueueLength`: KEDA wakes from zero only above it.
    pub activation_queue_length: u32,
    /// `pollingInterval`, seconds.
    pub polling_interval: u64,
    /// `cooldownPeriod`, seconds.
    pub cooldown_period: u64,
    /// `minReplicaCount`.
    pub min_replicas: u32,
    /// `maxReplicaCount`.
    pub max_replicas: u32,
    /// `scaleOnInFlight`.
    pub scale_on_in_flight: bool,
    /// `scaleOnDelayed`.
    pub scale_on_delayed: bool,
    /// The HPA behavior, if any.
    pub behavior: Option<Behavior>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            queue_length: 5,
            activation_queue_length: 0,
            polling_interval: 30,
            cooldown_period: 300,
            min_replicas: 0,
            max_replicas: 100,
            scale_on_in_flight: true,
            scale_on_delayed: false,
            behavior: None,
        }
    }
}

impl Settings {
    /// What the scaler reports: visible, plus in-flight and delayed when asked.
    pub fn metric(&self, counts: QueueCounts) -> u64 {
        counts.visible
            + if self.scale_on_in_flight { counts.in_flight } else { 0 }
            + if self.scale_on_delayed { counts.delayed } else { 0 }
    }
}

/// KEDA plus the HPA it creates, over whole seconds.
#[derive(Debug, Clone)]
pub struct Scaler {
    /// The ScaledObject it models.
    pub settings: Settings,
    hpa: Autoscaler,
    last_active: Option<u64>,
}

impl Scaler {
    /// KEDA creates the HPA with `minReplicas` at least 1; it alone moves between 0 and 1.
    pub fn new(settings: Settings, version: KubernetesVersion) -> Self {
        let hpa = Autoscaler::new(
            settings.min_replicas.max(1),
            settings.max_replicas,
            settings.behavior.clone(),
            version,
        );
        Self {
            settings,
            hpa,
            last_active: None,
        }
    }

    /// The replica count after second `now`, given the count before it and the queue.
    pub fn tick(&mut self, now: u64, current: u32, counts: QueueCounts) -> u32 {
        let metric = self.settings.metric(counts);
        let mut replicas = current;
        if now.is_multiple_of(self.settings.polling_interval.max(1)) {
            let active = metric > u64::from(self.settings.activation_queue_length);
            if active {
                self.last_active = Some(now);
                if replicas == 0 {
                    replicas = self.settings.min_replicas.max(1);
                }
            } else if replicas > 0
                && self.settings.min_replicas == 0
                // Never active: straight to zero; otherwise only after the cooldown.
                && self.last_active.is_none_or(|at| at + self.settings.cooldown_period < now)
            {
                replicas = 0;
            }
            replicas = replicas.max(self.settings.min_replicas);
        }
        // The HPA syncs at zero replicas too (it records its first count, then does nothing).
        if now.is_multiple_of(SYNC_SECONDS) {
            #[allow(clippy::cast_precision_loss)]
            let metric = metric as f64;
            replicas = self
                .hpa
                .sync(now, replicas, metric, f64::from(self.settings.queue_length));
        }
        replicas
    }
}

/// The replica count KEDA and the HPA settle at when the queue holds `counts` from now on,
/// starting from `current`: the planner's model run until every cooldown and stabilization
/// window has passed. What `kedaform doctor` compares with the replicas running.
pub fn settle(settings: &Settings, version: KubernetesVersion, current: u32, counts: QueueCounts) -> u32 {
    let mut scaler = Scaler::new(settings.clone(), version);
    // Scale-down stabilization is 300 s by default; a behavior may set up to an hour.
    let horizon = settings.cooldown_period + 2 * settings.polling_interval.max(1) + 2 * 3600;
    (1..=horizon).fold(current, |replicas, now| scaler.tick(now, replicas, counts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scaler(settings: Settings) -> Scaler {
        Scaler::new(settings, KubernetesVersion::DEFAULT)
    }

    fn counts(visible: u64) -> QueueCounts {
        QueueCounts {
            visible,
            in_flight: 0,
            delayed: 0,
        }
    }

    #[test]
    fn the_metric_counts_in_flight_by_default_and_delayed_on_request() {
        let queue = QueueCounts {
            visible: 10,
            in_flight: 5,
            delayed: 3,
        };
        assert_eq!(Settings::default().metric(queue), 15);
        assert_eq!(
            Settings {
                scale_on_delayed: true,
                ..Settings::default()
            }
            .metric(queue),
            18
        );
        assert_eq!(
            Settings {
                scale_on_in_flight: false,
                ..Settings::default()
            }
            .metric(queue),
            10
        );
    }

    #[test]
    fn activation_is_strictly_above_the_threshold_and_wakes_to_the_minimum_or_one() {
        let mut keda = scaler(Settings {
            activation_queue_length: 5,
            polling_interval: 10,
            ..Settings::default()
        });
        assert_eq!(keda.tick(10, 0, counts(5)), 0, "5 is not above 5");
        assert_eq!(keda.tick(11, 0, counts(6)), 0, "only polls wake it");
        assert_eq!(
            keda.tick(20, 0, counts(6)),
            1,
            "woken at the poll; the HPA skips 20 s (not a sync)"
        );
        let mut keda = scaler(Settings {
            min_replicas: 3,
            polling_interval: 10,
            ..Settings::default()
        });
        assert_eq!(keda.tick(10, 0, counts(1)), 3);
    }

    #[test]
    fn scale_to_zero_waits_for_the_cooldown_after_the_last_activity() {
        let mut keda = scaler(Settings {
            polling_interval: 30,
            cooldown_period: 300,
            ..Settings::default()
        });
        assert_eq!(
            keda.tick(0, 0, counts(3)),
            1,
            "woken; the HPA at 0 s proposes ceil(3 / 5) = 1"
        );
        assert_eq!(keda.tick(30, 1, counts(0)), 1);
        assert_eq!(keda.tick(300, 1, counts(0)), 1, "0 + 300 is not before 300");
        assert_eq!(keda.tick(330, 1, counts(0)), 0);
    }

    #[test]
    fn a_target_never_active_goes_to_the_minimum_at_once_and_min_one_never_reaches_zero() {
        let mut keda = scaler(Settings {
            polling_interval: 30,
            ..Settings::default()
        });
        assert_eq!(keda.tick(30, 2, counts(0)), 0);
        let mut keda = scaler(Settings {
            min_replicas: 1,
            polling_interval: 30,
            ..Settings::default()
        });
        for t in (0..1_000).step_by(30) {
            assert_eq!(keda.tick(t, 1, counts(0)), 1, "at {t} s");
        }
    }

    #[test]
    fn between_one_and_the_maximum_the_hpa_decides_on_its_own_sync() {
        let mut keda = scaler(Settings {
            queue_length: 10,
            max_replicas: 50,
            polling_interval: 10,
            ..Settings::default()
        });
        assert_eq!(keda.tick(10, 0, counts(500)), 1, "KEDA wakes it; 10 s is no HPA sync");
        assert_eq!(keda.tick(15, 1, counts(500)), 4, "legacy clamp: max(2 × 1, 4)");
        assert_eq!(keda.tick(16, 4, counts(500)), 4, "no sync between");
        assert_eq!(keda.tick(30, 4, counts(500)), 8);
    }

    #[test]
    fn replicas_settle_at_the_queue_over_queue_length_within_the_bounds() {
        let settings = Settings {
            min_replicas: 1,
            max_replicas: 10,
            ..Settings::default()
        };
        let settle = |current, visible| super::settle(&settings, KubernetesVersion::DEFAULT, current, counts(visible));
        assert_eq!(settle(1, 0), 1);
        assert_eq!(settle(4, 0), 1, "down to the minimum once the windows pass");
        assert_eq!(settle(1, 23), 5, "23 messages at 5 per replica");
        assert_eq!(settle(1, 1000), 10, "the maximum");
        let to_zero = Settings::default();
        assert_eq!(super::settle(&to_zero, KubernetesVersion::DEFAULT, 3, counts(0)), 0);
        assert_eq!(super::settle(&to_zero, KubernetesVersion::DEFAULT, 0, counts(7)), 2);
    }
}
