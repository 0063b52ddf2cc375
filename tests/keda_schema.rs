//! What kedaform generates for KEDA validates against KEDA v2.20.2's own CRD schemas (the
//! `openAPIV3Schema` the API server enforces).

use kedaform::cfn::{UnknownKeys, decode_properties};
use kedaform::resources::scaled_object::ScaledObjectProperties;
use serde_json::{Value, json};

fn crd_schema(file: &str) -> Value {
    let text = kedaform_tests::keda_release_text(file);
    let crd: Value = serde_yaml_ng::from_str(&text).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

fn errors(schema: &Value, object: &Value) -> Vec<String> {
    let validator = jsonschema::validator_for(schema).expect("KEDA's schema compiles");
    validator
        .iter_errors(object)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

fn rendered(overrides: &Value) -> (Value, Value) {
    let mut request = json!({
        "ClusterName": "kedaform", "Namespace": "sales", "Name": "consumer", "ScaleTargetName": "consumer",
        "QueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/reliable_q", "QueueLength": "10",
        "ActivationQueueLength": "2", "MinReplicas": "1", "MaxReplicas": "50", "PollingInterval": "10",
        "CooldownPeriod": "500", "ScaleOnInFlight": "false", "RoleArn": "arn:aws:iam::123456789012:role/consumer",
        "Behavior": {"scaleUp": {"stabilizationWindowSeconds": "0", "selectPolicy": "Max",
                                 "policies": [{"type": "Pods", "value": "4", "periodSeconds": "15"}]},
                     "scaleDown": {"stabilizationWindowSeconds": "300", "policies": [{"type": "Percent", "value": "100", "periodSeconds": "15"}]}},
        "Fallback": {"failureThreshold": "3", "replicas": "2"}
    });
    for (key, value) in overrides.as_object().unwrap() {
        request[key] = value.clone();
    }
    let properties: ScaledObjectProperties = decode_properties(&request, UnknownKeys::Reject).unwrap();
    let (auth, scaled) = properties.render().unwrap();
    (
        serde_json::to_value(auth).unwrap(),
        serde_json::to_value(scaled).unwrap(),
    )
}

#[test]
fn generated_objects_validate_against_kedas_crds() {
    for overrides in [json!({}), json!({"ScaleTargetKind": "StatefulSet"})] {
        let (auth, scaled) = rendered(&overrides);
        assert_eq!(
            errors(&crd_schema("keda.sh_triggerauthentications.yaml"), &auth),
            Vec::<String>::new()
        );
        assert_eq!(
            errors(&crd_schema("keda.sh_scaledobjects.yaml"), &scaled),
            Vec::<String>::new()
        );
    }
}

#[test]
fn the_validator_catches_what_the_api_server_would_refuse() {
    let (auth, mut scaled) = rendered(&json!({}));
    scaled["spec"]["minReplicaCount"] = json!("1");
    scaled["spec"]["triggers"][0].as_object_mut().unwrap().remove("type");
    let found = errors(&crd_schema("keda.sh_scaledobjects.yaml"), &scaled);
    assert_eq!(found.len(), 2, "{found:?}");
    let mut auth = auth;
    auth["spec"]["podIdentity"]["provider"] = json!("aws-kiam");
    assert_eq!(
        errors(&crd_schema("keda.sh_triggerauthentications.yaml"), &auth).len(),
        1,
        "unknown provider"
    );
}
