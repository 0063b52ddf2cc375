// scale-eks-with-keda's system on an existing EKS cluster, from CDK: the queue and its dead-letter queue,
// the KEDA operator and consumer roles (IRSA or EKS Pod Identity), the trust fix, KEDA, the
// consumer Deployment and its ScaledObject. `cdk synth` writes cdk.out/KedaformExample.template.json.
//
// Context (cdk.json or -c): clusterName, identityMode (irsa, the default, or pod-identity: the
// cluster runs the eks-pod-identity-agent add-on), oidcProvider (IRSA: the cluster's issuer
// without https://), consumerImage. The Lambdas' code: KEDAFORM_TRUST_POLICY_CODE and KEDAFORM_KUBERNETES_CODE,
// directories holding a `bootstrap` (`sam build` writes them under .aws-sam/build).

import { App, Duration, Stack } from 'aws-cdk-lib';
import * as eks from 'aws-cdk-lib/aws-eks';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as sqs from 'aws-cdk-lib/aws-sqs';

import {
  IdentityMode,
  KedaInstall,
  KedaScaledObject,
  KedaTrustPolicy,
  KedaformProvider,
  KubernetesManifest,
} from '../src';

const app = new App();
const clusterName: string = app.node.tryGetContext('clusterName') ?? 'sales';
const identityMode: IdentityMode =
  app.node.tryGetContext('identityMode') === 'pod-identity' ? IdentityMode.POD_IDENTITY : IdentityMode.IRSA;
const podIdentity = identityMode === IdentityMode.POD_IDENTITY;
const oidcProvider: string =
  app.node.tryGetContext('oidcProvider') ?? 'oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE';
const consumerImage: string =
  app.node.tryGetContext('consumerImage') ?? '111122223333.dkr.ecr.us-east-1.amazonaws.com/kedaform-consumer:0.1.0';
const code = (variable: string): string => {
  const dir = process.env[variable];
  if (!dir) {
    throw new Error(`${variable} is not set: point it at a directory with the Lambda's bootstrap (sam build writes one)`);
  }
  return dir;
};

const stack = new Stack(app, 'KedaformExample', {
  description: `scale-eks-with-keda's queue consumer scaled by KEDA with ${podIdentity ? 'EKS Pod Identity' : 'IRSA'}, deployed by kedaform's CDK constructs`,
});

const deadLetters = new sqs.Queue(stack, 'DeadLetterQueue', { retentionPeriod: Duration.days(14) });
const queue = new sqs.Queue(stack, 'Queue', {
  visibilityTimeout: Duration.seconds(30),
  deadLetterQueue: { queue: deadLetters, maxReceiveCount: 5 },
});

// A role a pod's service account assumes: with Pod Identity, through EKS for that service
// account of this cluster (its session tags), with an association; with IRSA, through the
// cluster's OIDC provider (a plain string here, so the condition keys need no CfnJson and its
// Node.js Lambda).
const associations: eks.CfnPodIdentityAssociation[] = [];
const serviceAccountRole = (id: string, namespace: string, account: string) => {
  if (podIdentity) {
    const role = new iam.Role(stack, id, {
      assumedBy: new iam.SessionTagsPrincipal(
        new iam.ServicePrincipal('pods.eks.amazonaws.com', {
          conditions: {
            StringEquals: {
              'aws:SourceAccount': stack.account,
              'aws:RequestTag/eks-cluster-name': clusterName,
              'aws:RequestTag/kubernetes-namespace': namespace,
              'aws:RequestTag/kubernetes-service-account': account,
            },
          },
        }),
      ),
    });
    associations.push(
      new eks.CfnPodIdentityAssociation(stack, `${id}Association`, {
        clusterName,
        namespace,
        serviceAccount: account,
        roleArn: role.roleArn,
      }),
    );
    return role;
  }
  const conditions = {
    [`${oidcProvider}:sub`]: `system:serviceaccount:${namespace}:${account}`,
    [`${oidcProvider}:aud`]: 'sts.amazonaws.com',
  };
  return new iam.Role(stack, id, {
    assumedBy: new iam.FederatedPrincipal(
      stack.formatArn({ service: 'iam', region: '', resource: 'oidc-provider', resourceName: oidcProvider }),
      { StringEquals: conditions },
      'sts:AssumeRoleWithWebIdentity',
    ),
  });
};
const kedaRole = serviceAccountRole('KedaOperatorRole', 'keda', 'keda-operator');
const consumerRole = serviceAccountRole('ConsumerRole', 'sales', 'consumer');
queue.grantConsumeMessages(consumerRole);
// KEDA reads the queue's depth as the consumer role: the KEDA role may assume it (here), and
// the trust fix lets it (KedaTrustPolicy below); that is all the KEDA role may do.
consumerRole.addToPolicy(
  new iam.PolicyStatement({ actions: ['sqs:GetQueueAttributes'], resources: [queue.queueArn] }),
);
kedaRole.addToPolicy(new iam.PolicyStatement({ actions: ['sts:AssumeRole'], resources: [consumerRole.roleArn] }));

const provider = new KedaformProvider(stack, 'Kedaform', {
  code: KedaformProvider.codeFromDirectories(code('KEDAFORM_TRUST_POLICY_CODE'), code('KEDAFORM_KUBERNETES_CODE')),
  consumerRoles: [consumerRole],
  clusterNames: [clusterName],
});
// The Kubernetes Lambda's only Kubernetes permission: an access entry on this cluster.
const access = new eks.CfnAccessEntry(stack, 'KedaformAccess', {
  clusterName,
  principalArn: provider.kubernetesRole.roleArn,
  accessPolicies: [
    {
      accessScope: { type: 'cluster' },
      policyArn: 'arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy',
    },
  ],
});

const trust = new KedaTrustPolicy(stack, 'ConsumerTrust', {
  provider,
  roleName: consumerRole.roleName,
  kedaRoleArn: kedaRole.roleArn,
});
const keda = new KedaInstall(stack, 'Keda', { provider, clusterName, operatorRoleArn: kedaRole.roleArn, identityMode });
// Pods read their credentials when they start: the associations come first.
keda.node.addDependency(access, ...associations);
const workload = new KubernetesManifest(stack, 'Consumer', {
  provider,
  clusterName,
  manifest: [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'sales' } },
    {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: {
        name: 'consumer',
        namespace: 'sales',
        // IRSA's annotation only: with Pod Identity the SDKs would try it first.
        ...(podIdentity ? {} : { annotations: { 'eks.amazonaws.com/role-arn': consumerRole.roleArn } }),
      },
    },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'consumer', namespace: 'sales' },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: 'consumer' } },
        template: {
          metadata: { labels: { app: 'consumer' } },
          spec: {
            serviceAccountName: 'consumer',
            containers: [{ name: 'consumer', image: consumerImage, env: [{ name: 'QUEUE_URL', value: queue.queueUrl }] }],
          },
        },
      },
    },
  ],
});
workload.node.addDependency(access, ...associations);
// scale-eks-with-keda's ScaledObject: queueLength 10, 1 to 50 replicas, polling 10 s, cooldown 500 s.
const scaling = new KedaScaledObject(stack, 'ScaledObject', {
  provider,
  clusterName,
  namespace: 'sales',
  name: 'consumer',
  scaleTargetName: 'consumer',
  queueUrl: queue.queueUrl,
  queueLength: 10,
  minReplicas: 1,
  maxReplicas: 50,
  pollingInterval: 10,
  cooldownPeriod: 500,
  roleArn: consumerRole.roleArn,
  identityMode,
});
scaling.node.addDependency(keda, trust, workload);

app.synth();
