//! `infra/template.yaml` against the code it deploys: the wiring no linter sees. Each custom
//! resource's properties go through the same decoding and checks as its handler; timeouts,
//! dependencies, IRSA trust and IAM grants are read from the template itself.

use std::collections::BTreeSet;

use kedaform::keda::install;
use kedaform_tests::template::{Evaluator, IMAGES, Template, intrinsic, points_at, references};
use serde_json::{Value, json};

const TEMPLATE: &str = "infra/template.yaml";

fn template() -> Template {
    Template::load(TEMPLATE)
}

fn properties<'t>(template: &'t Template, id: &str) -> &'t Value {
    &template.resource(id)["Properties"]
}

/// The one resource of a type.
fn only<'t>(template: &'t Template, resource_type: &str) -> &'t str {
    match template.of_type(resource_type)[..] {
        [id] => id,
        ref ids => panic!("expected one {resource_type}, found {ids:?}"),
    }
}

/// The logical id a property points at (`!Ref X` or `!GetAtt X.Attr`).
fn target<'t>(template: &'t Template, id: &str, property: &str) -> &'t str {
    points_at(&properties(template, id)[property]).unwrap_or_else(|| panic!("{id}.{property} is not a Ref or GetAtt"))
}

/// A variable of a `!Sub [text, variables]` property.
fn sub_variable<'t>(template: &'t Template, id: &str, property: &str, variable: &str) -> &'t Value {
    &properties(template, id)[property]["Fn::Sub"][1][variable]
}

/// The consumer role: the one the consumer's service account is annotated with.
fn consumer_role(template: &Template) -> &str {
    points_at(sub_variable(
        template,
        "ConsumerManifest",
        "Manifest",
        "ConsumerRoleArn",
    ))
    .expect("a role")
}

/// The KEDA operator role: the one `Custom::KedaInstall` annotates KEDA's account with.
fn keda_role(template: &Template) -> &str {
    target(template, only(template, "Custom::KedaInstall"), "OperatorRoleArn")
}

fn custom_resources(template: &Template) -> Vec<&str> {
    let ids: Vec<&str> = template
        .resources()
        .iter()
        .filter(|(_, r)| r["Type"].as_str().is_some_and(|t| t.starts_with("Custom::")))
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(ids.len(), 5, "trust, KEDA, two manifests, ScaledObject: {ids:?}");
    ids
}

/// The properties a handler receives: intrinsics resolved (the handler's decoding drops
/// `ServiceToken` and `ServiceTimeout`).
fn evaluated(template: &Template, id: &str) -> Value {
    Evaluator::new(template, &IMAGES)
        .eval(properties(template, id))
        .unwrap()
}

fn check(resource_type: &str, properties: &Value) -> Result<(), kedaform::Error> {
    kedaform::resources::check_properties(resource_type, properties)
}

#[test]
fn every_custom_resource_decodes_as_its_handler_decodes_it() {
    let template = template();
    for id in custom_resources(&template) {
        let resource_type = template.type_of(id);
        let properties = evaluated(&template, id);
        if let Err(e) = check(resource_type, &properties) {
            panic!("{id} ({resource_type}): its handler would answer FAILED: {e}");
        }
        // The check can fail: a misspelt property and a missing required one are caught.
        let mut typo = properties.clone();
        typo["ClusterNmae"] = json!("x");
        assert!(check(resource_type, &typo).is_err(), "{id}: a typo must fail");
        let required = if resource_type == "Custom::KedaTrustPolicy" {
            "RoleName"
        } else {
            "ClusterName"
        };
        let mut missing = properties.clone();
        missing.as_object_mut().unwrap().remove(required);
        assert!(check(resource_type, &missing).is_err(), "{id}: {required} is required");
    }
}

#[test]
fn every_custom_resource_is_answered_before_cloudformation_gives_up() {
    let template = template();
    let evaluator = Evaluator::new(&template, &IMAGES);
    let workspace = std::fs::read_to_string(format!("{}/../lambdas/kube/Cargo.toml", env!("CARGO_MANIFEST_DIR")))
        .unwrap()
        + &std::fs::read_to_string(format!(
            "{}/../lambdas/trust-policy/Cargo.toml",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
    for id in custom_resources(&template) {
        let function = target(&template, id, "ServiceToken");
        let resource = template.resource(function);
        assert_eq!(resource["Type"], "AWS::Serverless::Function", "{id}: ServiceToken");
        let binary = resource["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap();
        let expected = if template.type_of(id) == "Custom::KedaTrustPolicy" {
            "trust-policy"
        } else {
            "kube-resources"
        };
        assert_eq!(binary, expected, "{id} is served by the wrong binary");
        assert!(
            workspace.contains(&format!("name = \"{binary}\"")),
            "no package builds {binary}"
        );
        assert_eq!(resource["Metadata"]["BuildMethod"], "rust-cargolambda", "{function}");
        assert_eq!(resource["Properties"]["Runtime"], "provided.al2023", "{function}");
        assert_eq!(
            resource["Properties"]["Architectures"],
            json!([{"Ref": "Architecture"}])
        );

        let seconds = |v: &Value| {
            evaluator
                .eval(v)
                .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
        };
        let timeout = seconds(&resource["Properties"]["Timeout"]).expect("a Lambda timeout");
        let service_timeout = seconds(&properties(&template, id)["ServiceTimeout"])
            .unwrap_or_else(|| panic!("{id}: without ServiceTimeout a lost response hangs the stack for an hour"));
        assert!(
            service_timeout < timeout,
            "{id}: ServiceTimeout {service_timeout} s must be below {function}'s timeout {timeout} s"
        );

        let logs = points_at(&resource["Properties"]["LoggingConfig"]["LogGroup"]).expect("a log group");
        assert_eq!(template.type_of(logs), "AWS::Logs::LogGroup");
        assert_eq!(
            properties(&template, logs)["RetentionInDays"],
            json!({"Ref": "LogRetentionDays"})
        );
    }
}

#[test]
fn kubernetes_resources_keep_cluster_access_until_they_are_deleted() {
    let template = template();
    let cluster = only(&template, "AWS::EKS::Cluster");
    let entry = only(&template, "AWS::EKS::AccessEntry");
    assert_eq!(target(&template, entry, "ClusterName"), cluster);
    let entry_policies = &properties(&template, entry)["AccessPolicies"];
    assert_eq!(
        entry_policies[0]["AccessScope"]["Type"], "cluster",
        "KEDA's install is cluster-wide"
    );
    for id in custom_resources(&template) {
        if template.type_of(id) == "Custom::KedaTrustPolicy" {
            continue;
        }
        assert_eq!(target(&template, id, "ClusterName"), cluster, "{id}");
        let function = target(&template, id, "ServiceToken");
        let role = target(&template, function, "Role");
        assert_eq!(
            target(&template, entry, "PrincipalArn"),
            role,
            "{entry} is for {function}'s role"
        );
        let requires = template.requires(id);
        assert!(
            requires.contains(entry),
            "{id} must depend on {entry}, or a delete removes access first"
        );
        assert!(
            requires.contains(only(&template, "AWS::EKS::Nodegroup")),
            "{id} waits for pods: it needs nodes"
        );
    }
    let keda = only(&template, "Custom::KedaInstall");
    assert!(
        template
            .depends_on(keda)
            .contains(only(&template, "AWS::EKS::Nodegroup"))
    );
    let scaled = only(&template, "Custom::KedaScaledObject");
    let depends = template.depends_on(scaled);
    for before in [
        only(&template, "Custom::KedaInstall"),
        only(&template, "Custom::KedaTrustPolicy"),
        "ConsumerManifest",
    ] {
        assert!(depends.contains(before), "{scaled} must come after {before}");
    }
}

#[test]
fn nodes_have_their_route_out_before_they_start() {
    let template = template();
    let nodes = only(&template, "AWS::EKS::Nodegroup");
    let requires = template.requires(nodes);
    let subnets = properties(&template, nodes)["Subnets"].as_array().unwrap();
    assert_eq!(subnets.len(), 2, "two AZs");
    for subnet in subnets {
        let subnet = points_at(subnet).unwrap();
        let association = template
            .of_type("AWS::EC2::SubnetRouteTableAssociation")
            .into_iter()
            .find(|a| target(&template, a, "SubnetId") == subnet)
            .unwrap_or_else(|| panic!("{subnet} has no route table"));
        let table = target(&template, association, "RouteTableId");
        let route = template
            .of_type("AWS::EC2::Route")
            .into_iter()
            .find(|r| target(&template, r, "RouteTableId") == table)
            .unwrap_or_else(|| panic!("{table} has no default route"));
        assert_eq!(properties(&template, route)["DestinationCidrBlock"], "0.0.0.0/0");
        assert!(
            properties(&template, route).get("NatGatewayId").is_some(),
            "{route} goes through a NAT"
        );
        for needed in [association, route] {
            assert!(requires.contains(needed), "{nodes} must wait for {needed}");
        }
    }
}

#[test]
fn scaled_object_reads_the_consumers_queue_with_the_consumer_role() {
    let template = template();
    let scaled = only(&template, "Custom::KedaScaledObject");
    let queue = points_at(sub_variable(&template, "ConsumerManifest", "Manifest", "QueueUrl")).unwrap();
    assert_eq!(template.type_of(queue), "AWS::SQS::Queue");
    assert_eq!(
        target(&template, scaled, "QueueUrl"),
        queue,
        "KEDA must watch the queue the consumer reads"
    );
    assert_eq!(target(&template, scaled, "RoleArn"), consumer_role(&template));
    assert_eq!(
        properties(&template, scaled)["Namespace"],
        *sub_variable(&template, "ConsumerManifest", "Manifest", "Namespace")
    );
    let manifest = Evaluator::new(&template, &IMAGES)
        .eval(&properties(&template, "ConsumerManifest")["Manifest"])
        .unwrap();
    let deployment = manifest.as_str().unwrap().split("\n---\n").last().unwrap();
    let name = properties(&template, scaled)["ScaleTargetName"].as_str().unwrap();
    assert!(
        deployment.contains("kind: Deployment") && deployment.contains(&format!("  name: {name}\n")),
        "the ScaledObject scales Deployment {name}, which ConsumerManifest must create"
    );

    let dlq = points_at(sub_variable(
        &template,
        "ConsumerManifest",
        "Manifest",
        "DeadLetterQueueUrl",
    ))
    .unwrap();
    let redrive = &properties(&template, queue)["RedrivePolicy"];
    assert_eq!(
        points_at(&redrive["deadLetterTargetArn"]),
        Some(dlq),
        "the consumer's DLQ is the queue's"
    );
    let settings = properties(&template, queue);
    assert_eq!(
        (&settings["VisibilityTimeout"], &settings["DelaySeconds"]),
        (&json!(30), &json!(2))
    );

    // scale-eks-with-keda's settings are the defaults.
    let evaluated = evaluated(&template, scaled);
    for (property, original) in [
        ("MinReplicas", "1"),
        ("MaxReplicas", "50"),
        ("PollingInterval", "10"),
        ("CooldownPeriod", "500"),
        ("QueueLength", "10"),
    ] {
        assert_eq!(evaluated[property], original, "{property}");
    }
}

#[test]
fn trust_patch_targets_the_consumer_role_and_names_the_keda_role() {
    let template = template();
    let trust = only(&template, "Custom::KedaTrustPolicy");
    assert_eq!(target(&template, trust, "RoleName"), consumer_role(&template));
    assert_eq!(target(&template, trust, "KedaRoleArn"), keda_role(&template));
    assert_eq!(properties(&template, trust)["Exclusive"], true);
    // An update that rewrites the consumer role's trust policy drops the KEDA statement; the
    // patch must run again then, so its Triggers follow every input of that policy.
    let trust_inputs = references(&properties(&template, consumer_role(&template))["AssumeRolePolicyDocument"]);
    let triggers = references(&properties(&template, trust)["Triggers"]);
    let missing: Vec<&String> = trust_inputs
        .difference(&triggers)
        .filter(|r| !is_cluster(&template, r) && !r.starts_with("AWS::"))
        .collect();
    assert!(missing.is_empty(), "{trust}.Triggers misses {missing:?}");
    // IdentityMode picks the trust policy (IRSA or Pod Identity): a switch re-applies the patch.
    assert_eq!(
        properties(&template, trust)["Triggers"]["IdentityMode"],
        json!({"Ref": "IdentityMode"})
    );
}

/// The issuer comes from the cluster, as the OIDC provider's URL does: the provider stands for it.
fn is_cluster(template: &Template, id: &str) -> bool {
    template
        .resources()
        .get(id)
        .is_some_and(|r| r["Type"] == "AWS::EKS::Cluster")
}

/// Every IAM statement in the template, with the resource that holds it.
fn statements(template: &Template) -> Vec<(String, Value)> {
    let evaluator = Evaluator::new(template, &IMAGES);
    let mut found = Vec::new();
    for (id, resource) in template.resources() {
        let documents: Vec<&Value> = match resource["Type"].as_str().unwrap() {
            "AWS::IAM::Role" => resource["Properties"]["Policies"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| &p["PolicyDocument"])
                .collect(),
            "AWS::IAM::Policy" | "AWS::IAM::ManagedPolicy" => vec![&resource["Properties"]["PolicyDocument"]],
            "AWS::Serverless::Function" => resource["Properties"]["Policies"]
                .as_array()
                .into_iter()
                .flatten()
                .collect(),
            _ => vec![],
        };
        for document in documents {
            let document = evaluator.eval(document).unwrap();
            for statement in document["Statement"].as_array().into_iter().flatten() {
                found.push((id.clone(), statement.clone()));
            }
        }
    }
    assert!(found.len() >= 8, "the template's policies were not found: {found:?}");
    found
}

fn list(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect(),
        Value::String(one) => vec![one.clone()],
        _ => vec![],
    }
}

#[test]
fn only_the_keda_role_may_assume_the_consumer_role() {
    let template = template();
    let evaluator = Evaluator::new(&template, &IMAGES);
    let consumer_arn = evaluator
        .eval(&json!({"Fn::GetAtt": [consumer_role(&template), "Arn"]}))
        .unwrap();
    let mut granted = BTreeSet::new();
    for (holder, statement) in statements(&template) {
        let assumes = list(&statement["Action"])
            .iter()
            .any(|a| matches!(a.as_str(), "sts:AssumeRole" | "sts:*" | "*"));
        let on_consumer = list(&statement["Resource"])
            .iter()
            .any(|r| r == consumer_arn.as_str().unwrap() || r.ends_with('*'));
        if statement["Effect"] == "Allow" && assumes && on_consumer {
            granted.insert(holder);
        }
    }
    assert_eq!(granted, BTreeSet::from([keda_role(&template).to_owned()]));

    // The consumer role's own trust: its service account only; KEDA is added by the patch.
    let trust = evaluator
        .eval(&properties(&template, consumer_role(&template))["AssumeRolePolicyDocument"])
        .unwrap();
    let trust: Value = serde_json::from_str(trust.as_str().unwrap()).unwrap();
    for statement in trust["Statement"].as_array().unwrap() {
        assert!(
            statement["Principal"].get("AWS").is_none(),
            "no AWS principal: {statement}"
        );
        assert_eq!(statement["Action"], "sts:AssumeRoleWithWebIdentity");
    }
}

#[test]
fn irsa_roles_trust_one_service_account_for_the_sts_audience() {
    let template = template();
    let evaluator = Evaluator::new(&template, &IMAGES);
    let provider = only(&template, "AWS::IAM::OIDCProvider");
    let issuer = kedaform_tests::template::OIDC_ISSUER.trim_start_matches("https://");
    let service_accounts = [
        ("ProducerManifest", "ProducerRoleArn", "producer"),
        ("ConsumerManifest", "ConsumerRoleArn", "consumer"),
    ];
    let mut expected: Vec<(&str, String)> = service_accounts
        .iter()
        .map(|(manifest, variable, account)| {
            let role = points_at(sub_variable(&template, manifest, "Manifest", variable)).unwrap();
            let namespace = evaluator
                .eval(sub_variable(&template, manifest, "Manifest", "Namespace"))
                .unwrap();
            (
                role,
                format!("system:serviceaccount:{}:{account}", namespace.as_str().unwrap()),
            )
        })
        .collect();
    expected.push((
        keda_role(&template),
        format!("system:serviceaccount:{}:{}", install::NAMESPACE, install::OPERATOR),
    ));
    for (role, subject) in expected {
        let document = &properties(&template, role)["AssumeRolePolicyDocument"];
        assert!(references(document).contains(provider), "{role} trusts {provider}");
        let document: Value = serde_json::from_str(evaluator.eval(document).unwrap().as_str().unwrap())
            .unwrap_or_else(|e| panic!("{role}: the trust policy is not JSON: {e}"));
        let [statement] = &document["Statement"].as_array().unwrap()[..] else {
            panic!("{role}: one statement")
        };
        assert_eq!(statement["Action"], "sts:AssumeRoleWithWebIdentity", "{role}");
        let conditions = &statement["Condition"]["StringEquals"];
        assert_eq!(conditions[format!("{issuer}:aud")], "sts.amazonaws.com", "{role}");
        assert_eq!(conditions[format!("{issuer}:sub")], subject, "{role}");
    }
}

#[test]
fn no_grant_uses_a_wildcard_resource_or_principal() {
    let template = template();
    for (holder, statement) in statements(&template) {
        if statement["Effect"] != "Allow" {
            continue;
        }
        let resources = list(&statement["Resource"]);
        assert!(!resources.is_empty(), "{holder}: {statement}");
        assert!(
            resources.iter().all(|r| r != "*"),
            "{holder} grants on every resource: {statement}"
        );
    }
    let policy = only(&template, "AWS::S3::BucketPolicy");
    for statement in properties(&template, policy)["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap()
    {
        assert!(
            statement["Effect"] == "Deny" || statement["Principal"] != "*",
            "{policy} grants to everyone: {statement}"
        );
    }
}

#[test]
fn bucket_queue_and_nodes_are_set_up_as_the_issue_asks() {
    let template = template();
    let bucket = properties(&template, only(&template, "AWS::S3::Bucket"));
    assert_eq!(bucket["VersioningConfiguration"]["Status"], "Enabled");
    let block = &bucket["PublicAccessBlockConfiguration"];
    for setting in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(block[setting], true, "{setting}");
    }
    assert!(bucket["BucketEncryption"].is_object());
    let tls_only = &properties(&template, only(&template, "AWS::S3::BucketPolicy"))["PolicyDocument"]["Statement"][0];
    assert_eq!(tls_only["Condition"]["Bool"]["aws:SecureTransport"], "false");
    for queue in template.of_type("AWS::SQS::Queue") {
        assert_eq!(properties(&template, queue)["SqsManagedSseEnabled"], true, "{queue}");
    }
    let cluster = properties(&template, only(&template, "AWS::EKS::Cluster"));
    assert_eq!(cluster["AccessConfig"]["AuthenticationMode"], "API");
    let node_role = target(&template, only(&template, "AWS::EKS::Nodegroup"), "NodeRole");
    let managed = serde_json::to_string(&properties(&template, node_role)["ManagedPolicyArns"]).unwrap();
    assert!(
        managed.contains("AmazonSSMManagedInstanceCore"),
        "Session Manager on the nodes"
    );
}

#[test]
fn outputs_give_an_operator_what_the_readme_uses() {
    let template = template();
    let outputs = template.root["Outputs"].as_object().unwrap();
    for name in [
        "ClusterName",
        "KubeconfigCommand",
        "QueueUrl",
        "DeadLetterQueueUrl",
        "BucketName",
        "ProducerRoleArn",
        "ConsumerRoleArn",
        "KedaOperatorRoleArn",
        "DeployerLogGroup",
    ] {
        assert!(outputs.contains_key(name), "output {name}");
    }
    let command = Evaluator::new(&template, &IMAGES)
        .eval(&outputs["KubeconfigCommand"]["Value"])
        .unwrap();
    assert_eq!(
        command,
        "aws eks update-kubeconfig --region us-east-1 --name kedaform-Cluster"
    );
}

/// `samconfig.toml` overrides only parameters the template has, and deploys this template.
#[test]
fn samconfig_names_the_template_and_its_parameters() {
    let template = template();
    let text = std::fs::read_to_string(format!("{}/../samconfig.toml", env!("CARGO_MANIFEST_DIR"))).unwrap();
    assert!(text.contains(&format!("template_file = \"{TEMPLATE}\"")));
    let overrides = text
        .split("parameter_overrides = [")
        .nth(1)
        .unwrap()
        .split(']')
        .next()
        .unwrap();
    let names: Vec<&str> = overrides
        .lines()
        .filter_map(|line| line.trim().strip_prefix('"')?.split_once('=').map(|(name, _)| name))
        .collect();
    assert!(names.len() >= 10, "{names:?}");
    let parameters = template.root["Parameters"].as_object().unwrap();
    for name in names {
        assert!(
            parameters.contains_key(name),
            "samconfig.toml overrides {name}, which the template lacks"
        );
    }
}

/// Intrinsics the evaluator relies on are the ones the template uses.
#[test]
fn template_uses_only_intrinsics_the_checks_understand() {
    fn walk(value: &Value, seen: &mut BTreeSet<String>) {
        if let Some((name, _)) = intrinsic(value) {
            seen.insert(name.to_owned());
        }
        match value {
            Value::Array(items) => items.iter().for_each(|v| walk(v, seen)),
            Value::Object(map) => map.values().for_each(|v| walk(v, seen)),
            _ => {}
        }
    }
    let mut seen = BTreeSet::new();
    walk(&template().root["Resources"], &mut seen);
    let known = [
        "Ref",
        "Fn::GetAtt",
        "Fn::Sub",
        "Fn::If",
        "Fn::Select",
        "Fn::Split",
        "Fn::GetAZs",
        "Fn::Join",
    ];
    let unknown: Vec<&String> = seen.iter().filter(|s| !known.contains(&s.as_str())).collect();
    assert!(unknown.is_empty(), "extend tests/support/template.rs for {unknown:?}");
}

/// checkov passes only what the templates skip; each skip must say why.
#[test]
fn every_checkov_skip_gives_its_reason() {
    let mut skips = 0;
    for path in [TEMPLATE, "infra/trust-policy.yaml", DEPLOYER] {
        let template = Template::load_as_written(path);
        for (id, resource) in template.resources() {
            for skip in resource["Metadata"]["checkov"]["skip"].as_array().into_iter().flatten() {
                let comment = skip["comment"].as_str().unwrap_or_default();
                assert!(
                    skip["id"].as_str().is_some_and(|c| c.starts_with("CKV")) && comment.len() >= 30,
                    "{path} {id}: a checkov skip needs an id and a reason: {skip}"
                );
                skips += 1;
            }
        }
    }
    assert!(skips > 0, "no checkov skips found: is the Metadata path right?");
}

const DEPLOYER: &str = "infra/deployer.yaml";

/// Every (role, action, resource) an `AWS::IAM::Role` of `template` allows, as evaluated.
fn grants(template: &Template, evaluator: &Evaluator<'_>) -> BTreeSet<(String, String, String)> {
    let mut found = BTreeSet::new();
    for role in template.of_type("AWS::IAM::Role") {
        if !evaluator.creates(role) {
            continue;
        }
        for policy in properties(template, role)["Policies"].as_array().into_iter().flatten() {
            let document = evaluator.eval(&policy["PolicyDocument"]).unwrap();
            for statement in document["Statement"].as_array().unwrap() {
                assert_eq!(statement["Effect"], "Allow", "{role}: {statement}");
                for action in list(&statement["Action"]) {
                    for resource in list(&statement["Resource"]) {
                        found.insert((role.to_owned(), action.clone(), resource));
                    }
                }
            }
        }
    }
    found
}

/// The deployer stack on its own: both service tokens exported under the stack's name, and the
/// Serverless Application Repository's metadata complete, pointing at files that exist.
#[test]
fn the_deployer_stack_exports_both_service_tokens_and_can_be_published() {
    let deployer = Template::load(DEPLOYER);
    let evaluator = Evaluator::new(
        &deployer,
        &[
            ("ClusterName", "sales"),
            ("TrustPolicyRoleArns", "arn:aws:iam::123456789012:role/sales-consumer"),
        ],
    );
    for (output, binary) in [
        ("TrustPolicyServiceToken", "trust-policy"),
        ("KubernetesServiceToken", "kube-resources"),
    ] {
        let output_value = &deployer.root["Outputs"][output];
        let function = points_at(&output_value["Value"]).unwrap_or_else(|| panic!("{output} names no function"));
        assert_eq!(
            deployer.resource(function)["Metadata"]["BuildProperties"]["Binary"],
            binary,
            "{output}"
        );
        assert_eq!(
            evaluator.eval(&output_value["Export"]["Name"]).unwrap(),
            format!("kedaform-{output}"),
            "{output}: exported under the stack's name, so two deployer stacks do not clash"
        );
    }

    let repository = &deployer.root["Metadata"]["AWS::ServerlessRepo::Application"];
    let field = |name: &str| {
        repository[name]
            .as_str()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| panic!("AWS::ServerlessRepo::Application needs {name}"))
    };
    let root = format!("{}/..", env!("CARGO_MANIFEST_DIR"));
    let cargo = std::fs::read_to_string(format!("{root}/Cargo.toml")).unwrap();
    assert!(
        cargo.contains(&format!("version = \"{}\"", field("SemanticVersion"))),
        "SemanticVersion is the workspace's version"
    );
    assert!(
        cargo.contains(&format!("license = \"{}\"", field("SpdxLicenseId"))),
        "SpdxLicenseId is the workspace's license"
    );
    for file in ["LicenseUrl", "ReadmeUrl"] {
        let path = format!("{root}/infra/{}", field(file));
        assert!(std::path::Path::new(&path).is_file(), "{file}: no {path}");
    }
    for url in ["SourceCodeUrl", "HomePageUrl"] {
        assert!(field(url).starts_with("https://"), "{url}");
    }
    for name in ["Name", "Description", "Author"] {
        field(name);
    }
}

/// The deployer's Lambdas may touch what its parameters name and nothing else: the cluster
/// (describe only), the roles (their trust only), the manifest bucket when one is given, their
/// own log groups. Without a cluster the stack is the trust-policy Lambda alone.
#[test]
fn the_deployer_grants_only_what_its_parameters_name() {
    let deployer = Template::load(DEPLOYER);
    let roles = [
        "arn:aws:iam::123456789012:role/sales-consumer",
        "arn:aws:iam::123456789012:role/teams/*",
    ];
    let logs = |id: &str| format!("arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/kedaform-{id}:*");
    let grant = |role: &str, action: &str, resource: &str| (role.to_owned(), action.to_owned(), resource.to_owned());
    for (cluster, bucket) in [("sales", ""), ("sales", "keda-mirror"), ("", "")] {
        let evaluator = Evaluator::new(
            &deployer,
            &[
                ("ClusterName", cluster),
                ("TrustPolicyRoleArns", &roles.join(",")),
                ("ManifestBucketName", bucket),
            ],
        );
        let mut expected = BTreeSet::new();
        for role in roles {
            expected.insert(grant("TrustPolicyRole", "iam:GetRole", role));
            expected.insert(grant("TrustPolicyRole", "iam:UpdateAssumeRolePolicy", role));
        }
        for action in ["logs:CreateLogStream", "logs:PutLogEvents"] {
            expected.insert(grant("TrustPolicyRole", action, &logs("TrustPolicyLogs")));
            if !cluster.is_empty() {
                expected.insert(grant("DeployerRole", action, &logs("DeployerLogs")));
            }
        }
        if !cluster.is_empty() {
            expected.insert(grant(
                "DeployerRole",
                "eks:DescribeCluster",
                "arn:aws:eks:us-east-1:123456789012:cluster/sales",
            ));
        }
        if !bucket.is_empty() {
            expected.insert(grant("DeployerRole", "s3:GetObject", "arn:aws:s3:::keda-mirror/*"));
        }
        assert_eq!(
            grants(&deployer, &evaluator),
            expected,
            "cluster {cluster:?}, bucket {bucket:?}"
        );

        let functions: Vec<&str> = deployer
            .of_type("AWS::Serverless::Function")
            .into_iter()
            .filter(|f| evaluator.creates(f))
            .collect();
        let kubernetes = !cluster.is_empty();
        assert_eq!(
            functions.len(),
            1 + usize::from(kubernetes),
            "cluster {cluster:?}: {functions:?}"
        );
        for (name, output) in deployer.root["Outputs"].as_object().unwrap() {
            let created = output["Condition"].as_str().is_none_or(|c| evaluator.condition(c));
            let from_kubernetes_lambda = references(&output["Value"]).iter().any(|r| r.starts_with("Deployer"));
            assert_eq!(
                created,
                !from_kubernetes_lambda || kubernetes,
                "output {name}, cluster {cluster:?}"
            );
        }
    }
}

/// The whole system and the trust fix alone nest the deployer stack instead of repeating its
/// Lambdas; what they give it narrows it to their cluster and consumer role.
#[test]
fn the_system_and_the_trust_fix_nest_the_deployer_stack() {
    let trust_parameters = [
        ("ConsumerRoleName", "sales-consumer"),
        ("KedaRoleArn", "arn:aws:iam::123456789012:role/keda-operator"),
    ];
    for (path, given, functions) in [
        (TEMPLATE, &IMAGES[..], 2),
        ("infra/trust-policy.yaml", &trust_parameters[..], 1),
    ] {
        let written = Template::load_as_written(path);
        for lambda in [
            "AWS::Serverless::Function",
            "AWS::Lambda::Function",
            "AWS::Logs::LogGroup",
        ] {
            assert!(
                written.of_type(lambda).is_empty(),
                "{path} repeats a {lambda} of the deployer stack"
            );
        }
        let [application] = written.of_type("AWS::Serverless::Application")[..] else {
            panic!("{path}: one nested deployer stack")
        };
        assert_eq!(written.resource(application)["Properties"]["Location"], "deployer.yaml");

        let template = Template::load(path);
        let evaluator = Evaluator::new(&template, given);
        let created: Vec<&str> = template
            .of_type("AWS::Serverless::Function")
            .into_iter()
            .filter(|f| evaluator.creates(f))
            .collect();
        assert_eq!(created.len(), functions, "{path}: {created:?}");
        let trust_grants: BTreeSet<String> = grants(&template, &evaluator)
            .into_iter()
            .filter(|(_, action, _)| action.starts_with("iam:"))
            .map(|(_, _, resource)| resource)
            .collect();
        let consumer = if path == TEMPLATE {
            evaluator
                .eval(&json!({"Fn::GetAtt": [consumer_role(&template), "Arn"]}))
                .unwrap()
        } else {
            json!("arn:aws:iam::123456789012:role/sales-consumer")
        };
        assert_eq!(
            trust_grants,
            BTreeSet::from([consumer.as_str().unwrap().to_owned()]),
            "{path}"
        );
    }
}

/// `IdentityMode: pod-identity`: no OIDC provider, the agent add-on, one association per
/// service account with the role its workload uses, each role trusting EKS for that service
/// account only, no IRSA annotation left, and every pod started after its association exists.
#[test]
fn pod_identity_associates_each_service_account_with_its_role_and_drops_irsa() {
    let template = template();
    let given = [IMAGES[0], IMAGES[1], ("IdentityMode", "pod-identity")];
    let evaluator = Evaluator::new(&template, &given);
    let provider = only(&template, "AWS::IAM::OIDCProvider");
    assert!(!evaluator.creates(provider), "no OIDC provider under Pod Identity");
    let addon = only(&template, "AWS::EKS::Addon");
    assert!(evaluator.creates(addon));
    assert_eq!(properties(&template, addon)["AddonName"], "eks-pod-identity-agent");

    let cluster = evaluator.eval(&json!({"Ref": "Cluster"})).unwrap();
    let associations = template.of_type("AWS::EKS::PodIdentityAssociation");
    let mut bound = BTreeSet::new();
    for association in &associations {
        assert!(evaluator.creates(association));
        let props = evaluated_with(&evaluator, &template, association);
        assert_eq!(props["ClusterName"], cluster, "{association}");
        let role = points_at(&properties(&template, association)["RoleArn"]).unwrap();
        let (namespace, account) = (
            props["Namespace"].as_str().unwrap(),
            props["ServiceAccount"].as_str().unwrap(),
        );
        bound.insert((namespace.to_owned(), account.to_owned(), role.to_owned()));
        // The role trusts EKS Pod Identity for this service account of this cluster only.
        let trust = evaluated_with(&evaluator, &template, role)["AssumeRolePolicyDocument"].clone();
        let [statement] = &trust["Statement"]
            .as_array()
            .unwrap_or_else(|| panic!("{role}: {trust}"))[..]
        else {
            panic!("{role}: one statement")
        };
        assert_eq!(
            statement["Principal"],
            json!({"Service": "pods.eks.amazonaws.com"}),
            "{role}"
        );
        assert_eq!(
            statement["Action"],
            json!(["sts:AssumeRole", "sts:TagSession"]),
            "{role}"
        );
        let conditions = &statement["Condition"]["StringEquals"];
        assert_eq!(conditions["aws:RequestTag/kubernetes-namespace"], namespace, "{role}");
        assert_eq!(
            conditions["aws:RequestTag/kubernetes-service-account"], account,
            "{role}"
        );
        assert_eq!(conditions["aws:RequestTag/eks-cluster-name"], cluster, "{role}");
        assert_eq!(
            conditions["aws:SourceAccount"],
            kedaform_tests::template::ACCOUNT,
            "{role}"
        );
    }
    let namespace = |id: &str| {
        evaluator
            .eval(sub_variable(&template, id, "Manifest", "Namespace"))
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    };
    let expected = BTreeSet::from([
        (
            namespace("ProducerManifest"),
            "producer".to_owned(),
            "ProducerRole".to_owned(),
        ),
        (
            namespace("ConsumerManifest"),
            "consumer".to_owned(),
            consumer_role(&template).to_owned(),
        ),
        (
            install::NAMESPACE.to_owned(),
            install::OPERATOR.to_owned(),
            keda_role(&template).to_owned(),
        ),
    ]);
    assert_eq!(bound, expected);

    // IRSA, the default, creates none of it.
    let irsa = Evaluator::new(&template, &IMAGES);
    assert!(irsa.creates(provider));
    for id in associations.iter().chain([&addon]) {
        assert!(!irsa.creates(id), "{id} under IRSA");
    }
}

/// Under Pod Identity the custom resources are told (and accept it), no IRSA annotation reaches
/// a pod, every pod starts after its association, and nothing created names the OIDC provider.
#[test]
fn pod_identity_reaches_the_custom_resources_and_every_pod_waits_for_its_association() {
    let template = template();
    let given = [IMAGES[0], IMAGES[1], ("IdentityMode", "pod-identity")];
    let evaluator = Evaluator::new(&template, &given);
    let provider = only(&template, "AWS::IAM::OIDCProvider");
    let addon = only(&template, "AWS::EKS::Addon");
    let associations = template.of_type("AWS::EKS::PodIdentityAssociation");
    for id in custom_resources(&template) {
        let props = evaluated_with(&evaluator, &template, id);
        let kind = template.type_of(id);
        check(kind, &props).unwrap_or_else(|e| panic!("{id}: {e}"));
        if matches!(kind, "Custom::KedaInstall" | "Custom::KedaScaledObject") {
            assert_eq!(props["IdentityMode"], "pod-identity", "{id}");
        }
        if kind == "Custom::KubernetesManifest" {
            let manifest = props["Manifest"].as_str().unwrap();
            assert!(!manifest.contains("eks.amazonaws.com/role-arn"), "{id}: {manifest}");
            assert!(manifest.contains("kedaform.io/role-arn: arn:aws:iam::"), "{id}");
        }
        if kind != "Custom::KedaTrustPolicy" {
            assert!(
                template.requires(id).contains("PodIdentityReady"),
                "{id} must wait for the associations"
            );
        }
    }
    let ready = evaluator
        .eval(&template.resource("PodIdentityReady")["Metadata"])
        .unwrap();
    let waited: BTreeSet<String> = ready["Associations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let needed: BTreeSet<String> = associations
        .iter()
        .chain([&addon])
        .map(|id| kedaform_tests::template::physical_id(template.type_of(id), id))
        .collect();
    assert_eq!(waited, needed);
    // Nothing created still names the OIDC provider.
    let oidc = kedaform_tests::template::physical_id("AWS::IAM::OIDCProvider", provider);
    for id in template.resources().keys().filter(|id| evaluator.creates(id)) {
        let props = evaluated_with(&evaluator, &template, id);
        assert!(!props.to_string().contains(&oidc), "{id} still names {provider}");
    }
}

/// `EndpointAccess: private`: the cluster has no public endpoint; the Kubernetes Lambda runs
/// in subnets whose route table has no route out, and reaches exactly what it needs: the
/// cluster (security group rule), EKS's API (interface endpoint) and S3 for KEDA's manifest
/// and CloudFormation's response (gateway endpoint on that route table).
#[test]
fn a_private_endpoint_puts_the_kubernetes_lambda_where_it_reaches_only_what_it_needs() {
    let template = template();
    let given = [
        IMAGES[0],
        IMAGES[1],
        ("EndpointAccess", "private"),
        ("KedaManifestBucket", "keda-mirror"),
        ("KedaManifestKey", "keda/keda-2.20.2.yaml"),
    ];
    let evaluator = Evaluator::new(&template, &given);
    let id_of = |logical: &str| kedaform_tests::template::physical_id(template.type_of(logical), logical);
    let cluster = only(&template, "AWS::EKS::Cluster");
    let vpc_config = &evaluated_with(&evaluator, &template, cluster)["ResourcesVpcConfig"];
    assert_eq!(
        (
            &vpc_config["EndpointPublicAccess"],
            &vpc_config["EndpointPrivateAccess"]
        ),
        (&json!(false), &json!(true))
    );
    assert!(vpc_config.get("PublicAccessCidrs").is_none());

    let function = "DeployerFunction";
    assert!(evaluator.creates(function));
    let network = &evaluated_with(&evaluator, &template, function)["VpcConfig"];
    let subnets: BTreeSet<String> = network["SubnetIds"]
        .as_str()
        .unwrap()
        .split(',')
        .map(str::to_owned)
        .collect();
    assert_eq!(
        subnets,
        BTreeSet::from([id_of("IsolatedSubnetA"), id_of("IsolatedSubnetB")])
    );
    assert_eq!(network["SecurityGroupIds"], id_of("DeployerSecurityGroup"));

    // Each subnet's route table: no route to a gateway or a NAT, S3's gateway endpoint on it.
    let table_of = |subnet: &str| {
        template
            .of_type("AWS::EC2::SubnetRouteTableAssociation")
            .into_iter()
            .find(|a| evaluator.eval(&properties(&template, a)["SubnetId"]).unwrap() == json!(subnet))
            .map_or_else(
                || panic!("{subnet} has no route table"),
                |a| evaluator.eval(&properties(&template, a)["RouteTableId"]).unwrap(),
            )
    };
    let s3 = evaluated_with(&evaluator, &template, "S3Endpoint");
    let eks = evaluated_with(&evaluator, &template, "EksEndpoint");
    for subnet in &subnets {
        let table = table_of(subnet);
        for route in template.of_type("AWS::EC2::Route") {
            assert_ne!(
                evaluator.eval(&properties(&template, route)["RouteTableId"]).unwrap(),
                table,
                "{route} gives the Lambda's subnet {subnet} a public path"
            );
        }
        assert!(
            s3["RouteTableIds"].as_array().unwrap().contains(&table),
            "{subnet}: no S3 route"
        );
        assert!(
            eks["SubnetIds"].as_array().unwrap().contains(&json!(subnet)),
            "{subnet}: no EKS endpoint"
        );
    }
    assert_eq!(s3["VpcEndpointType"], "Gateway");
    assert_eq!(s3["ServiceName"], "com.amazonaws.us-east-1.s3");
    assert_eq!(
        (eks["ServiceName"].as_str(), &eks["PrivateDnsEnabled"]),
        (Some("com.amazonaws.us-east-1.eks"), &json!(true))
    );
    // Endpoint policies: the manifest, CloudFormation's response, this cluster; nothing else.
    let allowed = |endpoint: &Value| -> BTreeSet<(String, String)> {
        endpoint["PolicyDocument"]["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .inspect(|s| assert_eq!(s["Effect"], "Allow"))
            .flat_map(|s| {
                list(&s["Action"])
                    .into_iter()
                    .flat_map(move |a| list(&s["Resource"]).into_iter().map(move |r| (a.clone(), r)))
            })
            .collect()
    };
    assert_eq!(
        allowed(&s3),
        BTreeSet::from([
            (
                "s3:GetObject".to_owned(),
                "arn:aws:s3:::keda-mirror/keda/keda-2.20.2.yaml".to_owned()
            ),
            (
                "s3:PutObject".to_owned(),
                "arn:aws:s3:::cloudformation-custom-resource-response-*/*".to_owned()
            ),
        ])
    );
    let cluster_arn = evaluator.eval(&json!({"Fn::GetAtt": [cluster, "Arn"]})).unwrap();
    assert_eq!(
        allowed(&eks),
        BTreeSet::from([(
            "eks:DescribeCluster".to_owned(),
            cluster_arn.as_str().unwrap().to_owned()
        )])
    );
    // The cluster admits the Lambda on 443; the EKS endpoint admits it and nothing else.
    let rule = evaluated_with(&evaluator, &template, "ClusterAdmitsDeployer");
    assert_eq!(rule["GroupId"], format!("{cluster}.ClusterSecurityGroupId"));
    assert_eq!(rule["SourceSecurityGroupId"], id_of("DeployerSecurityGroup"));
    assert_eq!(
        (&rule["FromPort"], &rule["ToPort"], &rule["IpProtocol"]),
        (&json!(443), &json!(443), &json!("tcp"))
    );
    let endpoint_group = &evaluated_with(&evaluator, &template, "EksEndpointSecurityGroup");
    assert_eq!(
        endpoint_group["SecurityGroupIngress"],
        json!([{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
                "SourceSecurityGroupId": id_of("DeployerSecurityGroup"),
                "Description": "kedaform Kubernetes Lambda (eks:DescribeCluster)"}])
    );
    assert_eq!(eks["SecurityGroupIds"], json!([id_of("EksEndpointSecurityGroup")]));

    // KEDA's manifest comes from the bucket, which the Lambda may read; its network interfaces
    // are Lambda's to make; every Kubernetes resource waits for the routes.
    let install = evaluated_with(&evaluator, &template, only(&template, "Custom::KedaInstall"));
    assert_eq!(install["ManifestUrl"], "s3://keda-mirror/keda/keda-2.20.2.yaml");
    assert!(grants(&template, &evaluator).contains(&(
        "DeployerRole".to_owned(),
        "s3:GetObject".to_owned(),
        "arn:aws:s3:::keda-mirror/*".to_owned()
    )));
    assert_eq!(
        evaluated_with(&evaluator, &template, "DeployerRole")["ManagedPolicyArns"],
        json!(["arn:aws:iam::aws:policy/service-role/AWSLambdaENIManagementAccess"])
    );
    let routes = evaluator
        .eval(&template.resource("DeployerNetwork")["Metadata"])
        .unwrap();
    assert_eq!(
        routes["Routes"],
        json!([
            id_of("ClusterAdmitsDeployer"),
            id_of("EksEndpoint"),
            id_of("S3Endpoint")
        ])
    );
    for id in custom_resources(&template) {
        if template.type_of(id) != "Custom::KedaTrustPolicy" {
            assert!(template.requires(id).contains("DeployerNetwork"), "{id}");
        }
    }

    // The default keeps the Lambda outside any VPC and creates none of it.
    let public = Evaluator::new(&template, &IMAGES);
    assert!(evaluated_with(&public, &template, function).get("VpcConfig").is_none());
    assert!(
        evaluated_with(&public, &template, "DeployerRole")
            .get("ManagedPolicyArns")
            .is_none()
    );
    for id in [
        "DeployerSecurityGroup",
        "ClusterAdmitsDeployer",
        "EksEndpoint",
        "S3Endpoint",
        "EksEndpointSecurityGroup",
    ] {
        assert!(!public.creates(id), "{id}");
    }
    let public_config = &evaluated_with(&public, &template, cluster)["ResourcesVpcConfig"];
    assert_eq!(public_config["EndpointPublicAccess"], true);
    assert!(
        evaluated_with(&public, &template, only(&template, "Custom::KedaInstall"))
            .get("ManifestUrl")
            .is_none()
    );
}

/// The deployer stack alone, for a cluster made elsewhere: subnets and security groups put the
/// Kubernetes Lambda in that VPC (with the permission Lambda needs for it); none keeps it out.
#[test]
fn the_deployer_stack_joins_a_vpc_only_when_given_subnets() {
    let deployer = Template::load(DEPLOYER);
    let base = [
        ("ClusterName", "sales"),
        ("TrustPolicyRoleArns", "arn:aws:iam::123456789012:role/sales-consumer"),
    ];
    let inside = [
        base[0],
        base[1],
        ("SubnetIds", "subnet-0a1b2c3d4e5f60718,subnet-0b1b2c3d4e5f60718"),
        ("SecurityGroupIds", "sg-0c1b2c3d4e5f60718"),
    ];
    let evaluator = Evaluator::new(&deployer, &inside);
    let function = evaluated_with(&evaluator, &deployer, "DeployerFunction");
    assert_eq!(
        function["VpcConfig"],
        json!({"SubnetIds": ["subnet-0a1b2c3d4e5f60718", "subnet-0b1b2c3d4e5f60718"], "SecurityGroupIds": ["sg-0c1b2c3d4e5f60718"]})
    );
    assert!(
        evaluated_with(&evaluator, &deployer, "TrustPolicyFunction")
            .get("VpcConfig")
            .is_none(),
        "the trust-policy Lambda calls IAM only and needs no VPC"
    );
    let outside = Evaluator::new(&deployer, &base);
    assert!(
        evaluated_with(&outside, &deployer, "DeployerFunction")
            .get("VpcConfig")
            .is_none()
    );
}

/// A resource's properties as evaluated with `evaluator`'s parameters.
fn evaluated_with(evaluator: &Evaluator<'_>, template: &Template, id: &str) -> Value {
    evaluator.eval(properties(template, id)).unwrap()
}

/// The trust fix alone, in the queue's account for a KEDA of another account: `KedaAccountId`
/// reaches the handler, which accepts it; left empty, the property is not sent at all.
#[test]
fn the_trust_fix_takes_a_keda_role_of_another_account_only_with_its_account_named() {
    let template = Template::load("infra/trust-policy.yaml");
    let trust = only(&template, "Custom::KedaTrustPolicy");
    let base = [
        ("ConsumerRoleName", "sales-consumer"),
        ("KedaRoleArn", "arn:aws:iam::444455556666:role/keda-operator"),
    ];
    let cross = [
        base[0],
        base[1],
        ("KedaAccountId", "444455556666"),
        ("ExternalId", "kedaform-sales"),
    ];
    let sent = Evaluator::new(&template, &cross)
        .eval(properties(&template, trust))
        .unwrap();
    assert_eq!(sent["KedaAccountId"], "444455556666");
    assert_eq!(sent["ExternalId"], "kedaform-sales");
    check("Custom::KedaTrustPolicy", &sent).unwrap();
    let same = Evaluator::new(&template, &base)
        .eval(properties(&template, trust))
        .unwrap();
    assert!(same.get("KedaAccountId").is_none(), "{same}");
    check("Custom::KedaTrustPolicy", &same).unwrap();
    let pattern = template.root["Parameters"]["KedaAccountId"]["AllowedPattern"]
        .as_str()
        .unwrap();
    assert_eq!(
        pattern, "(\\d{12})?",
        "CloudFormation refuses anything but an account id"
    );
}
