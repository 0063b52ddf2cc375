//! The horizontal pod autoscaler's decision for an `AverageValue` external metric (what KEDA
//! gives it), as the Kubernetes controller computes it each sync: pure, over explicit time.
//!
//! Read from `pkg/controller/podautoscaler/horizontal.go` and `replica_calculator.go` of
//! Kubernetes v1.32.9, v1.35.5 and v1.37.2; each rule below names the function it follows.
//! Two paths, as in the controller: with no `behavior` (KEDA's default) the legacy rules (a
//! 5-minute downscale stabilization, scale-up clamped to `max(2 × current, 4)`); with a
//! `behavior`, its policies and stabilization windows.

use std::fmt;

/// `--horizontal-pod-autoscaler-tolerance`'s default (EKS does not change it).
pub const TOLERANCE: f64 = 0.1;
/// The controller's sync period.
pub const SYNC_SECONDS: u64 = 15;
/// `--horizontal-pod-autoscaler-downscale-stabilization` default, for the legacy path.
pub const LEGACY_DOWNSCALE_WINDOW_SECONDS: u64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// How a scaling policy limits a change (`HPAScalingPolicy.type`).
pub enum PolicyKind {
    /// At most `value` pods per period.
    Pods,
    /// At most `value` percent of the period's starting count per period.
    Percent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// One `HPAScalingPolicy`.
pub struct Policy {
    /// Pods or percent.
    pub kind: PolicyKind,
    /// How many pods, or what percentage.
    pub value: u32,
    /// The period the limit applies to.
    pub period_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// Which policy wins when there are several (`selectPolicy`).
pub enum Select {
    /// The one allowing the largest change.
    Max,
    /// The one allowing the smallest change.
    Min,
    /// No change in this direction at all.
    Disabled,
}

#[derive(Debug, Clone, PartialEq)]
/// `scaleUp` or `scaleDown` of a behavior.
pub struct Rules {
    /// `stabilizationWindowSeconds`.
    pub stabilization_seconds: u64,
    /// `selectPolicy`.
    pub select: Select,
    /// `policies`.
    pub policies: Vec<Policy>,
    /// `tolerance` of this direction (Kubernetes 1.35+, where `HPAConfigurableTolerance` is on
    /// by default); `None` is the controller's [`TOLERANCE`].
    pub tolerance: Option<f64>,
}

/// `spec.behavior`; `None` on the autoscaler means the legacy path.
#[derive(Debug, Clone, PartialEq)]
pub struct Behavior {
    /// `scaleUp`.
    pub scale_up: Rules,
    /// `scaleDown`.
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
                tolerance: None,
            },
            scale_down: Rules {
                stabilization_seconds: 300,
                select: Select::Max,
                policies: vec![Policy {
                    kind: PolicyKind::Percent,
                    value: 100,
                    period_seconds: 15,
                }],
                tolerance: None,
            },
        }
    }
}

/// The Kubernetes minor version whose controller is modelled: the rules that differ between
/// versions are the tolerance band (1.33) and the per-HPA tolerance (on by default in 1.35).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KubernetesVersion {
    minor: u32,
}

impl KubernetesVersion {
    /// `infra/template.yaml`'s default `KubernetesVersion`.
    pub const DEFAULT: Self = Self { minor: 35 };
    /// The oldest minor version accepted (its rules are those read from v1.32.9).
    pub const OLDEST: Self = Self { minor: 30 };
    /// The newest minor version read for this model.
    pub const NEWEST: Self = Self { minor: 37 };

    /// `1.N` (also `v1.N` or `1.N.P`), from [`Self::OLDEST`] to [`Self::NEWEST`].
    pub fn parse(text: &str) -> Result<Self, crate::Error> {
        let bad = || {
            crate::Error::input(
                crate::Input::KubernetesVersion,
                format!(
                    "{text:?}: expected 1.N with N from {} to {} (the versions this model was checked against)",
                    Self::OLDEST.minor,
                    Self::NEWEST.minor
                ),
            )
        };
        let trimmed = text.trim();
        let rest = trimmed
            .strip_prefix('v')
            .unwrap_or(trimmed)
            .strip_prefix("1.")
            .ok_or_else(bad)?;
        let minor = rest.split('.').next().unwrap_or_default();
        let version = Self {
            minor: minor.parse().map_err(|_| bad())?,
        };
        if (Self::OLDEST..=Self::NEWEST).contains(&version) {
            Ok(version)
        } else {
            Err(bad())
        }
    }

    /// 1.33 replaced `|1 - ratio| <= tolerance` (`math.Abs`, v1.32.9 `replica_calculator.go`)
    /// with `1 - down <= ratio <= 1 + up` (`Tolerances.isWithin`).
    fn band_rule(self) -> bool {
        self.minor >= 33
    }

    /// `HPAConfigurableTolerance`: alpha (off) in 1.33 and 1.34, beta (on) from 1.35.
    fn honours_rule_tolerance(self) -> bool {
        self.minor >= 35
    }
}

impl Default for KubernetesVersion {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Display for KubernetesVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "1.{}", self.minor)
    }
}

/// The band around the target within which the controller keeps the replica count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerances {
    /// Below the target: the ratio may fall this far under 1 before the count changes.
    pub down: f64,
    /// Above the target: the ratio may rise this far over 1 before the count changes.
    pub up: f64,
    band_rule: bool,
}

impl Tolerances {
    /// `tolerancesForHpa`: the controller's tolerance, or a behavior's per-direction one where
    /// the version honours it.
    pub fn new(version: KubernetesVersion, behavior: Option<&Behavior>) -> Self {
        let rule = |pick: fn(&Behavior) -> Option<f64>| {
            behavior
                .filter(|_| version.honours_rule_tolerance())
                .and_then(pick)
                .unwrap_or(TOLERANCE)
        };
        Self {
            down: rule(|b| b.scale_down.tolerance),
            up: rule(|b| b.scale_up.tolerance),
            band_rule: version.band_rule(),
        }
    }

    fn within(self, ratio: f64) -> bool {
        if self.band_rule {
            (1.0 - self.down) <= ratio && ratio <= (1.0 + self.up)
        } else {
            (1.0 - ratio).abs() <= self.down
        }
    }
}

/// The raw proposal (`GetExternalPerPodMetricReplicas`): `ceil(metric / target)`, unless the
/// usage ratio is within the tolerances. Metric and target are milli-quantities there; KEDA's
/// SQS metric and queueLength are whole numbers, so the float arithmetic below is the same.
pub fn proposal(metric: f64, target: f64, current: u32, tolerances: Tolerances) -> u32 {
    let (usage, target) = (metric * 1000.0, target * 1000.0);
    let ratio = usage / (target * f64::from(current));
    if tolerances.within(ratio) {
        current
    } else {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let wanted = (usage / target).ceil().clamp(0.0, f64::from(i32::MAX)) as u32;
        wanted
    }
}

/// One autoscaler with its memory: past recommendations and scale events.
#[derive(Debug, Clone)]
pub struct Autoscaler {
    /// `minReplicas` (KEDA sets at least 1).
    pub min: u32,
    /// `maxReplicas`.
    pub max: u32,
    /// `spec.behavior`; `None` is the legacy path.
    pub behavior: Option<Behavior>,
    tolerances: Tolerances,
    synced: bool,
    /// (time, recommendation)
    recommendations: Vec<(u64, u32)>,
    /// (time, replicas added (+) or removed (-)); kept with a behavior only, as upstream.
    events: Vec<(u64, i64)>,
}

impl Autoscaler {
    /// An autoscaler that has not synced yet, for a cluster of `version`.
    pub fn new(min: u32, max: u32, behavior: Option<Behavior>, version: KubernetesVersion) -> Self {
        let tolerances = Tolerances::new(version, behavior.as_ref());
        Self {
            min: min.max(1),
            max: max.max(min.max(1)),
            behavior,
            tolerances,
            synced: false,
            recommendations: Vec::new(),
            events: Vec::new(),
        }
    }

    /// The replica count after a sync at `now` (seconds) with `current` replicas and the
    /// metric's value; records what the controller records (`reconcileAutoscaler`).
    pub fn sync(&mut self, now: u64, current: u32, metric: f64, target: f64) -> u32 {
        // `recordInitialRecommendation`: the first sync remembers the count it found, so a
        // scale-down waits a full window and a scale-up window holds the first scale-up.
        if !self.synced {
            self.synced = true;
            self.recommendations.push((now, current));
        }
        let desired = if current == 0 {
            // "scaling is disabled since the replica count of the target is zero" (min is ≥ 1).
            return 0;
        } else if current > self.max {
            // Outside [min, max] the controller sets the bound without recording a proposal.
            self.max
        } else if current < self.min {
            self.min
        } else {
            let proposed = proposal(metric, target, current, self.tolerances);
            match self.behavior.clone() {
                None => self.legacy(now, current, proposed),
                Some(behavior) => self.with_behavior(now, current, proposed, &behavior),
            }
        };
        if desired != current {
            self.store_event(now, current, desired);
        }
        desired
    }

    /// `normalizeDesiredReplicas`: the highest recommendation of the downscale window, then
    /// `convertDesiredReplicasWithRules`.
    fn legacy(&mut self, now: u64, current: u32, proposed: u32) -> u32 {
        // Upstream keeps a recommendation exactly 300 s old (`Before(cutoff)` is strict), but a
        // real controller's syncs are 15 s plus processing apart, so the sync that would see
        // one exactly 300 s old comes later than that: the model drops it at 300 s.
        self.recommendations
            .retain(|(at, _)| *at + LEGACY_DOWNSCALE_WINDOW_SECONDS > now);
        self.recommendations.push((now, proposed));
        let stabilized = self.recommendations.iter().map(|(_, r)| *r).max().unwrap_or(proposed);
        // `calculateScaleUpLimit`: int32(max(2 × current, 4)).
        let scale_up_limit = (2 * current).max(4);
        if stabilized < self.min {
            self.min
        } else {
            stabilized.min(scale_up_limit.min(self.max))
        }
    }

    /// `stabilizeRecommendationWithBehaviors`, then `convertDesiredReplicasWithBehaviorRate`.
    fn with_behavior(&mut self, now: u64, current: u32, proposed: u32, behavior: &Behavior) -> u32 {
        let (mut up, mut down) = (proposed, proposed);
        // A recommendation counts while strictly newer than the window's start (`After`).
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
                let limit = self.scale_up_limit(now, current, &behavior.scale_up).max(current);
                stabilized.min(limit.min(self.max))
            }
            std::cmp::Ordering::Less => {
                let limit = self.scale_down_limit(now, current, &behavior.scale_down).min(current);
                stabilized.max(limit.max(self.min))
            }
            std::cmp::Ordering::Equal => stabilized,
        }
    }

    /// `storeScaleEvent`: only with a behavior; events older than the direction's longest
    /// policy period are never read again, so they are dropped.
    fn store_event(&mut self, now: u64, current: u32, desired: u32) {
        let Some(behavior) = &self.behavior else {
            return;
        };
        let longest = |rules: &Rules| rules.policies.iter().map(|p| p.period_seconds).max().unwrap_or(0);
        let horizon = longest(&behavior.scale_up).max(longest(&behavior.scale_down));
        self.events.retain(|(at, _)| *at + horizon > now);
        self.events.push((now, i64::from(desired) - i64::from(current)));
    }

    /// `getReplicasChangePerPeriod` for one direction (`sign` +1 up, -1 down): events strictly
    /// inside the last `period` seconds.
    fn changed_within(&self, now: u64, period: u64, sign: i64) -> i64 {
        self.events
            .iter()
            .filter(|(at, change)| *at + period > now && change.signum() == sign)
            .map(|(_, change)| change.abs())
            .sum()
    }

    /// The period's starting count, `current - added + deleted`: both directions count, in
    /// `calculateScaleUpLimitWithScalingRules` and `calculateScaleDownLimitWithBehaviors`.
    fn period_start(&self, now: u64, current: u32, period: u64) -> i64 {
        i64::from(current) - self.changed_within(now, period, 1) + self.changed_within(now, period, -1)
    }

    fn scale_up_limit(&self, now: u64, current: u32, rules: &Rules) -> u32 {
        let proposals = rules.policies.iter().map(|policy| {
            let start = self.period_start(now, current, policy.period_seconds);
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
            let start = self.period_start(now, current, policy.period_seconds);
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

    fn tolerances(version: &str) -> Tolerances {
        Tolerances::new(KubernetesVersion::parse(version).unwrap(), None)
    }

    #[test]
    fn the_proposal_is_ceil_of_metric_over_target_outside_the_tolerance_band() {
        let band = tolerances("1.35");
        // 5 replicas, target 10 per replica: within 10 % of 50 keeps 5.
        assert_eq!(proposal(54.0, 10.0, 5, band), 5);
        assert_eq!(proposal(56.0, 10.0, 5, band), 6, "ceil(5.6)");
        assert_eq!(proposal(44.0, 10.0, 5, band), 5, "ceil(4.4) = 5");
        assert_eq!(proposal(39.0, 10.0, 5, band), 4);
        assert_eq!(proposal(0.0, 10.0, 5, band), 0);
        assert_eq!(proposal(1000.0, 10.0, 1, band), 100);
    }

    /// Rule 1, `Tolerances.isWithin` (1.33+): `1 - 0.1 <= ratio <= 1 + 0.1` with the bounds
    /// computed in float64, so a ratio of exactly 1.1 (11 messages, queueLength 10, 1 pod)
    /// keeps the count; v1.32.9's `math.Abs(1.0-usageRatio) <= c.tolerance` does not.
    #[test]
    fn a_ratio_of_exactly_one_point_one_scales_on_1_32_and_not_from_1_33() {
        for version in ["1.33", "1.35", "1.37"] {
            assert_eq!(proposal(11.0, 10.0, 1, tolerances(version)), 1, "{version}");
            assert_eq!(proposal(55.0, 10.0, 5, tolerances(version)), 5, "{version}");
        }
        for version in ["1.30", "1.32"] {
            assert_eq!(
                proposal(11.0, 10.0, 1, tolerances(version)),
                2,
                "{version}: |1 - 1.1| is 0.10000000000000009 > 0.1"
            );
        }
        for version in ["1.32", "1.35"] {
            assert_eq!(
                proposal(45.0, 10.0, 5, tolerances(version)),
                5,
                "{version}: a ratio of 0.9 is inside under both rules"
            );
        }
        let mut hpa = Autoscaler::new(1, 10, None, KubernetesVersion::DEFAULT);
        assert_eq!(hpa.sync(0, 1, 11.0, 10.0), 1, "the whole autoscaler keeps 1 on 1.35");
    }

    /// `tolerancesForHpa`: a behavior's `tolerance` replaces the controller's where
    /// `HPAConfigurableTolerance` is on (beta, default on, from 1.35; alpha in 1.33 and 1.34).
    #[test]
    fn a_behaviors_tolerance_counts_from_1_35() {
        let mut behavior = Behavior::default();
        behavior.scale_up.tolerance = Some(0.05);
        behavior.scale_down.tolerance = Some(0.5);
        let with = |version: &str| Tolerances::new(KubernetesVersion::parse(version).unwrap(), Some(&behavior));
        assert_eq!(proposal(106.0, 10.0, 10, with("1.35")), 11, "1.06 is outside 5 %");
        assert_eq!(proposal(106.0, 10.0, 10, with("1.34")), 10, "the gate is off: 10 %");
        assert_eq!(proposal(60.0, 10.0, 10, with("1.35")), 10, "0.6 is inside 50 % down");
        assert_eq!(proposal(60.0, 10.0, 10, with("1.34")), 6);
    }

    #[test]
    fn versions_outside_the_modelled_range_are_refused_by_name() {
        assert_eq!(KubernetesVersion::parse("v1.33.2").unwrap().to_string(), "1.33");
        for bad in ["1.29", "1.38", "2.0", "1", "", "1.x"] {
            let error = KubernetesVersion::parse(bad).unwrap_err().to_string();
            assert!(error.contains("expected 1.N with N from 30 to 37"), "{bad}: {error}");
        }
    }

    /// Rule 2, `recordInitialRecommendation`: the first sync records the count it finds.
    #[test]
    fn the_first_sync_remembers_the_current_count() {
        // Legacy: an autoscaler that starts at 10 with no load keeps 10 for the whole window.
        let mut hpa = Autoscaler::new(1, 50, None, KubernetesVersion::DEFAULT);
        assert_eq!(hpa.sync(0, 10, 0.0, 10.0), 10, "the initial 10 is in the window");
        assert_eq!(hpa.sync(285, 10, 0.0, 10.0), 10);
        assert_eq!(hpa.sync(300, 10, 0.0, 10.0), 1);
        // A scale-up window holds the first scale-up too.
        let mut behavior = Behavior::default();
        behavior.scale_up.stabilization_seconds = 60;
        let mut hpa = Autoscaler::new(1, 50, Some(behavior), KubernetesVersion::DEFAULT);
        assert_eq!(hpa.sync(0, 1, 1000.0, 10.0), 1, "the initial 1 is the lowest of 60 s");
        assert_eq!(hpa.sync(45, 1, 1000.0, 10.0), 1);
        assert_eq!(hpa.sync(60, 1, 1000.0, 10.0), 5, "then max(1 + 4, 2 × 1)");
    }

    /// Rule 3: `calculateScaleUpLimitWithScalingRules` and `calculateScaleDownLimitWithBehaviors`
    /// start the period at `current - added + deleted`. The cases are upstream's
    /// `TestScalingWithRules` "scaleUp with percent policy and previous scale up and down events"
    /// (16) and "scaleDown with percent policy and previous scale up and down events" (6), with
    /// `generateEventsUniformDistribution`'s single event 60 s before the sync.
    #[test]
    fn rate_limits_count_changes_in_both_directions() {
        let percent = |value, period_seconds| Rules {
            stabilization_seconds: 0,
            select: Select::Max,
            policies: vec![Policy {
                kind: PolicyKind::Percent,
                value,
                period_seconds,
            }],
            tolerance: None,
        };
        let behavior = Behavior {
            scale_up: percent(300, 300),
            scale_down: percent(50, 180),
        };
        let mut hpa = Autoscaler::new(1, 1000, Some(behavior.clone()), KubernetesVersion::DEFAULT);
        hpa.events = vec![(1_000 - 60, 4), (1_000 - 60, -2)];
        assert_eq!(hpa.sync(1_000, 6, 240.0, 10.0), 16, "(6 - 4 + 2) × 4");
        let mut hpa = Autoscaler::new(1, 1000, Some(behavior), KubernetesVersion::DEFAULT);
        hpa.events = vec![(1_000 - 60, 2), (1_000 - 60, -4)];
        assert_eq!(hpa.sync(1_000, 10, 10.0, 10.0), 6, "(10 - 2 + 4) × 0.5");
    }

    /// Rule 4, `reconcileAutoscaler`: a count above max (or below min) is set to the bound
    /// without a recommendation, so it does not hold a later sync up.
    #[test]
    fn a_count_outside_min_and_max_goes_to_the_bound_without_a_recommendation() {
        let mut hpa = Autoscaler::new(1, 10, None, KubernetesVersion::DEFAULT);
        assert_eq!(hpa.sync(0, 4, 40.0, 10.0), 4);
        assert_eq!(hpa.sync(15, 20, 1000.0, 10.0), 10, "scaled to 20 by hand: max");
        assert_eq!(
            hpa.sync(30, 10, 0.0, 10.0),
            4,
            "the highest recommendation is the 4 of 0 s, not 100"
        );
        let mut hpa = Autoscaler::new(3, 10, Some(Behavior::default()), KubernetesVersion::DEFAULT);
        assert_eq!(hpa.sync(0, 1, 0.0, 10.0), 3, "below min: min");
        assert_eq!(hpa.sync(0, 0, 1000.0, 10.0), 0, "zero replicas: scaling disabled");
    }

    #[test]
    fn legacy_scale_up_is_clamped_to_twice_current_or_four() {
        let mut hpa = Autoscaler::new(1, 50, None, KubernetesVersion::DEFAULT);
        assert_eq!(hpa.sync(0, 1, 1000.0, 10.0), 4, "max(2 × 1, 4)");
        assert_eq!(hpa.sync(15, 4, 1000.0, 10.0), 8, "2 × 4");
        assert_eq!(hpa.sync(30, 8, 1000.0, 10.0), 16);
        assert_eq!(hpa.sync(45, 16, 1000.0, 10.0), 32);
        assert_eq!(hpa.sync(60, 32, 1000.0, 10.0), 50, "the maximum");
    }

    /// Rule 5, the legacy window's boundary (`stabilizeRecommendation`), as modelled.
    #[test]
    fn legacy_scale_down_waits_for_the_highest_recommendation_of_five_minutes() {
        let mut hpa = Autoscaler::new(1, 50, None, KubernetesVersion::DEFAULT);
        assert_eq!(hpa.sync(0, 10, 100.0, 10.0), 10);
        // The backlog is gone at 15 s, but 10 was recommended within the last 300 s.
        for t in (15..300).step_by(15) {
            assert_eq!(hpa.sync(t, 10, 0.0, 10.0), 10, "at {t} s");
        }
        assert_eq!(
            hpa.sync(300, 10, 0.0, 10.0),
            1,
            "rule 5: a recommendation exactly 300 s old is dropped (see `legacy`); min is 1"
        );
    }

    #[test]
    fn default_behavior_scales_up_by_the_larger_of_100_percent_and_4_pods_per_15_s() {
        let mut hpa = Autoscaler::new(1, 100, Some(Behavior::default()), KubernetesVersion::DEFAULT);
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
                tolerance: None,
            },
            ..Behavior::default()
        };
        let mut hpa = Autoscaler::new(1, 100, Some(behavior), KubernetesVersion::DEFAULT);
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
                tolerance: None,
            },
            ..Behavior::default()
        };
        let mut hpa = Autoscaler::new(1, 100, Some(behavior), KubernetesVersion::DEFAULT);
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
                tolerance: None,
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
                tolerance: None,
            },
        };
        let mut hpa = Autoscaler::new(1, 100, Some(behavior), KubernetesVersion::DEFAULT);
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
                tolerance: None,
            },
            ..Behavior::default()
        };
        let mut hpa = Autoscaler::new(1, 100, Some(behavior), KubernetesVersion::DEFAULT);
        assert_eq!(hpa.sync(0, 8, 0.0, 10.0), 8);
    }
}
