//! The horizontal pod autoscaler's decision for an `AverageValue` external metric (what KEDA
//! gives it), as the Kubernetes controller computes it each sync: pure, over explicit time.
//!
//! Two paths, as in the controller: with no `behavior` (KEDA's default) the legacy rules (a
//! 5-minute downscale stabilization, scale-up clamped to `max(2 × current, 4)`); with a
//! `behavior`, its policies and stabilization windows.

/// Within this ratio of the target the controller keeps the current replica count.
pub const TOLERANCE: f64 = 0.1;
/// The controller's sync period.
pub const SYNC_SECONDS: u64 = 15;
/// `--horizontal-pod-autoscaler-downscale-stabilization` default, for the legacy path.
pub const LEGACY_DOWNSCALE_WINDOW_SECONDS: u64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    Pods,
    Percent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub kind: PolicyKind,
    pub value: u32,
    pub period_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    Max,
    Min,
    Disabled,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub stabilization_seconds: u64,
    pub select: Select,
    pub policies: Vec<Policy>,
}

/// `spec.behavior`; `None` on the autoscaler means the legacy path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behavior {
    pub scale_up: Rules,
    pub scale_down: Rules,
}

impl Default for Behavior {
    /// Kubernetes' defaults for a behavior whose fields are unset: up 100 % or 4 pods per
    /// 15 s (the larger), no stabilization; down 100 % per 15 s, 300 s stabilization.
    fn default() -> Self {
        Self {
            scale_up: Rules {
                stabilization_seconds: 0,
                select: Select::Max,
                policies: vec![
                    Policy {
                        kind: PolicyKind::Percent,
                        value: 100,
                        period_seconds: 15,
                    },
                    Policy {
                        kind: PolicyKind::Pods,
                        value: 4,
                        period_seconds: 15,
                    },
                ],
            },
            scale_down: Rules {
                stabilization_seconds: 300,
                select: Select::Max,
                policies: vec![Policy {
                    kind: PolicyKind::Percent,
                    value: 100,
                    period_seconds: 15,
                }],
            },
        }
    }
}

/// The raw proposal: `ceil(metric / target)`, unless within the tolerance of the target.
pub fn proposal(metric: f64, target: f64, current: u32) -> u32 {
    if current == 0 || target <= 0.0 {
        return current;
    }
    let ratio = metric / (target * f64::from(current));
    if (1.0 - ratio).abs() <= TOLERANCE {
        current
    } else {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let wanted = (metric / target).ceil().max(0.0) as u32;
        wanted
    }
}

/// One autoscaler with its memory: past recommendations and scale events.
#[derive(Debug, Clone)]
pub struct Autoscaler {
    pub min: u32,
    pub max: u32,
    pub behavior: Option<Behavior>,
    /// (time, recommendation)
    recommendations: Vec<(u64, u32)>,
    /// (time, replicas added (+) or removed (-))
    events: Vec<(u64, i64)>,
}

impl Autoscaler {
    pub fn new(min: u32, max: u32, behavior: Option<Behavior>) -> Self {
        Self {
            min: min.max(1),
            max: max.max(min.max(1)),
            behavior,
            recommendations: Vec::new(),
            events: Vec::new(),
        }
    }

    /// The replica count after a sync at `now` (seconds) with `current` replicas and the
    /// metric's value; records what the controller records.
    pub fn sync(&mut self, now: u64, current: u32, metric: f64, target: f64) -> u32 {
        let proposed = proposal(metric, target, current);
        let desired = match self.behavior.clone() {
            None => self.legacy(now, current, proposed),
            Some(behavior) => self.with_behavior(now, current, proposed, &behavior),
        };
        if desired != current {
            self.events.push((now, i64::from(desired) - i64::from(current)));
        }
        desired
    }

    fn legacy(&mut self, now: u64, current: u32, proposed: u32) -> u32 {
        // As the controller: a recommendation counts while strictly inside the window.
        self.recommendations
            .retain(|(at, _)| *at + LEGACY_DOWNSCALE_WINDOW_SECONDS > now);
        self.recommendations.push((now, proposed));
        let stabilized = self.recommendations.iter().map(|(_, r)| *r).max().unwrap_or(proposed);
        let scale_up_limit = (2 * current).max(4);
        stabilized.min(scale_up_limit).min(self.max).max(self.min)
    }

    fn with_behavior(&mut self, now: u64, current: u32, proposed: u32, behavior: &Behavior) -> u32 {
        let (mut up, mut down) = (proposed, proposed);
        for (at, recommendation) in &self.recommendations {
            if *at + behavior.scale_up.stabilization_seconds > now {
                up = up.min(*recommendation);
            }
            if *at + behavior.scale_down.stabilization_seconds > now {
                down = down.max(*recommendation);
            }
        }
        let horizon = behavior
            .scale_up
            .stabilization_seconds
            .max(behavior.scale_down.stabilization_seconds);
        self.recommendations.retain(|(at, _)| *at + horizon > now);
        self.recommendations.push((now, proposed));
        let stabilized = current.max(up).min(down);

        match stabilized.cmp(&current) {
            std::cmp::Ordering::Greater => {
                let limit = self
                    .scale_up_limit(now, current, &behavior.scale_up)
                    .max(current)
                    .min(self.max);
                stabilized.min(limit)
            }
            std::cmp::Ordering::Less => {
                let limit = self
                    .scale_down_limit(now, current, &behavior.scale_down)
                    .min(current)
                    .max(self.min);
                stabilized.max(limit)
            }
            std::cmp::Ordering::Equal => stabilized,
        }
        .clamp(self.min, self.max)
    }

    /// Replicas changed in the last `period` seconds in the direction `sign` (+1 up, -1 down).
    fn changed_within(&self, now: u64, period: u64, sign: i64) -> i64 {
        self.events
            .iter()
            .filter(|(at, change)| *at + period > now && change.signum() == sign)
            .map(|(_, change)| change.abs())
            .sum()
    }

    fn scale_up_limit(&self, now: u64, current: u32, rules: &Rules) -> u32 {
        let proposals = rules.policies.iter().map(|policy| {
            let start = i64::from(current) - self.changed_within(now, policy.period_seconds, 1);
            #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
            match policy.kind {
                PolicyKind::Pods => start + i64::from(policy.value),
                PolicyKind::Percent => (start as f64 * (1.0 + f64::from(policy.value) / 100.0)).ceil() as i64,
            }
        });
        let chosen = match rules.select {
            Select::Disabled => return current,
            Select::Max => proposals.max(),
            Select::Min => proposals.min(),
        };
        u32::try_from(chosen.unwrap_or(i64::from(current)).max(0)).unwrap_or(u32::MAX)
    }

    fn scale_down_limit(&self, now: u64, current: u32, rules: &Rules) -> u32 {
        let proposals = rules.policies.iter().map(|policy| {
            let start = i64::from(current) + self.changed_within(now, policy.period_seconds, -1);
            #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
            match policy.kind {
                PolicyKind::Pods => start - i64::from(policy.value),
                PolicyKind::Percent => (start as f64 * (1.0 - f64::from(policy.value) / 100.0)) as i64,
            }
        });
        // The policy allowing the largest change (Max) is the lowest limit when scaling down.
        let chosen = match rules.select {
            Select::Disabled => return current,
            Select::Max => proposals.min(),
            Select::Min => proposals.max(),
        };
        u32::try_from(chosen.unwrap_or(i64::from(current)).max(0)).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proposal_is_ceil_of_metric_over_target_outside_the_tolerance_band() {
        // 5 replicas, target 10 per replica: within 10 % of 50 keeps 5.
        assert_eq!(proposal(54.0, 10.0, 5), 5);
        assert_eq!(
            proposal(45.0, 10.0, 5),
            5,
            "|1 - 0.9| is 0.09999… in floating point: inside"
        );
        assert_eq!(
            proposal(55.0, 10.0, 5),
            6,
            "|1 - 1.1| is 0.10000000000000009, as in the Go controller: outside"
        );
        assert_eq!(proposal(56.0, 10.0, 5), 6, "ceil(5.6)");
        assert_eq!(proposal(44.0, 10.0, 5), 5, "ceil(4.4) = 5");
        assert_eq!(proposal(39.0, 10.0, 5), 4);
        assert_eq!(proposal(0.0, 10.0, 5), 0);
        assert_eq!(proposal(1000.0, 10.0, 1), 100);
    }

    #[test]
    fn legacy_scale_up_is_clamped_to_twice_current_or_four() {
        let mut hpa = Autoscaler::new(1, 50, None);
        assert_eq!(hpa.sync(0, 1, 1000.0, 10.0), 4, "max(2 × 1, 4)");
        assert_eq!(hpa.sync(15, 4, 1000.0, 10.0), 8, "2 × 4");
        assert_eq!(hpa.sync(30, 8, 1000.0, 10.0), 16);
        assert_eq!(hpa.sync(45, 16, 1000.0, 10.0), 32);
        assert_eq!(hpa.sync(60, 32, 1000.0, 10.0), 50, "the maximum");
    }

    #[test]
    fn legacy_scale_down_waits_for_the_highest_recommendation_of_five_minutes() {
        let mut hpa = Autoscaler::new(1, 50, None);
        assert_eq!(hpa.sync(0, 10, 100.0, 10.0), 10);
        // The backlog is gone at 15 s, but 10 was recommended within the last 300 s.
        for t in (15..300).step_by(15) {
            assert_eq!(hpa.sync(t, 10, 0.0, 10.0), 10, "at {t} s");
        }
        assert_eq!(
            hpa.sync(300, 10, 0.0, 10.0),
            1,
            "the 10 of 0 s is out (strictly inside only); min is 1"
        );
    }

    #[test]
    fn default_behavior_scales_up_by_the_larger_of_100_percent_and_4_pods_per_15_s() {
        let mut hpa = Autoscaler::new(1, 100, Some(Behavior::default()));
        assert_eq!(hpa.sync(0, 1, 1000.0, 10.0), 5, "max(1 + 4, 2 × 1)");
        assert_eq!(hpa.sync(15, 5, 1000.0, 10.0), 10, "max(5 + 4, 2 × 5)");
        assert_eq!(hpa.sync(30, 10, 1000.0, 10.0), 20);
    }

    #[test]
    fn a_pods_policy_counts_what_was_added_within_its_period() {
        let behavior = Behavior {
            scale_up: Rules {
                stabilization_seconds: 0,
                select: Select::Max,
                policies: vec![Policy {
                    kind: PolicyKind::Pods,
                    value: 2,
                    period_seconds: 60,
                }],
            },
            ..Behavior::default()
        };
        let mut hpa = Autoscaler::new(1, 100, Some(behavior));
        assert_eq!(hpa.sync(0, 1, 1000.0, 10.0), 3, "1 + 2");
        assert_eq!(hpa.sync(15, 3, 1000.0, 10.0), 3, "2 already added within 60 s");
        assert_eq!(hpa.sync(60, 3, 1000.0, 10.0), 5, "the first addition left the period");
    }

    #[test]
    fn behavior_scale_down_respects_its_stabilization_window_and_percent_policy() {
        let behavior = Behavior {
            scale_down: Rules {
                stabilization_seconds: 60,
                select: Select::Max,
                policies: vec![Policy {
                    kind: PolicyKind::Percent,
                    value: 50,
                    period_seconds: 15,
                }],
            },
            ..Behavior::default()
        };
        let mut hpa = Autoscaler::new(1, 100, Some(behavior));
        assert_eq!(hpa.sync(0, 8, 80.0, 10.0), 8);
        assert_eq!(hpa.sync(15, 8, 0.0, 10.0), 8, "8 was recommended within 60 s");
        assert_eq!(hpa.sync(45, 8, 0.0, 10.0), 8);
        assert_eq!(
            hpa.sync(60, 8, 0.0, 10.0),
            4,
            "the 8 of 0 s left the window; 50 % per 15 s"
        );
        assert_eq!(hpa.sync(75, 4, 0.0, 10.0), 2, "the removal at 60 s is outside (60, 75]");
        assert_eq!(hpa.sync(90, 2, 0.0, 10.0), 1, "floor(2 × 0.5), never below min");
    }

    #[test]
    fn select_min_takes_the_policy_allowing_the_smallest_change() {
        let behavior = Behavior {
            scale_up: Rules {
                stabilization_seconds: 0,
                select: Select::Min,
                policies: vec![
                    Policy {
                        kind: PolicyKind::Percent,
                        value: 100,
                        period_seconds: 15,
                    },
                    Policy {
                        kind: PolicyKind::Pods,
                        value: 3,
                        period_seconds: 15,
                    },
                ],
            },
            scale_down: Rules {
                stabilization_seconds: 0,
                select: Select::Min,
                policies: vec![
                    Policy {
                        kind: PolicyKind::Percent,
                        value: 50,
                        period_seconds: 15,
                    },
                    Policy {
                        kind: PolicyKind::Pods,
                        value: 1,
                        period_seconds: 15,
                    },
                ],
            },
        };
        let mut hpa = Autoscaler::new(1, 100, Some(behavior));
        assert_eq!(hpa.sync(0, 10, 1000.0, 10.0), 13, "min(10 + 3, 2 × 10)");
        assert_eq!(hpa.sync(15, 2, 1000.0, 10.0), 4, "min(2 + 3, 2 × 2)");
        assert_eq!(
            hpa.sync(30, 10, 0.0, 10.0),
            9,
            "max(10 - 1, 10 × 0.5): the smaller step down"
        );
    }

    #[test]
    fn disabled_scale_down_keeps_the_count() {
        let behavior = Behavior {
            scale_down: Rules {
                stabilization_seconds: 0,
                select: Select::Disabled,
                policies: vec![],
            },
            ..Behavior::default()
        };
        let mut hpa = Autoscaler::new(1, 100, Some(behavior));
        assert_eq!(hpa.sync(0, 8, 0.0, 10.0), 8);
    }
}
