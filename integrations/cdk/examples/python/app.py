#!/usr/bin/env python3
"""scale-eks-with-keda's system, ported to kedaform: the same pieces as the original CDK-Python
app (a VPC, an EKS cluster with a node group, the SQS queue and the S3 bucket, the producer and
the consumer, KEDA with IRSA), in one stack, with no helm call, no kubectl and no account-wide
trust. kedaform's constructs come from the `kedaform-cdk` wheel that jsii builds.

The cluster is made with CloudFormation's own EKS resources (no kubectl provider); KEDA, the
workloads and the ScaledObject are kedaform's custom resources, ordered as CloudFormation needs
them. Context (cdk.json or -c): producerImage, consumerImage. The Lambdas' code:
KEDAFORM_TRUST_POLICY_CODE and KEDAFORM_KUBERNETES_CODE, directories holding a `bootstrap`
(`sam build` writes them).
"""

import json
import os

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks as eks
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from kedaform_cdk import (
    KedaformProvider,
    KedaInstall,
    KedaScaledObject,
    KedaTrustPolicy,
    KubernetesManifest,
)

KUBERNETES_VERSION = "1.35"


def code(variable):
    directory = os.environ.get(variable)
    if not directory:
        raise SystemExit(f"{variable} is not set: point it at a directory with the Lambda's bootstrap (sam build writes one)")
    return directory


class ScaleEksWithKeda(cdk.Stack):
    """The original's seven stacks as one."""

    def __init__(self, scope: Construct, construct_id: str, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        producer_image = self.node.try_get_context("producerImage") or "111122223333.dkr.ecr.us-east-1.amazonaws.com/kedaform-producer:0.1.0"
        consumer_image = self.node.try_get_context("consumerImage") or "111122223333.dkr.ecr.us-east-1.amazonaws.com/kedaform-consumer:0.1.0"

        # The original's eks-cluster-vpc-stack. No custom resource for the default security group.
        vpc = ec2.Vpc(self, "Vpc", max_azs=2, nat_gateways=1, restrict_default_security_group=False)

        # The original's eks-cluster-stack, with CloudFormation's own EKS resources.
        cluster_role = iam.Role(self, "ClusterRole", assumed_by=iam.ServicePrincipal("eks.amazonaws.com"),
                                managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name("AmazonEKSClusterPolicy")])
        cluster = eks.CfnCluster(
            self, "Cluster", version=KUBERNETES_VERSION, role_arn=cluster_role.role_arn,
            access_config=eks.CfnCluster.AccessConfigProperty(authentication_mode="API"),
            resources_vpc_config=eks.CfnCluster.ResourcesVpcConfigProperty(
                subnet_ids=[subnet.subnet_id for subnet in vpc.private_subnets]))
        node_role = iam.Role(self, "NodeRole", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"), managed_policies=[
            iam.ManagedPolicy.from_aws_managed_policy_name(name) for name in (
                "AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly",
                "AmazonSSMManagedInstanceCore")])
        nodes = eks.CfnNodegroup(
            self, "NodeGroup", cluster_name=cluster.ref, node_role=node_role.role_arn,
            subnets=[subnet.subnet_id for subnet in vpc.private_subnets],
            scaling_config=eks.CfnNodegroup.ScalingConfigProperty(min_size=2, desired_size=2, max_size=2))
        oidc = iam.CfnOIDCProvider(self, "OidcProvider", url=cluster.attr_open_id_connect_issuer_url,
                                   client_id_list=["sts.amazonaws.com"])
        issuer = cdk.Fn.select(1, cdk.Fn.split("//", cluster.attr_open_id_connect_issuer_url))

        def service_account_role(name, namespace, account):
            """A role one service account assumes (IRSA). The issuer is known only at deploy
            time, so the trust policy is a Fn::Sub JSON string, as in infra/template.yaml."""
            trust = {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Federated": "${Provider}"},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringEquals": {"${Issuer}:aud": "sts.amazonaws.com",
                                               "${Issuer}:sub": f"system:serviceaccount:{namespace}:{account}"}}}]}
            role = iam.CfnRole(self, name, assume_role_policy_document=cdk.Fn.sub(
                json.dumps(trust), {"Provider": oidc.attr_arn, "Issuer": issuer}))
            return role, iam.Role.from_role_arn(self, f"{name}Ref", role.attr_arn, mutable=False)

        # The original's sales-events-bkt-stack and its queue.
        bucket = s3.Bucket(self, "EventsBucket", encryption=s3.BucketEncryption.S3_MANAGED,
                           block_public_access=s3.BlockPublicAccess.BLOCK_ALL, enforce_ssl=True,
                           removal_policy=cdk.RemovalPolicy.RETAIN)
        dead_letters = sqs.Queue(self, "DeadLetterQueue", retention_period=cdk.Duration.days(14))
        queue = sqs.Queue(self, "Queue", visibility_timeout=cdk.Duration.seconds(30),
                          delivery_delay=cdk.Duration.seconds(2),
                          dead_letter_queue=sqs.DeadLetterQueue(queue=dead_letters, max_receive_count=5))

        producer_cfn, producer_role = service_account_role("ProducerRole", "producer", "producer")
        consumer_cfn, consumer_role = service_account_role("ConsumerRole", "consumer", "consumer")
        keda_cfn, keda_role = service_account_role("KedaOperatorRole", "keda", "keda-operator")
        iam.CfnRolePolicy(self, "ProducerSends", role_name=producer_cfn.ref, policy_name="send", policy_document={
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": queue.queue_arn}]})
        iam.CfnRolePolicy(self, "ConsumerWorks", role_name=consumer_cfn.ref, policy_name="consume", policy_document={
            "Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Resource": queue.queue_arn, "Action": [
                    "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes",
                    "sqs:GetQueueUrl"]},
                {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": dead_letters.queue_arn},
                {"Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"], "Resource": [
                    bucket.arn_for_objects("sale_event/*"), bucket.arn_for_objects("inventory_event/*")]}]})
        # The original gave KEDA AmazonSQSFullAccess; here it may only assume the consumer role.
        iam.CfnRolePolicy(self, "KedaAssumesTheConsumerRole", role_name=keda_cfn.ref, policy_name="assume-consumer-role",
                          policy_document={"Version": "2012-10-17", "Statement": [
                              {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": consumer_cfn.attr_arn}]})

        # kedaform's two Lambdas, and their way into the cluster.
        provider = KedaformProvider(
            self, "Kedaform",
            code=KedaformProvider.code_from_directories(code("KEDAFORM_TRUST_POLICY_CODE"), code("KEDAFORM_KUBERNETES_CODE")),
            consumer_roles=[consumer_role], cluster_names=[cluster.ref])
        access = eks.CfnAccessEntry(
            self, "KedaformAccess", cluster_name=cluster.ref, principal_arn=provider.kubernetes_role.role_arn,
            access_policies=[eks.CfnAccessEntry.AccessPolicyProperty(
                policy_arn=f"arn:{cdk.Aws.PARTITION}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy",
                access_scope=eks.CfnAccessEntry.AccessScopeProperty(type="cluster"))])

        # What the original did by hand: the trust fix, `helm install keda`, the workloads.
        trust = KedaTrustPolicy(self, "ConsumerTrust", provider=provider, role_name=consumer_cfn.ref,
                                keda_role_arn=keda_cfn.attr_arn)
        keda = KedaInstall(self, "Keda", provider=provider, cluster_name=cluster.ref, operator_role_arn=keda_cfn.attr_arn)
        workloads = []
        for name, role, image, env in (
            ("producer", producer_cfn, producer_image, {"QUEUE_URL": queue.queue_url, "TOT_MSGS_TO_PRODUCE": "10000",
                                                        "WAIT_SECS_BETWEEN_MSGS": "1", "BAD_MSG_PERCENT": "10"}),
            ("consumer", consumer_cfn, consumer_image, {"QUEUE_URL": queue.queue_url, "STORE_EVENTS_BKT": bucket.bucket_name,
                                                        "MAX_MSGS_PER_BATCH": "5", "TOT_MSGS_TO_PROCESS": "10000",
                                                        "MSG_PROCESS_DELAY": "10"}),
        ):
            workload = KubernetesManifest(self, f"{name.title()}Manifest", provider=provider, cluster_name=cluster.ref, manifest=[
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {
                    "name": name, "namespace": name, "annotations": {"eks.amazonaws.com/role-arn": role.attr_arn}}},
                {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": name}, "spec": {
                    "replicas": 1, "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}}, "spec": {
                        "serviceAccountName": name, "terminationGracePeriodSeconds": 30,
                        "containers": [{"name": name, "image": image,
                                        "env": [{"name": k, "value": v} for k, v in env.items()]}]}}}},
            ])
            workloads.append(workload)
        # The original's keda-sqs-consumer-scalar-with-irsa.yml, its settings kept.
        scaling = KedaScaledObject(
            self, "ScaledObject", provider=provider, cluster_name=cluster.ref, namespace="consumer", name="consumer",
            scale_target_name="consumer", queue_url=queue.queue_url, role_arn=consumer_cfn.attr_arn,
            queue_length=10, min_replicas=1, max_replicas=50, polling_interval=10, cooldown_period=500)

        # Every Kubernetes resource after the nodes and the access; the ScaledObject after KEDA,
        # the trust fix and its consumer. A delete runs in reverse: our objects go first.
        for resource in (keda, *workloads):
            resource.node.add_dependency(nodes, access)
        scaling.node.add_dependency(keda, trust, workloads[1])

        cdk.CfnOutput(self, "ClusterName", value=cluster.ref)
        cdk.CfnOutput(self, "QueueUrl", value=queue.queue_url)
        cdk.CfnOutput(self, "BucketName", value=bucket.bucket_name)


app = cdk.App()
ScaleEksWithKeda(app, "ScaleEksWithKeda", description="scale-eks-with-keda's system on kedaform: KEDA with IRSA, no helm, no kubectl")
app.synth()
