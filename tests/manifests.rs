//! The workloads' Kubernetes templates against the code that reads them: known placeholders
//! only, every env var one the workload reads, settings that parse, and a termination grace
//! period longer than the consumer's own drain.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

use sales_events::settings::Env;
use serde_yaml_ng::Value;

/// The `Fn::Sub` variables the infra template provides.
const PLACEHOLDERS: [&str; 10] = [
    "Namespace",
    "ProducerRoleArn",
    "ProducerReplicas",
    "ProducerImage",
    "ConsumerRoleArn",
    "ConsumerImage",
    "QueueUrl",
    "DeadLetterQueueUrl",
    "BucketName",
    "AWS::Region",
];
/// Read by the AWS SDK, not by the workload's own settings.
const SDK_VARIABLES: [&str; 1] = ["AWS_REGION"];

/// Answers from the manifest's env and remembers what was asked.
struct Recording {
    values: HashMap<String, String>,
    asked: RefCell<BTreeSet<String>>,
}

impl Env for Recording {
    fn get(&self, name: &str) -> Option<String> {
        self.asked.borrow_mut().insert(name.to_owned());
        self.values.get(name).cloned()
    }
}

fn placeholders(text: &str) -> BTreeSet<String> {
    text.split("${")
        .skip(1)
        .filter_map(|rest| rest.split_once('}'))
        .map(|(name, _)| name.to_owned())
        .collect()
}

fn documents(path: &str) -> (String, Vec<Value>) {
    let text = std::fs::read_to_string(format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let filled = placeholders(&text)
        .iter()
        .fold(text.clone(), |text, name| text.replace(&format!("${{{name}}}"), "3"));
    let documents = serde_yaml_ng::Deserializer::from_str(&filled)
        .map(|document| serde::Deserialize::deserialize(document).unwrap())
        .collect();
    (text, documents)
}

/// Checks one template; returns the Deployment's env as the workload would see it.
fn check(path: &str, container: &str) -> (Recording, Value) {
    let (text, documents) = documents(path);
    let unknown: Vec<String> = placeholders(&text)
        .into_iter()
        .filter(|p| !PLACEHOLDERS.contains(&p.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "{path}: placeholders the infra template does not provide: {unknown:?}"
    );
    let kinds: Vec<&str> = documents.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["Namespace", "ServiceAccount", "Deployment"], "{path}");
    assert_eq!(
        documents[1]["metadata"]["annotations"]["eks.amazonaws.com/audience"], "sts.amazonaws.com",
        "{path}: IRSA audience"
    );
    let deployment = documents[2].clone();
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        pod["serviceAccountName"], documents[1]["metadata"]["name"],
        "{path}: the pod runs as the IRSA account"
    );
    let spec = &pod["containers"][0];
    assert_eq!(spec["name"], container);
    let values = spec["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (
        Recording {
            values,
            asked: RefCell::default(),
        },
        deployment,
    )
}

fn assert_all_read(path: &str, env: &Recording) {
    let asked = env.asked.borrow();
    let unread: Vec<&String> = env
        .values
        .keys()
        .filter(|name| !asked.contains(*name) && !SDK_VARIABLES.contains(&name.as_str()))
        .collect();
    assert!(
        unread.is_empty(),
        "{path}: env vars the workload never reads (typos?): {unread:?}"
    );
}

#[test]
fn producer_template_matches_the_producer() {
    let (env, _) = check("workloads/producer/k8s.yaml", "producer");
    let config = producer::Config::from_env(&env).expect("the template's settings parse");
    assert_eq!(config.total, 10_000);
    assert_all_read("workloads/producer/k8s.yaml", &env);
}

#[test]
fn consumer_template_matches_the_consumer() {
    let (env, deployment) = check("workloads/consumer/k8s.yaml", "consumer");
    let config = consumer::Config::from_env(&env).expect("the template's settings parse");
    assert_eq!((config.max_batch, config.total), (5, 10_000), "the seed's settings");
    assert_all_read("workloads/consumer/k8s.yaml", &env);
    let grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap();
    assert!(
        grace > config.shutdown_grace.as_secs(),
        "Kubernetes kills after {grace} s, before the consumer's {:?} drain",
        config.shutdown_grace
    );
}
