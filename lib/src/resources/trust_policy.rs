//! `Custom::KedaTrustPolicy`: lets exactly the KEDA operator role (and the consumer's own
//! service account, which the template grants) assume the consumer role.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cfn::{CustomResource, Invocation, Outcome};
use crate::iam::policy::{KEDA_STATEMENT_SID, KedaTrust};
use crate::iam::{RoleArn, TrustPolicies, role_name};
use crate::{Error, Input};

/// What this resource calls the inputs the IAM layer judges.
const NAMES: [(Input, &str); 3] = [
    (Input::Role, "RoleName"),
    (Input::OperatorRole, "KedaRoleArn"),
    (Input::OperatorAccount, "KedaAccountId"),
];

fn named(error: Error) -> Error {
    error.named(&NAMES)
}

/// Properties of `Custom::KedaTrustPolicy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TrustPolicyProperties {
    /// The consumer role: name or ARN.
    pub role_name: String,
    /// The KEDA operator's role, the one principal allowed to assume the consumer role.
    pub keda_role_arn: String,
    /// An `sts:ExternalId` condition on the KEDA statement; empty means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// The account of `KedaRoleArn` when KEDA runs in another account than the consumer role:
    /// the explicit consent such a role needs (refused when it names the role's own account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keda_account_id: Option<String>,
    /// Whether grants of `sts:AssumeRole` to other AWS principals are removed (default true).
    #[serde(default = "exclusive_by_default")]
    pub exclusive: bool,
    /// Not read: any change to it makes CloudFormation send an Update, which re-applies the
    /// statement after a stack update rewrote the role's own trust policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggers: Option<Value>,
}

fn exclusive_by_default() -> bool {
    true
}

impl TrustPolicyProperties {
    /// The checks that need no call; errors name the property.
    pub fn validate(&self) -> Result<(), Error> {
        role_name(&self.role_name).map_err(named)?;
        RoleArn::parse(Input::OperatorRole, &self.keda_role_arn)
            .map(|_| ())
            .map_err(named)
    }
}

/// Physical id: one per consumer role, so that a new `RoleName` is a replacement.
pub fn physical_id(role_name: &str) -> String {
    format!("{role_name}/{KEDA_STATEMENT_SID}")
}

/// The `Custom::KedaTrustPolicy` handler.
#[derive(Debug, Clone)]
pub struct TrustPolicy {
    policies: TrustPolicies,
}

impl TrustPolicy {
    /// Through `iam`.
    pub fn new(iam: aws_sdk_iam::Client) -> Self {
        Self {
            policies: TrustPolicies::new(iam),
        }
    }

    async fn apply(&self, invocation: &Invocation, properties: TrustPolicyProperties) -> Result<Outcome, Error> {
        properties.validate()?;
        let role_name = role_name(&properties.role_name)?;
        let trust = KedaTrust {
            keda_role_arn: properties.keda_role_arn,
            external_id: properties.external_id.filter(|id| !id.is_empty()),
            exclusive: properties.exclusive,
            keda_account_id: properties.keda_account_id,
        };
        invocation.step(format!("reading the trust policy of role {role_name}"));
        let (role, plan) = self.policies.plan_apply(&properties.role_name, &trust).await?;
        if plan.changed {
            invocation.step(format!(
                "writing the trust policy of role {role_name} (IAM may not know {} yet)",
                trust.keda_role_arn
            ));
            if !self
                .policies
                .write(&role_name, &plan.document, invocation.deadline())
                .await?
            {
                return Err(Error::input(
                    Input::Role,
                    format!("role {role_name} was deleted while its trust policy was being written"),
                ));
            }
        }
        Ok(Outcome::new(physical_id(&role_name))
            .with("RoleName", &role_name)
            .with("RoleArn", role.arn)
            .with("StatementSid", KEDA_STATEMENT_SID)
            .with("RemovedPrincipals", plan.removed.join(",")))
    }

    async fn remove(&self, invocation: &Invocation, properties: TrustPolicyProperties) -> Result<(), Error> {
        let role_name = role_name(&properties.role_name)?;
        invocation.step(format!("reading the trust policy of role {role_name}"));
        let Some((_, plan)) = self.policies.plan_remove(&properties.role_name).await? else {
            tracing::info!(%role_name, "role already gone");
            return Ok(());
        };
        if plan.changed {
            invocation.step(format!("removing statement {KEDA_STATEMENT_SID} from role {role_name}"));
            self.policies
                .write(&role_name, &plan.document, invocation.deadline())
                .await?;
        }
        Ok(())
    }
}

impl CustomResource for TrustPolicy {
    type Properties = TrustPolicyProperties;

    async fn create(&self, invocation: &Invocation, properties: TrustPolicyProperties) -> Result<Outcome, Error> {
        self.apply(invocation, properties).await.map_err(named)
    }

    async fn update(
        &self,
        invocation: &Invocation,
        _physical_id: &str,
        properties: TrustPolicyProperties,
        _old_properties: TrustPolicyProperties,
    ) -> Result<Outcome, Error> {
        // A new RoleName yields a new physical id: CloudFormation then deletes the statement
        // from the old role through a Delete with the old properties.
        self.apply(invocation, properties).await.map_err(named)
    }

    async fn delete(
        &self,
        invocation: &Invocation,
        _physical_id: &str,
        properties: TrustPolicyProperties,
    ) -> Result<(), Error> {
        self.remove(invocation, properties).await.map_err(named)
    }
}
