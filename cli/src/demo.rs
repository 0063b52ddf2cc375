//! `kedaform demo`: the whole system on one machine against an AWS emulator. The parts are the
//! project's real code (library, trust-policy handler, producer, consumer binary). With a
//! kubeconfig (`make demo`: the local cluster of `scripts/cluster.sh`), KEDA is installed with
//! `Custom::KedaInstall`, the consumer Deployment and the ScaledObject are applied with the
//! Kubernetes resources, and the real KEDA operator and HPA controller decide the fleet size,
//! whose processes the cluster's pod runner starts and stops. Without one (`--fast`), a local
//! stand-in for KEDA and the HPA (the planner's model) supervises local consumer processes.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use clap::Args;
use k8s_openapi::api::apps::v1::Deployment;
use kedaform::cfn::{CustomResource, RequestBuilder, Runtime};
use kedaform::iam::TrustPolicies;
use kedaform::keda::install::{self, Overlay};
use kedaform::kube::Kubeconfig;
use kedaform::resources::keda_install::KedaInstallProperties;
use kedaform::resources::kube_manifest::ManifestProperties;
use kedaform::resources::scaled_object::ScaledObjectProperties;
use kedaform::resources::trust_policy::TrustPolicyProperties;
use kedaform::resources::{self, ClusterAccess, Resources};
use kedaform::sim::keda::{QueueCounts, Scaler, Settings};
use kedaform::sim::model::{Run, Sample};
use sales_events::Message;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How long the fleet runs before the queue is drained and checked.
    #[arg(long, env = "DEMO_SECONDS", default_value_t = 120)]
    seconds: u64,
    /// Where the plot and the JSON summary go.
    #[arg(long, default_value = "target/demo")]
    out: PathBuf,
    /// The consumer binary (default: next to this one).
    #[arg(long)]
    consumer: Option<PathBuf>,
    /// KEDA's release manifest (file or URL; default: `keda-<version>.yaml` in the directory
    /// `$KEDAFORM_KEDA_MIRROR`, else the release URL).
    #[arg(long)]
    keda_manifest: Option<String>,
}

/// The scaling the demo runs with: quick, so that a two-minute run shows it.
fn settings() -> Settings {
    Settings {
        queue_length: 10,
        polling_interval: 5,
        cooldown_period: 30,
        min_replicas: 1,
        max_replicas: 8,
        ..Settings::default()
    }
}

/// Consumer processes; every one still running is killed when the fleet is dropped.
struct Fleet {
    binary: PathBuf,
    env: Vec<(String, String)>,
    running: Vec<Child>,
    draining: Vec<Child>,
}

impl Fleet {
    fn scale(&mut self, replicas: usize) -> anyhow::Result<()> {
        while self.running.len() < replicas {
            let child = Command::new(&self.binary)
                .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .with_context(|| format!("cannot start {}", self.binary.display()))?;
            self.running.push(child);
        }
        while self.running.len() > replicas {
            let child = self.running.pop().expect("more than wanted");
            // Scale-in as on a cluster: SIGTERM, and the consumer drains what it holds. The
            // child is kept (and reaped later, or killed on drop) whatever kill says.
            let signalled = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            self.draining.push(child);
            signalled?;
        }
        self.draining
            .retain_mut(|child| child.try_wait().ok().flatten().is_none());
        Ok(())
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for child in self.running.iter_mut().chain(self.draining.iter_mut()) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Who decides how many consumers run.
enum Scaling {
    /// The planner's KEDA + HPA model, supervising local consumer processes.
    StandIn { scaler: Scaler, fleet: Fleet },
    /// KEDA and the HPA controller of a real cluster; its pod runner runs the processes.
    Cluster { deployments: kube::Api<Deployment> },
}

impl Scaling {
    /// The fleet size now: decided by the model (and applied), or read from the Deployment.
    async fn tick(&mut self, second: u64, replicas: u32, counts: QueueCounts) -> anyhow::Result<u32> {
        match self {
            Self::StandIn { scaler, fleet } => {
                let replicas = scaler.tick(second, replicas, counts);
                fleet.scale(replicas as usize)?;
                Ok(replicas)
            }
            Self::Cluster { deployments } => {
                let consumer = deployments.get("consumer").await?;
                let replicas = consumer.spec.and_then(|s| s.replicas).unwrap_or_default();
                Ok(u32::try_from(replicas).unwrap_or_default())
            }
        }
    }

    /// Lets the stand-in's consumers drain and stop; a cluster's stay with the cluster.
    async fn stop(self) -> anyhow::Result<()> {
        if let Self::StandIn { mut fleet, .. } = self {
            fleet.scale(0)?;
            let deadline = Instant::now() + Duration::from_secs(12);
            while !fleet.draining.is_empty() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
                fleet.scale(0)?;
            }
        }
        Ok(())
    }
}

/// One custom-resource request through `runtime`, answered to a local response endpoint.
async fn send<H: CustomResource>(runtime: &Runtime<H>, mut request: Value, seconds: u64) -> anyhow::Result<Value> {
    let (response_url, response) = response_endpoint().await?;
    request["ResponseURL"] = json!(response_url);
    let resource_type = request["ResourceType"].clone();
    runtime
        .handle(request, tokio::time::Instant::now() + Duration::from_secs(seconds))
        .await;
    let response = response.await??;
    ensure!(
        response["Status"] == "SUCCESS",
        "{resource_type} failed: {}",
        response["Reason"]
    );
    Ok(response)
}

/// What the demo puts on a cluster, named as the template names it.
struct Deploy<'a> {
    cluster: String,
    stack_id: String,
    queue_url: &'a str,
    keda_role: &'a str,
    consumer_role: &'a str,
    manifest_url: String,
    consumer_env: &'a [(String, String)],
}

/// KEDA, the consumer and the ScaledObject on the cluster, through the same handlers the
/// Lambda runs; the consumer Deployment's API for the scaling loop.
async fn deploy(
    kubeconfig: Kubeconfig,
    aws: &aws_config::SdkConfig,
    deploy: &Deploy<'_>,
    scaled_object: &ScaledObjectProperties,
) -> anyhow::Result<kube::Api<Deployment>> {
    let client = kubeconfig.client(&deploy.cluster)?;
    let access = ClusterAccess::new(aws, aws_sdk_eks::Client::new(aws), kedaform_common::aws::s3(aws))?
        .with_kubeconfig(kubeconfig);
    let runtime = Runtime::new(Resources::default().with_kubernetes(access));
    let request = |resource_type: &str, logical: &str, properties: Value| -> anyhow::Result<Value> {
        Ok(RequestBuilder::create(resource_type, logical, &properties)?
            .stack_id(&deploy.stack_id)
            .request_id(&format!("demo-{logical}"))
            .build())
    };
    let started = Instant::now();
    send(
        &runtime,
        request(
            resources::KEDA_INSTALL,
            "KedaInstall",
            serde_json::to_value(KedaInstallProperties {
                manifest_url: Some(deploy.manifest_url.clone()),
                ..KedaInstallProperties::new(&deploy.cluster, deploy.keda_role)
            })?,
        )?,
        600,
    )
    .await?;
    println!(
        "   Custom::KedaInstall: KEDA {} installed and ready in {:.1} s",
        install::DEFAULT_VERSION,
        started.elapsed().as_secs_f64()
    );
    let env: Vec<Value> = deploy
        .consumer_env
        .iter()
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect();
    let workload = json!([
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "sales"}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "consumer", "namespace": "sales",
            "annotations": {"eks.amazonaws.com/role-arn": deploy.consumer_role}}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "consumer", "namespace": "sales"},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "consumer"}},
                  "template": {"metadata": {"labels": {"app": "consumer"}},
                               "spec": {"serviceAccountName": "consumer", "terminationGracePeriodSeconds": 15,
                                        "containers": [{"name": "consumer", "image": CONSUMER_IMAGE, "env": env}]}}}},
    ]);
    let manifest = workload
        .as_array()
        .into_iter()
        .flatten()
        .map(serde_yaml_ng::to_string)
        .collect::<Result<Vec<_>, _>>()?
        .join("---\n");
    let started = Instant::now();
    send(
        &runtime,
        request(
            resources::MANIFEST,
            "Consumer",
            serde_json::to_value(ManifestProperties {
                cluster_name: deploy.cluster.clone(),
                manifest,
                wait_for_ready: true,
                adopt_existing: false,
            })?,
        )?,
        120,
    )
    .await?;
    println!(
        "   Custom::KubernetesManifest: namespace sales, service account and Deployment consumer ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    send(
        &runtime,
        request(
            resources::SCALED_OBJECT,
            "ScaledObject",
            serde_json::to_value(scaled_object)?,
        )?,
        120,
    )
    .await?;
    println!(
        "   Custom::KedaScaledObject: KEDA read {} and reported Ready in {:.1} s",
        deploy.queue_url,
        started.elapsed().as_secs_f64()
    );
    Ok(kube::Api::namespaced(client, "sales"))
}

/// The image the cluster's pod runner maps to the consumer binary (scripts/demo.sh).
const CONSUMER_IMAGE: &str = "kedaform/consumer:local";

/// Plays CloudFormation's pre-signed response URL for one request: answers 200, keeps the body.
async fn response_endpoint() -> anyhow::Result<(String, tokio::task::JoinHandle<anyhow::Result<Value>>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/cloudformation-response", listener.local_addr()?);
    let task = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await?;
        let mut request = Vec::new();
        let mut buffer = [0u8; 8192];
        loop {
            let n = stream.read(&mut buffer).await?;
            request.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&request);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap_or(0))
                    })
                    .unwrap_or(0);
                if body.len() >= length {
                    stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .await?;
                    return Ok(serde_json::from_str(body)?);
                }
            }
            ensure!(n > 0, "the response endpoint's connection closed early");
        }
    });
    Ok((url, task))
}

/// Request ids in the dead-letter queue.
async fn dead_lettered(sqs: &aws_sdk_sqs::Client, url: &str) -> anyhow::Result<HashSet<String>> {
    Ok(kedaform_common::queues::receive_all(sqs, url)
        .await?
        .iter()
        .map(|message| {
            let body: Value = serde_json::from_str(message.body().unwrap_or_default()).unwrap_or_default();
            body["request_id"].as_str().unwrap_or_default().to_owned()
        })
        .collect())
}

/// `--keda-manifest`, else the release manifest in `$KEDAFORM_KEDA_MIRROR` (a directory), else
/// the release URL.
fn keda_manifest(args: &DemoArgs) -> anyhow::Result<String> {
    if let Some(manifest) = &args.keda_manifest {
        return crate::keda::manifest_url(manifest);
    }
    match std::env::var_os("KEDAFORM_KEDA_MIRROR") {
        Some(mirror) => crate::keda::manifest_url(
            &std::path::Path::new(&mirror)
                .join(format!("keda-{}.yaml", install::DEFAULT_VERSION))
                .display()
                .to_string(),
        ),
        None => Ok(install::release_url(install::DEFAULT_VERSION)),
    }
}

/// What step 1 made on the emulator.
struct AwsSide {
    name: String,
    account: String,
    queue: String,
    dlq: String,
    keda_role: String,
    consumer_role: String,
}

impl AwsSide {
    fn stack_id(&self) -> String {
        format!(
            "arn:aws:cloudformation:us-east-1:{}:stack/kedaform-demo/1",
            self.account
        )
    }

    /// The ScaledObject names the queue as it would be in AWS; the emulator's URL differs.
    fn queue_in_aws(&self) -> String {
        format!("https://sqs.us-east-1.amazonaws.com/{}/{}", self.account, self.name)
    }

    fn consumer_role_arn(&self) -> String {
        format!("arn:aws:iam::{}:role/{}", self.account, self.consumer_role)
    }

    /// The consumers' settings: this emulator's queue and bucket, quick pauses.
    fn consumer_env(&self) -> Vec<(String, String)> {
        [
            ("QUEUE_URL", self.queue.as_str()),
            ("DLQ_URL", self.dlq.as_str()),
            ("STORE_EVENTS_BKT", self.name.as_str()),
            ("MSG_PROCESS_DELAY", "2"),
            ("MAX_MSGS_PER_BATCH", "5"),
            ("MSG_POLL_BACKOFF", "1"),
            ("TOT_MSGS_TO_PROCESS", "1000000000"),
            ("SHUTDOWN_GRACE_SECS", "10"),
            ("RUST_LOG", "warn"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    }
}

/// Step 1: the queue and its dead-letter queue, the bucket, the KEDA role, and the consumer
/// role trusting the whole account as scale-eks-with-keda's did.
async fn aws_side(aws: &aws_config::SdkConfig) -> anyhow::Result<AwsSide> {
    let (sqs, s3, iam) = (
        aws_sdk_sqs::Client::new(aws),
        kedaform_common::aws::s3(aws),
        aws_sdk_iam::Client::new(aws),
    );
    let name = format!("kedaform-demo-{}", std::process::id());
    println!(
        "1. the AWS side, on the emulator at {}",
        aws.endpoint_url().unwrap_or("(the real AWS!)")
    );
    let kedaform_common::queues::QueuePair {
        url: queue,
        dead_letter_url: dlq,
    } = kedaform_common::queues::create_queue_with_dlq(&sqs, &name, 30, 2, 5).await?;
    s3.create_bucket().bucket(&name).send().await?;
    let keda_role = iam
        .create_role()
        .role_name(format!("{name}-keda"))
        .assume_role_policy_document(json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/DEMO"}, "Action": "sts:AssumeRoleWithWebIdentity"}]}).to_string())
        .send()
        .await?
        .role
        .context("no role")?
        .arn;
    let account = keda_role.split(':').nth(4).unwrap_or("123456789012").to_owned();
    let account_wide_trust = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{account}:root")}, "Action": "sts:AssumeRole"},
        {"Effect": "Allow", "Principal": {"Federated": format!("arn:aws:iam::{account}:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/DEMO")},
         "Action": "sts:AssumeRoleWithWebIdentity",
         "Condition": {"StringEquals": {"oidc.eks.us-east-1.amazonaws.com/id/DEMO:sub": "system:serviceaccount:sales:consumer"}}}]});
    let consumer_role = format!("{name}-consumer");
    iam.create_role()
        .role_name(&consumer_role)
        .assume_role_policy_document(account_wide_trust.to_string())
        .send()
        .await?;
    println!("   queue {queue} (visibility 30 s, delay 2 s), dead-letter queue {dlq}, bucket {name}");
    println!(
        "   consumer role {consumer_role} (trusts the whole account, as scale-eks-with-keda's did), KEDA role {keda_role}"
    );
    Ok(AwsSide {
        name,
        account,
        queue,
        dlq,
        keda_role,
        consumer_role,
    })
}

/// Step 2: `Custom::KedaTrustPolicy` through the trust-policy handler, before and after.
async fn trust_step(aws: &aws_config::SdkConfig, side: &AwsSide) -> anyhow::Result<()> {
    println!("\n2. Custom::KedaTrustPolicy: a CloudFormation request to the trust-policy handler");
    let iam = aws_sdk_iam::Client::new(aws);
    let policies = TrustPolicies::new(iam.clone());
    let read = || async {
        anyhow::Ok(
            policies
                .read(&side.consumer_role)
                .await?
                .context("the consumer role")?
                .trust_policy,
        )
    };
    let before = read().await?;
    let properties = TrustPolicyProperties {
        role_name: side.consumer_role.clone(),
        keda_role_arn: side.keda_role.clone(),
        external_id: None,
        keda_account_id: None,
        exclusive: true,
        triggers: None,
    };
    let request = RequestBuilder::create(resources::TRUST_POLICY, "ConsumerTrust", &properties)?
        .stack_id(&side.stack_id())
        .request_id("demo-1")
        .build();
    let response = send(
        &Runtime::new(Resources::default().with_trust_policy(iam.clone())),
        request,
        60,
    )
    .await?;
    let after = read().await?;
    println!("   before: {before}\n   after:  {after}");
    println!(
        "   response: {} ({}), removed: {}",
        response["Status"], response["PhysicalResourceId"], response["Data"]["RemovedPrincipals"]
    );
    Ok(())
}

/// Step 3: KEDA's manifest with the IRSA overlay, and the ScaledObject, as they would go onto
/// a cluster; returns the manifest and the ScaledObject's properties.
async fn render_step(
    args: &DemoArgs,
    side: &AwsSide,
    kubeconfig: Option<&Kubeconfig>,
) -> anyhow::Result<(Vec<u8>, ScaledObjectProperties)> {
    match kubeconfig {
        Some(kubeconfig) => println!("\n3. onto the cluster of {} (what would go onto EKS)", kubeconfig.path),
        None => println!("\n3. what would go onto a cluster"),
    }
    let manifest = crate::keda::read_manifest(&keda_manifest(args)?).await?;
    let objects = install::objects(&manifest, None, &Overlay::irsa(&side.keda_role))?;
    let per_kind = kedaform::kube::plan::count_by_kind(&kedaform::kube::plan::apply_order(objects.clone()));
    println!(
        "   KEDA {}: {}",
        install::DEFAULT_VERSION,
        per_kind
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let account_yaml = install::operator_account(&objects);
    println!("{}", indent(&serde_yaml_ng::to_string(&account_yaml)?));
    let identity = ScaledObjectProperties::new(
        kubeconfig.map_or_else(|| "demo".to_owned(), |k| k.cluster_name.clone()),
        "sales",
        "consumer",
        "consumer",
        side.queue_in_aws(),
        side.consumer_role_arn(),
    );
    let properties = kedaform::sim::deploy::apply(&settings(), &identity)?;
    let (auth, scaled) = properties.render()?;
    println!(
        "{}\n   ---\n{}",
        indent(&serde_yaml_ng::to_string(&auth)?),
        indent(&serde_yaml_ng::to_string(&scaled)?)
    );
    Ok((manifest, properties))
}

/// Step 4's scaler: KEDA and the HPA controller of the cluster, or the local stand-in.
async fn start_scaling(
    args: &DemoArgs,
    aws: &aws_config::SdkConfig,
    side: &AwsSide,
    kubeconfig: Option<Kubeconfig>,
    (manifest, scaled_object): (Vec<u8>, ScaledObjectProperties),
) -> anyhow::Result<Scaling> {
    let demo = settings();
    let consumer_env = side.consumer_env();
    if let Some(kubeconfig) = kubeconfig {
        // A mirror bucket of its own: the events' bucket must hold only events for the verdict.
        let s3 = kedaform_common::aws::s3(aws);
        let mirror = format!("{}-mirror", side.name);
        s3.create_bucket().bucket(&mirror).send().await?;
        s3.put_object()
            .bucket(&mirror)
            .key("keda.yaml")
            .body(manifest.into())
            .send()
            .await?;
        let deployments = deploy(
            kubeconfig,
            aws,
            &Deploy {
                cluster: scaled_object.cluster_name.clone(),
                stack_id: side.stack_id(),
                queue_url: &side.queue_in_aws(),
                keda_role: &side.keda_role,
                consumer_role: &side.consumer_role_arn(),
                manifest_url: format!("s3://{mirror}/keda.yaml"),
                consumer_env: &consumer_env,
            },
            &scaled_object,
        )
        .await?;
        println!(
            "\n4. producer and consumers for {} s; the fleet size is decided by KEDA {} and the HPA controller",
            args.seconds,
            install::DEFAULT_VERSION
        );
        return Ok(Scaling::Cluster { deployments });
    }
    println!(
        "\n4. producer and consumers for {} s; the fleet size is decided by a local stand-in for KEDA + HPA",
        args.seconds
    );
    let binary = match &args.consumer {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("consumer"),
    };
    ensure!(
        binary.exists(),
        "{} is missing: build it with `cargo build -p consumer` (make demo does)",
        binary.display()
    );
    let mut fleet = Fleet {
        binary,
        env: consumer_env,
        running: Vec::new(),
        draining: Vec::new(),
    };
    fleet.scale(demo.min_replicas as usize)?;
    Ok(Scaling::StandIn {
        scaler: Scaler::new(demo, kedaform::sim::hpa::KubernetesVersion::DEFAULT),
        fleet,
    })
}

/// What the producer sent while step 4 ran.
struct Traffic {
    run: Run,
    summary: producer::Summary,
    sent: Vec<Message>,
}

/// Step 4: the producer for `args.seconds`, the scaler each second, then the drain; `None`
/// when interrupted.
async fn traffic(
    args: &DemoArgs,
    aws: &aws_config::SdkConfig,
    side: &AwsSide,
    scaling: &mut Scaling,
) -> anyhow::Result<Option<Traffic>> {
    let demo = settings();
    let (sqs, s3) = (aws_sdk_sqs::Client::new(aws), kedaform_common::aws::s3(aws));
    let sent: Arc<Mutex<Vec<Message>>> = Arc::default();
    let arrivals = Arc::new(AtomicU64::new(0));
    let stop_producing = CancellationToken::new();
    let producing = {
        let (sqs, sent, arrivals, stop) = (
            sqs.clone(),
            Arc::clone(&sent),
            Arc::clone(&arrivals),
            stop_producing.clone(),
        );
        let config = producer::Config {
            total: u64::MAX,
            wait_between_messages: Duration::from_millis(100),
            queue: sales_events::settings::Queue::Url(side.queue.clone()),
            bad_percent: 10,
            duplicate_percent: 5,
            batch_size: 5,
            seed: Some(7),
        };
        tokio::spawn(async move {
            producer::run(&config, &sqs, &stop, |message| {
                sent.lock().expect("not poisoned").push(message.clone());
                arrivals.fetch_add(1, Ordering::Relaxed);
            })
            .await
        })
    };
    let mut run = Run::default();
    let mut replicas = demo.min_replicas;
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let (mut second, mut last_arrivals, mut stored) = (0u64, 0, 0);
    // Bounded: the whole demo ends within DEMO_SECONDS + 60 s.
    let drain_limit = args.seconds + 35;
    loop {
        let tick = tokio::time::sleep(Duration::from_secs(1));
        tokio::select! {
            () = tick => {}
            _ = &mut interrupted => {
                println!("interrupted: stopping everything started");
                stop_producing.cancel();
                return Ok(None);
            }
        }
        second += 1;
        if second == args.seconds {
            stop_producing.cancel();
            println!("   producer stopped; draining the queue");
        }
        let queue_counts = kedaform_common::queues::queue_counts(&sqs, &side.queue).await?;
        replicas = scaling.tick(second, replicas, queue_counts).await?;
        let total_arrivals = arrivals.load(Ordering::Relaxed);
        if second.is_multiple_of(demo.polling_interval) {
            stored = kedaform_common::queues::object_keys(&s3, &side.name).await?.len() as u64;
            let dead = kedaform_common::queues::queue_counts(&sqs, &side.dlq).await?.visible;
            println!(
                "   t={second:>4}s visible={:>4} in-flight={:>4} replicas={replicas} stored={stored:>5} dlq={dead:>4}",
                queue_counts.visible, queue_counts.in_flight
            );
        }
        run.samples.push(Sample {
            second,
            arrivals: total_arrivals - last_arrivals,
            visible: queue_counts.visible,
            in_flight: queue_counts.in_flight,
            delayed: queue_counts.delayed,
            replicas,
            stored,
        });
        last_arrivals = total_arrivals;
        let drained = queue_counts.visible + queue_counts.in_flight + queue_counts.delayed == 0;
        if second >= args.seconds && (drained || second >= drain_limit) {
            break;
        }
    }
    let summary = producing.await??;
    let sent = sent.lock().expect("not poisoned").clone();
    Ok(Some(Traffic { run, summary, sent }))
}

/// Step 5: every distinct valid event stored once, every bad one dead-lettered, nothing left;
/// the plot and the JSON report. Whether the verdict holds.
async fn verdict(
    args: &DemoArgs,
    aws: &aws_config::SdkConfig,
    side: &AwsSide,
    traffic: &Traffic,
    started: Instant,
) -> anyhow::Result<bool> {
    let (sqs, s3) = (aws_sdk_sqs::Client::new(aws), kedaform_common::aws::s3(aws));
    let Traffic { run, summary, sent } = traffic;
    println!("\n5. verdict");
    let mut expected: HashMap<String, String> = HashMap::new();
    let mut bad = HashSet::new();
    for message in sent {
        if message.bad {
            bad.insert(message.request_id.to_string());
        } else if let Ok((event_type, event)) = sales_events::validate(&message.body, Some(message.event_type.as_str()))
        {
            expected.insert(sales_events::object_key("", event_type, &event), message.body.clone());
        }
    }
    let stored_keys = kedaform_common::queues::object_keys(&s3, &side.name).await?;
    let expected_keys: HashSet<String> = expected.keys().cloned().collect();
    let dead = dead_lettered(&sqs, &side.dlq).await?;
    let left = kedaform_common::queues::queue_counts(&sqs, &side.queue).await?;
    let missing = expected_keys.difference(&stored_keys).count();
    let unexpected = stored_keys.difference(&expected_keys).count();
    let bad_missing = bad.difference(&dead).count();
    let holds = missing == 0 && unexpected == 0 && bad_missing == 0 && left == QueueCounts::default();
    println!(
        "   sent {} messages ({} duplicates, {} bad); {} distinct valid events",
        summary.sent,
        summary.duplicates,
        summary.bad,
        expected.len()
    );
    println!(
        "   stored objects: {} (missing {missing}, unexpected {unexpected}); bad events in the DLQ: {} of {} ; left in the queue: {left:?}",
        stored_keys.len(),
        bad.len() - bad_missing,
        bad.len()
    );
    for key in stored_keys.difference(&expected_keys).take(5) {
        println!("   unexpected object: {key}");
    }
    for key in expected_keys.difference(&stored_keys).take(5) {
        println!("   missing object: {key}");
    }
    println!(
        "   {}",
        if holds {
            "every distinct valid event stored exactly once, bad events in the DLQ, nothing lost"
        } else {
            "VERDICT FAILED"
        }
    );

    std::fs::create_dir_all(&args.out)?;
    let svg = args.out.join("demo.svg");
    std::fs::write(
        &svg,
        kedaform::sim::svg::plot(run, "kedaform demo: queueLength 10, polling 5 s, min 1, max 8"),
    )?;
    let report = json!({"verdict": holds, "seconds": started.elapsed().as_secs(), "sent": summary.sent, "duplicates": summary.duplicates,
        "bad": summary.bad, "distinct_valid": expected.len(), "stored": stored_keys.len(), "missing": missing, "unexpected": unexpected,
        "bad_in_dlq": bad.len() - bad_missing, "peak_replicas": run.samples.iter().map(|s| s.replicas).max().unwrap_or(0),
        "summary": run.summary()});
    std::fs::write(args.out.join("demo.json"), serde_json::to_string_pretty(&report)?)?;
    println!(
        "   wrote {} and {}",
        svg.display(),
        args.out.join("demo.json").display()
    );
    Ok(holds)
}

/// The demo's five steps.
pub async fn run(args: &DemoArgs, context: &crate::Context) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let aws = context.aws().await;
    let side = aws_side(&aws).await?;
    trust_step(&aws, &side).await?;
    let kubeconfig = match &context.kubeconfig {
        Some(path) => Some(Kubeconfig::read(path).await?),
        None => None,
    };
    let rendered = render_step(args, &side, kubeconfig.as_ref()).await?;
    let mut scaling = start_scaling(args, &aws, &side, kubeconfig, rendered).await?;
    let Some(traffic) = traffic(args, &aws, &side, &mut scaling).await? else {
        return Ok(ExitCode::from(130));
    };
    scaling.stop().await?;
    let holds = verdict(args, &aws, &side, &traffic, started).await?;
    Ok(if holds { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("   {l}")).collect::<Vec<_>>().join("\n")
}
