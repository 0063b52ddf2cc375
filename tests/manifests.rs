//! The workloads' Kubernetes objects, as the infra template applies them
//! (`Custom::KubernetesManifest`), against the code that reads them: variables the template
//! provides, every env var one the workload reads, settings that parse, and a termination
//! grace period longer than the consumer's own drain.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

use kedaform_tests::template::{Evaluator, IMAGES, Template, sub_variables};
use sales_events::settings::Env;
use serde_yaml_ng::Value;

const TEMPLATE: &str = "infra/template.yaml";
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

/// The manifest of template resource `id`, checked for variables the template does not
/// provide, then evaluated with the parameters' defaults and parsed.
fn documents(id: &str) -> Vec<Value> {
    let template = Template::load(TEMPLATE);
    let manifest = &template.resource(id)["Properties"]["Manifest"];
    let parts = manifest["Fn::Sub"]
        .as_array()
        .expect("Manifest: !Sub [text, variables]");
    let provided = parts[1].as_object().unwrap();
    let unknown: Vec<&str> = sub_variables(parts[0].as_str().unwrap())
        .into_iter()
        .filter(|name| {
            !provided.contains_key(*name)
                && !name.starts_with("AWS::")
                && template.root["Parameters"].get(*name).is_none()
        })
        .collect();
    assert!(
        unknown.is_empty(),
        "{id}: variables the template does not provide: {unknown:?}"
    );
    let text = Evaluator::new(&template, &IMAGES).eval(manifest).unwrap();
    serde_yaml_ng::Deserializer::from_str(text.as_str().unwrap())
        .map(|document| serde::Deserialize::deserialize(document).unwrap())
        .collect()
}

/// Checks one manifest; returns the Deployment's env as the workload would see it.
fn check(id: &str, container: &str) -> (Recording, Value) {
    let documents = documents(id);
    let kinds: Vec<&str> = documents.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["Namespace", "ServiceAccount", "Deployment"], "{id}");
    assert_eq!(
        documents[1]["metadata"]["annotations"]["eks.amazonaws.com/audience"], "sts.amazonaws.com",
        "{id}: IRSA audience"
    );
    let deployment = documents[2].clone();
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        pod["serviceAccountName"], documents[1]["metadata"]["name"],
        "{id}: the pod runs as the IRSA account"
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

fn assert_all_read(id: &str, env: &Recording) {
    let asked = env.asked.borrow();
    let unread: Vec<&String> = env
        .values
        .keys()
        .filter(|name| !asked.contains(*name) && !SDK_VARIABLES.contains(&name.as_str()))
        .collect();
    assert!(
        unread.is_empty(),
        "{id}: env vars the workload never reads (typos?): {unread:?}"
    );
}

#[test]
fn producer_template_matches_the_producer() {
    let (env, _) = check("ProducerManifest", "producer");
    let config = producer::Config::from_env(&env).expect("the template's settings parse");
    assert_eq!(config.total, 10_000);
    assert_all_read("ProducerManifest", &env);
}

#[test]
fn consumer_template_matches_the_consumer() {
    let (env, deployment) = check("ConsumerManifest", "consumer");
    let config = consumer::Config::from_env(&env).expect("the template's settings parse");
    assert_eq!(
        (config.max_batch, config.total),
        (5, 10_000),
        "scale-eks-with-keda's settings"
    );
    assert_all_read("ConsumerManifest", &env);
    let grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap();
    assert!(
        grace > config.shutdown_grace.as_secs(),
        "Kubernetes kills after {grace} s, before the consumer's {:?} drain",
        config.shutdown_grace
    );
}
