//! A discrete-time run, one step a second: traffic into SQS (delay, visibility timeout,
//! redelivery of a killed consumer's messages), consumer pods as this project's consumer
//! behaves (batches, a pause per cycle, the empty-poll backoff, start-up latency), and KEDA plus
//! the HPA deciding the pod count. Pure and deterministic.

use std::collections::VecDeque;

use super::hpa::KubernetesVersion;
use super::keda::{QueueCounts, Scaler, Settings};

/// `SECOND@VALUE,…` as pairs; None when any item does not parse.
fn at_pairs<T: std::str::FromStr>(list: &str) -> Option<Vec<(u64, T)>> {
    list.split(',')
        .map(|item| {
            let (second, value) = item.split_once('@')?;
            Some((second.trim().parse().ok()?, value.trim().parse().ok()?))
        })
        .collect()
}

/// The highest rate a traffic spec may give, in messages a second.
pub const MAX_RATE: f64 = 100_000.0;
/// The most messages one second of a series may bring.
pub const MAX_BURST: u64 = 100_000_000;

/// Messages arriving each second.
#[derive(Debug, Clone, PartialEq)]
pub enum Traffic {
    /// A steady rate (fractions accumulate).
    Constant(f64),
    /// `(from second, rate)` steps, in order.
    Steps(Vec<(u64, f64)>),
    /// Exact counts per second; seconds not listed have none.
    Series(Vec<(u64, u64)>),
}

impl Traffic {
    /// `constant:RATE`, `steps:SECOND@RATE,…` or `bursts:SECOND@COUNT,…` (a CSV file is read by
    /// the caller and given to [`Traffic::from_csv`]).
    pub fn parse(spec: &str) -> Result<Self, crate::Error> {
        let bad = || {
            crate::Error::input(
                crate::Input::Traffic,
                format!(
                    "{spec:?}: expected constant:RATE, steps:SECOND@RATE,…, bursts:SECOND@COUNT,… or csv:FILE, \
                     rates from 0 to {MAX_RATE} a second, counts up to {MAX_BURST}"
                ),
            )
        };
        let rate_ok = |rate: &f64| rate.is_finite() && (0.0..=MAX_RATE).contains(rate);
        if let Some(bursts) = spec.strip_prefix("bursts:") {
            return at_pairs::<u64>(bursts)
                .filter(|pairs| pairs.iter().all(|(_, count)| *count <= MAX_BURST))
                .map(Self::Series)
                .ok_or_else(bad);
        }
        if let Some(rate) = spec.strip_prefix("constant:") {
            return rate
                .trim()
                .parse::<f64>()
                .ok()
                .filter(rate_ok)
                .map(Self::Constant)
                .ok_or_else(bad);
        }
        let steps = spec.strip_prefix("steps:").ok_or_else(bad)?;
        let mut parsed: Vec<(u64, f64)> = at_pairs(steps)
            .filter(|pairs: &Vec<(u64, f64)>| pairs.iter().all(|(_, rate)| rate_ok(rate)))
            .ok_or_else(bad)?;
        parsed.sort_by_key(|(second, _)| *second);
        Ok(Self::Steps(parsed))
    }

    /// A CSV of `second,messages` lines (a header line and blank lines are skipped).
    pub fn from_csv(text: &str) -> Result<Self, crate::Error> {
        let mut series = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || (index == 0 && line.chars().any(char::is_alphabetic)) {
                continue;
            }
            let parsed = line.split_once(',').and_then(|(second, count)| {
                Some((second.trim().parse::<u64>().ok()?, count.trim().parse::<u64>().ok()?))
            });
            let pair = parsed.filter(|(_, count)| *count <= MAX_BURST).ok_or_else(|| {
                crate::Error::input(
                    crate::Input::Traffic,
                    format!(
                        "line {}: {line:?} is not `second,messages` with at most {MAX_BURST} messages",
                        index + 1
                    ),
                )
            })?;
            series.push(pair);
        }
        Ok(Self::Series(series))
    }

    fn rate(&self, second: u64) -> f64 {
        match self {
            Self::Constant(rate) => *rate,
            Self::Steps(steps) => steps
                .iter()
                .rev()
                .find(|(from, _)| *from <= second)
                .map_or(0.0, |(_, r)| *r),
            Self::Series(_) => 0.0,
        }
    }
}

impl std::fmt::Display for Traffic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Constant(rate) => write!(f, "constant:{rate}"),
            Self::Steps(steps) => {
                let steps: Vec<String> = steps.iter().map(|(at, rate)| format!("{at}@{rate}")).collect();
                write!(f, "steps:{}", steps.join(","))
            }
            Self::Series(series) => write!(
                f,
                "{} bursts of {} messages",
                series.len(),
                series.iter().map(|(_, n)| n).sum::<u64>()
            ),
        }
    }
}

/// How one consumer pod works (this project's consumer, `workloads/consumer`).
#[derive(Debug, Clone, PartialEq)]
pub struct Consumer {
    /// `MAX_MSGS_PER_BATCH`.
    pub batch_size: u32,
    /// Seconds from receive to delete for a batch.
    pub work_seconds: u64,
    /// `MSG_PROCESS_DELAY`: pause after each batch.
    pub process_delay: u64,
    /// `MSG_POLL_BACKOFF`: first wait after an empty poll, doubling up to 512.
    pub poll_backoff: u64,
    /// From scheduling to the first receive.
    pub startup_seconds: u64,
}

#[derive(Debug, Clone, PartialEq)]
/// What to simulate: traffic, queue, consumer, ScaledObject and cluster.
pub struct Scenario {
    /// How long, one step a second.
    pub seconds: u64,
    /// The arrivals.
    pub traffic: Traffic,
    /// The queue's `DelaySeconds`.
    pub delay_seconds: u64,
    /// The queue's visibility timeout, seconds.
    pub visibility_timeout: u64,
    /// How each pod consumes.
    pub consumer: Consumer,
    /// The ScaledObject's settings.
    pub keda: Settings,
    /// Pods at second 0.
    pub initial_replicas: u32,
    /// Seconds at which one running pod is killed (its batch returns after the visibility timeout).
    pub kills: Vec<u64>,
    /// The cluster's version, whose HPA controller rules apply.
    pub kubernetes: KubernetesVersion,
}

/// One second of the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Sample {
    /// The second this sample ends.
    pub second: u64,
    /// Messages sent during it.
    pub arrivals: u64,
    /// Visible in the queue at its end.
    pub visible: u64,
    /// Received and not yet deleted.
    pub in_flight: u64,
    /// Sent but still within the queue's delay.
    pub delayed: u64,
    /// Replicas at its end.
    pub replicas: u32,
    /// Messages stored so far.
    pub stored: u64,
}

/// Messages that arrived at the same second travel together.
#[derive(Debug, Clone, Copy)]
struct Cohort {
    arrived: u64,
    count: u64,
}

#[derive(Debug, Clone)]
struct Pod {
    ready_at: u64,
    next_poll: u64,
    backoff: u64,
    batch: Vec<Cohort>,
    done_at: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
/// A simulated run.
pub struct Run {
    /// One per second.
    pub samples: Vec<Sample>,
    /// (age in seconds when stored, messages), for the age percentiles.
    pub ages: Vec<(u64, u64)>,
}

fn take(queue: &mut VecDeque<Cohort>, mut wanted: u64) -> Vec<Cohort> {
    let mut taken = Vec::new();
    while wanted > 0 {
        let Some(front) = queue.front_mut() else { break };
        let n = front.count.min(wanted);
        taken.push(Cohort {
            arrived: front.arrived,
            count: n,
        });
        front.count -= n;
        wanted -= n;
        if front.count == 0 {
            queue.pop_front();
        }
    }
    taken
}

fn total(cohorts: &[Cohort]) -> u64 {
    cohorts.iter().map(|c| c.count).sum()
}

/// Messages arriving in `second`; `carry` keeps the fractions of a rate between seconds.
fn arrivals(traffic: &Traffic, second: u64, carry: &mut f64) -> u64 {
    if let Traffic::Series(series) = traffic {
        return series.iter().filter(|(s, _)| *s == second).map(|(_, n)| *n).sum();
    }
    *carry += traffic.rate(second);
    let whole = carry.floor();
    *carry -= whole;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let whole = whole as u64;
    whole
}

/// One second of the consumers: finished batches are stored, idle pods receive.
fn consume(
    pods: &mut [Pod],
    draining: &mut Vec<Pod>,
    visible: &mut VecDeque<Cohort>,
    second: u64,
    consumer: &Consumer,
    run: &mut Run,
) -> u64 {
    let mut stored = 0;
    for pod in pods.iter_mut().chain(draining.iter_mut()) {
        if !pod.batch.is_empty() && pod.done_at <= second {
            for cohort in pod.batch.drain(..) {
                stored += cohort.count;
                run.ages.push((second - cohort.arrived, cohort.count));
            }
            pod.next_poll = second + consumer.process_delay;
        }
    }
    draining.retain(|pod| !pod.batch.is_empty());
    for pod in pods.iter_mut() {
        if pod.ready_at > second || !pod.batch.is_empty() || pod.next_poll > second {
            continue;
        }
        let batch = take(visible, u64::from(consumer.batch_size));
        if batch.is_empty() {
            pod.next_poll = second + pod.backoff.max(1);
            pod.backoff = (pod.backoff * 2).clamp(1, 512);
        } else {
            pod.backoff = consumer.poll_backoff;
            pod.done_at = second + consumer.work_seconds;
            pod.batch = batch;
        }
    }
    stored
}

/// Brings the pod count to `desired`. Scale-in sends SIGTERM: idle pods go first; a busy one
/// finishes its batch.
fn resize(pods: &mut Vec<Pod>, draining: &mut Vec<Pod>, desired: u32, new_pod: impl Fn() -> Pod) {
    let desired = desired as usize;
    while pods.len() < desired {
        pods.push(new_pod());
    }
    while pods.len() > desired {
        let index = pods.iter().position(|p| p.batch.is_empty()).unwrap_or(pods.len() - 1);
        let pod = pods.remove(index);
        if !pod.batch.is_empty() {
            draining.push(pod);
        }
    }
}

/// Runs the scenario; sample `i` describes the end of second `i`.
pub fn simulate(scenario: &Scenario) -> Run {
    let mut scaler = Scaler::new(scenario.keda.clone(), scenario.kubernetes);
    let mut run = Run::default();
    let mut delayed: VecDeque<(u64, Cohort)> = VecDeque::new();
    let mut visible: VecDeque<Cohort> = VecDeque::new();
    // Messages of killed pods: invisible until their visibility timeout ends.
    let mut orphaned: VecDeque<(u64, Cohort)> = VecDeque::new();
    let new_pod = |at: u64| Pod {
        ready_at: at + scenario.consumer.startup_seconds,
        next_poll: at + scenario.consumer.startup_seconds,
        backoff: scenario.consumer.poll_backoff,
        batch: Vec::new(),
        done_at: 0,
    };
    let mut pods: Vec<Pod> = (0..scenario.initial_replicas).map(|_| new_pod(0)).collect();
    let mut draining: Vec<Pod> = Vec::new();
    let mut stored = 0u64;
    let mut carry = 0.0f64;

    for second in 0..scenario.seconds {
        let arrivals = arrivals(&scenario.traffic, second, &mut carry);
        if arrivals > 0 {
            delayed.push_back((
                second + scenario.delay_seconds,
                Cohort {
                    arrived: second,
                    count: arrivals,
                },
            ));
        }
        while delayed.front().is_some_and(|(at, _)| *at <= second) {
            if let Some((_, cohort)) = delayed.pop_front() {
                visible.push_back(cohort);
            }
        }
        while orphaned.front().is_some_and(|(at, _)| *at <= second) {
            if let Some((_, cohort)) = orphaned.pop_front() {
                visible.push_front(cohort);
            }
        }
        if scenario.kills.contains(&second) && !pods.is_empty() {
            let killed = pods.remove(0);
            for cohort in killed.batch {
                orphaned.push_back((second + scenario.visibility_timeout, cohort));
            }
        }

        stored += consume(
            &mut pods,
            &mut draining,
            &mut visible,
            second,
            &scenario.consumer,
            &mut run,
        );

        let in_flight = pods.iter().chain(&draining).map(|p| total(&p.batch)).sum::<u64>()
            + orphaned.iter().map(|(_, c)| c.count).sum::<u64>();
        let counts = QueueCounts {
            visible: visible.iter().map(|c| c.count).sum(),
            in_flight,
            delayed: delayed.iter().map(|(_, c)| c.count).sum(),
        };
        let current = u32::try_from(pods.len()).unwrap_or(u32::MAX);
        let desired = scaler.tick(second, current, counts);
        resize(&mut pods, &mut draining, desired, || new_pod(second));
        run.samples.push(Sample {
            second,
            arrivals,
            visible: counts.visible,
            in_flight: counts.in_flight,
            delayed: counts.delayed,
            replicas: desired,
            stored,
        });
    }
    run
}

/// What a run comes to.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Summary {
    /// The largest backlog (visible + in flight + delayed).
    pub peak_backlog: u64,
    /// Seconds from the peak backlog until the queue is next empty (None: never in the run).
    pub drain_seconds: Option<u64>,
    /// Median age at storage, seconds.
    pub age_p50: u64,
    /// 95th percentile age at storage.
    pub age_p95: u64,
    /// Oldest age at storage.
    pub age_max: u64,
    /// Replicas summed over the seconds: the cost.
    pub pod_seconds: u64,
    /// Replica-count changes.
    pub scale_events: u64,
}

impl Run {
    /// The time series as CSV, one line a second.
    pub fn to_csv(&self) -> String {
        use std::fmt::Write as _;
        let mut csv = String::from("second,arrivals,visible,in_flight,delayed,replicas,stored\n");
        for s in &self.samples {
            let _ = writeln!(
                csv,
                "{},{},{},{},{},{},{}",
                s.second, s.arrivals, s.visible, s.in_flight, s.delayed, s.replicas, s.stored
            );
        }
        csv
    }

    /// The run's cost and latency figures.
    pub fn summary(&self) -> Summary {
        let percentile = |p: f64| {
            let total: u64 = self.ages.iter().map(|(_, n)| n).sum();
            let mut sorted = self.ages.clone();
            sorted.sort_unstable();
            #[allow(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss
            )]
            let rank = ((total as f64) * p).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (age, n) in sorted {
                seen += n;
                if seen >= rank {
                    return age;
                }
            }
            0
        };
        let backlog = |s: &Sample| s.visible + s.in_flight + s.delayed;
        let peak = self
            .samples
            .iter()
            .max_by_key(|s| (backlog(s), std::cmp::Reverse(s.second)));
        let drain_seconds = peak.and_then(|peak| {
            self.samples
                .iter()
                .skip_while(|s| s.second < peak.second)
                .find(|s| backlog(s) == 0)
                .map(|s| s.second - peak.second)
        });
        Summary {
            peak_backlog: peak.map_or(0, backlog),
            drain_seconds,
            age_p50: percentile(0.5),
            age_p95: percentile(0.95),
            age_max: self.ages.iter().map(|(age, _)| *age).max().unwrap_or(0),
            pod_seconds: self.samples.iter().map(|s| u64::from(s.replicas)).sum(),
            scale_events: self
                .samples
                .windows(2)
                .filter(|w| w[0].replicas != w[1].replicas)
                .count() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// scale-eks-with-keda's system: two producers at one message a second; a consumer that takes 10 messages,
    /// works ~2 s and pauses 10 s; KEDA min 1, max 50, polling 10, cooldown 500, queueLength 10.
    fn original() -> Scenario {
        Scenario {
            seconds: 3_600,
            traffic: Traffic::Constant(2.0),
            delay_seconds: 2,
            visibility_timeout: 30,
            consumer: Consumer {
                batch_size: 10,
                work_seconds: 2,
                process_delay: 10,
                poll_backoff: 2,
                startup_seconds: 5,
            },
            keda: crate::sim::plan::original_settings(),
            initial_replicas: 1,
            kills: vec![],
            kubernetes: KubernetesVersion::DEFAULT,
        }
    }

    #[test]
    fn every_message_is_always_somewhere() {
        let mut scenario = original();
        scenario.traffic = Traffic::Steps(vec![(0, 2.0), (600, 9.5), (900, 0.5)]);
        scenario.kills = vec![700, 800, 1_000];
        let run = simulate(&scenario);
        let mut arrived = 0;
        for sample in &run.samples {
            arrived += sample.arrivals;
            assert_eq!(
                arrived,
                sample.stored + sample.visible + sample.in_flight + sample.delayed,
                "at {} s",
                sample.second
            );
        }
        let stored: u64 = run.ages.iter().map(|(_, n)| n).sum();
        assert_eq!(stored, run.samples.last().unwrap().stored);
    }

    #[test]
    fn the_original_settles_where_the_hand_calculation_says() {
        // One pod does 10 messages per 12 s cycle (2 s work + 10 s pause): 0.83 msg/s. At
        // 2 msg/s, 2 pods (1.67/s) fall behind and 3 (2.5/s) keep up, so the backlog grows until
        // the HPA asks for ceil(backlog / 10) = 3, i.e. a backlog above 20 (tolerance aside),
        // and stays near there: 3 pods drain it below 20, the proposal drops to 2, but the
        // 5-minute downscale stabilization holds 3 as long as any proposal in the window was 3.
        let run = simulate(&original());
        let settled = &run.samples[1_200..];
        let seconds = f64::from(u32::try_from(settled.len()).unwrap());
        let mean: f64 = settled.iter().map(|s| f64::from(s.replicas)).sum::<f64>() / seconds;
        assert!((2.5..=3.5).contains(&mean), "mean replicas {mean}");
        assert!(settled.iter().all(|s| (2..=4).contains(&s.replicas)));
        let backlog = settled
            .iter()
            .map(|s| s.visible + s.in_flight + s.delayed)
            .max()
            .unwrap();
        assert!(backlog <= 45, "backlog peaked at {backlog}");
        let stored = run.samples.last().unwrap().stored;
        assert!(stored >= 7_000 - 45, "{stored} of 7,200 stored");
    }

    #[test]
    fn traffic_specs() {
        assert_eq!(Traffic::parse("constant:2.5").unwrap(), Traffic::Constant(2.5));
        assert_eq!(
            Traffic::parse("steps:300@6,0@1").unwrap(),
            Traffic::Steps(vec![(0, 1.0), (300, 6.0)])
        );
        assert!(
            Traffic::parse("steps:0-1")
                .unwrap_err()
                .to_string()
                .starts_with("\"steps:0-1\": expected")
        );
        assert!(Traffic::parse("constant:-1").is_err());
        for unbounded in [
            "constant:NaN",
            "constant:inf",
            "constant:100001",
            "steps:0@1,60@inf",
            "bursts:0@100000001",
        ] {
            assert!(Traffic::parse(unbounded).is_err(), "{unbounded}");
        }
        assert_eq!(Traffic::parse("constant:100000").unwrap(), Traffic::Constant(MAX_RATE));
        assert_eq!(
            Traffic::parse("bursts:60@500,900@200").unwrap(),
            Traffic::Series(vec![(60, 500), (900, 200)])
        );
    }

    #[test]
    fn traffic_from_csv_and_the_time_series_as_csv() {
        let traffic = Traffic::from_csv("second,messages\n0,5\n\n3, 7\n").unwrap();
        assert_eq!(traffic, Traffic::Series(vec![(0, 5), (3, 7)]));
        let message = Traffic::from_csv("0,5\nx,1").unwrap_err().to_string();
        assert_eq!(
            message,
            "line 2: \"x,1\" is not `second,messages` with at most 100000000 messages"
        );
        assert!(Traffic::from_csv("0,100000001").is_err());
        let mut scenario = original();
        scenario.seconds = 3;
        scenario.traffic = traffic;
        let csv = simulate(&scenario).to_csv();
        assert_eq!(
            csv.lines().next(),
            Some("second,arrivals,visible,in_flight,delayed,replicas,stored")
        );
        assert_eq!(
            csv.lines().nth(1),
            Some("0,5,0,0,5,1,0"),
            "delayed 2 s, the pod still starting"
        );
        assert_eq!(csv.lines().count(), 4);
    }

    #[test]
    fn a_burst_scales_out_and_drains_then_scales_back_in() {
        let mut scenario = original();
        scenario.traffic = Traffic::Series(vec![(60, 2_000)]);
        scenario.keda.min_replicas = 0;
        scenario.initial_replicas = 0;
        let run = simulate(&scenario);
        let summary = run.summary();
        assert_eq!(summary.peak_backlog, 2_000);
        let peak = run.samples.iter().map(|s| s.replicas).max().unwrap();
        assert_eq!(peak, 50, "the maximum");
        assert_eq!(run.samples.last().unwrap().stored, 2_000);
        assert_eq!(
            run.samples.last().unwrap().replicas,
            0,
            "back to zero after the cooldown"
        );
        assert!(summary.age_max < 600, "{summary:?}");
        let drain = summary.drain_seconds.expect("drained within the run");
        assert!(drain > 0 && summary.age_max <= drain + 60, "{summary:?}");
    }
}
