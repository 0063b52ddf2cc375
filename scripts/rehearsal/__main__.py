"""`make rehearse`: `sam deploy` of infra/template.yaml rehearsed on one machine
(docs/src/testing/rehearsal.md). Packages what `sam build` left into the rehearsal's moto as
`sam package` does, then runs the stack's life cycle, prints CloudFormation's event stream and
ends with a verdict whose every line was checked by listing moto and the cluster.

Scenarios: full (Create, Update in place, an Update that fails and rolls back, Delete; the
private API endpoint variant's Create and Delete; each CDK app's Create and Delete; a Create
that fails and rolls back; a Create refused by IAM);
short (the last two, for `make test`).
"""

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import time

from . import inventory
from .authenticator import Authenticator
from .cdk import CdkAccount
from .errors import TemplateError
from .kubernetes import Cluster
from .public import PublicEndpoints
from .resources import STAND_IN_PREFIXES
from .stack import Stack, StackFailed
from .template import parse, translate
from .world import ACCOUNT, World

IMAGES = {
    "ProducerImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/kedaform-producer:0.1.0",
    "ConsumerImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/kedaform-consumer:0.1.0",
}
# The Update: scaling parameters (the ScaledObject) and a manifest (the producer's replicas).
UPDATE = {"QueueLength": "10", "MaxReplicas": "7", "PollingInterval": "3", "ProducerReplicas": "2"}
# A parameter that makes a custom resource fail mid-stack: KEDA's manifest does not have this digest.
FAILING = {"KedaManifestSha256": "0" * 64}
# What has no local implementation: recorded as created and deleted, listed in the output.
STAND_IN_TYPES = set(STAND_IN_PREFIXES) | {"AWS::EKS::Cluster", "AWS::EKS::AccessEntry"}
# The CDK apps as `make rehearse` synthesizes them (scripts/rehearse.sh), by their cdk.out
# argument: (title, stack, the existing cluster it names or None when it makes its own, the
# namespace of its consumer).
CDK_APPS = {
    "typescript": ("CDK example app (TypeScript)", "KedaformExample", "kedaform-cdk", "sales"),
    "python": ("scale-eks-with-keda's CDK-Python app", "ScaleEksWithKeda", None, "consumer"),
}
# The private API endpoint variant: the kube Lambda in the isolated subnets, KEDA's manifest
# from S3 (the file of the KEDA mirror, uploaded first).
PRIVATE = {"EndpointAccess": "private", "KedaManifestBucket": "kedaform-keda-manifests",
           "KedaManifestKey": "keda/keda-2.20.2.yaml"}
# The permission the IAM check takes away: the trust-policy Lambda's right to rewrite the trust policy.
REMOVED = ("TrustPolicyRole", "iam:UpdateAssumeRolePolicy")


def package(world, workdir, sam, sam_build, bucket):
    """`sam package`, the first half of `sam deploy`: code and nested templates to S3."""
    world.client("s3").create_bucket(Bucket=bucket)
    output = os.path.join(workdir, f"{bucket}.yaml")
    credentials = world.admin_credentials
    environment = dict(os.environ, AWS_ENDPOINT_URL=world.moto_url, AWS_ACCESS_KEY_ID=credentials["aws_access_key_id"],
                       AWS_SECRET_ACCESS_KEY=credentials["aws_secret_access_key"], AWS_REGION=world.region,
                       AWS_DEFAULT_REGION=world.region, SAM_CLI_TELEMETRY="0")
    environment.pop("AWS_SESSION_TOKEN", None)
    log = os.path.join(workdir, f"{bucket}.log")
    with open(log, "wb") as out:
        done = subprocess.run([sam, "package", "--template-file", os.path.join(sam_build, "template.yaml"),
                               "--s3-bucket", bucket, "--output-template-file", output], env=environment, stdout=out, stderr=out)
    if done.returncode != 0:
        sys.exit(f"sam package failed; see {log}")
    return open(output).read()


def without_permission(sam_build, workdir, role, action):
    """A copy of the build whose nested deployer template lacks `action` in `role`'s policies."""
    copy = os.path.join(workdir, "sam-build-without-permission")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(sam_build, copy, symlinks=True)
    path = os.path.join(copy, "Deployer", "template.yaml")
    template = parse(open(path).read(), path)
    removed = 0
    for policy in template["Resources"][role]["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            actions = statement.get("Action") if isinstance(statement, dict) else None
            if isinstance(actions, list) and action in actions:
                actions.remove(action)
                removed += 1
    if not removed:
        sys.exit(f"{role} in {path} has no {action} to remove")
    # The copy sits elsewhere: the Serverless Application Repository files it names relatively
    # are named from the original's place.
    application = template.get("Metadata", {}).get("AWS::ServerlessRepo::Application", {})
    for key in ("LicenseUrl", "ReadmeUrl"):
        value = application.get(key)
        if isinstance(value, str) and "://" not in value and not os.path.isabs(value):
            application[key] = os.path.normpath(os.path.join(sam_build, "Deployer", value))
    with open(path, "w") as out:
        json.dump(template, out, indent=1)
    return copy


class Rehearsal:
    def __init__(self, world, cluster, public, text):
        self.world, self.cluster, self.public, self.text = world, cluster, public, text
        self.verdict = []

    def load(self, values, text=None):
        template = parse(text or self.text, "packaged template")
        return translate(template, self.world.sam_parameters(values), "packaged template")

    def check(self, title, ok, measure="", detail=""):
        self.verdict.append((title, bool(ok), measure, detail))
        return ok

    def step(self, title, operation, fails_at=None, because=None):
        """Runs one stack operation. `fails_at` names the resource that must fail it, `because`
        a text its reason must hold."""
        self.world.events.note(f"\n== {title}")
        started = time.monotonic()
        try:
            operation()
            failed = None
        except StackFailed as error:
            failed = str(error)
        measure = f"{time.monotonic() - started:.1f} s"
        if fails_at:
            ok = failed is not None and failed.startswith(f"{fails_at}: ") and (because is None or because in failed)
            detail = f"failed as intended: {failed}" if ok else f"expected {fails_at} to fail it ({because}): {failed or 'it succeeded'}"
        else:
            ok, detail = failed is None, failed or ""
        return self.check(title, ok, measure, detail)

    def scaled_object(self, stack):
        namespace = stack.parameters["ConsumerNamespace"]
        return self.cluster.get(f"/apis/keda.sh/v1alpha1/namespaces/{namespace}/scaledobjects/consumer")

    def producer(self, stack):
        namespace = stack.parameters["ProducerNamespace"]
        return self.cluster.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/producer")

    def scales_on_queue_depth(self, queue, namespace, messages=100, seconds=180):
        """Sends `messages` events to `queue` as the producer would and waits for KEDA and the
        HPA controller to give the consumer Deployment in `namespace` more replicas; returns the
        most replicas seen. KEDA reads the queue with the consumer role, assumed from its own
        IRSA role (the trust the trust-policy Lambda patched), every call checked by moto's IAM."""
        sqs = self.world.client("sqs")
        for start in range(0, messages, 10):
            sqs.send_message_batch(QueueUrl=queue, Entries=[
                {"Id": str(i), "MessageBody": json.dumps({"request_id": f"rehearsal-{start + i}", "event_type": "sale_event"})}
                for i in range(10)])
        most, deadline = 0, time.monotonic() + seconds
        while time.monotonic() < deadline and most < 2:
            deployment = self.cluster.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/consumer") or {}
            most = max(most, deployment.get("spec", {}).get("replicas", 0))
            time.sleep(2)
        sqs.purge_queue(QueueUrl=queue)
        return most

    def keda_ready(self):
        operator = self.cluster.get("/apis/apps/v1/namespaces/keda/deployments/keda-operator")
        return operator and operator.get("status", {}).get("readyReplicas", 0) >= 1

    def token(self, role_arn, cluster):
        """A `k8s-aws-v1.` token as `aws eks get-token` makes it, for a session of `role_arn`."""
        from botocore.auth import SigV4QueryAuth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        keys = self.world.service_credentials(role_arn, "access-entry-check")
        request = AWSRequest("GET", "https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15",
                             headers={"x-k8s-aws-id": cluster})
        credentials = Credentials(keys["AccessKeyId"], keys["SecretAccessKey"], keys["SessionToken"])
        SigV4QueryAuth(credentials, "sts", "us-east-1", expires=60).add_auth(request)
        return "k8s-aws-v1." + base64.urlsafe_b64encode(request.url.encode()).decode().rstrip("=")

    def access_entries(self, stack):
        """The access entry is the only way in: the kube Lambda's role gets an answer, the
        trust-policy Lambda's role (no entry) is refused."""
        deployer = next(child for child in self.world.stacks if child.id == stack.resources["Deployer"].physical)
        cluster = stack.resources["Cluster"].physical
        allowed = self.cluster.status_as("/api/v1/namespaces", self.token(deployer.resources["DeployerRole"].attributes["Arn"], cluster))
        refused = self.cluster.status_as("/api/v1/namespaces", self.token(deployer.resources["TrustPolicyRole"].attributes["Arn"], cluster))
        self.check("a role without an access entry is refused by the cluster, the kube Lambda's is let in",
                   allowed == 200 and refused == 401, "", f"DeployerRole: HTTP {allowed}; TrustPolicyRole: HTTP {refused}")

    def full(self, base):
        stack = Stack(self.world, "kedaform", self.load(base), base)
        self.world.stacks.append(stack)
        if self.step("Create", stack.create):
            created = self.scaled_object(stack)
            self.check("KEDA installed by the zipped kube Lambda, authenticated by aws-iam-authenticator",
                       self.keda_ready(), detail=f"{self.public.sts_calls} STS verifications")
            self.check("ScaledObject consumer created", created is not None)
            self.access_entries(stack)
            started = time.monotonic()
            replicas = self.scales_on_queue_depth(stack.resources["Queue"].physical, stack.parameters["ConsumerNamespace"])
            self.check("KEDA scales the consumer on queue depth (100 messages, queueLength 10)", replicas >= 2,
                       f"{time.monotonic() - started:.0f} s", f"consumer replicas 1 -> {replicas}; "
                       f"{self.public.web_identity_calls} AssumeRoleWithWebIdentity")
            updated_values = dict(base, **UPDATE)
            if self.step("Update in place: scaling parameters and the producer's manifest",
                         lambda: stack.update(self.load(updated_values), updated_values)):
                updated = self.scaled_object(stack)
                producer = self.producer(stack)
                spec = (updated or {}).get("spec", {})
                self.check("ScaledObject updated in place (same uid, new spec)",
                           updated and created and updated["metadata"]["uid"] == created["metadata"]["uid"]
                           and spec.get("maxReplicaCount") == 7 and spec.get("pollingInterval") == 3
                           and spec["triggers"][0]["metadata"].get("queueLength") == "10",
                           detail=json.dumps({key: spec.get(key) for key in ("maxReplicaCount", "pollingInterval")}))
                self.check("producer Deployment updated in place (2 replicas)", producer and producer["spec"]["replicas"] == 2)
                failing = dict(updated_values, **FAILING)
                self.step("Update that fails mid-stack, rolled back", lambda: stack.update(self.load(failing), failing),
                          fails_at="KedaInstall", because="SHA-256")
                back = self.scaled_object(stack)
                self.check("after the rollback the ScaledObject is the updated one",
                           back and back["metadata"]["uid"] == created["metadata"]["uid"] and back["spec"].get("maxReplicaCount") == 7)
        self.step("Delete", stack.delete)
        self.world.stacks.remove(stack)
        return [stack]

    def private_endpoint(self, base, keda_mirror):
        """The template with `EndpointAccess: private`: its rule and conditions, the Lambda's
        network (stand-ins: the emulator does not confine the Lambda's traffic), and KEDA's
        manifest read from S3 by the kube Lambda under its role's grant, checked by moto's IAM;
        then Delete. The manifest's bucket is the operator's and is removed afterwards."""
        bucket, key = PRIVATE["KedaManifestBucket"], PRIVATE["KedaManifestKey"]
        s3 = self.world.client("s3")
        s3.create_bucket(Bucket=bucket)
        s3.upload_file(os.path.join(keda_mirror, os.path.basename(key)), bucket, key)
        values = dict(base, **PRIVATE)
        stack = Stack(self.world, "kedaform-private", self.load(values), values)
        self.world.stacks.append(stack)
        try:
            if self.step("Private API endpoint: Create (KEDA's manifest from S3)", stack.create):
                deployer = next(child for child in self.world.stacks if child.id == stack.resources["Deployer"].physical)
                network = deployer.resources["DeployerFunction"].properties.get("VpcConfig", {})
                isolated = {stack.resources[name].physical for name in ("IsolatedSubnetA", "IsolatedSubnetB")}
                install = stack.resources["KedaInstall"].properties
                self.check("private endpoint: the kube Lambda in the isolated subnets installed KEDA from s3://",
                           self.keda_ready() and set(network.get("SubnetIds", [])) == isolated
                           and install.get("ManifestUrl") == f"s3://{bucket}/{key}",
                           detail=f"SubnetIds {sorted(network.get('SubnetIds', []))}; ManifestUrl {install.get('ManifestUrl')}")
            self.step("Private API endpoint: Delete", stack.delete)
        finally:
            self.world.stacks.remove(stack)
            s3.delete_object(Bucket=bucket, Key=key)
            s3.delete_bucket(Bucket=bucket)
        return [stack]

    def cdk_app(self, app, cdk_out):
        """A CDK app (`app`: one of CDK_APPS), synthesized for this cluster, deployed as `cdk
        deploy` does on a bootstrapped account: its assets published, then Create and Delete;
        KEDA scales its consumer in between. The TypeScript example's cluster exists before its
        stack; the Python app makes its own."""
        title, stack_name, existing_cluster, namespace = app
        account = CdkAccount(self.world, cluster_provider=existing_cluster is not None)
        stack = None
        try:
            if existing_cluster:
                self.world.cluster.register(existing_cluster)
            stack = Stack(self.world, stack_name, account.publish(cdk_out, stack_name), {})
            self.world.stacks.append(stack)
            if self.step(f"{title}: Create", stack.create):
                self.check(f"{title}: KEDA installed and the consumer's ScaledObject created", self.keda_ready() and self.cluster.get(
                    f"/apis/keda.sh/v1alpha1/namespaces/{namespace}/scaledobjects/consumer") is not None)
                queue = next(resource.physical for logical, resource in stack.resources.items()
                             if resource.type == "AWS::SQS::Queue" and logical.startswith("Queue"))
                started = time.monotonic()
                replicas = self.scales_on_queue_depth(queue, namespace)
                self.check(f"{title}: KEDA scales the consumer on queue depth", replicas >= 2,
                           f"{time.monotonic() - started:.0f} s", f"consumer replicas 1 -> {replicas}")
            self.step(f"{title}: Delete", stack.delete)
        finally:
            if stack is not None:
                self.world.stacks.remove(stack)
            if existing_cluster:
                self.world.cluster.unregister(existing_cluster)
            account.remove()
        return [stack]

    def failed_create(self, base):
        values = dict(base, **FAILING)
        stack = Stack(self.world, "kedaform-rollback", self.load(values), values)
        self.world.stacks.append(stack)
        self.step("Create that fails mid-stack, rolled back", stack.create, fails_at="KedaInstall", because="SHA-256")
        self.check("ConsumerTrust created meanwhile by the trust-policy Lambda, under its role's policies",
                   any(event[:2] == (stack.name, "ConsumerTrust") and event[3] == "CREATE_COMPLETE" for event in self.world.events.all))
        self.world.stacks.remove(stack)
        return [stack]

    def iam_refused(self, base, text):
        stack = Stack(self.world, "kedaform-iam", self.load(base, text), base)
        self.world.stacks.append(stack)
        role, action = REMOVED
        # The Lambda names the action and the role; the same stack with the permission passed
        # this step in the failed-Create rehearsal.
        self.step(f"Create with {action} taken from {role}: IAM refuses it", stack.create,
                  fails_at="ConsumerTrust", because=f"{action.split(':')[1]} on role {stack.name}-ConsumerRole-")
        self.world.stacks.remove(stack)
        return [stack]


def main():
    parser = argparse.ArgumentParser(prog="rehearse")
    parser.add_argument("--sam-build", required=True)
    parser.add_argument("--sam", required=True)
    parser.add_argument("--emulator", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--cluster-dir", required=True, help="the local cluster's run directory (scripts/cluster.sh)")
    parser.add_argument("--authenticator", required=True, help="the aws-iam-authenticator binary")
    parser.add_argument("--authenticator-state", required=True, help="where its init left the certificate and webhook kubeconfig")
    parser.add_argument("--keda-mirror", required=True, help="a directory holding KEDA's release manifest")
    parser.add_argument("--public-address", required=True, help="the address STS and GitHub resolve to in the cluster's namespace")
    parser.add_argument("--ca-dir", required=True, help="the rehearsal's CA and server certificate (public.make_ca)")
    parser.add_argument("--issuer", required=True, help="the service-account issuer of the cluster, an EKS-style OIDC URL")
    parser.add_argument("--moto-port", type=int, required=True, help="where moto listens (the pods' AWS_ENDPOINT_URL)")
    parser.add_argument("--scenario", choices=["full", "short"], default="full")
    parser.add_argument("--cdk-out", action="append", default=[], metavar="APP=DIR",
                        help=f"a CDK app's cdk.out, synthesized for the rehearsal (full scenario); APP: {', '.join(CDK_APPS)}")
    parser.add_argument("--report", help="write the measurements as JSON here (make bench)")
    parser.add_argument("--parameter", action="append", default=[], help="Name=Value, over the rehearsal's parameters")
    arguments = parser.parse_args()
    os.makedirs(arguments.workdir, exist_ok=True)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    started = time.monotonic()

    ca_file, certificate, key = (os.path.join(arguments.ca_dir, name) for name in ("ca.pem", "server.pem", "server.key"))
    mapping = Authenticator(arguments.authenticator, arguments.authenticator_state, arguments.cluster_dir, ca_file, ACCOUNT)
    world = World(arguments.workdir, arguments.emulator, arguments.moto_port, arguments.issuer,
                  cluster_endpoint="https://127.0.0.1:6443", mapping=mapping,
                  ca_pem=open(os.path.join(arguments.cluster_dir, "pki", "ca.crt"), "rb").read(),
                  # The functions trust the rehearsal's CA for the public endpoints, as they trust
                  # the public CAs of Lambda's image.
                  function_environment={"SSL_CERT_FILE": ca_file})
    public = PublicEndpoints(arguments.public_address, 443, certificate, key, ACCOUNT, "us-east-1", arguments.keda_mirror,
                             world.moto_url, os.path.join(arguments.cluster_dir, "pki", "sa.pub"))
    cluster = Cluster(arguments.cluster_dir)
    base = dict(IMAGES)
    for item in arguments.parameter:
        name, _, value = item.partition("=")
        base[name] = value
    try:
        aws_before, cluster_before = inventory.aws(world), cluster.inventory()
        text = package(world, arguments.workdir, arguments.sam, arguments.sam_build, "kedaform-sam-artifacts")
        denied = without_permission(arguments.sam_build, arguments.workdir, *REMOVED)
        denied_text = package(world, arguments.workdir, arguments.sam, denied, "kedaform-sam-artifacts-iam")
        artifacts = inventory.aws(world) - aws_before
        rehearsal = Rehearsal(world, cluster, public, text)
        stacks = []
        try:
            if arguments.scenario == "full":
                stacks += rehearsal.full(base)
                stacks += rehearsal.private_endpoint(base, arguments.keda_mirror)
                for item in arguments.cdk_out:
                    app, _, directory = item.partition("=")
                    stacks += rehearsal.cdk_app(CDK_APPS[app], directory)
            stacks += rehearsal.failed_create(base)
            stacks += rehearsal.iam_refused(base, denied_text)
        except TemplateError as error:
            sys.exit(f"the rehearsal cannot run this template: {error}")
        retained = {f"{kind} {physical}" for stack in stacks for _, kind, physical in stack.retained}
        left = inventory.aws(world) - aws_before - artifacts - retained
        rehearsal.check("nothing of the stacks left in moto (DeletionPolicy Retain aside)", not left,
                        f"{len(retained)} retained", "; ".join(sorted(left)))
        difference = cluster.settled(cluster_before)
        rehearsal.check("nothing of the stacks left on the cluster", not difference, "", "; ".join(sorted(difference)))
        rehearsal.check("the rehearsal's own endpoints answered every request", not public.errors, "",
                        "; ".join(public.errors[:3]))
        stand_ins = sorted({event[2] for event in world.events.all if event[2] in STAND_IN_TYPES})
    finally:
        world.close()
        public.close()
        mapping.stop()

    print("\n== Verdict")
    for title, ok, measure, detail in rehearsal.verdict:
        print(f"{'PASS' if ok else 'FAIL'}  {title:<84} {measure:>12}  {detail}")
    print(f"\nstand-ins (no local implementation; recorded, listed above as created and deleted): {', '.join(stand_ins)}")
    print("custom-resource requests:", json.dumps(world.custom.requests, sort_keys=True))
    held = "held by a memory cgroup each" if world.lambdas.memory_cgroup else "NOT held: no writable memory cgroup"
    print(f"MemorySize: {held}")
    report = world.lambdas.report()
    for name, (peak, memory, killed) in sorted(report.items()):
        flag = "" if peak <= memory and not killed else f"  OVER MemorySize: {killed} process(es) killed at the limit"
        print(f"peak RSS {name}: {peak:.1f} MiB of MemorySize {memory} MiB{flag}")
    seconds = time.monotonic() - started
    print(f"rehearsal: {seconds:.0f} s")
    if arguments.report:
        with open(arguments.report, "w") as out:
            json.dump({"scenario": arguments.scenario, "seconds": round(seconds, 1), "requests": world.custom.requests,
                       "functions": {logical: {"peak_rss_mib": round(peak, 1), "memory_size_mib": memory}
                                     for logical, (peak, memory, _) in report.items()}}, out)
    over = [name for name, (peak, memory, killed) in report.items() if peak > memory or killed]
    if over or not all(ok for _, ok, _, _ in rehearsal.verdict):
        sys.exit(1)


if __name__ == "__main__":
    main()
