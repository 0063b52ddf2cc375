//! `kedaform plan`: the planner's comparison, and its answer ready to deploy.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use kedaform::resources::scaled_object::ScaledObjectProperties;
use kedaform::sim::hpa::{Behavior, Rules};
use kedaform::sim::keda::Settings;
use serde_json::json;

use crate::Output;

/// The longest `plan` run: a week, one step a second (memory grows with it).
const MAX_PLAN_SECONDS: u64 = 7 * 86_400;

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// constant:RATE, steps:SECOND@RATE,…, bursts:SECOND@COUNT,… or csv:FILE (lines of
    /// second,messages); rates up to 100,000/s, bursts up to 100,000,000 messages.
    #[arg(long, default_value = "constant:2", value_parser = parse_traffic)]
    traffic: kedaform::sim::model::Traffic,
    /// Length of the simulated run, in seconds (1 to 604,800: a week).
    #[arg(long, default_value_t = 3_600, value_parser = clap::value_parser!(u64).range(1..=MAX_PLAN_SECONDS))]
    seconds: u64,
    /// The oldest-message age to keep to, in seconds ("60" or "60s"; up to 86,400).
    #[arg(long, default_value = "60s", value_parser = parse_slo)]
    slo_max_age: u64,
    /// MAX_MSGS_PER_BATCH of the consumer (1 to 10).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10))]
    batch_size: u32,
    /// Seconds a batch takes from receive to delete (up to 43,200).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=43_200))]
    work_seconds: u64,
    /// MSG_PROCESS_DELAY of the consumer (up to 86,400).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    process_delay: u64,
    /// MSG_POLL_BACKOFF of the consumer (up to 512).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=512))]
    poll_backoff: u64,
    /// Seconds from scheduling a pod to its first receive (up to 86,400).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    startup_seconds: u64,
    /// The queue's DelaySeconds (0 to 900, as SQS allows).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=900))]
    delay_seconds: u64,
    /// The queue's visibility timeout (0 to 43,200, as SQS allows).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=43_200))]
    visibility_timeout: u64,
    /// Write the chosen settings' time series here (JSON when the name ends in .json, else CSV).
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Write the chosen settings' plot here (SVG).
    #[arg(long)]
    svg: Option<PathBuf>,
    /// The cluster's Kubernetes version (1.30 to 1.37): its HPA controller's rules apply.
    #[arg(long, default_value_t = kedaform::sim::hpa::KubernetesVersion::DEFAULT, value_parser = parse_kubernetes_version)]
    kubernetes_version: kedaform::sim::hpa::KubernetesVersion,
    /// Print the chosen settings ready to deploy (the table then goes to stderr).
    #[arg(long, value_enum)]
    emit: Option<Emit>,
    /// For `--emit scaled-object`: the queue KEDA reads.
    #[arg(long, required_if_eq("emit", "scaled-object"))]
    queue_url: Option<String>,
    /// For `--emit scaled-object`: the consumer role KEDA assumes.
    #[arg(long, required_if_eq("emit", "scaled-object"))]
    role_arn: Option<String>,
    /// For `--emit properties` and `scaled-object`: where the ScaledObject goes.
    #[arg(long, default_value = "consumer")]
    namespace: String,
    /// For `--emit properties` and `scaled-object`: the ScaledObject's name.
    #[arg(long, default_value = "consumer")]
    name: String,
    /// For `--emit properties` and `scaled-object`: the Deployment to scale.
    #[arg(long, default_value = "consumer")]
    target: String,
}

/// What `kedaform plan --emit` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Emit {
    /// The scaling properties of `Custom::KedaScaledObject`, as YAML to paste into a template.
    Properties,
    /// The TriggerAuthentication and ScaledObject, as YAML for `kubectl apply -f -`.
    ScaledObject,
    /// A `sam deploy --parameter-overrides` command for infra/template.yaml.
    Parameters,
}

fn parse_kubernetes_version(text: &str) -> Result<kedaform::sim::hpa::KubernetesVersion, String> {
    kedaform::sim::hpa::KubernetesVersion::parse(text).map_err(|e| e.to_string())
}

/// The largest `--traffic csv:` file read (a day a second is about 1 MiB).
const MAX_TRAFFIC_BYTES: usize = 16 * 1024 * 1024;

/// `--traffic`, checked by clap so that a bad one is a usage error (exit 2).
fn parse_traffic(spec: &str) -> Result<kedaform::sim::model::Traffic, String> {
    use kedaform::sim::model::Traffic;
    let parsed = match spec.strip_prefix("csv:") {
        Some(file) => {
            let bytes = kedaform::fetch::read_bounded(std::path::Path::new(file), MAX_TRAFFIC_BYTES)
                .map_err(|why| format!("{file} {why}"))?;
            let text = String::from_utf8(bytes).map_err(|_| format!("{file} is not UTF-8 text"))?;
            Traffic::from_csv(&text)
        }
        None => Traffic::parse(spec),
    };
    parsed.map_err(|e| e.to_string())
}

/// `--slo-max-age`: whole seconds, 1 to a day, with or without an `s`.
fn parse_slo(text: &str) -> Result<u64, String> {
    text.trim()
        .trim_end_matches('s')
        .parse::<u64>()
        .ok()
        .filter(|seconds| (1..=86_400).contains(seconds))
        .ok_or_else(|| "expected whole seconds from 1 to 86400, e.g. 60s".to_owned())
}

impl PlanArgs {
    pub fn run(&self, output: Output) -> anyhow::Result<ExitCode> {
        plan(self, output)
    }
}

fn plan(args: &PlanArgs, output: Output) -> anyhow::Result<ExitCode> {
    use kedaform::sim::model::{Consumer, Scenario, simulate};
    use kedaform::sim::plan::search;
    let slo = args.slo_max_age;
    let base = Scenario {
        seconds: args.seconds,
        traffic: args.traffic.clone(),
        delay_seconds: args.delay_seconds,
        visibility_timeout: args.visibility_timeout,
        consumer: Consumer {
            batch_size: args.batch_size,
            work_seconds: args.work_seconds,
            process_delay: args.process_delay,
            poll_backoff: args.poll_backoff,
            startup_seconds: args.startup_seconds,
        },
        keda: kedaform::sim::keda::Settings::default(),
        initial_replicas: 0,
        kills: vec![],
        kubernetes: args.kubernetes_version,
    };
    let (best, defaults, original) = search(&base, slo);
    let table = comparison(args, output, best.as_ref(), &defaults, &original)?;
    // With --emit, stdout carries only what deploys; the comparison goes to stderr.
    if args.emit.is_some() {
        eprint!("{table}");
    } else {
        print!("{table}");
    }
    let chosen = best.as_ref().unwrap_or(&original);
    if args.csv.is_some() || args.svg.is_some() {
        let run = simulate(&Scenario {
            keda: chosen.settings.clone(),
            initial_replicas: chosen.settings.min_replicas,
            ..base
        });
        if let Some(path) = &args.csv {
            let series = if path.extension().is_some_and(|e| e == "json") {
                serde_json::to_string_pretty(&run.samples)?
            } else {
                run.to_csv()
            };
            std::fs::write(path, series).with_context(|| format!("cannot write {}", path.display()))?;
        }
        if let Some(path) = &args.svg {
            std::fs::write(path, kedaform::sim::svg::plot(&run, &chosen.name))
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    if let Some(emit) = args.emit {
        let Some(best) = &best else {
            anyhow::bail!("nothing to emit: none of the settings searched meets the SLO");
        };
        print!("{}", emitted(emit, args, best)?);
    }
    Ok(if best.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The table `kedaform plan` prints: the cheapest settings beside KEDA's defaults and scale-eks-with-keda's.
fn comparison(
    args: &PlanArgs,
    output: Output,
    best: Option<&kedaform::sim::plan::Evaluation>,
    defaults: &kedaform::sim::plan::Evaluation,
    original: &kedaform::sim::plan::Evaluation,
) -> anyhow::Result<String> {
    use kedaform::sim::plan::Evaluation;
    let slo = args.slo_max_age;
    let describe = |e: &Evaluation| {
        json!({"settings": e.name, "meets_slo": e.meets_slo, "summary": e.summary,
               "queue_length": e.settings.queue_length, "polling_interval": e.settings.polling_interval,
               "min_replicas": e.settings.min_replicas, "max_replicas": e.settings.max_replicas})
    };
    Ok(match output {
        Output::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(
                &json!({"slo_max_age": slo, "kubernetes_version": args.kubernetes_version.to_string(),
                "cheapest": best.map(describe), "keda_defaults": describe(defaults), "scale_eks_with_keda": describe(original)})
            )?
        ),
        Output::Text => {
            let row = |label: &str, e: &Evaluation| {
                let s = e.summary;
                format!(
                    "{label:<19} {:>10} {:>6} {:>16} {:>7} {:>5}  {}\n",
                    s.pod_seconds,
                    s.peak_backlog,
                    format!("{}/{}/{} s", s.age_p50, s.age_p95, s.age_max),
                    s.scale_events,
                    if e.meets_slo { "yes" } else { "NO" },
                    e.name
                )
            };
            let cheapest = match best {
                Some(best) => row("cheapest", best),
                None => format!(
                    "cheapest            none of the {} settings searched meets the SLO\n",
                    kedaform::sim::plan::candidates().len()
                ),
            };
            format!(
                "traffic {}, {} s, Kubernetes {}; SLO: no message older than {slo} s\n\
                 {:<19} {:>10} {:>6} {:>16} {:>7} {:>5}  settings\n{cheapest}{}{}",
                args.traffic,
                args.seconds,
                args.kubernetes_version,
                "",
                "pod-s",
                "peak",
                "age p50/p95/max",
                "scales",
                "SLO",
                row("KEDA default", defaults),
                row("scale-eks-with-keda", original)
            )
        }
    })
}

/// The chosen settings in the form `--emit` names.
fn emitted(emit: Emit, args: &PlanArgs, chosen: &kedaform::sim::plan::Evaluation) -> anyhow::Result<String> {
    use kedaform::sim::deploy;
    let header = format!(
        "# kedaform plan: {} (traffic {}, {} s, Kubernetes {}, no message older than {} s)\n",
        chosen.name, args.traffic, args.seconds, args.kubernetes_version, args.slo_max_age
    );
    let identity = ScaledObjectProperties {
        // No plan picks 0, so QueueLength always differs from the identity and is emitted.
        queue_length: 0,
        ..ScaledObjectProperties::new(
            "",
            &args.namespace,
            &args.name,
            &args.target,
            args.queue_url.clone().unwrap_or_default(),
            args.role_arn.clone().unwrap_or_default(),
        )
    };
    let planned = deploy::apply(&chosen.settings, &identity)?;
    Ok(match emit {
        Emit::Properties => {
            // Only what the plan decides: the resource's identity stays as the template has it.
            let base = serde_json::to_value(&identity)?;
            let mut scaling = serde_json::to_value(&planned)?;
            if let (Some(scaling), Some(base)) = (scaling.as_object_mut(), base.as_object()) {
                scaling.retain(|key, value| base.get(key) != Some(value));
            }
            format!("{header}{}", serde_yaml_ng::to_string(&scaling)?)
        }
        Emit::ScaledObject => {
            let (auth, scaled) = planned.render()?;
            format!(
                "{header}{}---\n{}",
                serde_yaml_ng::to_string(&auth)?,
                serde_yaml_ng::to_string(&scaled)?
            )
        }
        Emit::Parameters => {
            let overrides = parameter_overrides(&chosen.settings)?;
            // SAM reads `Name=""` as an empty value (a bare `Name=` is dropped); the values are
            // digits or empty, so single quotes around the whole list are enough for a shell.
            let pairs: Vec<String> = overrides
                .iter()
                .map(|(name, value)| format!("{name}={}", if value.is_empty() { "\"\"" } else { value }))
                .collect();
            format!(
                "{header}# sam deploy replaces samconfig.toml's parameter_overrides with these: add your image\n\
                 # parameters to the list, or copy the pairs into samconfig.toml instead.\n\
                 sam deploy --parameter-overrides '{}'\n",
                pairs.join(" ")
            )
        }
    })
}

/// `sam deploy --parameter-overrides` for `infra/template.yaml`: its scaling parameters, and
/// `ScaleDownStabilizationSeconds` for a behavior that differs from Kubernetes' defaults only
/// there. Anything else the template cannot express is an error naming it.
fn parameter_overrides(settings: &Settings) -> anyhow::Result<Vec<(&'static str, String)>> {
    let unsupported = |what: &str| {
        anyhow::anyhow!(
            "infra/template.yaml has no parameter for {what}; emit the properties instead (--emit properties)"
        )
    };
    if settings.activation_queue_length != 0 {
        return Err(unsupported("ActivationQueueLength"));
    }
    if !settings.scale_on_in_flight || settings.scale_on_delayed {
        return Err(unsupported("which messages count (ScaleOnInFlight)"));
    }
    let window = match &settings.behavior {
        None => String::new(),
        Some(behavior) => {
            let default = Behavior::default();
            let same_but_window = behavior.scale_up == default.scale_up
                && Rules {
                    stabilization_seconds: default.scale_down.stabilization_seconds,
                    ..behavior.scale_down.clone()
                } == default.scale_down;
            if !same_but_window {
                return Err(unsupported("a Behavior other than a scale-down stabilization window"));
            }
            behavior.scale_down.stabilization_seconds.to_string()
        }
    };
    Ok(vec![
        ("QueueLength", settings.queue_length.to_string()),
        ("MinReplicas", settings.min_replicas.to_string()),
        ("MaxReplicas", settings.max_replicas.to_string()),
        ("PollingInterval", settings.polling_interval.to_string()),
        ("CooldownPeriod", settings.cooldown_period.to_string()),
        ("ScaleDownStabilizationSeconds", window),
    ])
}

#[cfg(test)]
mod tests {
    use kedaform::sim::hpa::{Behavior, Select};
    use kedaform::sim::keda::Settings;

    use super::parameter_overrides;

    #[test]
    fn parameter_overrides_cover_the_plans_grid_and_refuse_what_the_template_lacks() {
        for (_, candidate) in kedaform::sim::plan::candidates() {
            let overrides = parameter_overrides(&candidate).unwrap();
            assert_eq!(overrides.len(), 6);
        }
        let mut quick = Settings::default();
        let mut behavior = Behavior::default();
        behavior.scale_down.stabilization_seconds = 60;
        quick.behavior = Some(behavior.clone());
        assert!(
            parameter_overrides(&quick)
                .unwrap()
                .contains(&("ScaleDownStabilizationSeconds", "60".into()))
        );
        behavior.scale_up.select = Select::Min;
        quick.behavior = Some(behavior);
        let error = parameter_overrides(&quick).unwrap_err().to_string();
        assert!(error.contains("emit the properties instead"), "{error}");
    }

    /// `kedaform plan --emit parameters` deploys what it simulated: every setting of the planner's
    /// grid, given to the template as parameter overrides, reaches the ScaledObject's handler as
    /// the same settings, and each value is one the parameter accepts.
    #[test]
    fn the_planners_parameter_overrides_deploy_the_settings_it_simulated() {
        use kedaform::cfn::{UnknownKeys, decode_properties as decode};
        use kedaform::resources::scaled_object::ScaledObjectProperties;
        use kedaform::sim::deploy::settings;
        use kedaform_tests::template::{Evaluator, IMAGES, Template};
        let template = Template::load("infra/template.yaml");
        let declared = template.root["Parameters"].as_object().unwrap();
        let mut grid = kedaform::sim::plan::candidates();
        grid.push(("KEDA defaults".into(), kedaform::sim::plan::keda_defaults()));
        grid.push(("scale-eks-with-keda".into(), kedaform::sim::plan::original_settings()));
        for (name, planned) in grid {
            let overrides = parameter_overrides(&planned).unwrap();
            for (parameter, value) in &overrides {
                let declaration = &declared
                    .get(*parameter)
                    .unwrap_or_else(|| panic!("{name}: the template has no parameter {parameter}"));
                if declaration["Type"] == "Number" {
                    let least = declaration["MinValue"].as_f64().unwrap_or(f64::MIN);
                    assert!(value.parse::<f64>().unwrap() >= least, "{name}: {parameter}={value}");
                } else {
                    assert!(
                        value.is_empty() || (value.len() <= 4 && value.bytes().all(|b| b.is_ascii_digit())),
                        "{name}: {parameter}={value} against {}",
                        declaration["AllowedPattern"]
                    );
                }
            }
            let given: Vec<(&str, &str)> = IMAGES
                .iter()
                .copied()
                .chain(overrides.iter().map(|(k, v)| (*k, v.as_str())))
                .collect();
            let properties = Evaluator::new(&template, &given)
                .eval(&template.resource("ScaledObject")["Properties"])
                .unwrap();
            let decoded: ScaledObjectProperties = decode(&properties, UnknownKeys::Reject).unwrap();
            assert_eq!(settings(&decoded).unwrap(), planned, "{name}");
        }
    }
}
