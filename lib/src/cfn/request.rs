//! CloudFormation's requests, built the way CloudFormation sends them, for everything that
//! drives a handler without CloudFormation: `kedaform` subcommands, the demo, the tests.

use serde::Serialize;
use serde_json::{Value, json};

use crate::Error;

/// One request: `Create`, `Update` or `Delete` of one logical resource.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestBuilder {
    request: Value,
}

impl RequestBuilder {
    /// A `Create` of `logical_id` (of type `resource_type`) with `properties` (a typed
    /// properties struct or JSON); `ServiceToken` is added as CloudFormation adds it.
    pub fn create(resource_type: &str, logical_id: &str, properties: &impl Serialize) -> Result<Self, Error> {
        let mut properties =
            serde_json::to_value(properties).map_err(|e| Error::invalid("ResourceProperties", e.to_string()))?;
        if properties.is_null() {
            properties = json!({});
        }
        if let Some(map) = properties.as_object_mut() {
            map.entry("ServiceToken")
                .or_insert_with(|| json!("arn:aws:lambda:us-east-1:123456789012:function:kedaform"));
        }
        Ok(Self {
            request: json!({
                "RequestType": "Create",
                "ResponseURL": "http://127.0.0.1:9/unanswered",
                "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/kedaform/00000000-0000-0000-0000-000000000000",
                "RequestId": format!("kedaform-{}", std::process::id()),
                "ResourceType": resource_type,
                "LogicalResourceId": logical_id,
                "ResourceProperties": properties,
            }),
        })
    }

    /// The same resource, as an `Update` from `old` properties to these.
    pub fn update(mut self, physical_id: &str, old: &impl Serialize) -> Result<Self, Error> {
        let mut old = serde_json::to_value(old).map_err(|e| Error::invalid("OldResourceProperties", e.to_string()))?;
        if let Some(map) = old.as_object_mut() {
            map.insert(
                "ServiceToken".into(),
                self.request["ResourceProperties"]["ServiceToken"].clone(),
            );
        }
        self.request["RequestType"] = json!("Update");
        self.request["PhysicalResourceId"] = json!(physical_id);
        self.request["OldResourceProperties"] = old;
        Ok(self)
    }

    /// The same resource, as a `Delete` of `physical_id`.
    #[must_use]
    pub fn delete(mut self, physical_id: &str) -> Self {
        self.request["RequestType"] = json!("Delete");
        self.request["PhysicalResourceId"] = json!(physical_id);
        self
    }

    /// `RequestType` by name (`Create`, `Update` or `Delete`); an Update keeps its properties
    /// as the old ones.
    pub fn kind(self, kind: &str, physical_id: &str) -> Result<Self, Error> {
        match kind {
            "Create" => Ok(self),
            "Update" => {
                let old = self.request["ResourceProperties"].clone();
                self.update(physical_id, &old)
            }
            "Delete" => Ok(self.delete(physical_id)),
            other => Err(Error::invalid(
                "RequestType",
                format!("{other} is not Create, Update or Delete"),
            )),
        }
    }

    #[must_use]
    /// The stack's ARN (the owner label of Kubernetes objects derives from it).
    pub fn stack_id(mut self, stack_id: &str) -> Self {
        self.request["StackId"] = json!(stack_id);
        self
    }

    #[must_use]
    /// CloudFormation's id for the request.
    pub fn request_id(mut self, request_id: &str) -> Self {
        self.request["RequestId"] = json!(request_id);
        self
    }

    #[must_use]
    /// Where the response goes (a pre-signed S3 URL in CloudFormation).
    pub fn response_url(mut self, url: &str) -> Self {
        self.request["ResponseURL"] = json!(url);
        self
    }

    /// The request as CloudFormation's JSON.
    pub fn build(self) -> Value {
        self.request
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_what_cloudformation_sends() {
        let create = RequestBuilder::create("Custom::KedaInstall", "Keda", &json!({"ClusterName": "sales"}))
            .unwrap()
            .build();
        assert_eq!(create["RequestType"], "Create");
        assert_eq!(create["ResourceProperties"]["ClusterName"], "sales");
        assert!(create["ResourceProperties"]["ServiceToken"].is_string());
        assert!(create.get("PhysicalResourceId").is_none());

        let update = RequestBuilder::create("Custom::KedaInstall", "Keda", &json!({"ClusterName": "new"}))
            .unwrap()
            .update("sales/keda", &json!({"ClusterName": "old"}))
            .unwrap()
            .stack_id("stack")
            .build();
        assert_eq!(update["RequestType"], "Update");
        assert_eq!(update["PhysicalResourceId"], "sales/keda");
        assert_eq!(update["OldResourceProperties"]["ClusterName"], "old");
        assert_eq!(
            update["OldResourceProperties"]["ServiceToken"],
            update["ResourceProperties"]["ServiceToken"]
        );
        assert_eq!(update["StackId"], "stack");

        let delete = RequestBuilder::create("Custom::KedaInstall", "Keda", &json!({}))
            .unwrap()
            .kind("Delete", "sales/keda")
            .unwrap()
            .build();
        assert_eq!(delete["RequestType"], "Delete");
        assert!(
            RequestBuilder::create("Custom::KedaInstall", "Keda", &json!({}))
                .unwrap()
                .kind("Replace", "x")
                .is_err()
        );
    }
}
