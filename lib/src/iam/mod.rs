//! Trust policies: the pure planning ([`policy`]) and reading and writing a role's policy
//! through IAM. `Custom::KedaTrustPolicy` (in `resources`) and `kedaform trust` use both.

pub mod policy;

use std::time::Duration;

use aws_sdk_iam::Client;
use aws_sdk_iam::operation::get_role::GetRoleError;
use aws_sdk_iam::operation::update_assume_role_policy::UpdateAssumeRolePolicyError;
use serde_json::Value;
use tokio::time::Instant;

use crate::retry::Backoff;

use crate::{Error, Input};
use policy::{KedaTrust, Plan};

/// An IAM role ARN, `arn:<partition>:iam::<account>:role/<path/><name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleArn {
    /// `aws`, `aws-cn`, `aws-us-gov`, ….
    pub partition: String,
    /// The 12-digit account.
    pub account: String,
    /// The role's name, without its path.
    pub name: String,
}

const PARTITIONS: [&str; 8] = [
    "aws",
    "aws-cn",
    "aws-us-gov",
    "aws-iso",
    "aws-iso-b",
    "aws-iso-e",
    "aws-iso-f",
    "aws-eusc",
];

impl RoleArn {
    /// Parses `text`, the role `input` names, so that an error says which.
    pub fn parse(input: Input, text: &str) -> Result<Self, Error> {
        let bad = |why: &str| {
            Error::input(
                input,
                format!(
                    "{text:?} is not an IAM role ARN ({why}); expected arn:aws:iam::<12-digit account>:role/<name>"
                ),
            )
        };
        let parts: Vec<&str> = text.splitn(6, ':').collect();
        let [arn, partition, service, region, account, resource] = parts[..] else {
            return Err(bad("it has fewer than six ':'-separated parts"));
        };
        if arn != "arn" || service != "iam" || !region.is_empty() {
            return Err(bad("it does not start with arn:<partition>:iam::"));
        }
        if !PARTITIONS.contains(&partition) {
            return Err(bad(&format!("unknown partition {partition:?}")));
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("the account is not 12 digits"));
        }
        let Some(path_and_name) = resource.strip_prefix("role/") else {
            return Err(bad("the resource is not role/..."));
        };
        let name = path_and_name.rsplit('/').next().unwrap_or_default();
        if validate_role_name(input, name).is_err() {
            return Err(bad("the role name is empty or has characters IAM does not allow"));
        }
        Ok(Self {
            partition: partition.to_owned(),
            account: account.to_owned(),
            name: name.to_owned(),
        })
    }
}

fn validate_role_name(input: Input, name: &str) -> Result<(), Error> {
    let valid = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(Error::input(
            input,
            format!("{name:?} is not a valid IAM role name (1-64 of A-Z a-z 0-9 + = , . @ _ -)"),
        ))
    }
}

/// The name of the consumer role given as a name or an ARN.
pub fn role_name(input: &str) -> Result<String, Error> {
    if input.starts_with("arn:") {
        Ok(RoleArn::parse(Input::Role, input)?.name)
    } else {
        validate_role_name(Input::Role, input)?;
        Ok(input.to_owned())
    }
}

/// A role as read from IAM.
#[derive(Debug, Clone, PartialEq)]
pub struct Role {
    /// The role's ARN.
    pub arn: String,
    /// Its trust policy, decoded.
    pub trust_policy: Value,
}

/// Trust-policy operations on one account's roles; used by the Lambda and the CLI.
#[derive(Debug, Clone)]
pub struct TrustPolicies {
    iam: Client,
}

impl TrustPolicies {
    /// Through `iam`.
    pub fn new(iam: Client) -> Self {
        Self { iam }
    }

    /// The role and its trust policy, or None when the role does not exist.
    pub async fn read(&self, role_name: &str) -> Result<Option<Role>, Error> {
        let output = match self.iam.get_role().role_name(role_name).send().await {
            Ok(output) => output,
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(GetRoleError::is_no_such_entity_exception) =>
            {
                return Ok(None);
            }
            Err(error) => return Err(iam_error("GetRole", role_name, error)),
        };
        let role = output.role.ok_or_else(|| Error::MalformedPolicy {
            role: role_name.to_owned(),
            message: "GetRole returned no role".into(),
        })?;
        let text = role.assume_role_policy_document.unwrap_or_default();
        let trust_policy = policy::parse_document(&text).map_err(malformed(role_name))?;
        Ok(Some(Role {
            arn: role.arn,
            trust_policy,
        }))
    }

    /// Writes `document` as the role's trust policy. IAM rejects a principal it has not yet
    /// seen (a role created seconds ago) as invalid for a while, so that error is retried with
    /// backoff until `deadline`. Returns false when the role no longer exists.
    pub async fn write(&self, role_name: &str, document: &Value, deadline: Instant) -> Result<bool, Error> {
        let text = document.to_string();
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(8), deadline);
        let started = Instant::now();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let sent = self
                .iam
                .update_assume_role_policy()
                .role_name(role_name)
                .policy_document(&text)
                .send()
                .await;
            let Err(error) = sent else {
                return Ok(true);
            };
            let service = error.as_service_error();
            if service.is_some_and(UpdateAssumeRolePolicyError::is_no_such_entity_exception) {
                return Ok(false);
            }
            let invalid_principal = service.is_some_and(|e| {
                e.is_malformed_policy_document_exception()
                    && e.meta().message().is_some_and(|m| m.contains("Invalid principal"))
            });
            if !invalid_principal {
                return Err(iam_error("UpdateAssumeRolePolicy", role_name, error));
            }
            if !backoff.has_time() {
                return Err(Error::input(
                    Input::OperatorRole,
                    format!(
                        "IAM still rejects the principal as invalid after {attempts} attempts over {:.0?} ({}); \
                         check that the KEDA role exists",
                        started.elapsed(),
                        service.and_then(|e| e.meta().message()).unwrap_or_default()
                    ),
                ));
            }
            tracing::info!(attempts, backoff = ?backoff.next(), "IAM does not know the principal yet; retrying");
            backoff.wait().await;
        }
    }

    /// Reads the role `role` (a name, or an ARN that must be this account's) and plans the
    /// policy that grants `trust`.
    pub async fn plan_apply(&self, role: &str, trust: &KedaTrust) -> Result<(Role, Plan), Error> {
        let keda = RoleArn::parse(Input::OperatorRole, &trust.keda_role_arn)?;
        let role_name = &role_name(role)?;
        let given = role;
        let role = self.read(role_name).await?.ok_or_else(|| {
            Error::input(
                Input::Role,
                format!("role {role_name} does not exist in this account; create it first or correct the role's name"),
            )
        })?;
        same_role(given, &role)?;
        let consumer = RoleArn::parse(Input::Role, &role.arn)?;
        if consumer.partition != keda.partition {
            return Err(Error::input(
                Input::OperatorRole,
                format!(
                    "{} is in partition {} but role {role_name} is in partition {}; a role can only trust roles of its own partition",
                    trust.keda_role_arn, keda.partition, consumer.partition
                ),
            ));
        }
        cross_account(&consumer, &keda, trust.keda_account_id.as_deref())?;
        let plan = policy::apply(&role.trust_policy, trust).map_err(malformed(role_name))?;
        Ok((role, plan))
    }

    /// Reads the role `role` (a name or an ARN) and plans the policy without kedaform's
    /// statement; None when the role does not exist here (gone, or of another account).
    pub async fn plan_remove(&self, role: &str) -> Result<Option<(Role, Plan)>, Error> {
        let role_name = &role_name(role)?;
        let given = role;
        let Some(role) = self.read(role_name).await? else {
            return Ok(None);
        };
        if let Err(error) = same_role(given, &role) {
            tracing::warn!(error = %error, "not this account's role: nothing to remove");
            return Ok(None);
        }
        let plan = policy::remove(&role.trust_policy).map_err(malformed(role_name))?;
        Ok(Some((role, plan)))
    }
}

/// A KEDA role of another account than the consumer role's is trusted only when
/// `keda_account_id` names that account: never guessed from the ARN alone, so a mistyped
/// account in `KedaRoleArn` fails instead of opening the role to a stranger.
pub fn cross_account(consumer: &RoleArn, keda: &RoleArn, keda_account_id: Option<&str>) -> Result<(), Error> {
    match keda_account_id {
        None if keda.account == consumer.account => Ok(()),
        None => Err(Error::input(
            Input::OperatorRole,
            "names a role of another account than the consumer role's; if KEDA runs in that account, \
             allow it by naming that account (KedaAccountId, or --keda-account-id)",
        )),
        Some(given) if given.len() != 12 || !given.bytes().all(|b| b.is_ascii_digit()) => {
            Err(Error::input(Input::OperatorAccount, "is not a 12-digit AWS account id"))
        }
        Some(given) if given == consumer.account => Err(Error::input(
            Input::OperatorAccount,
            "is the consumer role's own account; it is only for a KEDA role of another account, so leave it out",
        )),
        Some(given) if given != keda.account => Err(Error::input(
            Input::OperatorAccount,
            "is not the account of the KEDA role; the two must name the same account",
        )),
        Some(_) => Ok(()),
    }
}

/// A `RoleName` given as an ARN must be the role IAM found by its name: same partition, same
/// account (the credentials'), same path. Otherwise the same-named role of this account would
/// be changed in its place.
fn same_role(given: &str, found: &Role) -> Result<(), Error> {
    if !given.starts_with("arn:") || given == found.arn {
        return Ok(());
    }
    let wanted = RoleArn::parse(Input::Role, given)?;
    let here = RoleArn::parse(Input::Role, &found.arn)?;
    let why = if wanted.partition != here.partition {
        format!(
            "it is in partition {}, but these credentials are in partition {}",
            wanted.partition, here.partition
        )
    } else if wanted.account != here.account {
        format!(
            "it is in account {}, but these credentials are in account {}; deploy kedaform in that account",
            wanted.account, here.account
        )
    } else {
        format!("this account's role of that name is {}", found.arn)
    };
    Err(Error::input(
        Input::Role,
        format!("{given} is not a role kedaform can change here: {why}"),
    ))
}

fn malformed(role_name: &str) -> impl FnOnce(policy::MalformedPolicy) -> Error + '_ {
    move |e| Error::MalformedPolicy {
        role: role_name.to_owned(),
        message: e.0,
    }
}

fn iam_error<E, R>(action: &'static str, role: &str, error: aws_sdk_iam::error::SdkError<E, R>) -> Error
where
    aws_sdk_iam::Error: From<aws_sdk_iam::error::SdkError<E, R>>,
{
    Error::Iam {
        action,
        role: role.to_owned(),
        source: Box::new(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keda_role_of_another_account_needs_that_account_named() {
        let role = |text: &str| RoleArn::parse(Input::Role, text).unwrap();
        let consumer = role("arn:aws:iam::111122223333:role/consumer");
        let here = role("arn:aws:iam::111122223333:role/keda");
        let there = role("arn:aws:iam::444455556666:role/keda");
        assert!(cross_account(&consumer, &here, None).is_ok());
        assert!(cross_account(&consumer, &there, Some("444455556666")).is_ok());
        let refused = |keda: &RoleArn, allowed: Option<&str>| {
            let error = cross_account(&consumer, keda, allowed).unwrap_err();
            assert!(!error.to_string().contains("444455556666"), "{error}");
            match error {
                Error::Invalid { input, .. } => input,
                other => panic!("{other}"),
            }
        };
        assert_eq!(refused(&there, None), Input::OperatorRole);
        assert_eq!(refused(&there, Some("444455556667")), Input::OperatorAccount);
        assert_eq!(refused(&here, Some("111122223333")), Input::OperatorAccount);
        assert_eq!(refused(&there, Some("44445555666")), Input::OperatorAccount);
        assert_eq!(refused(&there, Some("４４４455556666")), Input::OperatorAccount);
    }

    #[test]
    fn role_arns_parse_with_paths_and_partitions() {
        let arn = RoleArn::parse(
            Input::OperatorRole,
            "arn:aws-cn:iam::123456789012:role/service/keda-operator",
        )
        .unwrap();
        assert_eq!(
            (arn.partition.as_str(), arn.account.as_str(), arn.name.as_str()),
            ("aws-cn", "123456789012", "keda-operator")
        );
    }

    #[test]
    fn malformed_arns_name_the_input_and_quote_the_arn() {
        for bad in [
            "keda-operator",
            "arn:aws:iam::12345:role/keda",
            "arn:aws:s3:::bucket",
            "arn:aws:iam::123456789012:user/keda",
            "arn:aws:iam::123456789012:role/",
            "arn:aws-mars:iam::123456789012:role/keda",
            "arn:aws:iam:us-east-1:123456789012:role/keda",
        ] {
            let error = RoleArn::parse(Input::OperatorRole, bad).unwrap_err();
            assert!(
                matches!(
                    error,
                    Error::Invalid {
                        input: Input::OperatorRole,
                        ..
                    }
                ),
                "{error}"
            );
            let message = error.to_string();
            assert!(message.contains(bad), "{message}");
        }
    }

    #[test]
    fn role_name_accepts_names_and_arns() {
        assert_eq!(role_name("consumer-role").unwrap(), "consumer-role");
        assert_eq!(
            role_name("arn:aws:iam::123456789012:role/x/consumer-role").unwrap(),
            "consumer-role"
        );
        let error = role_name("bad name!").unwrap_err();
        assert!(matches!(error, Error::Invalid { input: Input::Role, .. }), "{error}");
        assert!(role_name(&"x".repeat(65)).is_err());
    }
}
