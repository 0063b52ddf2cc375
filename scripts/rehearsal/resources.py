"""What each resource type does in the rehearsal: plain AWS resources are created in moto
through its APIs, Lambda functions are created in moto and run by the Lambda Runtime Interface
Emulator (lambdas.py), custom resources get CloudFormation's request (custom.py), nested stacks
run as stacks, and what moto cannot hold (the VPC's pieces, the node group, CDK's metadata) is recorded
as a stand-in and listed as such. A property a provider does not apply fails the resource, naming it:
nothing is skipped silently."""

import json
import secrets

from .errors import TemplateError
from .stack import Stack
from .template import parse, translate

STAND_IN_PREFIXES = {
    "AWS::EC2::VPC": "vpc", "AWS::EC2::InternetGateway": "igw", "AWS::EC2::VPCGatewayAttachment": "IGW",
    "AWS::EC2::Subnet": "subnet", "AWS::EC2::RouteTable": "rtb", "AWS::EC2::Route": "rtb-route",
    "AWS::EC2::SubnetRouteTableAssociation": "rtbassoc", "AWS::EC2::EIP": "eipalloc",
    "AWS::EC2::NatGateway": "nat", "AWS::EKS::Nodegroup": "nodegroup",
    # A private API endpoint's network (EndpointAccess private): recorded, the Lambda's traffic
    # is not confined to it here.
    "AWS::EC2::SecurityGroup": "sg", "AWS::EC2::SecurityGroupIngress": "sgr", "AWS::EC2::VPCEndpoint": "vpce",
    # CDK's version report to AWS (`cdk synth` adds it): nothing to create.
    "AWS::CDK::Metadata": "cdk-metadata",
    # A handle no one signals: templates use it to depend on resources that may not exist.
    "AWS::CloudFormation::WaitConditionHandle": "https://cloudformation-waitcondition.example/handle",
}


def _check(resource, properties, known):
    unknown = sorted(set(properties) - set(known))
    if unknown:
        raise TemplateError(resource.logical, unknown[0], f"is a {resource.type} property the rehearsal does not apply")


def _create_with(provider, stack, resource, properties):
    """`provider.create` for `properties` (a replacement, or an update that is a re-create),
    the resource's recorded properties left to the engine."""
    old = resource.properties
    resource.properties = properties
    try:
        return provider.create(stack, resource)
    finally:
        resource.properties = old


def _tags(properties):
    return {tag["Key"]: tag["Value"] for tag in properties.get("Tags", [])}


class StandIn:
    """A resource moto cannot hold: recorded with a made-up id of the right shape, listed in
    the verdict as a stand-in."""

    def create(self, stack, resource):
        prefix = STAND_IN_PREFIXES[resource.type]
        physical = f"{prefix}-{secrets.token_hex(8)}"
        attributes = {"AllocationId": physical, "PublicIp": "192.0.2.10", "SubnetId": physical,
                      "VpcId": physical, "GroupId": physical, "AvailabilityZone": resource.properties.get("AvailabilityZone", ""),
                      "CidrBlock": resource.properties.get("CidrBlock", ""), "DefaultSecurityGroup": f"sg-{secrets.token_hex(8)}",
                      "Arn": f"arn:aws:eks:{stack.world.region}:{stack.world.account}:nodegroup/{physical}",
                      "NodegroupName": physical}
        stack.world.stand_ins.add((resource.type, physical))
        return physical, attributes

    def update(self, stack, resource, properties):
        return resource.physical, resource.attributes

    def delete(self, stack, resource):
        stack.world.stand_ins.discard((resource.type, resource.physical))


class Cluster:
    """AWS::EKS::Cluster: the local control plane stands in for EKS (its DescribeCluster is
    eks.py's); the cluster is recorded under the name CloudFormation would give it."""

    def create(self, stack, resource):
        name = resource.properties.get("Name") or stack.physical_name(resource.logical, 100)
        stack.world.cluster.register(name)
        stack.world.stand_ins.add((resource.type, name))
        return name, stack.world.cluster.attributes_of(name)

    def update(self, stack, resource, properties):
        return resource.physical, resource.attributes

    def delete(self, stack, resource):
        stack.world.cluster.unregister(resource.physical)
        stack.world.stand_ins.discard((resource.type, resource.physical))


class AccessEntry:
    """AWS::EKS::AccessEntry: EKS maps the principal to a Kubernetes user and binds its access
    policies; the local cluster does the same with aws-iam-authenticator's role mapping and an
    RBAC binding (eks.py)."""

    def create(self, stack, resource):
        properties = resource.properties
        _check(resource, properties, {"ClusterName", "PrincipalArn", "Type", "AccessPolicies", "KubernetesGroups", "Username", "Tags"})
        stack.world.cluster.grant(properties["ClusterName"], properties["PrincipalArn"], properties.get("AccessPolicies", []))
        physical = f"{properties['ClusterName']}|{properties['PrincipalArn']}"
        return physical, {"AccessEntryArn": f"arn:aws:eks:{stack.world.region}:{stack.world.account}:access-entry/{physical}"}

    def update(self, stack, resource, properties):
        self.delete(stack, resource)
        return _create_with(self, stack, resource, properties)

    def delete(self, stack, resource):
        cluster, principal = resource.physical.split("|", 1)
        stack.world.cluster.revoke(cluster, principal)


class Queue:
    ATTRIBUTES = ["DelaySeconds", "MaximumMessageSize", "MessageRetentionPeriod", "ReceiveMessageWaitTimeSeconds",
                  "VisibilityTimeout", "RedrivePolicy", "RedriveAllowPolicy", "SqsManagedSseEnabled",
                  "KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds", "FifoQueue", "ContentBasedDeduplication"]

    def _attributes(self, properties):
        attributes = {}
        for name in self.ATTRIBUTES:
            if name in properties:
                value = properties[name]
                attributes[name] = json.dumps(value) if isinstance(value, dict) else (str(value).lower() if isinstance(value, bool) else str(value))
        return attributes

    def create(self, stack, resource):
        properties = resource.properties
        _check(resource, properties, self.ATTRIBUTES + ["QueueName", "Tags"])
        name = properties.get("QueueName") or stack.physical_name(resource.logical, 80)
        sqs = stack.world.client("sqs")
        sqs.create_queue(QueueName=name, Attributes=self._attributes(properties), tags=_tags(properties))
        # What CloudFormation returns (moto names its own endpoint); moto finds a queue by the
        # URL's last segment, so this URL works against it too.
        url = f"https://sqs.{stack.world.region}.amazonaws.com/{stack.world.account}/{name}"
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return url, {"Arn": arn, "QueueName": name, "QueueUrl": url}

    def update(self, stack, resource, properties):
        _check(resource, properties, self.ATTRIBUTES + ["QueueName", "Tags"])
        if properties.get("QueueName") != resource.properties.get("QueueName"):
            return _create_with(self, stack, resource, properties)
        stack.world.client("sqs").set_queue_attributes(QueueUrl=resource.physical, Attributes=self._attributes(properties))
        return resource.physical, resource.attributes

    def delete(self, stack, resource):
        stack.world.client("sqs").delete_queue(QueueUrl=resource.physical)


class Bucket:
    KNOWN = {"BucketName", "BucketEncryption", "PublicAccessBlockConfiguration", "OwnershipControls",
             "VersioningConfiguration", "LifecycleConfiguration", "Tags"}

    def create(self, stack, resource):
        properties = resource.properties
        _check(resource, properties, self.KNOWN)
        name = properties.get("BucketName") or stack.physical_name(resource.logical, 63, lower=True)
        s3 = stack.world.client("s3")
        s3.create_bucket(Bucket=name)
        self._configure(s3, name, properties)
        region = stack.world.region
        return name, {"Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com",
                      "RegionalDomainName": f"{name}.s3.{region}.amazonaws.com"}

    @staticmethod
    def _configure(s3, name, properties):
        if "BucketEncryption" in properties:
            rules = [{"ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]}
                     for rule in properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]]
            s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
        if "PublicAccessBlockConfiguration" in properties:
            s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=properties["PublicAccessBlockConfiguration"])
        if "OwnershipControls" in properties:
            s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=properties["OwnershipControls"])
        if "VersioningConfiguration" in properties:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration=properties["VersioningConfiguration"])
        if "LifecycleConfiguration" in properties:
            rules = []
            for rule in properties["LifecycleConfiguration"]["Rules"]:
                converted = {"ID": rule.get("Id", ""), "Status": rule["Status"], "Filter": {"Prefix": rule.get("Prefix", "")}}
                for key in ("NoncurrentVersionExpiration", "AbortIncompleteMultipartUpload"):
                    if key in rule:
                        converted[key] = rule[key]
                if "ExpirationInDays" in rule:
                    converted["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
                rules.append(converted)
            s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": rules})
        if "Tags" in properties:
            s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": properties["Tags"]})

    def update(self, stack, resource, properties):
        _check(resource, properties, self.KNOWN)
        self._configure(stack.world.client("s3"), resource.physical, properties)
        return resource.physical, resource.attributes

    def delete(self, stack, resource):
        stack.world.client("s3").delete_bucket(Bucket=resource.physical)


class BucketPolicy:
    def create(self, stack, resource):
        properties = resource.properties
        _check(resource, properties, {"Bucket", "PolicyDocument"})
        stack.world.client("s3").put_bucket_policy(Bucket=properties["Bucket"], Policy=json.dumps(properties["PolicyDocument"]))
        return properties["Bucket"], {}

    def update(self, stack, resource, properties):
        return _create_with(self, stack, resource, properties)

    def delete(self, stack, resource):
        stack.world.client("s3").delete_bucket_policy(Bucket=resource.physical)


def _document(value):
    return value if isinstance(value, str) else json.dumps(value)


class Role:
    KNOWN = {"RoleName", "Path", "AssumeRolePolicyDocument", "Policies", "ManagedPolicyArns", "Description",
             "MaxSessionDuration", "PermissionsBoundary", "Tags"}

    def create(self, stack, resource):
        properties = resource.properties
        _check(resource, properties, self.KNOWN)
        name = properties.get("RoleName") or stack.physical_name(resource.logical)
        iam = stack.world.client("iam")
        extra = {key: properties[key] for key in ("Path", "Description", "PermissionsBoundary") if key in properties}
        if "MaxSessionDuration" in properties:
            extra["MaxSessionDuration"] = int(properties["MaxSessionDuration"])
        if "Tags" in properties:
            extra["Tags"] = properties["Tags"]
        role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=_document(properties["AssumeRolePolicyDocument"]), **extra)["Role"]
        self._policies(iam, name, properties, {}, [])
        return name, {"Arn": role["Arn"], "RoleId": role["RoleId"]}

    @staticmethod
    def _policies(iam, name, properties, old_inline, old_managed):
        inline = {policy["PolicyName"]: policy["PolicyDocument"] for policy in properties.get("Policies", [])}
        for policy in set(old_inline) - set(inline):
            iam.delete_role_policy(RoleName=name, PolicyName=policy)
        for policy, document in inline.items():
            iam.put_role_policy(RoleName=name, PolicyName=policy, PolicyDocument=_document(document))
        managed = properties.get("ManagedPolicyArns", [])
        for arn in set(old_managed) - set(managed):
            iam.detach_role_policy(RoleName=name, PolicyArn=arn)
        for arn in set(managed) - set(old_managed):
            iam.attach_role_policy(RoleName=name, PolicyArn=arn)

    def update(self, stack, resource, properties):
        _check(resource, properties, self.KNOWN)
        if properties.get("RoleName") != resource.properties.get("RoleName") or properties.get("Path") != resource.properties.get("Path"):
            return _create_with(self, stack, resource, properties)
        iam = stack.world.client("iam")
        iam.update_assume_role_policy(RoleName=resource.physical, PolicyDocument=_document(properties["AssumeRolePolicyDocument"]))
        old_inline = {policy["PolicyName"]: None for policy in resource.properties.get("Policies", [])}
        self._policies(iam, resource.physical, properties, old_inline, resource.properties.get("ManagedPolicyArns", []))
        return resource.physical, resource.attributes

    def delete(self, stack, resource):
        iam = stack.world.client("iam")
        for policy in resource.properties.get("Policies", []):
            iam.delete_role_policy(RoleName=resource.physical, PolicyName=policy["PolicyName"])
        for arn in resource.properties.get("ManagedPolicyArns", []):
            iam.detach_role_policy(RoleName=resource.physical, PolicyArn=arn)
        iam.delete_role(RoleName=resource.physical)


class InlinePolicy:
    """AWS::IAM::Policy (`Roles`: CDK writes a role's grants this way) and AWS::IAM::RolePolicy
    (`RoleName`): an inline policy put on each of its roles. An update puts the new document and
    removes the old one from every role it no longer applies to; the physical id is a generated
    name, as CloudFormation's is."""

    def __init__(self, roles_property):
        self.roles_property = roles_property
        self.known = {"PolicyName", "PolicyDocument", roles_property}

    def _pairs(self, properties):
        roles = properties.get("Roles", []) if self.roles_property == "Roles" else [properties["RoleName"]]
        return {(role, properties["PolicyName"]) for role in roles}

    def _put(self, iam, properties):
        for role, name in self._pairs(properties):
            iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=_document(properties["PolicyDocument"]))

    @staticmethod
    def _remove(iam, pairs):
        for role, name in pairs:
            try:
                iam.delete_role_policy(RoleName=role, PolicyName=name)
            except iam.exceptions.NoSuchEntityException:
                pass  # the role went first: its inline policies went with it

    def create(self, stack, resource):
        _check(resource, resource.properties, self.known)
        self._put(stack.world.client("iam"), resource.properties)
        return stack.physical_name(resource.logical), {}

    def update(self, stack, resource, properties):
        _check(resource, properties, self.known)
        iam = stack.world.client("iam")
        self._put(iam, properties)
        self._remove(iam, self._pairs(resource.properties) - self._pairs(properties))
        return resource.physical, {}

    def delete(self, stack, resource):
        self._remove(stack.world.client("iam"), self._pairs(resource.properties))


class OidcProvider:
    def create(self, stack, resource):
        properties = resource.properties
        _check(resource, properties, {"Url", "ClientIdList", "ThumbprintList", "Tags"})
        arn = stack.world.client("iam").create_open_id_connect_provider(
            Url=properties["Url"], ClientIDList=properties.get("ClientIdList", []),
            ThumbprintList=properties.get("ThumbprintList", []), Tags=properties.get("Tags", []))["OpenIDConnectProviderArn"]
        return arn, {"Arn": arn}

    def update(self, stack, resource, properties):
        if properties["Url"] != resource.properties["Url"]:
            return _create_with(self, stack, resource, properties)
        return resource.physical, resource.attributes

    def delete(self, stack, resource):
        stack.world.client("iam").delete_open_id_connect_provider(OpenIDConnectProviderArn=resource.physical)


class LogGroup:
    def create(self, stack, resource):
        properties = resource.properties
        _check(resource, properties, {"LogGroupName", "RetentionInDays", "Tags"})
        name = properties.get("LogGroupName") or stack.physical_name(resource.logical, 512)
        logs = stack.world.client("logs")
        logs.create_log_group(logGroupName=name)
        self._retention(logs, name, properties)
        return name, {"Arn": f"arn:aws:logs:{stack.world.region}:{stack.world.account}:log-group:{name}:*"}

    @staticmethod
    def _retention(logs, name, properties):
        if "RetentionInDays" in properties:
            logs.put_retention_policy(logGroupName=name, retentionInDays=int(properties["RetentionInDays"]))

    def update(self, stack, resource, properties):
        self._retention(stack.world.client("logs"), resource.physical, properties)
        return resource.physical, resource.attributes

    def delete(self, stack, resource):
        stack.world.client("logs").delete_log_group(logGroupName=resource.physical)


class Function:
    """AWS::Lambda::Function: registered with the rehearsal's Lambda (lambdas.py), which runs
    its zip under the Runtime Interface Emulator. moto's Lambda is not used: it runs code only
    in Docker."""

    # VpcConfig is recorded: the emulator runs every function on the cluster's network.
    KNOWN = {"FunctionName", "Code", "Handler", "Runtime", "Role", "MemorySize", "Timeout", "Environment",
             "Architectures", "LoggingConfig", "Tags", "Description", "VpcConfig"}

    def create(self, stack, resource):
        properties = resource.properties
        _check(resource, properties, self.KNOWN)
        if properties.get("Runtime") != "provided.al2023" or properties.get("Handler") != "bootstrap":
            raise TemplateError(resource.logical, "Runtime", "is not provided.al2023 with Handler bootstrap, the only runtime rehearsed")
        name = properties.get("FunctionName") or stack.physical_name(resource.logical)
        arn = f"arn:aws:lambda:{stack.world.region}:{stack.world.account}:function:{name}"
        if stack.world.lambdas.find(arn):
            raise RuntimeError(f"Function already exist: {name}")
        stack.world.lambdas.register(arn, name, resource.logical, properties)
        return name, {"Arn": arn}

    def update(self, stack, resource, properties):
        _check(resource, properties, self.KNOWN)
        arn = resource.attributes["Arn"]
        stack.world.lambdas.unregister(arn)
        stack.world.lambdas.register(arn, resource.physical, resource.logical, properties)
        return resource.physical, resource.attributes

    def delete(self, stack, resource):
        stack.world.lambdas.unregister(resource.attributes["Arn"])


class NestedStack:
    """AWS::CloudFormation::Stack: the template at TemplateURL (in moto's S3, where sam package
    put it), translated and run as a stack of its own."""

    def _template(self, stack, resource, properties):
        _check(resource, properties, {"TemplateURL", "Parameters", "Tags", "TimeoutInMinutes"})
        text = stack.world.fetch_template(properties["TemplateURL"], resource.logical)
        values = {key: value if isinstance(value, str) else ",".join(value) if isinstance(value, list) else str(value)
                  for key, value in properties.get("Parameters", {}).items()}
        return translate(parse(text, resource.logical), stack.world.sam_parameters(values), resource.logical), values

    def create(self, stack, resource):
        template, values = self._template(stack, resource, resource.properties)
        child = Stack(stack.world, stack.physical_name(resource.logical, 128), template, values, parent=stack)
        stack.world.stacks.append(child)
        try:
            child.create()
        except Exception:
            stack.world.stacks.remove(child)
            raise
        return child.id, {f"Outputs.{name}": value for name, value in child.outputs.items()}

    def _child(self, stack, resource):
        return next(child for child in stack.world.stacks if child.id == resource.physical)

    def update(self, stack, resource, properties):
        template, values = self._template(stack, resource, properties)
        child = self._child(stack, resource)
        child.update(template, values)
        return child.id, {f"Outputs.{name}": value for name, value in child.outputs.items()}

    def delete(self, stack, resource):
        child = self._child(stack, resource)
        child.delete()
        stack.world.stacks.remove(child)
        stack.retained.extend(child.retained)


class CustomResource:
    """Custom::* and AWS::CloudFormation::CustomResource: CloudFormation's request to the
    function its ServiceToken names, the answer awaited on ResponseURL (custom.py)."""

    def create(self, stack, resource):
        return stack.world.custom.send(stack, resource, "Create", resource.properties)

    def update(self, stack, resource, properties):
        return stack.world.custom.send(stack, resource, "Update", properties, old=resource.properties)

    def delete(self, stack, resource):
        stack.world.custom.send(stack, resource, "Delete", resource.properties)


class Providers:
    def __init__(self):
        stand_in = StandIn()
        self.by_type = {kind: stand_in for kind in STAND_IN_PREFIXES}
        self.by_type.update({
            "AWS::EKS::Cluster": Cluster(), "AWS::EKS::AccessEntry": AccessEntry(), "AWS::SQS::Queue": Queue(),
            "AWS::S3::Bucket": Bucket(), "AWS::S3::BucketPolicy": BucketPolicy(), "AWS::IAM::Role": Role(),
            "AWS::IAM::Policy": InlinePolicy("Roles"), "AWS::IAM::RolePolicy": InlinePolicy("RoleName"), "AWS::IAM::OIDCProvider": OidcProvider(), "AWS::Logs::LogGroup": LogGroup(),
            "AWS::Lambda::Function": Function(), "AWS::CloudFormation::Stack": NestedStack(),
            "AWS::CloudFormation::CustomResource": CustomResource(),
        })
        self.custom = CustomResource()

    def find(self, kind, logical):
        if kind.startswith("Custom::"):
            return self.custom
        if kind not in self.by_type:
            raise TemplateError(logical, "Type", f"{kind} is not a resource type the rehearsal runs")
        return self.by_type[kind]
