//! `make bench`: every benchmark of the project in one table, also written as JSON.
//!
//! scripts/bench.sh builds the Lambda zips with cargo-lambda first and passes:
//! `KEDAFORM_LAMBDA_DIR` (cargo-lambda's output, one folder per Lambda with `bootstrap.zip`),
//! `KEDAFORM_LAMBDA_BINARIES` (the folder with the release binaries of those zips) and
//! `KEDAFORM_BENCH_JSON` (where to write the table as JSON), `KEDAFORM_CONSUMER_BIN` (the release
//! consumer), `KEDAFORM_MOTO_PID` (the moto server it started, whose CPU time is read too) and
//! `KEDAFORM_CLUSTER_BENCH` (what it measured of `Custom::KedaInstall` on the local cluster),
//! `KEDAFORM_LIFECYCLE_BENCH` (the upgrade and the side-by-side `helm install`),
//! `KEDAFORM_REHEARSAL_BENCH` (what `make rehearse` measured).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail, ensure};
use kedaform::cfn::{CustomResource, Invocation, Outcome, Runtime, response};
use kedaform::iam::policy::{self, KedaTrust};
use kedaform_tests::iam::{ACCOUNT, FAKE_IAM_ROLE, account_wide_trust, fake_iam, url_encoded};
use kedaform_tests::{LocalServer, Reply, cfn_request};
use serde_json::{Value, json};

/// Size targets per Lambda zip, in MB (10^6 bytes).
const ZIP_TARGETS: [(&str, f64); 2] = [("trust-policy", 4.0), ("kube-resources", 6.0)];
const TOKEN_SPEEDUP_TARGET: f64 = 1_000.0;
const COLD_START_TARGET_MS: f64 = 50.0;
const COLD_STARTS: usize = 7;
const WARM_INVOCATIONS: usize = 20;

#[derive(Debug)]
struct Row {
    benchmark: String,
    value: f64,
    unit: &'static str,
    /// `(≤ or ≥, bound)`.
    target: Option<(&'static str, f64)>,
    how: String,
}

impl Row {
    fn met(&self) -> Option<bool> {
        self.target.map(|(cmp, bound)| {
            if cmp == "≤" {
                self.value <= bound
            } else {
                self.value >= bound
            }
        })
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn env_path(name: &str) -> anyhow::Result<PathBuf> {
    std::env::var_os(name)
        .map(PathBuf::from)
        .with_context(|| format!("{name} is not set: run the benchmarks with `make bench`"))
}

fn zip_sizes(lambda_dir: &Path) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (name, target) in ZIP_TARGETS {
        let zip = lambda_dir.join(name).join("bootstrap.zip");
        let bytes = std::fs::metadata(&zip)
            .with_context(|| format!("{} is missing: scripts/bench.sh builds it", zip.display()))?
            .len();
        #[allow(clippy::cast_precision_loss)]
        let megabytes = bytes as f64 / 1e6;
        rows.push(Row {
            benchmark: format!("{name} Lambda zip ({bytes} bytes)"),
            value: megabytes,
            unit: "MB",
            target: Some(("≤", target)),
            how: "cargo lambda build --release --x86-64 --output-format zip".into(),
        });
    }
    Ok(rows)
}

/// What one run of a Lambda binary under the local Runtime API measured.
struct LambdaRun {
    /// Process start to its first `GET /runtime/invocation/next`.
    init: Duration,
    /// `next` served to the CloudFormation response received, first invocation.
    first: Duration,
    /// The same for every later invocation.
    warm: Vec<Duration>,
}

/// Runs the real release binary against a local Lambda Runtime API that hands it
/// `invocations` Create requests of `Custom::KedaTrustPolicy`; IAM is a loopback fake, the
/// response endpoint a loopback server.
async fn run_lambda(binary: &Path, invocations: usize) -> anyhow::Result<LambdaRun> {
    let iam = fake_iam(0).await;
    let cloudformation = LocalServer::cloudformation().await;
    let served = Arc::new(AtomicUsize::new(0));
    let response_url = cloudformation.url.clone();
    let api = {
        let served = Arc::clone(&served);
        LocalServer::start(move |_, request| {
            if request.method != "GET" {
                return Reply::new(202, "application/json", "{}");
            }
            let n = served.fetch_add(1, Ordering::SeqCst);
            if n >= invocations {
                return Reply::new(500, "application/json", r#"{"errorType":"BenchmarkDone"}"#);
            }
            let mut event = cfn_request(
                "Create",
                &response_url,
                json!({"RoleName": FAKE_IAM_ROLE, "KedaRoleArn": format!("arn:aws:iam::{ACCOUNT}:role/keda")}),
                None,
                None,
            );
            event["ResourceType"] = json!(kedaform::resources::TRUST_POLICY);
            let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default() + Duration::from_secs(60);
            Reply::new(200, "application/json", event.to_string())
                .header("lambda-runtime-aws-request-id", format!("bench-{n}"))
                .header("lambda-runtime-deadline-ms", deadline.as_millis().to_string())
                .header(
                    "lambda-runtime-invoked-function-arn",
                    format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:trust-policy"),
                )
        })
        .await
    };
    let runtime_api = api.url.trim_start_matches("http://").to_owned();
    // The binary's own log, shown only when the run fails: the runtime ends on the
    // Runtime API's final 500 with a panic message by design.
    let log_path = std::env::temp_dir().join(format!("kedaform-bench-{}.log", std::process::id()));
    let log = std::fs::File::create(&log_path)?;
    let started = Instant::now();
    let mut child = Command::new(binary)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "trust-policy")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_ENDPOINT_URL", &iam.url)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    while cloudformation.requests().len() < invocations {
        if started.elapsed() > Duration::from_secs(60) || child.try_wait()?.is_some() {
            let _ = child.kill();
            bail!(
                "{} answered {} of {invocations} requests",
                binary.display(),
                cloudformation.requests().len()
            );
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    child.kill()?;
    child.wait()?;
    std::fs::remove_file(&log_path)?;

    let nexts: Vec<Instant> = api
        .requests()
        .iter()
        .filter(|r| r.method == "GET")
        .map(|r| r.at)
        .collect();
    let responses = cloudformation.requests();
    if let Some(failed) = responses.iter().find(|r| r.json()["Status"] != "SUCCESS") {
        bail!("an invocation failed: {}", failed.json());
    }
    let latencies: Vec<Duration> = responses.iter().zip(&nexts).map(|(put, next)| put.at - *next).collect();
    Ok(LambdaRun {
        init: nexts[0] - started,
        first: latencies[0],
        warm: latencies[1..].to_vec(),
    })
}

async fn lambda_latency(binaries: &Path) -> anyhow::Result<Vec<Row>> {
    let binary = binaries.join("trust-policy");
    let mut inits = Vec::new();
    let mut firsts = Vec::new();
    for _ in 0..COLD_STARTS {
        let run = run_lambda(&binary, 1).await?;
        inits.push(run.init);
        firsts.push(run.first);
    }
    let warm = run_lambda(&binary, WARM_INVOCATIONS + 1).await?.warm;
    let how = format!("release binary under a local Lambda Runtime API, median of {COLD_STARTS} starts");
    Ok(vec![
        Row {
            benchmark: "trust-policy cold start: process start to first request fetched".into(),
            value: ms(median(inits)),
            unit: "ms",
            target: Some(("≤", COLD_START_TARGET_MS)),
            how: how.clone(),
        },
        Row {
            benchmark: "trust-policy first request: fetched to CloudFormation answered (loopback IAM)".into(),
            value: ms(median(firsts)),
            unit: "ms",
            target: None,
            how,
        },
        Row {
            benchmark: "trust-policy warm request: fetched to CloudFormation answered (loopback IAM)".into(),
            value: ms(median(warm)),
            unit: "ms",
            target: None,
            how: format!(
                "median of {WARM_INVOCATIONS} requests in one process: GetRole + UpdateAssumeRolePolicy + PUT"
            ),
        },
    ])
}

/// A handler that does nothing, to measure what the runtime itself costs.
#[derive(Debug)]
struct Noop;

impl CustomResource for Noop {
    type Properties = Value;

    async fn create(&self, _: &Invocation, _: Value) -> Result<Outcome, kedaform::Error> {
        Ok(Outcome::new("noop"))
    }

    async fn update(&self, _: &Invocation, _: &str, _: Value, _: Value) -> Result<Outcome, kedaform::Error> {
        Ok(Outcome::new("noop"))
    }

    async fn delete(&self, _: &Invocation, _: &str, _: Value) -> Result<(), kedaform::Error> {
        Ok(())
    }
}

fn per_call<F: FnMut()>(iterations: u32, mut f: F) -> Duration {
    let started = Instant::now();
    for _ in 0..iterations {
        f();
    }
    started.elapsed() / iterations
}

async fn handler_overhead() -> Rows {
    let encoded = url_encoded(&account_wide_trust());
    let trust = KedaTrust {
        keda_role_arn: format!("arn:aws:iam::{ACCOUNT}:role/keda"),
        external_id: None,
        exclusive: true,
        keda_account_id: None,
    };
    let plan = per_call(20_000, || {
        let document = policy::parse_document(std::hint::black_box(&encoded)).expect("the account-wide policy parses");
        std::hint::black_box(policy::apply(&document, &trust).expect("plan"));
    });

    let runtime = Runtime::new(Noop);
    let request = cfn_request(
        "Create",
        "http://127.0.0.1:9",
        json!({"Name": "x", "Count": "3"}),
        None,
        None,
    );
    let mut samples = Vec::new();
    for _ in 0..2_000 {
        let started = Instant::now();
        let mut answer = runtime
            .respond(request.clone(), tokio::time::Instant::now() + Duration::from_secs(60))
            .await;
        std::hint::black_box(response::body(&mut answer));
        samples.push(started.elapsed());
    }
    vec![
        Row {
            benchmark: "trust-policy planning: decode GetRole's document + plan".into(),
            value: plan.as_secs_f64() * 1e6,
            unit: "µs",
            target: None,
            how: "in process, mean of 20,000".into(),
        },
        Row {
            benchmark: "runtime overhead per request: decode, run handler task, build body".into(),
            value: median(samples).as_secs_f64() * 1e6,
            unit: "µs",
            target: None,
            how: "in process, no-op handler, median of 2,000".into(),
        },
    ]
}

type Rows = Vec<Row>;

/// Minting an EKS token in process against `aws eks get-token`, in the same run.
fn token_mint() -> anyhow::Result<Rows> {
    let credentials = aws_credential_types::Credentials::new("AKIDEXAMPLE", "secret", None, None, "bench");
    let in_process = per_call(2_000, || {
        std::hint::black_box(
            kedaform::eks::token(&credentials, "us-east-1", "sales", std::time::SystemTime::now()).expect("mint"),
        );
    });
    let mut cli = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let status = Command::new("aws")
            .args(["eks", "get-token", "--cluster-name", "sales", "--region", "us-east-1"])
            .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
            .env("AWS_SECRET_ACCESS_KEY", "secret")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_ENDPOINT_URL")
            .stdout(Stdio::null())
            .status()
            .context("cannot run `aws` (scripts/bench.sh puts the venv's AWS CLI on PATH)")?;
        ensure!(status.success(), "aws eks get-token failed");
        cli.push(started.elapsed());
    }
    let cli = median(cli);
    Ok(vec![
        Row {
            benchmark: "EKS token, minted in process".into(),
            value: in_process.as_secs_f64() * 1e6,
            unit: "µs",
            target: None,
            how: "mean of 2,000".into(),
        },
        Row {
            benchmark: "EKS token, `aws eks get-token`".into(),
            value: ms(cli),
            unit: "ms",
            target: None,
            how: "median of 5 runs of the AWS CLI from the project venv".into(),
        },
        Row {
            benchmark: "EKS token: in process vs the AWS CLI".into(),
            value: cli.as_secs_f64() / in_process.as_secs_f64(),
            unit: "×",
            target: Some(("≥", TOKEN_SPEEDUP_TARGET)),
            how: "ratio of the two rows above".into(),
        },
    ])
}

/// HTTP requests one KEDA install (24 objects, discovery included) and one ScaledObject
/// create send, through the custom-resource runtime, to a fake EKS and API server.
async fn request_counts() -> anyhow::Result<Rows> {
    use kedaform::resources::{ClusterAccess, Kubernetes};
    use kedaform_tests::apiserver::{Behaviour, FakeApiServer, fake_eks};
    let api = FakeApiServer::start(Behaviour::default()).await;
    let eks_server = fake_eks("sales", &api.server.url).await;
    let manifest = kedaform_tests::keda_release_text("keda-2.20.2.yaml");
    let mirror = LocalServer::start(move |_, _| Reply::new(200, "application/yaml", manifest.clone())).await;
    let aws = kedaform_common::aws::load().await;
    let eks = aws_sdk_eks::Client::from_conf(
        aws_sdk_eks::config::Builder::from(&aws)
            .endpoint_url(&eks_server.url)
            .build(),
    );
    // The mirror is plain http on loopback, which only an explicit opt-in fetches.
    let runtime = Runtime::new(Kubernetes::new(
        ClusterAccess::new(&aws, eks, kedaform_common::aws::s3(&aws))?.allow_plain_http(),
    ));
    let mut rows = Vec::new();
    for (resource_type, properties) in [
        (
            "Custom::KedaInstall",
            json!({"ClusterName": "sales", "ManifestUrl": format!("{}/keda.yaml", mirror.url),
                                        "OperatorRoleArn": "arn:aws:iam::123456789012:role/keda-operator"}),
        ),
        (
            "Custom::KedaScaledObject",
            json!({"ClusterName": "sales", "Namespace": "sales", "Name": "consumer",
            "ScaleTargetName": "consumer", "QueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/reliable_q",
            "RoleArn": "arn:aws:iam::123456789012:role/consumer"}),
        ),
    ] {
        let before = (api.requests().len(), eks_server.requests().len());
        let endpoint = LocalServer::cloudformation().await;
        let mut request = cfn_request("Create", &endpoint.url, properties, None, None);
        request["ResourceType"] = json!(resource_type);
        runtime
            .handle(request, tokio::time::Instant::now() + Duration::from_secs(60))
            .await;
        ensure!(
            endpoint.only_request().json()["Status"] == "SUCCESS",
            "{resource_type} failed"
        );
        let requests = &api.requests()[before.0..];
        let count = |method: &str| requests.iter().filter(|r| r.method == method).count();
        let eks_calls = eks_server.requests().len() - before.1;
        #[allow(clippy::cast_precision_loss)]
        rows.push(Row {
            benchmark: format!("{resource_type} create: requests to the API server"),
            value: requests.len() as f64,
            unit: "",
            target: None,
            how: format!(
                "{} PATCH (server-side apply), {} GET (discovery and readiness); plus {eks_calls} DescribeCluster",
                count("PATCH"),
                count("GET")
            ),
        });
    }
    Ok(rows)
}

/// moto's queue operations scan every message, so the queue is filled and drained in small
/// rounds: a deep queue would measure moto's scans, not the consumer.
const CONSUMER_ROUNDS: u32 = 5;
const CONSUMER_ROUND_MESSAGES: u32 = 500;
const CONSUMER_CPU_TARGET_PERCENT: f64 = 5.0;

/// `getconf CLK_TCK`, asked once: the drain loop reads /proc every few milliseconds.
fn clock_ticks_per_second() -> anyhow::Result<u64> {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    if let Some(ticks) = TICKS.get() {
        return Ok(*ticks);
    }
    let ticks = String::from_utf8(Command::new("getconf").arg("CLK_TCK").output()?.stdout)?
        .trim()
        .parse()?;
    Ok(*TICKS.get_or_init(|| ticks))
}

/// State and user + system CPU time of a process, from /proc. An exited child that was not
/// reaped yet is a zombie ('Z') whose final CPU time is still there.
fn process_stat(pid: u32) -> anyhow::Result<(char, Duration)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name: state first, utime and stime 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("malformed /proc stat")?
        .1
        .split_whitespace()
        .collect();
    let state = fields[0].chars().next().unwrap_or('?');
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    let per_second = clock_ticks_per_second()?;
    Ok((state, Duration::from_nanos(ticks * 1_000_000_000 / per_second)))
}

/// Runs a consumer (`command`: ours, or scale-eks-with-keda's in Python) that exits after `messages`:
/// wall time, its CPU, moto's CPU.
async fn drain(
    command: &[PathBuf],
    env: &[(&str, &str)],
    messages: u32,
    moto_pid: u32,
) -> anyhow::Result<(Duration, Duration, Duration)> {
    let moto_before = process_stat(moto_pid)?.1;
    let started = Instant::now();
    let mut child = Command::new(&command[0])
        .args(&command[1..])
        .envs(env.iter().copied())
        .env("MSG_PROCESS_DELAY", "0")
        .env("MAX_MSGS_PER_BATCH", "10")
        .env("TOT_MSGS_TO_PROCESS", messages.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", command[0].display()))?;
    let consumer_cpu = loop {
        let (state, cpu) = process_stat(child.id())?;
        if state == 'Z' {
            break cpu;
        }
        if started.elapsed() > Duration::from_secs(300) {
            let _ = child.kill();
            bail!("{} did not finish {messages} messages in 300 s", command[0].display());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let elapsed = started.elapsed();
    let moto_cpu = process_stat(moto_pid)?.1.saturating_sub(moto_before);
    let status = child.wait()?;
    ensure!(status.success(), "the consumer exited with {status}");
    Ok((elapsed, consumer_cpu, moto_cpu))
}

/// scale-eks-with-keda's consumer needs at least this many times our consumer's CPU per message.
const ORIGINAL_CPU_RATIO_TARGET: f64 = 20.0;
/// Bare requests timed for moto's floor.
const FLOOR_REQUESTS: u32 = 1_000;
/// Requests per message of a consumer that works as scale-eks-with-keda's does: one `PutObject` per
/// message, one receive and one delete per 10 messages.
const ORIGINAL_REQUESTS_PER_MESSAGE: f64 = 1.2;

/// The least CPU a client can spend on one request to moto, which closes every connection:
/// a new socket per request carrying a fixed unsigned `PutObject`, blocking I/O, no runtime,
/// signing or parsing. Measured as this process's CPU over the requests.
fn request_floor(endpoint: &str, bucket: &str) -> anyhow::Result<Duration> {
    use std::io::{Read, Write};
    let address = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let pid = std::process::id();
    let before = process_stat(pid)?.1;
    let mut answer = Vec::with_capacity(1024);
    for i in 0..FLOOR_REQUESTS {
        let mut stream = std::net::TcpStream::connect(address)?;
        write!(
            stream,
            "PUT /{bucket}/floor/{i}.json HTTP/1.1\r\nHost: {address}\r\nContent-Length: 2\r\n\r\n{{}}"
        )?;
        answer.clear();
        stream.read_to_end(&mut answer)?;
        ensure!(
            answer.starts_with(b"HTTP/1.1 200"),
            "moto refused the bare PutObject: {}",
            String::from_utf8_lossy(&answer[..answer.len().min(200)])
        );
    }
    Ok(process_stat(pid)?.1.saturating_sub(before) / FLOOR_REQUESTS)
}

/// What one consumer spent over the rounds.
#[derive(Debug, Default)]
struct Spent {
    elapsed: Duration,
    consumer: Duration,
    moto: Duration,
}

/// `(count, messages)`: fills the queue with `messages` (10 % invalid) and drains it with
/// `command`, `count` times; `server_pid` is the emulator whose CPU is counted too.
async fn rounds(
    command: &[PathBuf],
    sqs: &aws_sdk_sqs::Client,
    env: &[(&str, &str)],
    queue: &str,
    (count, messages): (u32, u32),
    server_pid: u32,
) -> anyhow::Result<Spent> {
    let mut spent = Spent::default();
    for round in 0..count {
        let fill = producer::Config {
            total: u64::from(messages),
            wait_between_messages: Duration::ZERO,
            queue: sales_events::settings::Queue::Url(queue.to_owned()),
            bad_percent: 10,
            duplicate_percent: 0,
            batch_size: 10,
            seed: Some(u64::from(round)),
        };
        producer::run(&fill, sqs, &tokio_util::sync::CancellationToken::new(), |_| {}).await?;
        let (elapsed, consumer, moto) = drain(command, env, messages, server_pid).await?;
        spent.elapsed += elapsed;
        spent.consumer += consumer;
        spent.moto += moto;
    }
    Ok(spent)
}

/// One consumer as its image ships it (profile `workload`) at full speed (no process delay,
/// batches of 10) against moto, in rounds: fill the queue, then time a consumer that exits
/// after draining it; CPU of the consumer and of moto over the drains only. scale-eks-with-keda's
/// consumer (`scripts/original_consumer.py`, boto3) runs the same rounds on the same moto.
async fn consumer_throughput() -> anyhow::Result<Rows> {
    let binary = env_path("KEDAFORM_CONSUMER_BIN")?;
    let python = env_path("KEDAFORM_PYTHON")?;
    let original_script = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/original_consumer.py"));
    let moto_pid: u32 = std::env::var("KEDAFORM_MOTO_PID")
        .context("KEDAFORM_MOTO_PID is not set: run the benchmarks with `make bench`")?
        .parse()?;
    let aws = kedaform_common::aws::load().await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let s3 = kedaform_common::aws::s3(&aws);
    let name = format!("bench-{}", std::process::id());
    let kedaform_common::queues::QueuePair {
        url: queue,
        dead_letter_url: dlq,
    } = kedaform_common::queues::create_queue_with_dlq(&sqs, &name, 30, 0, 5).await?;
    s3.create_bucket().bucket(&name).send().await?;
    let env = [
        ("QUEUE_URL", queue.as_str()),
        ("DLQ_URL", dlq.as_str()),
        ("STORE_EVENTS_BKT", name.as_str()),
    ];
    let shape = (CONSUMER_ROUNDS, CONSUMER_ROUND_MESSAGES);
    let ours = rounds(&[binary], &sqs, &env, &queue, shape, moto_pid).await?;
    let original = rounds(&[python, original_script], &sqs, &env, &queue, shape, moto_pid).await?;
    let endpoint = std::env::var("AWS_ENDPOINT_URL").context("AWS_ENDPOINT_URL names moto")?;
    let floor = request_floor(&endpoint, &name)?;
    let floor_per_message = floor.as_secs_f64() * ORIGINAL_REQUESTS_PER_MESSAGE;

    let messages = f64::from(CONSUMER_ROUNDS * CONSUMER_ROUND_MESSAGES);
    let per_thousand = |cpu: Duration| cpu.as_secs_f64() * 1_000.0 / messages;
    let how = format!(
        "{CONSUMER_ROUNDS} rounds of {CONSUMER_ROUND_MESSAGES} queued messages (10 % invalid), one consumer (profile workload) \
         process per round (its start-up included), MSG_PROCESS_DELAY=0, batch 10, moto on loopback"
    );
    Ok(vec![
        Row {
            benchmark: "consumer throughput against moto".into(),
            value: messages / ours.elapsed.as_secs_f64(),
            unit: "msg/s",
            target: None,
            how: how.clone(),
        },
        Row {
            benchmark: "consumer CPU per 1,000 messages".into(),
            value: per_thousand(ours.consumer),
            unit: "s",
            target: None,
            how: how.clone(),
        },
        Row {
            benchmark: "scale-eks-with-keda's consumer (boto3) CPU per 1,000 messages, same rounds".into(),
            value: per_thousand(original.consumer),
            unit: "s",
            target: None,
            how: "scripts/original_consumer.py: scale-eks-with-keda's loop (receive 10 with attributes, json.loads, one put_object \
                  of json.dumps per message, delete_message_batch), DEBUG logging off; python start-up included"
                .into(),
        },
        Row {
            benchmark: "scale-eks-with-keda's consumer CPU / ours, per message".into(),
            value: original.consumer.as_secs_f64() / ours.consumer.as_secs_f64().max(f64::EPSILON),
            unit: "×",
            target: None,
            how: "the rows above, same run, same moto; bounded by moto's floor (next rows)".into(),
        },
        Row {
            benchmark: "moto's floor: CPU per request of a bare client".into(),
            value: floor.as_secs_f64() * 1e6,
            unit: "µs",
            target: None,
            how: format!(
                "{FLOOR_REQUESTS} PutObjects, a new socket each (moto closes every connection), fixed unsigned \
                 request, blocking std I/O, no runtime, signing or parsing; this process's CPU"
            ),
        },
        Row {
            benchmark: "the highest scale-eks-with-keda/consumer CPU ratio moto allows".into(),
            value: original.consumer.as_secs_f64() / messages / floor_per_message.max(f64::EPSILON),
            unit: "×",
            target: None,
            how: format!(
                "scale-eks-with-keda's CPU per message over {ORIGINAL_REQUESTS_PER_MESSAGE} floor requests per message (one \
                 PutObject each, a receive and a delete per 10): a consumer spending nothing but those requests"
            ),
        },
        Row {
            benchmark: "moto CPU per 1,000 messages (our drains)".into(),
            value: per_thousand(ours.moto),
            unit: "s",
            target: None,
            how: how.clone(),
        },
        Row {
            benchmark: "consumer CPU as a share of moto's".into(),
            value: 100.0 * ours.consumer.as_secs_f64() / ours.moto.as_secs_f64().max(f64::EPSILON),
            unit: "%",
            target: Some(("≤", CONSUMER_CPU_TARGET_PERCENT)),
            how,
        },
    ])
}

/// Rounds and messages per round on the keep-alive endpoints.
const KEEP_ALIVE_ROUNDS: u32 = 5;
const KEEP_ALIVE_ROUND_MESSAGES: u32 = 1_000;

/// scale-eks-with-keda's consumer and ours on endpoints that keep connections alive, as SQS and S3 do:
/// `ElasticMQ` for SQS, gofakes3 (`scripts/gofakes3`) for S3. The same rounds as on moto (a
/// process per round, start-up included), 1,000 messages each since `ElasticMQ` does not scan
/// the queue.
async fn keep_alive_cpu() -> anyhow::Result<Rows> {
    let binary = env_path("KEDAFORM_CONSUMER_BIN")?;
    let python = env_path("KEDAFORM_PYTHON")?;
    let original_script = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/original_consumer.py"));
    let elasticmq = std::env::var("KEDAFORM_ELASTICMQ_URL")
        .context("KEDAFORM_ELASTICMQ_URL is not set: run the benchmarks with `make bench`")?;
    let gofakes3 = std::env::var("KEDAFORM_GOFAKES3_URL")
        .context("KEDAFORM_GOFAKES3_URL is not set: run the benchmarks with `make bench`")?;
    let gofakes3_pid: u32 = std::env::var("KEDAFORM_GOFAKES3_PID")?.parse()?;
    let aws = kedaform_common::aws::load().await;
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&aws)
            .endpoint_url(&elasticmq)
            .build(),
    );
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&aws)
            .endpoint_url(&gofakes3)
            .force_path_style(true)
            .build(),
    );
    let name = format!("keepalive-{}", std::process::id());
    let pair = kedaform_common::queues::create_queue_with_dlq(&sqs, &name, 30, 0, 5).await?;
    s3.create_bucket().bucket(&name).send().await?;
    let env = [
        ("QUEUE_URL", pair.url.as_str()),
        ("DLQ_URL", pair.dead_letter_url.as_str()),
        ("STORE_EVENTS_BKT", name.as_str()),
        ("AWS_ENDPOINT_URL_SQS", elasticmq.as_str()),
        ("AWS_ENDPOINT_URL_S3", gofakes3.as_str()),
    ];
    let shape = (KEEP_ALIVE_ROUNDS, KEEP_ALIVE_ROUND_MESSAGES);
    let ours = rounds(&[binary], &sqs, &env, &pair.url, shape, gofakes3_pid)
        .await?
        .consumer;
    let original = rounds(&[python, original_script], &sqs, &env, &pair.url, shape, gofakes3_pid)
        .await?
        .consumer;
    let per_thousand =
        |cpu: Duration| cpu.as_secs_f64() * 1_000.0 / f64::from(KEEP_ALIVE_ROUNDS * KEEP_ALIVE_ROUND_MESSAGES);
    let how = format!(
        "{KEEP_ALIVE_ROUNDS} rounds of {KEEP_ALIVE_ROUND_MESSAGES} queued messages (10 % invalid) in ElasticMQ 1.7.1, \
         objects in gofakes3 1.2.0 (both keep connections alive), a process per round (start-up included), \
         MSG_PROCESS_DELAY=0, batch 10"
    );
    Ok(vec![
        Row {
            benchmark: "consumer CPU per 1,000 messages, ElasticMQ + gofakes3".into(),
            value: per_thousand(ours),
            unit: "s",
            target: None,
            how: how.clone(),
        },
        Row {
            benchmark: "scale-eks-with-keda's consumer CPU per 1,000 messages, ElasticMQ + gofakes3".into(),
            value: per_thousand(original),
            unit: "s",
            target: None,
            how: format!("scripts/original_consumer.py, the same rounds: {how}"),
        },
        Row {
            benchmark: "scale-eks-with-keda's consumer CPU / ours, per message, ElasticMQ + gofakes3".into(),
            value: original.as_secs_f64() / ours.as_secs_f64().max(f64::EPSILON),
            unit: "×",
            target: Some(("≥", ORIGINAL_CPU_RATIO_TARGET)),
            how: "the two rows above, measured in the same run on the same endpoints".into(),
        },
    ])
}

/// Messages each `ElasticMQ` throughput run drains.
const ELASTICMQ_MESSAGES: u32 = 5_000;

/// One consumer (profile `workload`) with `CONCURRENCY` 1, 4 and 16 against `ElasticMQ` (SQS) and moto (S3):
/// messages per second and per CPU-second. `ElasticMQ` answers a receive without scanning the
/// queue, so the consumer and moto's S3 are what is measured.
async fn elasticmq_throughput() -> anyhow::Result<Rows> {
    let binary = env_path("KEDAFORM_CONSUMER_BIN")?;
    let elasticmq = std::env::var("KEDAFORM_ELASTICMQ_URL")
        .context("KEDAFORM_ELASTICMQ_URL is not set: run the benchmarks with `make bench`")?;
    let moto_pid: u32 = std::env::var("KEDAFORM_MOTO_PID")?.parse()?;
    let aws = kedaform_common::aws::load().await;
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&aws)
            .endpoint_url(&elasticmq)
            .build(),
    );
    let s3 = kedaform_common::aws::s3(&aws);
    let mut rows = Vec::new();
    for concurrency in [1u32, 4, 16] {
        let name = format!("emq-{}-{concurrency}", std::process::id());
        let pair = kedaform_common::queues::create_queue_with_dlq(&sqs, &name, 30, 0, 5).await?;
        s3.create_bucket().bucket(&name).send().await?;
        let fill = producer::Config {
            total: u64::from(ELASTICMQ_MESSAGES),
            wait_between_messages: Duration::ZERO,
            queue: sales_events::settings::Queue::Url(pair.url.clone()),
            bad_percent: 10,
            duplicate_percent: 0,
            batch_size: 10,
            seed: Some(u64::from(concurrency)),
        };
        producer::run(&fill, &sqs, &tokio_util::sync::CancellationToken::new(), |_| {}).await?;
        let concurrency_text = concurrency.to_string();
        let env = [
            ("QUEUE_URL", pair.url.as_str()),
            ("DLQ_URL", pair.dead_letter_url.as_str()),
            ("STORE_EVENTS_BKT", name.as_str()),
            ("AWS_ENDPOINT_URL_SQS", elasticmq.as_str()),
            ("CONCURRENCY", concurrency_text.as_str()),
        ];
        let (elapsed, cpu, moto) = drain(std::slice::from_ref(&binary), &env, ELASTICMQ_MESSAGES, moto_pid).await?;
        let messages = f64::from(ELASTICMQ_MESSAGES);
        let how = format!(
            "{ELASTICMQ_MESSAGES} queued messages (10 % invalid) in ElasticMQ 1.7.1, S3 on moto, one consumer (profile workload), \
             batch 10, MSG_PROCESS_DELAY=0; moto used {:.1} CPU-s",
            moto.as_secs_f64()
        );
        rows.push(Row {
            benchmark: format!("consumer throughput, ElasticMQ + moto S3, CONCURRENCY {concurrency}"),
            value: messages / elapsed.as_secs_f64(),
            unit: "msg/s",
            target: None,
            how: how.clone(),
        });
        rows.push(Row {
            benchmark: format!("consumer messages per CPU-second, ElasticMQ, CONCURRENCY {concurrency}"),
            value: messages / cpu.as_secs_f64().max(f64::EPSILON),
            unit: "msg/CPU-s",
            target: None,
            how,
        });
    }
    Ok(rows)
}

/// `Custom::KedaInstall` on the local control plane, as scripts/bench.sh measured it.
fn cluster_install(path: &Path) -> anyhow::Result<Rows> {
    let measured: Value =
        serde_json::from_str(&std::fs::read_to_string(path).with_context(|| path.display().to_string())?)?;
    let number = |key: &str| {
        measured[key]
            .as_f64()
            .with_context(|| format!("{key} in {}", path.display()))
    };
    let how = "kedaform --kubeconfig … keda install (release build, the kube Lambda's library path): KEDA 2.20.2's \
               release manifest to CRDs Established, 3 Deployments available and the metrics APIService Available on \
               kube-apiserver 1.35.5 + kwok (scripts/cluster.sh)";
    Ok(vec![
        Row {
            benchmark: "Custom::KedaInstall create to ready, local control plane".into(),
            value: number("seconds")?,
            unit: "s",
            target: None,
            how: how.into(),
        },
        Row {
            benchmark: "Custom::KedaInstall create: requests to a real API server".into(),
            value: number("requests")?,
            unit: "requests",
            target: None,
            how: "counted in kube-apiserver's audit log by User-Agent kedaform/…".into(),
        },
        Row {
            benchmark: "Custom::KedaInstall create: peak RSS".into(),
            value: number("peak_rss_kib")? / 1024.0,
            unit: "MiB",
            target: Some(("≤", 256.0)),
            how: "GNU time's maximum resident set size of that process; the kube Lambda (DeployerFunction) has MemorySize 256".into(),
        },
        Row {
            benchmark: "Custom::KedaInstall create, largest manifest accepted (16 MiB): peak RSS".into(),
            value: number("largest_peak_rss_kib")? / 1024.0,
            unit: "MiB",
            target: Some(("≤", 256.0)),
            how: format!(
                "as above with a {:.1} MiB manifest from S3 (KEDA's + ConfigMaps of 1 MB; scripts/largest-manifests.py), \
                 applied and ready in {} s",
                number("largest_bytes")? / 1_048_576.0,
                number("largest_seconds")?
            ),
        },
        Row {
            benchmark: "KEDA manifest of 1,000,000 nodes (the node limit): parse + overlay peak RSS".into(),
            value: number("nodes_peak_rss_kib")? / 1024.0,
            unit: "MiB",
            target: Some(("≤", 256.0)),
            how: format!(
                "kedaform keda render --manifest FILE (the handler's parse and overlay, offline), {} s",
                number("nodes_seconds")?
            ),
        },
    ])
}

/// The upgrade and the side-by-side Helm install (`scripts/bench.sh`), against kedaform's create
/// of the same release measured in `cluster`.
fn lifecycle(path: &Path, cluster: &Path) -> anyhow::Result<Rows> {
    let read = |path: &Path| -> anyhow::Result<Value> {
        Ok(serde_json::from_str(
            &std::fs::read_to_string(path).with_context(|| path.display().to_string())?,
        )?)
    };
    let (measured, create) = (read(path)?, read(cluster)?);
    let number = |json: &Value, key: &str| {
        json[key]
            .as_f64()
            .with_context(|| format!("{key} in {}", path.display()))
    };
    let (helm, ours) = (number(&measured, "helm_seconds")?, number(&create, "seconds")?);
    let (helm_requests, our_requests) = (number(&measured, "helm_requests")?, number(&create, "requests")?);
    let (helm_rss, our_rss) = (
        number(&measured, "helm_peak_rss_kib")?,
        number(&create, "peak_rss_kib")?,
    );
    let faster = if ours <= helm {
        format!("kedaform is {:.1}× faster ({ours} s)", helm / ours.max(0.01))
    } else {
        format!("Helm is {:.1}× faster (kedaform {ours} s)", ours / helm.max(0.01))
    };
    Ok(vec![
        Row {
            benchmark: "KEDA upgrade in place, 2.19.0 → 2.20.2, to ready".into(),
            value: number(&measured, "upgrade_seconds")?,
            unit: "s",
            target: None,
            how: "kedaform keda install of 2.20.2's manifest over 2.19.0's (rendered from its module), release build, \
                  on the local cluster: CRDs Established first, then the 3 Deployments rolled and available"
                .into(),
        },
        Row {
            benchmark: "KEDA upgrade in place: requests to the API server".into(),
            value: number(&measured, "upgrade_requests")?,
            unit: "requests",
            target: None,
            how: format!(
                "audit log, User-Agent kedaform/…; peak RSS {:.1} MiB",
                number(&measured, "upgrade_peak_rss_kib")? / 1024.0
            ),
        },
        Row {
            benchmark: "helm install --wait of KEDA's chart 2.20.2, to ready".into(),
            value: helm,
            unit: "s",
            target: None,
            how: format!(
                "helm v4.3.2 (built from helm.sh/helm/v4) on the same local cluster after kedaform's uninstall; \
                 {faster} to ready (kedaform also waits for the metrics APIService Available, helm's kstatus wait does not)"
            ),
        },
        Row {
            benchmark: "helm install --wait of KEDA's chart: requests to the API server".into(),
            value: helm_requests,
            unit: "requests",
            target: None,
            how: format!("audit log, User-Agent Helm/…; kedaform's create of the same release: {our_requests}"),
        },
        Row {
            benchmark: "helm install --wait of KEDA's chart: peak RSS".into(),
            value: helm_rss / 1024.0,
            unit: "MiB",
            target: None,
            how: format!(
                "GNU time's maximum resident set size of helm; kedaform's create: {:.1} MiB",
                our_rss / 1024.0
            ),
        },
    ])
}

fn print(rows: &[Row]) {
    let width = rows.iter().map(|r| r.benchmark.chars().count()).max().unwrap_or(10);
    println!(
        "\n{:<width$}  {:>12}  {:>10}  {:<4}  how",
        "benchmark", "value", "target", "met"
    );
    for row in rows {
        let target = row
            .target
            .map(|(cmp, bound)| format!("{cmp} {bound}"))
            .unwrap_or_default();
        let met = match row.met() {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        let value = format!("{:.3} {}", row.value, row.unit);
        println!(
            "{:<width$}  {value:>12}  {target:>10}  {met:<4}  {}",
            row.benchmark, row.how
        );
    }
}

/// What `make rehearse` measured (scripts/rehearse.sh --report): the whole life cycle's
/// duration, requests per custom-resource type, peak RSS per function against its `MemorySize`.
fn rehearsal(path: &Path) -> anyhow::Result<Rows> {
    let measured: Value =
        serde_json::from_str(&std::fs::read_to_string(path).with_context(|| path.display().to_string())?)?;
    let seconds = measured["seconds"]
        .as_f64()
        .with_context(|| format!("seconds in {}", path.display()))?;
    let mut rows = vec![Row {
        benchmark: "make rehearse: the stack's whole life cycle".into(),
        value: seconds,
        unit: "s",
        target: None,
        how: "sam package to moto, then Create, Update in place, a failed Update rolled back, Delete; the CDK \
              TypeScript example's and the CDK-Python app's Create and Delete; a failed Create rolled back and a \
              Create IAM refuses; the functions' zips under the Lambda Runtime Interface Emulator on the local \
              cluster (scripts/rehearse.sh)"
            .into(),
    }];
    for (kind, count) in measured["requests"].as_object().into_iter().flatten() {
        rows.push(Row {
            benchmark: format!("make rehearse: requests CloudFormation sent to {kind}"),
            value: count.as_f64().unwrap_or_default(),
            unit: "requests",
            target: None,
            how: "each Create, Update, rollback and Delete request of that type over the whole rehearsal".into(),
        });
    }
    for (function, numbers) in measured["functions"].as_object().into_iter().flatten() {
        let memory = numbers["memory_size_mib"].as_f64().unwrap_or_default();
        rows.push(Row {
            benchmark: format!("make rehearse: {function} peak RSS"),
            value: numbers["peak_rss_mib"].as_f64().unwrap_or_default(),
            unit: "MiB",
            target: Some(("≤", memory)),
            how: format!(
                "VmHWM of its bootstrap under the emulator, any invocation; the template's MemorySize is {memory} MiB"
            ),
        });
    }
    Ok(rows)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut rows = zip_sizes(&env_path("KEDAFORM_LAMBDA_DIR")?)?;
    rows.extend(lambda_latency(&env_path("KEDAFORM_LAMBDA_BINARIES")?).await?);
    rows.extend(handler_overhead().await);
    rows.extend(token_mint()?);
    rows.extend(request_counts().await?);
    rows.extend(consumer_throughput().await?);
    rows.extend(keep_alive_cpu().await?);
    rows.extend(elasticmq_throughput().await?);
    rows.extend(cluster_install(&env_path("KEDAFORM_CLUSTER_BENCH")?)?);
    rows.extend(lifecycle(
        &env_path("KEDAFORM_LIFECYCLE_BENCH")?,
        &env_path("KEDAFORM_CLUSTER_BENCH")?,
    )?);
    rows.extend(rehearsal(&env_path("KEDAFORM_REHEARSAL_BENCH")?)?);
    print(&rows);
    let json: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({"benchmark": r.benchmark, "value": r.value, "unit": r.unit,
                   "target": r.target.map(|(cmp, bound)| format!("{cmp} {bound}")), "met": r.met(), "how": r.how})
        })
        .collect();
    let path = env_path("KEDAFORM_BENCH_JSON")?;
    std::fs::write(&path, serde_json::to_string_pretty(&json)?)?;
    println!("\nwritten to {}", path.display());
    Ok(())
}
