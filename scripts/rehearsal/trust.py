"""Trust policies read as IAM reads them, where moto's reading differs or is missing: which
statements cover an action, and whether a service, a web identity or an AWS caller may assume
the role."""

import fnmatch


def statements_for(document, action):
    """The statements of a policy whose Action covers `action`."""
    statements = document.get("Statement", [])
    for statement in [statements] if isinstance(statements, dict) else statements:
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if any(fnmatch.fnmatchcase(action, pattern) for pattern in actions):
            yield statement


def web_identity_allowed(document, provider_arn, context):
    """Whether a trust policy lets `provider_arn`'s tokens assume the role, with `context`'s
    condition keys. An explicit Deny or a condition operator not modelled here refuses."""
    allowed = False
    for statement in statements_for(document, "sts:AssumeRoleWithWebIdentity"):
        federated = (statement.get("Principal") or {}).get("Federated", [])
        if provider_arn not in ([federated] if isinstance(federated, str) else federated):
            continue
        holds = True
        for operator, pairs in (statement.get("Condition") or {}).items():
            for key, expected in pairs.items():
                expected = [expected] if isinstance(expected, str) else expected
                actual = context.get(key)
                if operator == "StringEquals":
                    holds &= actual in expected
                elif operator == "StringLike":
                    holds &= actual is not None and any(fnmatch.fnmatchcase(actual, pattern) for pattern in expected)
                else:
                    holds = False
        if holds and statement.get("Effect") == "Deny":
            return False
        allowed |= holds and statement.get("Effect") == "Allow"
    return allowed


def caller_allowed(document, caller, account):
    """Whether a trust policy lets `caller` (an IAM user's ARN or an assumed-role session's)
    call sts:AssumeRole: a role's ARN covers its sessions, the account's root or id covers all
    of the account. Conditions are not modelled: a statement with one refuses."""
    principals = {caller, f"arn:aws:iam::{account}:root", account, "*"}
    if ":assumed-role/" in caller:
        name = caller.split(":assumed-role/", 1)[1].split("/", 1)[0]
        principals.add(f"arn:aws:iam::{account}:role/{name}")
    allowed = False
    for statement in statements_for(document, "sts:AssumeRole"):
        principal = statement.get("Principal")
        aws = principal if principal == "*" else (principal or {}).get("AWS", []) if isinstance(principal, dict) else []
        aws = [aws] if isinstance(aws, str) else aws
        if not principals & set(aws):
            continue
        if statement.get("Effect") == "Deny":
            return False
        allowed |= statement.get("Effect") == "Allow" and not statement.get("Condition")
    return allowed


def service_allowed(document, service):
    """Whether `service` (lambda.amazonaws.com) may assume the role: an Allow naming it."""
    for statement in statements_for(document, "sts:AssumeRole"):
        principal = statement.get("Principal", {})
        services = principal.get("Service", []) if isinstance(principal, dict) else []
        services = [services] if isinstance(services, str) else services
        if statement.get("Effect") == "Allow" and service in services:
            return True
    return False
