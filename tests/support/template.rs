//! A CloudFormation template as data: YAML short-form intrinsics (`!Ref`, `!Sub`, ...) in
//! their JSON form, and an evaluator of intrinsics that stands in for CloudFormation with
//! the parameters' defaults and made-up physical ids, for checks that need concrete values.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

/// The region the evaluator pretends to deploy in.
pub const REGION: &str = "us-east-1";
/// The account it pretends to deploy in.
pub const ACCOUNT: &str = "123456789012";
/// The stack name it pretends.
pub const STACK: &str = "kedaform";
/// The cluster's OIDC issuer it pretends.
pub const OIDC_ISSUER: &str = "https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";
/// The parameters of `infra/template.yaml` without a default: what a deploy must give.
pub const IMAGES: [(&str, &str); 2] = [
    (
        "ProducerImage",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/kedaform-producer:0.1.0",
    ),
    (
        "ConsumerImage",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/kedaform-consumer:0.1.0",
    ),
];

#[derive(Debug, Clone)]
/// A template, as JSON with intrinsics as `{"Fn::…": …}`.
pub struct Template {
    /// The whole document, nested applications inlined (see [`Template::load`]).
    pub root: Value,
    /// Each inlined `AWS::Serverless::Application` by logical id: its resource as written and
    /// the template it names, as written.
    pub nested: BTreeMap<String, (Value, Template)>,
}

impl Template {
    /// `path` is relative to the workspace root. Each `AWS::Serverless::Application` whose
    /// `Location` is a file is inlined as CloudFormation resolves it, so checks follow the
    /// wiring into it: the nested template's resources and conditions join this one's (a
    /// logical id in both is an error), its parameters become the values the application
    /// passes (or their defaults), `Fn::GetAtt [App, Outputs.Name]` becomes that output's
    /// value, and a resource that referred to the application depends on all of them.
    pub fn load(path: &str) -> Self {
        let mut template = Self::load_as_written(path);
        let directory = std::path::Path::new(path).parent().unwrap_or(std::path::Path::new(""));
        let applications: Vec<(String, Value)> = template
            .resources()
            .iter()
            .filter(|(_, r)| r["Type"] == "AWS::Serverless::Application")
            .map(|(id, r)| (id.clone(), r.clone()))
            .collect();
        for (id, application) in applications {
            let location = application["Properties"]["Location"]
                .as_str()
                .unwrap_or_else(|| panic!("{path} {id}: Location is not a file"));
            let nested = Self::load_as_written(directory.join(location).to_str().unwrap());
            template.inline(&id, &application, &nested);
            template.nested.insert(id, (application, nested));
        }
        template
    }

    /// The file as it is, nested applications left as they are.
    pub fn load_as_written(path: &str) -> Self {
        let full = format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"));
        let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{full}: {e}"));
        Self {
            root: to_json(yaml),
            nested: BTreeMap::new(),
        }
    }

    fn inline(&mut self, id: &str, application: &Value, nested: &Template) {
        let given = &application["Properties"]["Parameters"];
        let values: Map<String, Value> = nested.root["Parameters"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, parameter)| {
                let value = given
                    .get(name)
                    .cloned()
                    .or_else(|| parameter.get("Default").map(|d| Value::String(scalar(d))))
                    .unwrap_or_else(|| panic!("{id} gives no {name}, which has no default"));
                (name.clone(), value)
            })
            .collect();
        for name in given.as_object().into_iter().flatten().map(|(k, _)| k) {
            assert!(
                values.contains_key(name),
                "{id} passes {name}, which its template lacks"
            );
        }
        let inner: Vec<String> = nested.resources().keys().cloned().collect();
        let outputs: Map<String, Value> = nested.root["Outputs"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, output)| (name.clone(), with_parameters(&output["Value"], &values)))
            .collect();

        let resources = self.root["Resources"].as_object_mut().expect("Resources");
        resources.remove(id);
        for resource in resources.values_mut() {
            let refers = references(resource).contains(id)
                || match &resource["DependsOn"] {
                    Value::String(one) => one == id,
                    Value::Array(many) => many.iter().any(|d| d == id),
                    _ => false,
                };
            *resource = with_outputs(resource, id, &outputs);
            if refers {
                let mut depends: BTreeSet<String> = match &resource["DependsOn"] {
                    Value::String(one) => BTreeSet::from([one.clone()]),
                    Value::Array(many) => many.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
                    _ => BTreeSet::new(),
                };
                depends.remove(id);
                depends.extend(inner.iter().cloned());
                resource["DependsOn"] = json!(depends);
            }
        }
        for (inner_id, resource) in nested.resources() {
            assert!(
                !resources.contains_key(inner_id),
                "{inner_id} is in both templates of {id}"
            );
            resources.insert(inner_id.clone(), with_parameters(resource, &values));
        }
        if let Some(conditions) = nested.root["Conditions"].as_object() {
            if !self.root["Conditions"].is_object() {
                self.root["Conditions"] = json!({});
            }
            for (name, condition) in conditions {
                assert!(
                    self.root["Conditions"].get(name).is_none(),
                    "condition {name} is in both templates of {id}"
                );
                self.root["Conditions"][name] = with_parameters(condition, &values);
            }
        }
        if let Some(parent_outputs) = self.root.get_mut("Outputs") {
            *parent_outputs = with_outputs(parent_outputs, id, &outputs);
        }
    }

    /// `Resources`.
    pub fn resources(&self) -> &Map<String, Value> {
        self.root["Resources"].as_object().expect("Resources")
    }

    /// One resource by logical id.
    pub fn resource(&self, id: &str) -> &Value {
        self.resources().get(id).unwrap_or_else(|| panic!("no resource {id}"))
    }

    /// A resource's `Type`.
    pub fn type_of(&self, id: &str) -> &str {
        self.resource(id)["Type"].as_str().unwrap_or_default()
    }

    /// The logical ids of every resource of `resource_type`.
    pub fn of_type(&self, resource_type: &str) -> Vec<&str> {
        self.resources()
            .iter()
            .filter(|(_, r)| r["Type"] == resource_type)
            .map(|(id, _)| id.as_str())
            .collect()
    }

    /// A resource's `DependsOn`.
    pub fn depends_on(&self, id: &str) -> BTreeSet<String> {
        match &self.resource(id)["DependsOn"] {
            Value::String(one) => BTreeSet::from([one.clone()]),
            Value::Array(many) => many.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
            _ => BTreeSet::new(),
        }
    }

    /// Every resource CloudFormation creates before `id` (and deletes after it): explicit
    /// `DependsOn` and references (in `Properties` and `Metadata`), transitively.
    pub fn requires(&self, id: &str) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        let mut pending = vec![id.to_owned()];
        while let Some(next) = pending.pop() {
            let resource = self.resource(&next);
            let direct = self
                .depends_on(&next)
                .into_iter()
                .chain(references(&resource["Properties"]))
                .chain(references(&resource["Metadata"]))
                .filter(|r| self.resources().contains_key(r));
            for dependency in direct {
                if found.insert(dependency.clone()) {
                    pending.push(dependency);
                }
            }
        }
        found
    }

    /// Parameter values as CloudFormation passes them (strings): the defaults, then `given`.
    pub fn parameters(&self, given: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut values: BTreeMap<String, String> = self.root["Parameters"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(name, p)| Some((name.clone(), scalar(p.get("Default")?))))
            .collect();
        values.extend(given.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        values
    }
}

/// `value` of a nested template with its parameters replaced by what they are given.
fn with_parameters(value: &Value, values: &Map<String, Value>) -> Value {
    if let Some(("Ref", Value::String(name))) = intrinsic(value)
        && let Some(given) = values.get(name)
    {
        return given.clone();
    }
    if let Some(("Fn::Sub", argument)) = intrinsic(value) {
        let (text, variables) = match argument {
            Value::Array(parts) => (parts[0].clone(), parts.get(1).cloned().unwrap_or_else(|| json!({}))),
            other => (other.clone(), json!({})),
        };
        let mut variables = with_parameters(&variables, values);
        for name in sub_variables(text.as_str().unwrap_or_default()) {
            if let Some(given) = values.get(name)
                && variables.get(name).is_none()
            {
                variables[name] = given.clone();
            }
        }
        return json!({ "Fn::Sub": [text, variables] });
    }
    match value {
        Value::Array(items) => Value::Array(items.iter().map(|v| with_parameters(v, values)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), with_parameters(v, values)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `value` with each `Fn::GetAtt [application, Outputs.Name]` replaced by that output's value.
fn with_outputs(value: &Value, application: &str, outputs: &Map<String, Value>) -> Value {
    if let Some(("Fn::GetAtt", Value::Array(path))) = intrinsic(value)
        && path.first().is_some_and(|p| p == application)
    {
        let attribute = path.get(1).and_then(Value::as_str).unwrap_or_default();
        let name = attribute
            .strip_prefix("Outputs.")
            .unwrap_or_else(|| panic!("{application}.{attribute} is not an output"));
        return outputs
            .get(name)
            .unwrap_or_else(|| panic!("{application} has no output {name}"))
            .clone();
    }
    if let Some(("Fn::Sub", argument)) = intrinsic(value) {
        let text = argument.as_array().map_or(argument, |parts| &parts[0]);
        assert!(
            !sub_variables(text.as_str().unwrap_or_default())
                .iter()
                .any(|v| v.split('.').next() == Some(application)),
            "a Fn::Sub names {application}: use Fn::GetAtt, which the checks follow"
        );
    }
    match value {
        Value::Array(items) => Value::Array(items.iter().map(|v| with_outputs(v, application, outputs)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), with_outputs(v, application, outputs)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// YAML to JSON, with `!Tag value` as `{"Fn::Tag": value}` (`!Ref` and `!Condition` keep
/// their names, `!GetAtt a.b` becomes `["a", "b"]`).
pub fn to_json(yaml: serde_yaml_ng::Value) -> Value {
    use serde_yaml_ng::Value as Y;
    match yaml {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => serde_json::to_value(n).expect("number"),
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Y::Mapping(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k.as_str().expect("string keys").to_owned(), to_json(v)))
                .collect(),
        ),
        Y::Tagged(tagged) => {
            let name = tagged.tag.to_string().trim_start_matches('!').to_owned();
            let value = to_json(tagged.value);
            match name.as_str() {
                "Ref" | "Condition" => json!({ name: value }),
                "GetAtt" => match value {
                    Value::String(path) => {
                        let (resource, attribute) = path.split_once('.').expect("!GetAtt resource.attribute");
                        json!({ "Fn::GetAtt": [resource, attribute] })
                    }
                    other => json!({ "Fn::GetAtt": other }),
                },
                _ => json!({ format!("Fn::{name}"): value }),
            }
        }
    }
}

/// The one intrinsic function a value is, if it is one.
pub fn intrinsic(value: &Value) -> Option<(&str, &Value)> {
    let map = value.as_object().filter(|m| m.len() == 1)?;
    let (name, argument) = map.iter().next()?;
    (name == "Ref" || name == "Condition" || name.starts_with("Fn::")).then_some((name.as_str(), argument))
}

/// `{"Ref": id}` or `{"Fn::GetAtt": [id, ...]}`: the logical id it points at.
pub fn points_at(value: &Value) -> Option<&str> {
    match intrinsic(value)? {
        ("Ref", Value::String(id)) => Some(id),
        ("Fn::GetAtt", Value::Array(path)) => path.first()?.as_str(),
        _ => None,
    }
}

/// `${Name}` and `${Name.Attribute}` in a `Fn::Sub` string, without `${!Literal}`.
pub fn sub_variables(text: &str) -> Vec<&str> {
    text.split("${")
        .skip(1)
        .filter_map(|rest| rest.split_once('}'))
        .map(|(name, _)| name)
        .filter(|name| !name.starts_with('!'))
        .collect()
}

/// Every logical id or parameter a value refers to (through `Ref`, `GetAtt` or `Sub`).
pub fn references(value: &Value) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    collect_references(value, &mut found);
    found
}

fn collect_references(value: &Value, found: &mut BTreeSet<String>) {
    if let Some(id) = points_at(value) {
        found.insert(id.to_owned());
        return;
    }
    if let Some(("Fn::Sub", argument)) = intrinsic(value) {
        let (text, variables) = match argument {
            Value::Array(parts) => (parts[0].as_str().unwrap_or_default(), parts.get(1)),
            other => (other.as_str().unwrap_or_default(), None),
        };
        let local: BTreeSet<&str> = variables
            .and_then(Value::as_object)
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        for name in sub_variables(text) {
            let id = name.split('.').next().unwrap_or(name);
            if !local.contains(id) {
                found.insert(id.to_owned());
            }
        }
        if let Some(variables) = variables {
            collect_references(variables, found);
        }
        return;
    }
    match value {
        Value::Array(items) => items.iter().for_each(|v| collect_references(v, found)),
        Value::Object(map) => map.values().for_each(|v| collect_references(v, found)),
        _ => {}
    }
}

/// Evaluates intrinsics as CloudFormation would, with made-up physical ids.
#[derive(Debug)]
pub struct Evaluator<'a> {
    template: &'a Template,
    parameters: BTreeMap<String, String>,
}

impl<'a> Evaluator<'a> {
    /// An evaluator with the parameters' defaults overridden by `given`.
    pub fn new(template: &'a Template, given: &[(&str, &str)]) -> Self {
        Self {
            template,
            parameters: template.parameters(given),
        }
    }

    /// `None` is `AWS::NoValue`.
    pub fn eval(&self, value: &Value) -> Option<Value> {
        if let Some((name, argument)) = intrinsic(value) {
            return self.function(name, argument);
        }
        Some(match value {
            Value::Array(items) => Value::Array(items.iter().filter_map(|v| self.eval(v)).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .filter_map(|(k, v)| Some((k.clone(), self.eval(v)?)))
                    .collect(),
            ),
            other => other.clone(),
        })
    }

    fn function(&self, name: &str, argument: &Value) -> Option<Value> {
        let args = argument.as_array();
        let arg = |i: usize| args.and_then(|a| a.get(i)).unwrap_or(&Value::Null);
        Some(match name {
            "Ref" => return self.reference(argument.as_str().expect("Ref name")),
            "Fn::GetAtt" => Value::String(self.attribute(arg(0).as_str()?, arg(1).as_str()?)),
            "Fn::Sub" => Value::String(self.substitute(argument)),
            "Fn::If" => {
                let branch = if self.condition(arg(0).as_str()?) {
                    arg(1)
                } else {
                    arg(2)
                };
                return self.eval(branch);
            }
            "Fn::Select" => {
                let index: usize = scalar(&self.eval(arg(0))?).parse().ok()?;
                self.eval(arg(1))?.as_array()?.get(index)?.clone()
            }
            "Fn::Split" => Value::Array(
                scalar(&self.eval(arg(1))?)
                    .split(arg(0).as_str()?)
                    .map(|s| Value::String(s.to_owned()))
                    .collect(),
            ),
            "Fn::GetAZs" => json!([format!("{REGION}a"), format!("{REGION}b"), format!("{REGION}c")]),
            "Fn::Join" => {
                // A CommaDelimitedList a nested stack was given as one string is its items.
                let items = match self.eval(arg(1))? {
                    Value::Array(items) => items,
                    Value::String(text) => text.split(',').map(|s| Value::String(s.to_owned())).collect(),
                    other => vec![other],
                };
                Value::String(items.iter().map(scalar).collect::<Vec<_>>().join(arg(0).as_str()?))
            }
            other => panic!("the template evaluator does not know {other}"),
        })
    }

    /// A condition of the template.
    pub fn condition(&self, name: &str) -> bool {
        self.truth(&self.template.root["Conditions"][name])
    }

    /// Whether a resource is created: it has no `Condition` or its condition holds.
    pub fn creates(&self, id: &str) -> bool {
        self.template.resource(id)["Condition"]
            .as_str()
            .is_none_or(|name| self.condition(name))
    }

    fn truth(&self, value: &Value) -> bool {
        let (name, argument) = intrinsic(value).expect("a condition function");
        let items = argument.as_array();
        match name {
            "Fn::Equals" => {
                let items = items.expect("Fn::Equals list");
                self.eval(&items[0]) == self.eval(&items[1])
            }
            "Fn::Not" => !self.truth(&items.expect("Fn::Not list")[0]),
            "Fn::And" => items.expect("Fn::And list").iter().all(|v| self.truth(v)),
            "Fn::Or" => items.expect("Fn::Or list").iter().any(|v| self.truth(v)),
            "Condition" => self.condition(argument.as_str().expect("condition name")),
            other => panic!("{other} is not a condition function"),
        }
    }

    fn reference(&self, name: &str) -> Option<Value> {
        Some(Value::String(match name {
            "AWS::NoValue" => return None,
            "AWS::Region" => REGION.into(),
            "AWS::AccountId" => ACCOUNT.into(),
            "AWS::Partition" => "aws".into(),
            "AWS::StackName" => STACK.into(),
            "AWS::URLSuffix" => "amazonaws.com".into(),
            _ if self.parameters.contains_key(name)
                && self.template.root["Parameters"][name]["Type"] == "CommaDelimitedList" =>
            {
                return Some(json!(self.parameters[name].split(',').collect::<Vec<_>>()));
            }
            _ if self.parameters.contains_key(name) => self.parameters[name].clone(),
            _ => physical_id(self.template.type_of(name), name),
        }))
    }

    fn attribute(&self, id: &str, attribute: &str) -> String {
        let physical = physical_id(self.template.type_of(id), id);
        match (self.template.type_of(id), attribute) {
            ("AWS::IAM::Role", "Arn") => format!("arn:aws:iam::{ACCOUNT}:role/{physical}"),
            ("AWS::SQS::Queue", "Arn") => format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{STACK}-{id}"),
            ("AWS::S3::Bucket", "Arn") => format!("arn:aws:s3:::{physical}"),
            ("AWS::EKS::Cluster", "Arn") => format!("arn:aws:eks:{REGION}:{ACCOUNT}:cluster/{physical}"),
            ("AWS::EKS::Cluster", "OpenIdConnectIssuerUrl") => OIDC_ISSUER.into(),
            ("AWS::Logs::LogGroup", "Arn") => format!("arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{physical}:*"),
            ("AWS::Serverless::Function" | "AWS::Lambda::Function", "Arn") => {
                format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{physical}")
            }
            _ => format!("{id}.{attribute}"),
        }
    }

    fn substitute(&self, argument: &Value) -> String {
        let (text, variables) = match argument {
            Value::Array(parts) => (parts[0].as_str().expect("Fn::Sub text"), parts.get(1)),
            other => (other.as_str().expect("Fn::Sub text"), None),
        };
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let (name, after) = rest[start + 2..].split_once('}').expect("closed ${");
            out.push_str(&match name.strip_prefix('!') {
                Some(literal) => ["${", literal, "}"].concat(),
                None => match variables.and_then(|v| v.get(name)) {
                    Some(value) => scalar(&self.eval(value).expect("a Fn::Sub variable has a value")),
                    None => match name.split_once('.') {
                        Some((id, attribute)) => self.attribute(id, attribute),
                        None => scalar(&self.reference(name).expect("a value")),
                    },
                },
            });
            rest = after;
        }
        out.push_str(rest);
        out
    }
}

/// What `Ref` answers for a resource, made up but shaped like the real thing.
pub fn physical_id(resource_type: &str, id: &str) -> String {
    match resource_type {
        "AWS::SQS::Queue" => format!("https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{STACK}-{id}"),
        "AWS::S3::Bucket" => format!("{STACK}-{}", id.to_lowercase()),
        "AWS::IAM::OIDCProvider" => format!(
            "arn:aws:iam::{ACCOUNT}:oidc-provider/{}",
            OIDC_ISSUER.trim_start_matches("https://")
        ),
        "AWS::Logs::LogGroup" => format!("/aws/lambda/{STACK}-{id}"),
        _ => format!("{STACK}-{id}"),
    }
}

impl Template {
    /// The template cut down to `keep`: every reference to a resource left out is replaced by
    /// the value `evaluator` gives it, so the rest deploys on its own. Outputs that need a
    /// resource left out are dropped; so are the SAM transform and the console metadata.
    pub fn subset(&self, keep: &BTreeSet<String>, evaluator: &Evaluator<'_>) -> Value {
        let left_out = |id: &str| self.resources().contains_key(id) && !keep.contains(id);
        let resources: Map<String, Value> = keep
            .iter()
            .map(|id| {
                let mut resource = stub(self.resource(id), &left_out, evaluator);
                if let Some(map) = resource.as_object_mut() {
                    let depends: Vec<String> = self.depends_on(id).into_iter().filter(|d| !left_out(d)).collect();
                    map.remove("DependsOn");
                    if !depends.is_empty() {
                        map.insert("DependsOn".into(), json!(depends));
                    }
                }
                (id.clone(), resource)
            })
            .collect();
        let outputs: Map<String, Value> = self.root["Outputs"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, output)| references(output).iter().all(|r| !left_out(r)))
            .map(|(name, output)| (name.clone(), output.clone()))
            .collect();
        // Only the conditions what is kept uses: the others may name what was left out (or,
        // inlined from a nested stack, use functions a condition may not).
        let mut used = BTreeSet::new();
        let mut pending: Vec<String> = resources
            .values()
            .chain(outputs.values())
            .flat_map(conditions_named)
            .collect();
        while let Some(name) = pending.pop() {
            if used.insert(name.clone()) {
                pending.extend(conditions_named(&self.root["Conditions"][&name]));
            }
        }
        let conditions: Map<String, Value> = used
            .iter()
            .map(|name| (name.clone(), stub(&self.root["Conditions"][name], &left_out, evaluator)))
            .collect();
        json!({
            "AWSTemplateFormatVersion": self.root["AWSTemplateFormatVersion"],
            "Parameters": self.root["Parameters"],
            "Conditions": conditions,
            "Resources": resources,
            "Outputs": outputs,
        })
    }
}

/// The conditions `value` names: a resource's or output's `Condition`, `Fn::If`'s first
/// argument, and `{"Condition": name}` inside a condition.
fn conditions_named(value: &Value) -> Vec<String> {
    let mut found = Vec::new();
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("Condition", Value::String(name)) => found.push(name.clone()),
                    ("Fn::If", Value::Array(arguments)) => {
                        found.extend(arguments.first().and_then(Value::as_str).map(str::to_owned));
                        found.extend(arguments.iter().skip(1).flat_map(conditions_named));
                    }
                    _ => found.extend(conditions_named(inner)),
                }
            }
        }
        Value::Array(items) => found.extend(items.iter().flat_map(conditions_named)),
        _ => {}
    }
    found
}

fn stub(value: &Value, left_out: &dyn Fn(&str) -> bool, evaluator: &Evaluator<'_>) -> Value {
    if points_at(value).is_some_and(left_out) {
        return evaluator.eval(value).expect("a stub value");
    }
    if let Some(("Fn::Sub", argument)) = intrinsic(value) {
        let (text, variables) = match argument {
            Value::Array(parts) => (parts[0].clone(), parts.get(1).cloned().unwrap_or_else(|| json!({}))),
            other => (other.clone(), json!({})),
        };
        let mut variables = stub(&variables, left_out, evaluator);
        for name in sub_variables(text.as_str().unwrap_or_default()) {
            let id = name.split('.').next().unwrap_or(name);
            if left_out(id) && variables.get(name).is_none() {
                let literal = evaluator
                    .eval(&json!({ "Fn::Sub": format!("${{{name}}}") }))
                    .expect("a value");
                variables[name] = literal;
            }
        }
        return json!({ "Fn::Sub": [text, variables] });
    }
    match value {
        Value::Array(items) => Value::Array(items.iter().map(|v| stub(v, left_out, evaluator)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), stub(v, left_out, evaluator)))
                .collect(),
        ),
        other => other.clone(),
    }
}
