//! Trust-policy planning: pure functions from the current document to the one to write.
//!
//! Documents stay `serde_json::Value` so that every key kedaform does not manage (Condition
//! blocks, NotAction, future IAM grammar) passes through untouched. The output is
//! deterministic (object keys sorted) and applying a plan to its own output changes nothing.

use serde_json::{Map, Value, json};

/// Sid of the one statement kedaform owns in a trust policy.
pub const KEDA_STATEMENT_SID: &str = "KedaformKedaOperator";
/// Sid of the statement left when removing ours would leave the policy empty (IAM rejects an
/// empty trust policy, and kedaform never re-opens the role to the account).
pub const NO_TRUST_SID: &str = "KedaformNoTrust";

const ASSUME_ROLE: &str = "sts:assumerole";

/// What the trust policy should grant the KEDA operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KedaTrust {
    /// The KEDA operator's role.
    pub keda_role_arn: String,
    /// An `sts:ExternalId` condition, when given.
    pub external_id: Option<String>,
    /// Remove every other grant of `sts:AssumeRole` to AWS principals.
    pub exclusive: bool,
    /// The account of a KEDA role that is not in the consumer role's account: the explicit
    /// consent [`crate::iam::cross_account`] asks for. Planning itself does not read it.
    pub keda_account_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
/// What a planning step decided.
pub struct Plan {
    /// The document to write.
    pub document: Value,
    /// AWS principals whose `sts:AssumeRole` grant was removed, as they were written.
    pub removed: Vec<String>,
    /// Whether it differs from the current one.
    pub changed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
/// Why a document cannot be read as a trust policy.
pub struct MalformedPolicy(pub String);

/// Reads a trust policy as `GetRole` returns it: URL-encoded (IAM always encodes it and the
/// SDK does not decode it) or, from other sources, plain JSON.
pub fn parse_document(text: &str) -> Result<Value, MalformedPolicy> {
    let trimmed = text.trim_start();
    let decoded = if trimmed.starts_with('{') {
        std::borrow::Cow::Borrowed(trimmed)
    } else {
        percent_encoding::percent_decode_str(trimmed)
            .decode_utf8()
            .map_err(|e| MalformedPolicy(format!("not URL-encoded UTF-8: {e}")))?
    };
    let document: Value = serde_json::from_str(&decoded).map_err(|e| MalformedPolicy(format!("not JSON: {e}")))?;
    statements(&document)?;
    Ok(document)
}

/// The document that grants `trust` and, when exclusive, nothing else to AWS principals.
///
/// ```
/// use kedaform::iam::policy::{self, KEDA_STATEMENT_SID, KedaTrust};
/// use serde_json::json;
///
/// // scale-eks-with-keda's consumer role: the whole account may assume it.
/// let current = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
///     "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "sts:AssumeRole"}]});
/// let trust = KedaTrust {
///     keda_role_arn: "arn:aws:iam::111122223333:role/keda-operator".into(),
///     external_id: None,
///     exclusive: true,
///     keda_account_id: None,
/// };
/// let plan = policy::apply(&current, &trust).unwrap();
/// assert!(plan.changed);
/// assert_eq!(plan.removed, ["arn:aws:iam::111122223333:root"]);
/// assert_eq!(plan.document["Statement"][0]["Sid"], KEDA_STATEMENT_SID);
/// // Applying the plan to its own output changes nothing.
/// assert!(!policy::apply(&plan.document, &trust).unwrap().changed);
/// ```
pub fn apply(current: &Value, trust: &KedaTrust) -> Result<Plan, MalformedPolicy> {
    let mut kept = Vec::new();
    let mut removed = Vec::new();
    for statement in statements(current)? {
        if owned_by_kedaform(&statement) {
            continue;
        }
        if trust.exclusive && is_allow(&statement) && grants_assume_role(&statement) {
            if let Some(statement) = without_aws_principals(statement, &mut removed) {
                kept.push(statement);
            }
        } else {
            kept.push(statement);
        }
    }
    kept.push(keda_statement(trust));
    Ok(plan(current, kept, removed))
}

/// The document without kedaform's statement; everything else stays as it is.
pub fn remove(current: &Value) -> Result<Plan, MalformedPolicy> {
    let all = statements(current)?;
    if !all.iter().any(|s| sid(s) == Some(KEDA_STATEMENT_SID)) {
        return Ok(Plan {
            document: current.clone(),
            removed: Vec::new(),
            changed: false,
        });
    }
    let mut kept: Vec<Value> = all.into_iter().filter(|s| sid(s) != Some(KEDA_STATEMENT_SID)).collect();
    if kept.is_empty() {
        kept.push(json!({
            "Sid": NO_TRUST_SID,
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": "sts:AssumeRole",
        }));
    }
    Ok(plan(current, kept, Vec::new()))
}

/// How a trust policy treats one role: whether it lets that role assume it, and which other
/// AWS principals it also lets in (those the trust fix would remove).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// An `Allow` of `sts:AssumeRole` names the role.
    pub admitted: bool,
    /// Every other AWS principal granted `sts:AssumeRole` (an account, `*`, another role).
    pub others: Vec<String>,
}

/// How `document` treats `role_arn`, read with the same rules as the trust fix ([`apply`]):
/// service and federated principals (EKS Pod Identity, an OIDC provider) are not counted.
pub fn admission(document: &Value, role_arn: &str) -> Result<Admission, MalformedPolicy> {
    let mut admitted = false;
    let mut others = Vec::new();
    for statement in statements(document)? {
        if !is_allow(&statement) || !grants_assume_role(&statement) {
            continue;
        }
        let mut principals = Vec::new();
        without_aws_principals(statement, &mut principals);
        for principal in principals {
            if principal == role_arn {
                admitted = true;
            } else if !others.contains(&principal) {
                others.push(principal);
            }
        }
    }
    Ok(Admission { admitted, others })
}

fn plan(current: &Value, statements: Vec<Value>, removed: Vec<String>) -> Plan {
    let mut document = current.as_object().cloned().unwrap_or_default();
    document
        .entry("Version")
        .or_insert_with(|| Value::String("2012-10-17".into()));
    document.insert("Statement".into(), Value::Array(statements));
    let document = Value::Object(document);
    Plan {
        changed: &document != current,
        document,
        removed,
    }
}

fn statements(document: &Value) -> Result<Vec<Value>, MalformedPolicy> {
    let object = document
        .as_object()
        .ok_or_else(|| MalformedPolicy("the document is not a JSON object".into()))?;
    let list = match object.get("Statement") {
        Some(Value::Array(list)) => list.clone(),
        Some(single @ Value::Object(_)) => vec![single.clone()],
        Some(_) => return Err(MalformedPolicy("Statement is neither an object nor an array".into())),
        None => Vec::new(),
    };
    if let Some(bad) = list.iter().find(|s| !s.is_object()) {
        return Err(MalformedPolicy(format!("a statement is not an object: {bad}")));
    }
    Ok(list)
}

fn sid(statement: &Value) -> Option<&str> {
    statement.get("Sid").and_then(Value::as_str)
}

fn owned_by_kedaform(statement: &Value) -> bool {
    matches!(sid(statement), Some(KEDA_STATEMENT_SID | NO_TRUST_SID))
}

fn is_allow(statement: &Value) -> bool {
    statement.get("Effect").and_then(Value::as_str) == Some("Allow")
}

/// True when the statement's Action (or the complement of its NotAction) includes
/// `sts:AssumeRole`, wildcards and IAM's case-insensitive matching included.
fn grants_assume_role(statement: &Value) -> bool {
    if let Some(actions) = statement.get("Action") {
        strings(actions)
            .iter()
            .any(|pattern| wildcard_match(pattern, ASSUME_ROLE))
    } else if let Some(excluded) = statement.get("NotAction") {
        !strings(excluded)
            .iter()
            .any(|pattern| wildcard_match(pattern, ASSUME_ROLE))
    } else {
        false
    }
}

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

/// IAM action matching: `*` any run, `?` any one character, case-insensitive.
fn wildcard_match(pattern: &str, action: &str) -> bool {
    let pattern: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let action: Vec<char> = action.chars().collect();
    let (mut p, mut a) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while a < action.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == action[a]) {
            p += 1;
            a += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            backtrack = Some((p, a));
            p += 1;
        } else if let Some((star, matched)) = backtrack {
            p = star + 1;
            a = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

/// The statement with its AWS principals taken out (recorded in `removed`), or None when
/// nothing else is left in it. `Principal: "*"` and `NotPrincipal` grant every AWS principal,
/// so such statements go whole.
fn without_aws_principals(mut statement: Value, removed: &mut Vec<String>) -> Option<Value> {
    let object = statement.as_object_mut()?;
    if let Some(not_principal) = object.get("NotPrincipal") {
        removed.push(format!("NotPrincipal {not_principal}"));
        return None;
    }
    match object.get_mut("Principal") {
        Some(Value::String(everyone)) => {
            removed.push(everyone.clone());
            None
        }
        Some(Value::Object(principals)) => {
            if let Some(aws) = principals.remove("AWS") {
                removed.extend(strings(&aws));
            }
            if principals.is_empty() { None } else { Some(statement) }
        }
        _ => Some(statement),
    }
}

fn keda_statement(trust: &KedaTrust) -> Value {
    let mut statement = Map::new();
    statement.insert("Sid".into(), KEDA_STATEMENT_SID.into());
    statement.insert("Effect".into(), "Allow".into());
    statement.insert("Principal".into(), json!({"AWS": trust.keda_role_arn}));
    statement.insert("Action".into(), "sts:AssumeRole".into());
    if let Some(external_id) = &trust.external_id {
        statement.insert(
            "Condition".into(),
            json!({"StringEquals": {"sts:ExternalId": external_id}}),
        );
    }
    Value::Object(statement)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEDA: &str = "arn:aws:iam::111122223333:role/keda-operator";
    const OIDC: &str = "arn:aws:iam::111122223333:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC";

    fn trust(exclusive: bool) -> KedaTrust {
        KedaTrust {
            keda_role_arn: KEDA.into(),
            external_id: None,
            exclusive,
            keda_account_id: None,
        }
    }

    fn web_identity() -> Value {
        json!({
            "Effect": "Allow",
            "Principal": {"Federated": OIDC},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                "oidc.eks.us-east-1.amazonaws.com/id/ABC:sub": "system:serviceaccount:sales:consumer",
                "oidc.eks.us-east-1.amazonaws.com/id/ABC:aud": "sts.amazonaws.com"
            }}
        })
    }

    /// scale-eks-with-keda's consumer role: the whole account plus the consumer's service account.
    fn original_policy() -> Value {
        json!({
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "sts:AssumeRole"},
                web_identity()
            ]
        })
    }

    #[test]
    fn account_wide_trust_becomes_keda_plus_web_identity() {
        let plan = apply(&original_policy(), &trust(true)).unwrap();
        assert!(plan.changed);
        assert_eq!(plan.removed, vec!["arn:aws:iam::111122223333:root"]);
        assert_eq!(
            plan.document,
            json!({"Version": "2012-10-17", "Statement": [
                web_identity(),
                {"Sid": KEDA_STATEMENT_SID, "Effect": "Allow", "Principal": {"AWS": KEDA}, "Action": "sts:AssumeRole"}
            ]})
        );
    }

    #[test]
    fn single_statement_object_and_url_encoding_are_read() {
        let encoded = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%22%2A%22%2C%22Action%22%3A%5B%22sts%3AAssumeRole%22%2C%22sts%3ATagSession%22%5D%7D%7D";
        let document = parse_document(encoded).unwrap();
        assert_eq!(document["Statement"]["Principal"], "*");
        let plan = apply(&document, &trust(true)).unwrap();
        assert_eq!(plan.removed, vec!["*"]);
        assert_eq!(plan.document["Statement"].as_array().unwrap().len(), 1);
        assert_eq!(parse_document(&plan.document.to_string()).unwrap(), plan.document);
    }

    #[test]
    fn malformed_documents_are_refused() {
        assert!(parse_document("%7Bnot json").is_err());
        assert!(parse_document("[]").is_err());
        assert!(parse_document(r#"{"Statement": "x"}"#).is_err());
        assert!(parse_document(r#"{"Statement": [1]}"#).is_err());
    }

    #[test]
    fn services_stay_and_mixed_statements_keep_their_other_principals() {
        let current = json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": ["arn:aws:iam::111122223333:role/other", "AROAEXAMPLEUNIQUEID12"], "Service": "ec2.amazonaws.com"},
            "Action": ["sts:AssumeRole", "sts:TagSession"]
        }]});
        let plan = apply(&current, &trust(true)).unwrap();
        assert_eq!(
            plan.removed,
            vec!["arn:aws:iam::111122223333:role/other", "AROAEXAMPLEUNIQUEID12"]
        );
        assert_eq!(
            plan.document["Statement"][0]["Principal"],
            json!({"Service": "ec2.amazonaws.com"})
        );
        assert_eq!(
            plan.document["Statement"][0]["Action"],
            json!(["sts:AssumeRole", "sts:TagSession"])
        );
    }

    #[test]
    fn wildcard_actions_notaction_and_notprincipal_count_as_assume_role_grants() {
        let current = json!({"Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::1:root"}, "Action": "sts:*"},
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::2:root"}, "Action": "STS:Assume?ole"},
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::3:root"}, "NotAction": "s3:*"},
            {"Effect": "Allow", "NotPrincipal": {"AWS": "arn:aws:iam::4:root"}, "Action": "*"},
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::5:root"}, "NotAction": "sts:AssumeRole"},
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::6:root"}, "Action": "sts:TagSession"},
            {"Effect": "Deny", "Principal": {"AWS": "arn:aws:iam::7:root"}, "Action": "sts:AssumeRole"}
        ]});
        let plan = apply(&current, &trust(true)).unwrap();
        assert_eq!(
            plan.removed,
            vec![
                "arn:aws:iam::1:root",
                "arn:aws:iam::2:root",
                "arn:aws:iam::3:root",
                r#"NotPrincipal {"AWS":"arn:aws:iam::4:root"}"#
            ]
        );
        let left: Vec<&Value> = plan.document["Statement"].as_array().unwrap().iter().collect();
        assert_eq!(left.len(), 4, "{left:?}");
        assert_eq!(left[0]["Principal"]["AWS"], "arn:aws:iam::5:root");
        assert_eq!(left[1]["Principal"]["AWS"], "arn:aws:iam::6:root");
        assert_eq!(left[2]["Effect"], "Deny");
    }

    #[test]
    fn not_exclusive_keeps_other_grants() {
        let plan = apply(&original_policy(), &trust(false)).unwrap();
        assert!(plan.removed.is_empty());
        assert_eq!(plan.document["Statement"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn external_id_becomes_a_condition_and_a_new_keda_role_replaces_the_old() {
        let first = apply(&original_policy(), &trust(true)).unwrap().document;
        let other = KedaTrust {
            keda_role_arn: "arn:aws:iam::111122223333:role/keda-2".into(),
            external_id: Some("x-1".into()),
            exclusive: true,
            keda_account_id: None,
        };
        let second = apply(&first, &other).unwrap();
        assert!(second.changed);
        let statements = second.document["Statement"].as_array().unwrap();
        let ours: Vec<&Value> = statements.iter().filter(|s| s["Sid"] == KEDA_STATEMENT_SID).collect();
        assert_eq!(ours.len(), 1);
        assert_eq!(ours[0]["Principal"]["AWS"], "arn:aws:iam::111122223333:role/keda-2");
        assert_eq!(ours[0]["Condition"], json!({"StringEquals": {"sts:ExternalId": "x-1"}}));
        assert!(!second.document.to_string().contains("keda-operator"));
    }

    #[test]
    fn remove_takes_out_only_our_statement_and_never_reopens_the_role() {
        let applied = apply(&original_policy(), &trust(true)).unwrap().document;
        let removed = remove(&applied).unwrap();
        assert!(removed.changed);
        assert_eq!(removed.document["Statement"], json!([web_identity()]));
        assert!(!remove(&removed.document).unwrap().changed);

        let only_ours = apply(&json!({"Statement": []}), &trust(true)).unwrap().document;
        let emptied = remove(&only_ours).unwrap().document;
        assert_eq!(emptied["Statement"][0]["Effect"], "Deny");
        assert_eq!(emptied["Statement"][0]["Sid"], NO_TRUST_SID);
        let again = apply(&emptied, &trust(true)).unwrap().document;
        assert_eq!(again["Statement"].as_array().unwrap().len(), 1);
        assert_eq!(again["Statement"][0]["Sid"], KEDA_STATEMENT_SID);
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*", ASSUME_ROLE));
        assert!(wildcard_match("sts:Assume*", ASSUME_ROLE));
        assert!(wildcard_match("*Role", ASSUME_ROLE));
        assert!(wildcard_match("s*s:a*r*e", ASSUME_ROLE));
        assert!(!wildcard_match("sts:AssumeRoleWith*", ASSUME_ROLE));
        assert!(!wildcard_match("sts:AssumeRole?", ASSUME_ROLE));
        assert!(!wildcard_match("iam:*", ASSUME_ROLE));
    }

    fn principal() -> impl Strategy<Value = Value> {
        let arn = prop_oneof![
            Just(json!("arn:aws:iam::111122223333:root")),
            Just(json!("arn:aws:iam::444455556666:role/other")),
            Just(json!("AROAEXAMPLEUNIQUEID12")),
            Just(json!(KEDA)),
        ];
        prop_oneof![
            Just(json!("*")),
            arn.clone().prop_map(|a| json!({"AWS": a})),
            proptest::collection::vec(arn, 1..3).prop_map(|a| json!({"AWS": a})),
            Just(json!({"Service": "ec2.amazonaws.com"})),
            Just(json!({"Federated": OIDC})),
            Just(json!({"Service": ["lambda.amazonaws.com"], "AWS": "arn:aws:iam::111122223333:root"})),
        ]
    }

    fn statement() -> impl Strategy<Value = Value> {
        let action = prop_oneof![
            Just(json!("sts:AssumeRole")),
            Just(json!(["sts:AssumeRole", "sts:TagSession"])),
            Just(json!("sts:AssumeRoleWithWebIdentity")),
            Just(json!("sts:*")),
            Just(json!("*")),
        ];
        let condition = prop_oneof![
            Just(None),
            Just(Some(json!({"StringEquals": {"aws:PrincipalTag/team": "sales"}}))),
        ];
        (
            prop_oneof![Just("Allow"), Just("Deny")],
            principal(),
            action,
            condition,
            any::<bool>(),
        )
            .prop_map(|(effect, principal, action, condition, ours)| {
                let mut s = json!({"Effect": effect, "Principal": principal, "Action": action});
                if let Some(c) = condition {
                    s["Condition"] = c;
                }
                if ours {
                    s["Sid"] = json!(KEDA_STATEMENT_SID);
                }
                s
            })
    }

    fn document() -> impl Strategy<Value = Value> {
        prop_oneof![
            statement().prop_map(|s| json!({"Version": "2012-10-17", "Statement": s})),
            proptest::collection::vec(statement(), 0..6).prop_map(|s| json!({"Version": "2012-10-17", "Statement": s})),
        ]
    }

    fn grants_to_aws(statement: &Value) -> bool {
        is_allow(statement)
            && grants_assume_role(statement)
            && (statement["Principal"] == "*" || statement["Principal"].get("AWS").is_some())
    }

    proptest! {
        #[test]
        fn applying_twice_changes_nothing(current in document(), exclusive in any::<bool>(), external in proptest::option::of("[a-z0-9]{1,8}")) {
            let trust = KedaTrust { keda_role_arn: KEDA.into(), external_id: external, exclusive, keda_account_id: None };
            let once = apply(&current, &trust).unwrap();
            let twice = apply(&once.document, &trust).unwrap();
            prop_assert!(!twice.changed);
            prop_assert_eq!(&twice.document, &once.document);
            prop_assert!(twice.removed.is_empty());
            prop_assert_eq!(once.document.to_string(), twice.document.to_string());
        }

        #[test]
        fn exclusive_leaves_only_keda_and_keeps_everything_else(current in document()) {
            let plan = apply(&current, &trust(true)).unwrap();
            let after = plan.document["Statement"].as_array().unwrap();
            let granting: Vec<&Value> = after.iter().filter(|s| grants_to_aws(s)).collect();
            prop_assert_eq!(granting.len(), 1);
            prop_assert_eq!(&granting[0]["Principal"]["AWS"], &json!(KEDA));
            for before in statements(&current).unwrap() {
                let federated = &before["Principal"]["Federated"];
                if sid(&before) != Some(KEDA_STATEMENT_SID) && !federated.is_null() {
                    prop_assert!(after.iter().any(|s| &s["Principal"]["Federated"] == federated && s["Condition"] == before["Condition"]));
                }
                if !is_allow(&before) && sid(&before) != Some(KEDA_STATEMENT_SID) {
                    prop_assert!(after.contains(&before));
                }
            }
        }

        #[test]
        fn remove_after_apply_leaves_no_keda_statement(current in document(), exclusive in any::<bool>()) {
            let applied = apply(&current, &KedaTrust { keda_role_arn: KEDA.into(), external_id: None, exclusive, keda_account_id: None }).unwrap();
            let removed = remove(&applied.document).unwrap();
            prop_assert!(removed.document["Statement"].as_array().unwrap().iter().all(|s| sid(s) != Some(KEDA_STATEMENT_SID)));
            prop_assert!(!remove(&removed.document).unwrap().changed);
        }
    }

    #[test]
    fn admission_names_the_role_and_every_other_aws_principal() {
        let account = "arn:aws:iam::111122223333:root";
        let open =
            json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": account}, "Action": "sts:AssumeRole"}]});
        assert_eq!(
            admission(&open, KEDA).unwrap(),
            Admission {
                admitted: false,
                others: vec![account.into()]
            }
        );
        let fixed = apply(&open, &trust(true)).unwrap().document;
        assert_eq!(
            admission(&fixed, KEDA).unwrap(),
            Admission {
                admitted: true,
                others: vec![]
            }
        );
        let both = apply(&open, &trust(false)).unwrap().document;
        assert_eq!(
            admission(&both, KEDA).unwrap(),
            Admission {
                admitted: true,
                others: vec![account.into()]
            }
        );
        // A Deny, another action, a service principal: not counted.
        let other = json!({"Statement": [
            {"Effect": "Deny", "Principal": {"AWS": KEDA}, "Action": "sts:AssumeRole"},
            {"Effect": "Allow", "Principal": {"AWS": KEDA}, "Action": "sts:TagSession"},
            {"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": ["sts:AssumeRole", "sts:TagSession"]}]});
        assert_eq!(
            admission(&other, KEDA).unwrap(),
            Admission {
                admitted: false,
                others: vec![]
            }
        );
        assert!(admission(&json!("x"), KEDA).is_err());
    }
}
