import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { App, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import { describe, expect, test } from 'vitest';

import {
  IdentityMode,
  IdentityOwner,
  KedaInstall,
  KedaScaledObject,
  KedaTrustPolicy,
  KedaformProvider,
  KubernetesManifest,
  ResourceTypes,
} from '../src';

const { KEDA_INSTALL, MANIFEST, SCALED_OBJECT, TRUST_POLICY } = ResourceTypes;

const ACCOUNT = '111122223333';
const KEDA_ROLE = `arn:aws:iam::${ACCOUNT}:role/keda-operator`;
const CONSUMER_ROLE = `arn:aws:iam::${ACCOUNT}:role/sales-consumer`;
const QUEUE = `https://sqs.us-east-1.amazonaws.com/${ACCOUNT}/sales`;

/** Two directories with a `bootstrap` each, as `sam build` leaves them. */
function code(): { trust: string; kube: string } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kedaform-cdk-'));
  const dirs = { trust: path.join(root, 'trust'), kube: path.join(root, 'kube') };
  for (const dir of Object.values(dirs)) {
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'bootstrap'), '#!/bin/sh\n', { mode: 0o755 });
  }
  return dirs;
}

function stackWithProvider(): { stack: Stack; provider: KedaformProvider } {
  const stack = new Stack(new App(), 'Test');
  const dirs = code();
  const provider = new KedaformProvider(stack, 'Kedaform', {
    code: KedaformProvider.codeFromDirectories(dirs.trust, dirs.kube),
    consumerRoles: [iam.Role.fromRoleArn(stack, 'Consumer', CONSUMER_ROLE)],
    clusterNames: ['sales'],
  });
  return { stack, provider };
}

const scaledObjectProps = (provider: KedaformProvider) => ({
  provider,
  clusterName: 'sales',
  namespace: 'sales',
  name: 'consumer',
  scaleTargetName: 'consumer',
  queueUrl: QUEUE,
  roleArn: CONSUMER_ROLE,
});

describe('KedaformProvider', () => {
  test('two provided.al2023 functions with timeouts above the resources’ ServiceTimeout, least privilege', () => {
    const { stack } = stackWithProvider();
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::Lambda::Function', 2);
    template.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'provided.al2023',
      Handler: 'bootstrap',
      Timeout: 120,
      MemorySize: 128,
    });
    template.hasResourceProperties('AWS::Lambda::Function', { Timeout: 900, MemorySize: 256 });
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Action: ['iam:GetRole', 'iam:UpdateAssumeRolePolicy'], Resource: CONSUMER_ROLE }),
        ]),
      },
    });
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([Match.objectLike({ Action: 'eks:DescribeCluster' })]),
      },
    });
    template.resourceCountIs('AWS::Logs::LogGroup', 2);
  });

  test('in a VPC: the Kubernetes Lambda joins it, the trust-policy Lambda stays out', () => {
    const stack = new Stack(new App(), 'Test');
    const dirs = code();
    const vpc = new ec2.Vpc(stack, 'Vpc', { natGateways: 0, subnetConfiguration: [{ name: 'isolated', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }] });
    new KedaformProvider(stack, 'Kedaform', {
      code: KedaformProvider.codeFromDirectories(dirs.trust, dirs.kube),
      consumerRoles: [iam.Role.fromRoleArn(stack, 'Consumer', CONSUMER_ROLE)],
      clusterNames: ['sales'],
      vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
    });
    const template = Template.fromStack(stack);
    const functions = template.findResources('AWS::Lambda::Function');
    const inVpc = Object.entries(functions)
      .filter(([, f]) => f.Properties.VpcConfig !== undefined)
      .map(([id]) => id);
    expect(inVpc).toHaveLength(1);
    expect(inVpc[0]).toMatch(/KubernetesFunction/);
    template.resourceCountIs('AWS::EC2::SecurityGroup', 1);
  });

  test('from service tokens: no function is created', () => {
    const stack = new Stack(new App(), 'Tokens');
    const provider = KedaformProvider.fromServiceTokens('arn:trust', 'arn:kube');
    new KedaInstall(stack, 'Keda', { provider, clusterName: 'sales', operatorRoleArn: KEDA_ROLE });
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::Lambda::Function', 0);
    template.hasResourceProperties(KEDA_INSTALL, { ServiceToken: 'arn:kube' });
  });

  test('from a deployer stack: the tokens infra/deployer.yaml exports', () => {
    const stack = new Stack(new App(), 'Imported');
    const provider = KedaformProvider.fromDeployerStack('kedaform-deployer');
    new KedaTrustPolicy(stack, 'Trust', { provider, roleName: 'sales-consumer', kedaRoleArn: KEDA_ROLE });
    new KedaInstall(stack, 'Keda', { provider, clusterName: 'sales', operatorRoleArn: KEDA_ROLE });
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::Lambda::Function', 0);
    template.hasResourceProperties('Custom::KedaTrustPolicy', {
      ServiceToken: { 'Fn::ImportValue': 'kedaform-deployer-TrustPolicyServiceToken' },
    });
    template.hasResourceProperties(KEDA_INSTALL, {
      ServiceToken: { 'Fn::ImportValue': 'kedaform-deployer-KubernetesServiceToken' },
    });
    // The names the deployer template exports under.
    const deployer = fs.readFileSync(path.join(__dirname, '..', '..', '..', 'infra', 'deployer.yaml'), 'utf8');
    for (const token of ['TrustPolicyServiceToken', 'KubernetesServiceToken']) {
      expect(deployer).toContain(`Name: !Sub \${AWS::StackName}-${token}`);
    }
  });
});

describe('the four resources', () => {
  test('properties go out as the reference names them, unset ones left to the handler’s defaults', () => {
    const { stack, provider } = stackWithProvider();
    new KedaTrustPolicy(stack, 'Trust', { provider, roleName: 'sales-consumer', kedaRoleArn: KEDA_ROLE });
    new KedaInstall(stack, 'Keda', {
      provider,
      clusterName: 'sales',
      operatorRoleArn: KEDA_ROLE,
      manifestUrl: 's3://mirror/keda.yaml',
      allowDowngrade: true,
    });
    new KedaScaledObject(stack, 'Scaling', {
      ...scaledObjectProps(provider),
      queueLength: 10,
      minReplicas: 1,
      maxReplicas: 50,
      behavior: { scaleDown: { stabilizationWindowSeconds: 60 } },
    });
    new KubernetesManifest(stack, 'Workload', {
      provider,
      clusterName: 'sales',
      manifest: [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'sales' } }],
    });
    const template = Template.fromStack(stack);
    template.hasResourceProperties(TRUST_POLICY, {
      ServiceToken: { 'Fn::GetAtt': [Match.stringLikeRegexp('TrustPolicyFunction'), 'Arn'] },
      ServiceTimeout: '110',
      RoleName: 'sales-consumer',
      KedaRoleArn: KEDA_ROLE,
      Exclusive: Match.absent(),
    });
    template.hasResourceProperties(KEDA_INSTALL, {
      ServiceToken: { 'Fn::GetAtt': [Match.stringLikeRegexp('KubernetesFunction'), 'Arn'] },
      ServiceTimeout: '870',
      ClusterName: 'sales',
      ManifestUrl: 's3://mirror/keda.yaml',
      AllowDowngrade: true,
      Version: Match.absent(),
    });
    template.hasResourceProperties(SCALED_OBJECT, {
      QueueUrl: QUEUE,
      QueueLength: 10,
      MinReplicas: 1,
      MaxReplicas: 50,
      Behavior: { scaleDown: { stabilizationWindowSeconds: 60 } },
      PollingInterval: Match.absent(),
    });
    template.hasResourceProperties(MANIFEST, {
      Manifest: '{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"sales"}}',
    });
  });

  test('wrong values fail at synth time with the handlers’ messages', () => {
    const cases: [string, (stack: Stack, provider: KedaformProvider) => void, string][] = [
      [
        'KedaRoleArn',
        (stack, provider) => new KedaTrustPolicy(stack, 'T', { provider, roleName: 'r', kedaRoleArn: 'keda' }),
        'property KedaRoleArn: "keda" is not an IAM role ARN (it has fewer than six \':\'-separated parts); expected arn:aws:iam::<12-digit account>:role/<name>',
      ],
      [
        'OperatorRoleArn',
        (stack, provider) =>
          new KedaInstall(stack, 'K', { provider, clusterName: 'c', operatorRoleArn: 'arn:aws:iam::12345:role/keda' }),
        'property OperatorRoleArn: "arn:aws:iam::12345:role/keda" is not an IAM role ARN (the account is not 12 digits)',
      ],
      [
        'ManifestUrl',
        (stack, provider) =>
          new KedaInstall(stack, 'K', { provider, clusterName: 'c', operatorRoleArn: KEDA_ROLE, manifestUrl: 'http://x/y' }),
        'property ManifestUrl: only https:// and s3:// URLs are fetched',
      ],
      [
        'QueueUrl',
        (stack, provider) =>
          new KedaScaledObject(stack, 'S', { ...scaledObjectProps(provider), queueUrl: 'https://example.com/q' }),
        'property QueueUrl: "https://example.com/q" does not start with https://sqs.',
      ],
      [
        'AwsRegion',
        (stack, provider) => new KedaScaledObject(stack, 'S', { ...scaledObjectProps(provider), awsRegion: 'eu-west-1' }),
        'property AwsRegion: eu-west-1 disagrees with QueueUrl, which is in us-east-1',
      ],
      [
        'Namespace',
        (stack, provider) => new KedaScaledObject(stack, 'S', { ...scaledObjectProps(provider), namespace: 'Sales' }),
        'property Namespace: "Sales" is not a Kubernetes name',
      ],
      [
        'QueueLength',
        (stack, provider) => new KedaScaledObject(stack, 'S', { ...scaledObjectProps(provider), queueLength: 0 }),
        'property QueueLength: must be at least 1 (messages per replica)',
      ],
      [
        'MinReplicas',
        (stack, provider) =>
          new KedaScaledObject(stack, 'S', { ...scaledObjectProps(provider), minReplicas: 5, maxReplicas: 2 }),
        'property MinReplicas: 5 is above MaxReplicas 2',
      ],
      [
        'PollingInterval',
        (stack, provider) => new KedaScaledObject(stack, 'S', { ...scaledObjectProps(provider), pollingInterval: 0 }),
        'property PollingInterval: 0 is below 1',
      ],
      [
        'Manifest',
        (stack, provider) => new KubernetesManifest(stack, 'M', { provider, clusterName: 'c', manifest: '  ' }),
        'property Manifest: is empty',
      ],
      [
        'IdentityOwner',
        (stack, provider) =>
          new KedaScaledObject(stack, 'S', {
            ...scaledObjectProps(provider),
            roleArn: undefined,
            identityMode: IdentityMode.POD_IDENTITY,
            identityOwner: IdentityOwner.WORKLOAD,
          }),
        'property IdentityOwner: workload does not work with IdentityMode pod-identity',
      ],
      [
        'RoleArn with workload',
        (stack, provider) =>
          new KedaScaledObject(stack, 'S', { ...scaledObjectProps(provider), identityOwner: IdentityOwner.WORKLOAD }),
        'property RoleArn: must be left out with IdentityOwner workload',
      ],
      [
        'RoleArn missing',
        (stack, provider) => new KedaScaledObject(stack, 'S', { ...scaledObjectProps(provider), roleArn: undefined }),
        'property RoleArn: is required',
      ],
      [
        'ExternalId',
        (stack, provider) => new KedaScaledObject(stack, 'S', { ...scaledObjectProps(provider), externalId: 'x' }),
        'property ExternalId: is not an STS external id',
      ],
      [
        'OperatorReplicas',
        (stack, provider) =>
          new KedaInstall(stack, 'K', { provider, clusterName: 'c', operatorRoleArn: KEDA_ROLE, operatorReplicas: 0 }),
        'property OperatorReplicas: 0 is outside 1 to 10',
      ],
      [
        'PodDisruptionBudgets',
        (stack, provider) =>
          new KedaInstall(stack, 'K', { provider, clusterName: 'c', operatorRoleArn: KEDA_ROLE, podDisruptionBudgets: true }),
        'property PodDisruptionBudgets: protects nothing with one replica of each component',
      ],
      [
        'KedaAccountId',
        (stack, provider) =>
          new KedaTrustPolicy(stack, 'T', { provider, roleName: 'r', kedaRoleArn: KEDA_ROLE, kedaAccountId: '1111-2222' }),
        'property KedaAccountId: is not a 12-digit AWS account id',
      ],
    ];
    for (const [name, build, message] of cases) {
      const { stack, provider } = stackWithProvider();
      expect(() => build(stack, provider), name).toThrow(message);
    }
  });

  test('Pod Identity, a workload identity and a KEDA role of another account go out as named', () => {
    const { stack, provider } = stackWithProvider();
    new KedaScaledObject(stack, 'PodIdentity', {
      ...scaledObjectProps(provider),
      identityMode: IdentityMode.POD_IDENTITY,
      externalId: 'kedaform-sales',
    });
    new KedaScaledObject(stack, 'Workload', {
      ...scaledObjectProps(provider),
      name: 'workload',
      roleArn: undefined,
      identityOwner: IdentityOwner.WORKLOAD,
    });
    new KedaTrustPolicy(stack, 'Trust', {
      provider,
      roleName: 'sales-consumer',
      kedaRoleArn: 'arn:aws:iam::444455556666:role/keda-operator',
      kedaAccountId: '444455556666',
    });
    const template = Template.fromStack(stack);
    template.hasResourceProperties(SCALED_OBJECT, {
      IdentityMode: 'pod-identity',
      ExternalId: 'kedaform-sales',
      RoleArn: CONSUMER_ROLE,
    });
    template.hasResourceProperties(SCALED_OBJECT, { IdentityOwner: 'workload', RoleArn: Match.absent() });
    template.hasResourceProperties(TRUST_POLICY, { KedaAccountId: '444455556666' });
  });

  test('tokens are left to the handler', () => {
    const { stack, provider } = stackWithProvider();
    const role = new iam.Role(stack, 'Keda', { assumedBy: new iam.AccountRootPrincipal() });
    new KedaInstall(stack, 'K', { provider, clusterName: 'sales', operatorRoleArn: role.roleArn });
    Template.fromStack(stack).hasResourceProperties(KEDA_INSTALL, {
      OperatorRoleArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('Keda'), 'Arn'] },
    });
  });
});
