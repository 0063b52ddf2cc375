//! The `kedaform` binary: trust and invoke against moto, keda and scaledobject against the fake
//! API server, token, render, and the exit codes.

use std::fmt::Write as _;
use std::process::{Command, Output};

use kedaform_tests::apiserver::{Behaviour, FakeApiServer, fake_eks};
use kedaform_tests::iam::{ACCOUNT, account_wide_role, account_wide_trust, web_identity_statement};
use kedaform_tests::{LocalServer, Reply, moto};
use serde_json::{Value, json};

fn kedaform(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kedaform"))
        .args(args)
        .output()
        .expect("run kedaform")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn keda_fixture() -> String {
    kedaform_tests::keda_release("keda-2.20.2.yaml").display().to_string()
}

#[test]
fn help_has_examples_and_bad_usage_exits_2() {
    let help = kedaform(&["--help"]);
    assert!(help.status.success());
    assert!(stdout(&help).contains("kedaform trust plan --role"));
    assert_eq!(kedaform(&["trust", "plan"]).status.code(), Some(2));
}

#[tokio::test]
async fn trust_plan_changes_nothing_apply_writes_and_remove_undoes() {
    let iam = aws_sdk_iam::Client::new(&moto().await);
    let role = account_wide_role(&iam, "cli-consumer-").await;
    let keda = format!("arn:aws:iam::{ACCOUNT}:role/keda-operator");
    let trust_of = || async {
        let document = iam
            .get_role()
            .role_name(&role)
            .send()
            .await
            .unwrap()
            .role
            .unwrap()
            .assume_role_policy_document
            .unwrap();
        kedaform::iam::policy::parse_document(&document).unwrap()
    };

    let plan = kedaform(&[
        "trust",
        "plan",
        "--role",
        &role,
        "--keda-role",
        &keda,
        "--output",
        "json",
    ]);
    assert!(plan.status.success(), "{}", stderr(&plan));
    let plan: Value = serde_json::from_str(&stdout(&plan)).unwrap();
    assert_eq!(
        (plan["changed"].clone(), plan["written"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(plan["removed"], json!([format!("arn:aws:iam::{ACCOUNT}:root")]));
    assert_eq!(trust_of().await, account_wide_trust(), "a plan writes nothing");

    let apply = kedaform(&["trust", "apply", "--role", &role, "--keda-role", &keda]);
    assert!(apply.status.success(), "{}", stderr(&apply));
    assert!(stdout(&apply).ends_with("written\n"), "{}", stdout(&apply));
    assert_eq!(trust_of().await["Statement"].as_array().unwrap().len(), 2);

    let remove = kedaform(&["trust", "remove", "--role", &role]);
    assert!(remove.status.success(), "{}", stderr(&remove));
    assert_eq!(trust_of().await["Statement"], json!([web_identity_statement()]));

    let bad = kedaform(&["trust", "plan", "--role", &role, "--keda-role", "keda"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("--keda-role: \"keda\" is not an IAM role ARN"),
        "{}",
        stderr(&bad)
    );
}

#[tokio::test]
async fn trust_apply_refuses_a_role_arn_of_another_account() {
    let iam = aws_sdk_iam::Client::new(&moto().await);
    let role = account_wide_role(&iam, "cli-foreign-").await;
    let foreign = format!("arn:aws:iam::210987654321:role/{role}");
    let keda = format!("arn:aws:iam::{ACCOUNT}:role/keda-operator");
    let before = iam
        .get_role()
        .role_name(&role)
        .send()
        .await
        .unwrap()
        .role
        .unwrap()
        .assume_role_policy_document;
    let output = kedaform(&["trust", "apply", "--role", &foreign, "--keda-role", &keda]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!(
            "--role: {foreign} is not a role kedaform can change here: it is in account 210987654321, \
             but these credentials are in account {ACCOUNT}"
        )),
        "{}",
        stderr(&output)
    );
    let after = iam
        .get_role()
        .role_name(&role)
        .send()
        .await
        .unwrap()
        .role
        .unwrap()
        .assume_role_policy_document;
    assert_eq!(before, after);
}

#[tokio::test]
async fn invoke_replays_a_cloudformation_request_and_prints_the_response() {
    let iam = aws_sdk_iam::Client::new(&moto().await);
    let role = account_wide_role(&iam, "cli-invoke-").await;
    let event = std::env::temp_dir().join(format!("{role}.json"));
    let request = json!({"RequestType": "Create", "ResponseURL": "https://example.invalid/", "StackId": "stack",
        "RequestId": "r1", "ResourceType": "Custom::KedaTrustPolicy", "LogicalResourceId": "Trust",
        "ResourceProperties": {"ServiceToken": "x", "RoleName": role, "KedaRoleArn": format!("arn:aws:iam::{ACCOUNT}:role/keda")}});
    std::fs::write(&event, request.to_string()).unwrap();
    let output = kedaform(&["invoke", "--event", event.to_str().unwrap()]);
    std::fs::remove_file(&event).unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let response: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(response["Status"], "SUCCESS");
    assert_eq!(response["RequestId"], "r1");
    assert_eq!(
        response["Data"]["RemovedPrincipals"],
        format!("arn:aws:iam::{ACCOUNT}:root")
    );
}

#[test]
fn token_prints_an_exec_credential() {
    let output = kedaform(&["token", "--cluster", "sales"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let credential: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(credential["kind"], "ExecCredential");
    assert_eq!(credential["apiVersion"], "client.authentication.k8s.io/v1beta1");
    assert!(
        credential["status"]["token"]
            .as_str()
            .unwrap()
            .starts_with("k8s-aws-v1.")
    );
    assert!(
        credential["status"]["expirationTimestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
}

#[test]
fn keda_render_counts_the_objects_and_shows_the_annotated_operator_account() {
    let role = format!("arn:aws:iam::{ACCOUNT}:role/keda-operator");
    let output = kedaform(&[
        "keda",
        "render",
        "--operator-role",
        &role,
        "--manifest",
        &keda_fixture(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.starts_with("28 objects, in apply order:\n   1 Namespace\n   6 CustomResourceDefinition\n"),
        "{text}"
    );
    assert!(text.contains(&format!("eks.amazonaws.com/role-arn: {role}")), "{text}");
    let helm = kedaform(&["keda", "render", "--operator-role", &role, "--helm-values"]);
    assert!(stdout(&helm).contains(&format!("roleArn: {role}")));
}

/// `kedaform scaledobject <action>` for scale-eks-with-keda's consumer; the queue URL comes last.
fn scaled_object(action: &str, queue_url: &str) -> Vec<String> {
    [
        "scaledobject",
        action,
        "--cluster",
        "sales",
        "--namespace",
        "sales",
        "--name",
        "consumer",
        "--target",
        "consumer",
        "--role-arn",
        "arn:aws:iam::123456789012:role/consumer",
        "--queue-length",
        "10",
        "--queue-url",
        queue_url,
    ]
    .map(str::to_owned)
    .to_vec()
}

const QUEUE_URL: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/reliable_q";

#[test]
fn scaledobject_render_and_its_bad_input() {
    let good = Command::new(env!("CARGO_BIN_EXE_kedaform"))
        .args(scaled_object("render", QUEUE_URL))
        .output()
        .unwrap();
    assert!(good.status.success(), "{}", stderr(&good));
    let yaml = stdout(&good);
    assert!(
        yaml.contains("kind: TriggerAuthentication")
            && yaml.contains("kind: ScaledObject")
            && yaml.contains("queueLength: '10'"),
        "{yaml}"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_kedaform"))
        .args(scaled_object("render", "https://example.com/q"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("property QueueUrl:"), "{}", stderr(&bad));
}

/// Runs `kedaform` with EKS pointed at `eks_url`, on a blocking worker: the fakes serve on
/// the test's runtime meanwhile.
fn kedaform_with_eks(eks_url: &str, arguments: Vec<String>) -> tokio::task::JoinHandle<Output> {
    kedaform_with_eks_in(eks_url, arguments, ".")
}

/// [`kedaform_with_eks`] in the working directory `directory`.
fn kedaform_with_eks_in(
    eks_url: &str,
    arguments: Vec<String>,
    directory: impl Into<std::path::PathBuf>,
) -> tokio::task::JoinHandle<Output> {
    let (eks_url, directory) = (eks_url.to_owned(), directory.into());
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_kedaform"))
            .args(arguments)
            .current_dir(directory)
            .env("AWS_ENDPOINT_URL_EKS", eks_url)
            .output()
            .unwrap()
    })
}

/// `kedaform keda <action>` on the fake EKS cluster `sales`, with `more` flags.
fn keda_on_sales(action: &str, more: &[&str]) -> Vec<String> {
    let role = format!("arn:aws:iam::{ACCOUNT}:role/keda-operator");
    ["keda", action, "--cluster", "sales", "--operator-role", &role]
        .iter()
        .chain(more)
        .map(|argument| (*argument).to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keda_install_and_uninstall_go_through_the_lambdas_handler() {
    let api = FakeApiServer::start(Behaviour::default()).await;
    let eks = fake_eks("sales", &api.server.url).await;
    let manifest = std::fs::read_to_string(keda_fixture()).unwrap();
    let mirror = LocalServer::start(move |_, _| Reply::new(200, "application/yaml", manifest.clone())).await;
    let manifest = format!("{}/keda.yaml", mirror.url);
    let arguments = |action: &str| keda_on_sales(action, &["--manifest", &manifest]);
    let run = |arguments: Vec<String>| kedaform_with_eks(&eks.url, arguments);
    let install = run(arguments("install")).await.unwrap();
    assert!(install.status.success(), "{}", stderr(&install));
    assert!(
        stdout(&install).starts_with("done: sales/keda\n"),
        "{}",
        stdout(&install)
    );
    assert_eq!(api.objects().len(), 28);
    let uninstall = run(arguments("uninstall")).await.unwrap();
    assert!(uninstall.status.success(), "{}", stderr(&uninstall));
    assert!(api.objects().is_empty(), "uninstall removed what install applied");
}

/// `--manifest FILE` on `install` and `uninstall`: read from disk (relative or absolute), its
/// digest checked by `--manifest-sha256`, bounded like a download.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keda_install_reads_a_manifest_file_and_checks_its_digest() {
    let api = FakeApiServer::start(Behaviour::default()).await;
    let eks = fake_eks("sales", &api.server.url).await;
    let file = keda_fixture();
    let digest = "9bae123eb64fab8f96c67bbd576bb5819e4794df346c5aaa402a01c68b0557ab";
    let arguments = |action: &str, manifest: &str, sha: &str| {
        keda_on_sales(action, &["--manifest", manifest, "--manifest-sha256", sha])
    };
    let wrong = "0".repeat(64);
    let refused = kedaform_with_eks(&eks.url, arguments("install", &file, &wrong))
        .await
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("property ManifestSha256: the manifest's SHA-256 is 9bae123e"),
        "{}",
        stderr(&refused)
    );
    assert!(
        api.objects().is_empty(),
        "nothing applied from a manifest of another digest"
    );
    for (manifest, size) in [
        ("/dev/zero", "is larger than 16 MiB"),
        ("/nonexistent/keda.yaml", "cannot be read"),
    ] {
        let failed = kedaform_with_eks(&eks.url, arguments("install", manifest, digest))
            .await
            .unwrap();
        assert_eq!(failed.status.code(), Some(1));
        assert!(
            stderr(&failed).contains(&format!("property ManifestUrl: file://{manifest} {size}")),
            "{}",
            stderr(&failed)
        );
    }

    let install = kedaform_with_eks(&eks.url, arguments("install", &file, digest))
        .await
        .unwrap();
    assert!(install.status.success(), "{}", stderr(&install));
    assert_eq!(api.objects().len(), 28);
    // A path relative to the working directory names the same file.
    let directory = std::path::Path::new(&file).parent().unwrap().to_owned();
    let uninstall = kedaform_with_eks_in(&eks.url, arguments("uninstall", "keda-2.20.2.yaml", digest), directory)
        .await
        .unwrap();
    assert!(uninstall.status.success(), "{}", stderr(&uninstall));
    assert!(api.objects().is_empty(), "uninstall removed what install applied");
}

#[test]
fn plan_finds_settings_for_the_slo_and_writes_the_series_and_the_plot() {
    let dir = std::env::temp_dir().join(format!("kedaform-plan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (svg, csv) = (dir.join("plan.svg"), dir.join("plan.csv"));
    let output = kedaform(&[
        "plan",
        "--traffic",
        "steps:0@1,300@6,420@1",
        "--seconds",
        "900",
        "--process-delay",
        "0",
        "--slo-max-age",
        "60s",
        "--svg",
        svg.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let plan: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(plan["cheapest"]["meets_slo"], true, "{plan}");
    assert!(plan["cheapest"]["summary"]["age_max"].as_u64().unwrap() <= 60);
    assert_eq!(plan["scale_eks_with_keda"]["queue_length"], 10);
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
    assert_eq!(std::fs::read_to_string(&csv).unwrap().lines().count(), 901);
    std::fs::remove_dir_all(&dir).unwrap();

    let bad = kedaform(&["plan", "--traffic", "sometimes"]);
    assert_eq!(bad.status.code(), Some(2), "a usage error");
    assert!(
        stderr(&bad).contains("--traffic <TRAFFIC>': \"sometimes\": expected constant:RATE"),
        "{}",
        stderr(&bad)
    );
    let impossible = kedaform(&["plan", "--seconds", "300", "--slo-max-age", "1s"]);
    assert_eq!(
        impossible.status.code(),
        Some(1),
        "no settings meet a 1 s SLO with 2 s queue delay"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaledobject_apply_and_delete_go_through_the_lambdas_handler() {
    let api = FakeApiServer::start(Behaviour::default()).await;
    let eks = fake_eks("sales", &api.server.url).await;
    let manifest = std::fs::read_to_string(keda_fixture()).unwrap();
    let mirror = LocalServer::start(move |_, _| Reply::new(200, "application/yaml", manifest.clone())).await;
    let run = |arguments: Vec<String>| kedaform_with_eks(&eks.url, arguments);
    let started = std::time::Instant::now();
    let early = run(scaled_object("apply", QUEUE_URL)).await.unwrap();
    assert_eq!(early.status.code(), Some(1));
    assert!(
        stderr(&early).contains("does not serve keda.sh/v1alpha1 TriggerAuthentication: is its CRD installed?"),
        "{}",
        stderr(&early)
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "no waiting for a CRD nobody applied"
    );

    let keda = format!("arn:aws:iam::{ACCOUNT}:role/keda-operator");
    let install = [
        "keda",
        "install",
        "--cluster",
        "sales",
        "--operator-role",
        &keda,
        "--manifest",
        &format!("{}/keda.yaml", mirror.url),
    ];
    assert!(run(install.map(str::to_owned).to_vec()).await.unwrap().status.success());
    let applied = run(scaled_object("apply", QUEUE_URL)).await.unwrap();
    assert!(applied.status.success(), "{}", stderr(&applied));
    assert!(
        stdout(&applied).starts_with("done: sales/sales/consumer\n"),
        "{}",
        stdout(&applied)
    );
    let path = "/apis/keda.sh/v1alpha1/namespaces/sales/scaledobjects/consumer";
    assert_eq!(
        api.objects()[path]["spec"]["triggers"][0]["metadata"]["queueLength"],
        "10"
    );
    let deleted = run(scaled_object("delete", QUEUE_URL)).await.unwrap();
    assert!(deleted.status.success(), "{}", stderr(&deleted));
    assert!(!api.objects().contains_key(path));
}

#[test]
fn plan_usage_errors_exit_2_and_nothing_wraps() {
    let cases: [(&[&str], &str); 10] = [
        (&["--traffic", "constant:NaN"], "--traffic"),
        (&["--traffic", "constant:inf"], "--traffic"),
        (&["--traffic", "steps:0@1,60@-3"], "--traffic"),
        (&["--traffic", "bursts:0@9223372036854775808"], "--traffic"),
        (&["--slo-max-age", "soon"], "--slo-max-age"),
        (&["--slo-max-age", "0s"], "--slo-max-age"),
        (&["--seconds=-5"], "--seconds"),
        (&["--seconds", "100000000"], "--seconds"),
        (&["--startup-seconds", "18446744073709551615"], "--startup-seconds"),
        (&["--batch-size", "0"], "--batch-size"),
    ];
    for (arguments, named) in cases {
        let output = kedaform(&[&["plan"], arguments].concat());
        assert_eq!(output.status.code(), Some(2), "{arguments:?}: {}", stderr(&output));
        assert!(stderr(&output).contains(named), "{arguments:?}: {}", stderr(&output));
    }
    // The largest burst and the longest run allowed are simulated, not wrapped into "0 pod-s".
    let output = kedaform(&[
        "plan",
        "--seconds",
        "600",
        "--traffic",
        "bursts:0@100000000",
        "--output",
        "json",
    ]);
    let plan: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(plan["keda_defaults"]["meets_slo"], false, "{plan}");
    assert!(
        plan["keda_defaults"]["summary"]["pod_seconds"].as_u64().unwrap() > 0,
        "{plan}"
    );
    assert!(
        plan["keda_defaults"]["summary"]["peak_backlog"].as_u64().unwrap() >= 99_000_000,
        "{plan}"
    );
}

/// Runs kedaform with no AWS settings but an instance metadata service and proxies that
/// record every request.
fn offline(arguments: &[&str], recorder: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kedaform"))
        .args(arguments)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", recorder)
        .env("HTTP_PROXY", recorder)
        .env("HTTPS_PROXY", recorder)
        .env("ALL_PROXY", recorder)
        .output()
        .expect("run kedaform")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_commands_never_look_for_aws_settings_or_the_network() {
    let recorder = LocalServer::start(|_, _| Reply::new(404, "text/plain", "no")).await;
    let url = recorder.url.clone();
    let fixture = keda_fixture();
    let role = format!("arn:aws:iam::{ACCOUNT}:role/keda-operator");
    let queue = format!("https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/q");
    let consumer = format!("arn:aws:iam::{ACCOUNT}:role/consumer");
    let commands: Vec<Vec<&str>> = vec![
        vec!["plan", "--seconds", "120"],
        vec!["keda", "render", "--operator-role", &role, "--helm-values"],
        vec!["keda", "render", "--operator-role", &role, "--manifest", &fixture],
        vec![
            "scaledobject",
            "render",
            "--cluster",
            "sales",
            "--namespace",
            "sales",
            "--name",
            "c",
            "--target",
            "c",
            "--queue-url",
            &queue,
            "--role-arn",
            &consumer,
        ],
    ];
    for command in commands {
        let output = tokio::task::spawn_blocking({
            let (command, url) = (command.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>(), url.clone());
            move || offline(&command.iter().map(String::as_str).collect::<Vec<_>>(), &url)
        })
        .await
        .unwrap();
        assert!(output.status.success(), "{command:?}: {}", stderr(&output));
        assert!(
            recorder.requests().is_empty(),
            "{command:?} made requests: {:?}",
            recorder.requests()
        );
    }
    // The recorder does see a command that needs AWS look for its region and credentials.
    let online = tokio::task::spawn_blocking(move || offline(&["token", "--cluster", "sales"], &url))
        .await
        .unwrap();
    assert!(!online.status.success());
    assert!(
        !recorder.requests().is_empty(),
        "token looked nowhere: {}",
        stderr(&online)
    );
}

#[test]
fn token_refuses_an_empty_cluster_and_invoke_names_the_events_problem_first() {
    let empty = kedaform(&["token", "--cluster", ""]);
    assert_eq!(empty.status.code(), Some(2), "{}", stderr(&empty));
    let dir = std::env::temp_dir().join(format!("kedaform-invoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (event, problem) in [
        ("[1, 2]", "the event is not a JSON object"),
        (
            r#"{"ResourceType": "Custom::Nope", "RequestType": "Create"}"#,
            "ResourceType \"Custom::Nope\" is not one kedaform serves",
        ),
        (
            r#"{"RequestType": "Create"}"#,
            "ResourceType \"\" is not one kedaform serves",
        ),
    ] {
        let path = dir.join("event.json");
        std::fs::write(&path, event).unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_kedaform"))
            .args(["invoke", "--event", path.to_str().unwrap()])
            .env_clear()
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1));
        assert!(stderr(&output).contains(problem), "{event}: {}", stderr(&output));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn helm_values_print_as_json_when_asked() {
    let role = format!("arn:aws:iam::{ACCOUNT}:role/keda-operator");
    let output = kedaform(&[
        "--output",
        "json",
        "keda",
        "render",
        "--operator-role",
        &role,
        "--helm-values",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let values: Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    assert_eq!(values["podIdentity"]["aws"]["irsa"]["roleArn"], role.as_str());
    assert_eq!(values["serviceAccount"]["operator"]["name"], "keda-operator");
}

/// `--emit`: stdout is only the deployable text, for the settings the table (on stderr) chose.
#[test]
fn plan_emits_the_chosen_settings_as_properties_a_scaled_object_and_parameters() {
    let plan = ["plan", "--seconds", "1800", "--output", "json"];
    let emit = |format: &str, extra: &[&str]| {
        let output = kedaform(&[&plan[..], &["--emit", format], extra].concat());
        assert!(output.status.success(), "{format}: {}", stderr(&output));
        let table: Value = serde_json::from_str(&stderr(&output)).unwrap();
        (table["cheapest"].clone(), stdout(&output))
    };

    let (chosen, properties) = emit("properties", &[]);
    assert!(properties.starts_with("# kedaform plan: "), "{properties}");
    let mut properties: Value = serde_yaml_ng::from_str(&properties).unwrap();
    for (key, value) in [
        ("ClusterName", "sales"),
        ("Namespace", "consumer"),
        ("Name", "consumer"),
        ("ScaleTargetName", "consumer"),
        ("QueueUrl", "https://sqs.us-east-1.amazonaws.com/111122223333/sales"),
        ("RoleArn", "arn:aws:iam::111122223333:role/consumer"),
    ] {
        assert!(properties.get(key).is_none(), "identity is the template's: {key}");
        properties[key] = json!(value);
    }
    let decoded: kedaform::resources::scaled_object::ScaledObjectProperties =
        kedaform::cfn::decode_properties(&properties, kedaform::cfn::UnknownKeys::Reject).unwrap();
    assert_eq!(json!(decoded.queue_length), chosen["queue_length"]);
    assert_eq!(json!(decoded.polling_interval), chosen["polling_interval"]);
    assert_eq!(json!(decoded.min_replicas), chosen["min_replicas"]);
    assert_eq!(json!(decoded.max_replicas), chosen["max_replicas"]);

    let queue = "https://sqs.us-east-1.amazonaws.com/111122223333/sales";
    let role = "arn:aws:iam::111122223333:role/consumer";
    let (_, manifest) = emit("scaled-object", &["--queue-url", queue, "--role-arn", role]);
    let documents: Vec<Value> = manifest
        .split("\n---\n")
        .map(|document| serde_yaml_ng::from_str(document).unwrap())
        .collect();
    assert_eq!(documents[0]["kind"], "TriggerAuthentication");
    assert_eq!(documents[1]["kind"], "ScaledObject");
    assert_eq!(documents[1]["spec"]["pollingInterval"], chosen["polling_interval"]);
    assert_eq!(
        documents[1]["spec"]["triggers"][0]["metadata"]["queueLength"],
        json!(chosen["queue_length"].to_string())
    );
    let missing = kedaform(&[&plan[..], &["--emit", "scaled-object"]].concat());
    assert_eq!(missing.status.code(), Some(2), "{}", stdout(&missing));
    // With --output json a usage error is a JSON object on stdout.
    let error: Value = serde_json::from_str(&stdout(&missing)).unwrap();
    assert!(
        error["error"]["message"].as_str().unwrap().contains("--queue-url"),
        "{error}"
    );

    let (chosen, command) = emit("parameters", &[]);
    let line = command.lines().find(|l| l.starts_with("sam deploy")).unwrap();
    let list = line
        .strip_prefix("sam deploy --parameter-overrides '")
        .and_then(|rest| rest.strip_suffix('\''))
        .unwrap();
    let pairs: std::collections::BTreeMap<&str, &str> =
        list.split(' ').map(|pair| pair.split_once('=').unwrap()).collect();
    assert_eq!(pairs["QueueLength"], chosen["queue_length"].to_string());
    assert_eq!(pairs["MaxReplicas"], chosen["max_replicas"].to_string());
    assert!(pairs.contains_key("ScaleDownStabilizationSeconds"), "{line}");
}

/// A CloudFormation request for a `Custom::KubernetesManifest` of one namespace, as a file.
fn namespace_event(name: &str) -> std::path::PathBuf {
    let event = std::env::temp_dir().join(format!("kedaform-{name}-{}.json", std::process::id()));
    let request = json!({"RequestType": "Create", "ResponseURL": "https://example.invalid/", "StackId": "stack",
        "RequestId": "r1", "ResourceType": "Custom::KubernetesManifest", "LogicalResourceId": "Namespace",
        "ResourceProperties": {"ServiceToken": "x", "ClusterName": "sales",
                               "Manifest": format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}")}});
    std::fs::write(&event, request.to_string()).unwrap();
    event
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_calls_go_through_https_proxy_unless_no_proxy_names_the_server() {
    let api = FakeApiServer::start(Behaviour::default()).await;
    let eks = fake_eks("sales", &api.server.url).await;
    let proxy = kedaform_tests::proxy::ConnectProxy::start().await;
    let server = api.server.url.trim_start_matches("http://").to_owned();
    let run = |name: &str, proxy_url: &str, no_proxy: &str| {
        let event = namespace_event(name);
        let (eks_url, proxy_url, no_proxy) = (eks.url.clone(), proxy_url.to_owned(), no_proxy.to_owned());
        tokio::task::spawn_blocking(move || {
            let output = Command::new(env!("CARGO_BIN_EXE_kedaform"))
                .args(["invoke", "--event", event.to_str().unwrap()])
                .env("AWS_ENDPOINT_URL_EKS", eks_url)
                .env("HTTPS_PROXY", proxy_url)
                .env("NO_PROXY", no_proxy)
                .output()
                .unwrap();
            std::fs::remove_file(&event).unwrap();
            output
        })
    };
    let proxied = run("proxied", &proxy.url, "").await.unwrap();
    assert!(proxied.status.success(), "{}{}", stdout(&proxied), stderr(&proxied));
    assert!(
        proxy.targets().contains(&server),
        "tunnelled to the API server: {:?}",
        proxy.targets()
    );
    let tunnels = proxy.targets().iter().filter(|t| **t == server).count();

    let direct = run("direct", &proxy.url, "example.com,127.0.0.1").await.unwrap();
    assert!(direct.status.success(), "{}{}", stdout(&direct), stderr(&direct));
    assert_eq!(
        proxy.targets().iter().filter(|t| **t == server).count(),
        tunnels,
        "NO_PROXY names the server: no tunnel"
    );
    assert!(api.objects().contains_key("/api/v1/namespaces/direct"));

    let malformed = run("malformed", "ftp://user:hunter2@proxy", "").await.unwrap();
    let reason = stdout(&malformed);
    assert_eq!(malformed.status.code(), Some(1), "{reason}");
    assert!(
        reason.contains("environment variable HTTPS_PROXY is not an http:// or https:// proxy"),
        "{reason}"
    );
    assert!(
        !reason.contains("hunter2") && !reason.contains("ClusterName"),
        "{reason}"
    );
}

#[test]
fn a_malformed_kubeconfig_is_named_by_line_or_field_and_never_quoted() {
    let dir = std::env::temp_dir().join(format!("kedaform-kubeconfig-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let head = "apiVersion: v1\nkind: Config\ncurrent-context: c\n";
    let user = "- name: u\n  user:\n    token: SECRETTOKEN123\n    client-key-data: SECRETKEYDATA456\n";
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for level in 1..10 {
        let _ = writeln!(
            bomb,
            "a{level}: &a{level} [{}]",
            vec![format!("*a{}", level - 1); 10].join(", ")
        );
    }
    let cases = [
        (format!("{head}users:\n{user}  bad: [unclosed\n"), "is not valid YAML: "),
        (
            format!("{head}users:\n{user}    exec: SECRETEXEC789\n"),
            "users[0].user.exec: expected",
        ),
        (
            format!("{head}users:\n- name: u\n  user: {{token: [SECRETTOKEN123]}}\n"),
            "users[0].user.token: expected a string, found a list",
        ),
        (format!("{head}users:\n{user}  - x: SECRETX\n"), "is not valid YAML: "),
        (bomb, "is not valid YAML: "),
    ];
    let keda = [
        "keda",
        "install",
        "--cluster",
        "sales",
        "--operator-role",
        "arn:aws:iam::123456789012:role/k",
    ];
    for (index, (text, expected)) in cases.iter().enumerate() {
        let path = dir.join(format!("kubeconfig-{index}"));
        std::fs::write(&path, text).unwrap();
        let mut arguments = vec!["--kubeconfig", path.to_str().unwrap()];
        arguments.extend(keda);
        let output = kedaform(&arguments);
        let error = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{error}");
        assert!(error.contains(&format!("kubeconfig {}: ", path.display())), "{error}");
        assert!(error.contains(expected), "case {index}: {error}");
        assert!(!error.contains("SECRET"), "case {index}: {error}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
    let mut arguments = vec!["--kubeconfig", "/dev/zero"];
    arguments.extend(keda);
    let zeros = kedaform(&arguments);
    assert!(
        stderr(&zeros).contains("kubeconfig /dev/zero: is larger than 4 MiB"),
        "{}",
        stderr(&zeros)
    );
}

#[test]
fn local_files_and_pipes_are_read_up_to_their_limit() {
    let manifest = kedaform(&[
        "keda",
        "render",
        "--operator-role",
        "arn:aws:iam::123456789012:role/k",
        "--manifest",
        "/dev/zero",
    ]);
    assert_eq!(manifest.status.code(), Some(1));
    assert!(
        stderr(&manifest).contains("/dev/zero is larger than 16 MiB"),
        "{}",
        stderr(&manifest)
    );
    let traffic = kedaform(&["plan", "--traffic", "csv:/dev/zero"]);
    assert_eq!(traffic.status.code(), Some(2));
    assert!(
        stderr(&traffic).contains("/dev/zero is larger than 16 MiB"),
        "{}",
        stderr(&traffic)
    );
}

/// A `--manifest` that never yields a byte (a FIFO no one writes to) still stops on Ctrl-C,
/// exit 130: the read runs off the runtime, and the process does not wait for it.
#[test]
fn a_manifest_that_never_opens_still_stops_on_ctrl_c() {
    let fifo = std::env::temp_dir().join(format!("kedaform-fifo-{}", std::process::id()));
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let child = Command::new(env!("CARGO_BIN_EXE_kedaform"))
        .args([
            "keda",
            "render",
            "--operator-role",
            "arn:aws:iam::123456789012:role/k",
            "--manifest",
        ])
        .arg(&fifo)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let pid = child.id().to_string();
    let kill = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(kill.success());
    let (done, waited) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output().unwrap()));
    let output = waited.recv_timeout(std::time::Duration::from_secs(10));
    std::fs::remove_file(&fifo).unwrap();
    let Ok(output) = output else {
        Command::new("kill").args(["-KILL", &pid]).status().unwrap();
        panic!("kedaform still ran 10 s after SIGINT");
    };
    assert_eq!(output.status.code(), Some(130), "{}", stderr(&output));
    assert!(stderr(&output).contains("interrupted by SIGINT"), "{}", stderr(&output));
}

/// `plan --traffic csv:FILE` reads the file the help names, by a path relative to the working
/// directory as well as an absolute one, and the same traffic gives the same plan.
#[test]
fn plan_reads_traffic_from_a_csv_file_by_relative_or_absolute_path() {
    let dir = std::env::temp_dir().join(format!("kedaform-traffic-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("traffic.csv"), "0,5\n60,20\n120,0\n").unwrap();
    let plan = |traffic: &str, directory: &std::path::Path| {
        let output = Command::new(env!("CARGO_BIN_EXE_kedaform"))
            .args(["plan", "--traffic", traffic, "--seconds", "300", "--output", "json"])
            .current_dir(directory)
            .output()
            .unwrap();
        assert!(
            output.status.success() || output.status.code() == Some(1),
            "{}",
            stderr(&output)
        );
        serde_json::from_str::<Value>(&stdout(&output)).unwrap()
    };
    let absolute = plan(
        &format!("csv:{}", dir.join("traffic.csv").display()),
        std::path::Path::new("/"),
    );
    let relative = plan("csv:traffic.csv", &dir);
    assert_eq!(absolute, relative);
    assert!(
        absolute["cheapest"]["summary"]["pod_seconds"].as_u64().unwrap() > 0,
        "{absolute}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cluster_names_and_operator_roles_are_checked_alike_everywhere() {
    for cluster in [
        "sales\nprod",
        "sales\u{7}",
        "sales\u{1b}[31m",
        "../x",
        &"a".repeat(300),
        "sales\u{202e}",
    ] {
        for command in [
            vec!["token", "--cluster", cluster],
            vec![
                "keda",
                "install",
                "--cluster",
                cluster,
                "--operator-role",
                "arn:aws:iam::123456789012:role/k",
            ],
        ] {
            let output = kedaform(&command);
            assert_eq!(output.status.code(), Some(2), "{command:?}: {}", stderr(&output));
            assert!(stderr(&output).contains("--cluster"), "{}", stderr(&output));
            assert!(stderr(&output).contains("the cluster name"), "{}", stderr(&output));
        }
    }
    for role in ["not-an-arn", "", "arn:aws:iam::123456789012:role/k\nx"] {
        let render = kedaform(&["keda", "render", "--helm-values", "--operator-role", role]);
        assert_eq!(render.status.code(), Some(1), "{role:?}: {}", stdout(&render));
        assert!(stderr(&render).contains("--operator-role: "), "{}", stderr(&render));
    }
}

#[test]
fn with_output_json_a_failure_is_a_json_object_on_stdout() {
    let usage = kedaform(&["--output", "json", "token", "--cluster", "a b"]);
    assert_eq!(usage.status.code(), Some(2));
    let error: Value = serde_json::from_str(&stdout(&usage)).unwrap();
    assert_eq!(error["error"]["input"], "--cluster");
    assert_eq!(error["error"]["exitCode"], 2);
    assert!(
        error["error"]["message"].as_str().unwrap().contains("the cluster name"),
        "{error}"
    );

    let failed = kedaform(&[
        "keda",
        "render",
        "--helm-values",
        "--operator-role",
        "nope",
        "--output",
        "json",
    ]);
    assert_eq!(failed.status.code(), Some(1));
    let error: Value = serde_json::from_str(&stdout(&failed)).unwrap();
    assert_eq!(error["error"]["input"], "--operator-role");
    assert_eq!(error["error"]["exitCode"], 1);
    assert!(
        stderr(&failed).is_empty() || !stderr(&failed).contains("error:"),
        "{}",
        stderr(&failed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_install_says_what_it_applied_and_how_to_finish_or_undo() {
    let api = FakeApiServer::start(Behaviour {
        never_ready: Some("Deployment"),
        ..Behaviour::default()
    })
    .await;
    let eks = fake_eks("sales", &api.server.url).await;
    let manifest = std::fs::read_to_string(keda_fixture()).unwrap();
    let mirror = LocalServer::start(move |_, _| Reply::new(200, "application/yaml", manifest.clone())).await;
    let child = Command::new(env!("CARGO_BIN_EXE_kedaform"))
        .args(["keda", "install", "--cluster", "sales", "--operator-role"])
        .arg(format!("arn:aws:iam::{ACCOUNT}:role/keda-operator"))
        .args(["--manifest", &format!("{}/keda.yaml", mirror.url)])
        .env("AWS_ENDPOINT_URL_EKS", &eks.url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupted once it is waiting for KEDA's Deployments: all 28 objects applied, and the
    // moment it takes to go from the last apply to the wait.
    for _ in 0..300 {
        if api.objects().len() >= 28 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let error = stderr(&output);
    assert_eq!(output.status.code(), Some(130), "{error}");
    assert!(error.contains("interrupted by SIGINT while waiting for"), "{error}");
    assert!(error.contains("applied Namespace keda"), "{error}");
    assert!(error.contains("uninstall"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubeconfig_exec_plugin_runs_when_the_client_is_built_not_per_request() {
    let api = FakeApiServer::start(Behaviour::default()).await;
    let dir = std::env::temp_dir().join(format!("kedaform-exec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let runs = dir.join("runs");
    let plugin = dir.join("plugin.sh");
    std::fs::write(
        &plugin,
        format!(
            "#!/bin/sh\necho run >> {}\necho '{{\"kind\": \"ExecCredential\", \"apiVersion\": \"client.authentication.k8s.io/v1beta1\", \"status\": {{\"token\": \"t\"}}}}'\n",
            runs.display()
        ),
    )
    .unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters: [{{name: sales, cluster: {{server: \"{}\"}}}}]\n\
             users: [{{name: u, user: {{exec: {{apiVersion: client.authentication.k8s.io/v1beta1, command: sh, args: [\"{}\"]}}}}}}]\n\
             contexts: [{{name: c, context: {{cluster: sales, user: u}}}}]\n",
            api.server.url,
            plugin.display()
        ),
    )
    .unwrap();
    let event = namespace_event("exec");
    // Ten namespaces: twenty requests or more.
    let mut request: Value = serde_json::from_str(&std::fs::read_to_string(&event).unwrap()).unwrap();
    request["ResourceProperties"]["Manifest"] = json!(
        (0..10)
            .map(|n| format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: exec-{n}}}"))
            .collect::<Vec<_>>()
            .join("\n---\n")
    );
    std::fs::write(&event, request.to_string()).unwrap();
    let arguments = vec![
        "--kubeconfig".to_owned(),
        kubeconfig.display().to_string(),
        "invoke".to_owned(),
        "--event".to_owned(),
        event.display().to_string(),
    ];
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_kedaform"))
            .args(arguments)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(output.status.success(), "{}{}", stdout(&output), stderr(&output));
    assert!(
        api.requests()
            .iter()
            .all(|r| r.header("authorization") == Some("Bearer t"))
    );
    assert!(api.requests().len() >= 20, "{}", api.requests().len());
    // kube-rs asks the plugin when it builds the client (for the token, and twice for a TLS
    // identity); kedaform builds one client per command, so the runs do not grow with requests.
    let count = std::fs::read_to_string(&runs).unwrap().lines().count();
    assert!((1..=3).contains(&count), "{count} runs");
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_file(&event).unwrap();
}
