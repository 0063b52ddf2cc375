"""What a rehearsal leaves behind, listed through the services' own APIs (moto's, the local
API server's), never assumed: the verdict compares it with what was there before."""


def aws(world):
    """Every resource of the kinds the templates create, as "Type name" strings."""
    found = set()
    iam = world.client("iam")
    for role in iam.list_roles()["Roles"]:
        found.add(f"AWS::IAM::Role {role['RoleName']}")
        for policy in iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"]:
            found.add(f"AWS::IAM::Policy {role['RoleName']}/{policy}")
    for provider in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]:
        found.add(f"AWS::IAM::OIDCProvider {provider['Arn']}")
    for url in world.client("sqs").list_queues().get("QueueUrls", []):
        found.add(f"AWS::SQS::Queue {url.rsplit('/', 1)[-1]}")
    for bucket in world.client("s3").list_buckets()["Buckets"]:
        found.add(f"AWS::S3::Bucket {bucket['Name']}")
    for function in world.lambdas.names():
        found.add(f"AWS::Lambda::Function {function}")
    for group in world.client("logs").describe_log_groups()["logGroups"]:
        found.add(f"AWS::Logs::LogGroup {group['logGroupName']}")
    for kind, physical in world.stand_ins:
        found.add(f"{kind} {physical} (stand-in)")
    return found
