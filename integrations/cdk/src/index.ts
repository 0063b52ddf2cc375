// CDK constructs for kedaform's custom resources. The props mirror the custom-resource
// reference (docs/src/reference/custom-resources.md) (camelCase here, PascalCase on the wire), with the same
// defaults (left to the handler) and, for values known at synth time, the same messages.

import { CustomResource, Duration, Fn, Stack, Token } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

import {
  KedaformValidationError as KedaformValidation,
  checkAccountId,
  checkDnsLabel,
  checkQueueUrl,
  checkRange,
  checkReplicas,
  checkRoleArn,
  checkScaledObjectIdentity,
} from './validate';

/** The custom-resource types kedaform serves. */
export class ResourceTypes {
  /** `Custom::KedaTrustPolicy`, served by the trust-policy Lambda. */
  static readonly TRUST_POLICY = 'Custom::KedaTrustPolicy';
  /** `Custom::KubernetesManifest`, served by the Kubernetes Lambda. */
  static readonly MANIFEST = 'Custom::KubernetesManifest';
  /** `Custom::KedaInstall`, served by the Kubernetes Lambda. */
  static readonly KEDA_INSTALL = 'Custom::KedaInstall';
  /** `Custom::KedaScaledObject`, served by the Kubernetes Lambda. */
  static readonly SCALED_OBJECT = 'Custom::KedaScaledObject';

  private constructor() {}
}

/** How the KEDA operator gets its AWS identity (`IdentityMode`). */
export enum IdentityMode {
  /** IAM Roles for Service Accounts: the operator's service account is annotated. */
  IRSA = 'irsa',
  /** EKS Pod Identity: the association is a resource of your stack. */
  POD_IDENTITY = 'pod-identity',
}

/** Where KEDA's replicas are spread (`TopologySpread`). */
export enum TopologySpread {
  /** Across availability zones. */
  ZONE = 'zone',
  /** Across nodes. */
  HOSTNAME = 'hostname',
}

/** Whose identity KEDA uses to read the queue (`IdentityOwner`). */
export enum IdentityOwner {
  /** KEDA's operator assumes `roleArn` with its own credentials (IRSA or Pod Identity). */
  KEDA = 'keda',
  /** The scaled workload's own IRSA role; not with Pod Identity (kedacore/keda issue 6418). */
  WORKLOAD = 'workload',
}

/** What a ScaledObject scales (`ScaleTargetKind`). */
export enum ScaleTargetKind {
  /** A Deployment. */
  DEPLOYMENT = 'Deployment',
  /** A StatefulSet. */
  STATEFUL_SET = 'StatefulSet',
}

/** KEDA's fallback: replicas to run after this many failed reads of the queue (`Fallback`, sent as `{failureThreshold, replicas}`). */
export interface ScaledObjectFallback {
  /** Failed reads before the fallback applies. */
  readonly failureThreshold: number;
  /** Replicas while it applies. */
  readonly replicas: number;
}

// Below the Lambdas' timeouts (120 s and 900 s), so that CloudFormation gets the handler's
// reason, not a timeout of its own.
const TRUST_POLICY_TIMEOUT = Duration.seconds(110);
const KUBERNETES_TIMEOUT = Duration.seconds(870);

/** The service tokens of the two kedaform Lambdas. */
export interface IKedaformProvider {
  /** The trust-policy Lambda's ARN. */
  readonly trustPolicyServiceToken: string;
  /** The Kubernetes Lambda's ARN. */
  readonly kubernetesServiceToken: string;
}

/** The two Lambdas' code. */
export interface KedaformCode {
  /** The `trust-policy` binary, as `bootstrap`. */
  readonly trustPolicy: lambda.Code;
  /** The `kube-resources` binary, as `bootstrap`. */
  readonly kubernetes: lambda.Code;
}

/** Props of {@link KedaformProvider}. */
export interface KedaformProviderProps {
  /** The Lambdas' code ({@link KedaformProvider.codeFromDirectories}). */
  readonly code: KedaformCode;
  /** The consumer roles whose trust policy the trust-policy Lambda may read and write. */
  readonly consumerRoles: iam.IRole[];
  /** The EKS clusters the Kubernetes Lambda may describe (it still needs an access entry). */
  readonly clusterNames: string[];
  /** Buckets holding manifest mirrors, for `s3://` manifest URLs. */
  readonly manifestBuckets?: s3.IBucket[];
  /** The Lambdas' architecture. @default x86_64 */
  readonly architecture?: lambda.Architecture;
  /** How long their logs are kept. @default one month */
  readonly logRetention?: logs.RetentionDays;
  /**
   * The VPC of a cluster whose API endpoint is private: the Kubernetes Lambda runs in it (the
   * trust-policy Lambda calls IAM only and stays outside). Its subnets need routes to the
   * cluster's endpoint, to EKS's API and to S3 (endpoints or a NAT); admit the Kubernetes
   * Lambda's security groups on 443 in the cluster security group. @default outside any VPC
   */
  readonly vpc?: ec2.IVpc;
  /** Which subnets of `vpc`. @default the VPC's private subnets */
  readonly vpcSubnets?: ec2.SubnetSelection;
  /** Security groups of the Kubernetes Lambda in `vpc`. @default one the construct makes */
  readonly securityGroups?: ec2.ISecurityGroup[];
}

/**
 * The two kedaform Lambdas with least-privilege roles and their log groups. Give
 * `kubernetesRole` an EKS access entry on each cluster (the Lambda has no Kubernetes
 * permission through IAM).
 */
export class KedaformProvider extends Construct implements IKedaformProvider {
  /** A provider deployed elsewhere (a deployer stack's exported tokens, say). */
  static fromServiceTokens(trustPolicyServiceToken: string, kubernetesServiceToken: string): IKedaformProvider {
    return { trustPolicyServiceToken, kubernetesServiceToken };
  }

  /**
   * The provider of a deployer stack (`infra/deployer.yaml`, deployed with `sam deploy` or
   * from the Serverless Application Repository) in this account and region: its exported
   * service tokens, `<stack name>-TrustPolicyServiceToken` and `-KubernetesServiceToken`.
   */
  static fromDeployerStack(deployerStackName: string): IKedaformProvider {
    return KedaformProvider.fromServiceTokens(
      Fn.importValue(`${deployerStackName}-TrustPolicyServiceToken`),
      Fn.importValue(`${deployerStackName}-KubernetesServiceToken`),
    );
  }

  /** Code from two directories holding a `bootstrap` each (`sam build`'s output, or unzipped `cargo lambda build` zips). */
  static codeFromDirectories(trustPolicy: string, kubernetes: string): KedaformCode {
    return { trustPolicy: lambda.Code.fromAsset(trustPolicy), kubernetes: lambda.Code.fromAsset(kubernetes) };
  }

  /** The trust-policy Lambda. */
  readonly trustPolicyFunction: lambda.Function;
  /** The Kubernetes Lambda. */
  readonly kubernetesFunction: lambda.Function;
  /** The Kubernetes Lambda's role: the principal of the EKS access entries. */
  readonly kubernetesRole: iam.Role;
  readonly trustPolicyServiceToken: string;
  readonly kubernetesServiceToken: string;

  constructor(scope: Construct, id: string, props: KedaformProviderProps) {
    super(scope, id);
    const retention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;
    const architecture = props.architecture ?? lambda.Architecture.X86_64;
    const lambdaRole = (name: string) =>
      new iam.Role(this, name, { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });

    const trustRole = lambdaRole('TrustPolicyRole');
    trustRole.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ReadAndWriteOnlyTheConsumerRolesTrust',
        actions: ['iam:GetRole', 'iam:UpdateAssumeRolePolicy'],
        resources: props.consumerRoles.map((role) => role.roleArn),
      }),
    );
    this.kubernetesRole = lambdaRole('KubernetesRole');
    this.kubernetesRole.addToPolicy(
      new iam.PolicyStatement({
        sid: 'DescribeOnlyTheseClusters',
        actions: ['eks:DescribeCluster'],
        resources: props.clusterNames.map((name) =>
          Stack.of(this).formatArn({ service: 'eks', resource: 'cluster', resourceName: name }),
        ),
      }),
    );
    for (const bucket of props.manifestBuckets ?? []) {
      bucket.grantRead(this.kubernetesRole);
    }

    const fn = (
      name: string,
      role: iam.Role,
      code: lambda.Code,
      memorySize: number,
      timeout: Duration,
      network: Pick<lambda.FunctionProps, 'vpc' | 'vpcSubnets' | 'securityGroups'> = {},
    ) => {
      const logGroup = new logs.LogGroup(this, `${name}Logs`, { retention });
      return new lambda.Function(this, name, {
        code,
        handler: 'bootstrap',
        runtime: lambda.Runtime.PROVIDED_AL2023,
        architecture,
        memorySize,
        timeout,
        role,
        logGroup,
        ...network,
      });
    };
    this.trustPolicyFunction = fn('TrustPolicyFunction', trustRole, props.code.trustPolicy, 128, Duration.seconds(120));
    // The most Lambda allows: readiness waits for images to pull on fresh nodes.
    this.kubernetesFunction = fn('KubernetesFunction', this.kubernetesRole, props.code.kubernetes, 256, Duration.seconds(900), {
      vpc: props.vpc,
      vpcSubnets: props.vpcSubnets,
      securityGroups: props.securityGroups,
    });
    this.trustPolicyServiceToken = this.trustPolicyFunction.functionArn;
    this.kubernetesServiceToken = this.kubernetesFunction.functionArn;
  }
}

/** Props of {@link KedaTrustPolicy} (`Custom::KedaTrustPolicy`). */
export interface KedaTrustPolicyProps {
  /** The two Lambdas. */
  readonly provider: IKedaformProvider;
  /** The consumer role: a name or an ARN (`RoleName`). */
  readonly roleName: string;
  /** The KEDA operator's role ARN (`KedaRoleArn`). */
  readonly kedaRoleArn: string;
  /** An `sts:ExternalId` the statement requires (`ExternalId`). @default none */
  readonly externalId?: string;
  /**
   * The account of `kedaRoleArn` when KEDA runs in another account than the consumer role:
   * the explicit consent such a role needs (`KedaAccountId`). @default the consumer role's account only
   */
  readonly kedaAccountId?: string;
  /** Remove every other grant of `sts:AssumeRole` to AWS principals (`Exclusive`). @default true */
  readonly exclusive?: boolean;
  /** Not read: a change re-applies the statement (`Triggers`). @default none */
  readonly triggers?: any;
}

/** Lets exactly the KEDA operator role assume the consumer role. */
export class KedaTrustPolicy extends Construct {
  /** The custom resource. */
  readonly resource: CustomResource;

  constructor(scope: Construct, id: string, props: KedaTrustPolicyProps) {
    super(scope, id);
    if (props.roleName.startsWith('arn:')) {
      checkRoleArn('RoleName', props.roleName);
    }
    checkRoleArn('KedaRoleArn', props.kedaRoleArn);
    checkAccountId('KedaAccountId', props.kedaAccountId);
    this.resource = customResource(this, props.provider.trustPolicyServiceToken, ResourceTypes.TRUST_POLICY, TRUST_POLICY_TIMEOUT, {
      RoleName: props.roleName,
      KedaRoleArn: props.kedaRoleArn,
      ExternalId: props.externalId,
      KedaAccountId: props.kedaAccountId,
      Exclusive: props.exclusive,
      Triggers: props.triggers,
    });
  }

  /** Comma-separated principals whose grant the last change removed. */
  get removedPrincipals(): string {
    return this.resource.getAttString('RemovedPrincipals');
  }
}

/** Props of {@link KedaInstall} (`Custom::KedaInstall`). */
export interface KedaInstallProps {
  /** The two Lambdas. */
  readonly provider: IKedaformProvider;
  /** The EKS cluster (`ClusterName`). */
  readonly clusterName: string;
  /** The KEDA operator's IAM role (`OperatorRoleArn`). */
  readonly operatorRoleArn: string;
  /** KEDA's release (`Version`). @default 2.20.2 */
  readonly version?: string;
  /** A mirror of the release manifest, `https://…` or `s3://bucket/key` (`ManifestUrl`). @default the release URL */
  readonly manifestUrl?: string;
  /** The manifest's SHA-256, hex (`ManifestSha256`). @default not checked */
  readonly manifestSha256?: string;
  /** How the operator gets its AWS identity (`IdentityMode`). @default IdentityMode.IRSA */
  readonly identityMode?: IdentityMode;
  /** The projected token's lifetime, seconds (`TokenExpiration`). @default 86400 */
  readonly tokenExpiration?: number;
  /** The pod security context clusters older than 1.19 needed (`LegacyFsGroup`). @default false */
  readonly legacyFsGroup?: boolean;
  /**
   * Install a release older than the KEDA running on the cluster (`AllowDowngrade`); going back
   * to the release this install upgraded from, as CloudFormation's rollback does, needs no flag.
   * @default false
   */
  readonly allowDowngrade?: boolean;
  /** Operator replicas, 1 to 10; they elect one leader (`OperatorReplicas`). @default KEDA's, 1 */
  readonly operatorReplicas?: number;
  /** Metrics API server replicas, 1 to 10 (`MetricsServerReplicas`). @default KEDA's, 1 */
  readonly metricsServerReplicas?: number;
  /** Admission webhook replicas, 1 to 10 (`WebhookReplicas`). @default KEDA's, 1 */
  readonly webhookReplicas?: number;
  /** A PodDisruptionBudget for each component with 2 replicas or more (`PodDisruptionBudgets`). @default false */
  readonly podDisruptionBudgets?: boolean;
  /** Spread each component's replicas (`TopologySpread`). @default no constraint */
  readonly topologySpread?: TopologySpread;
  /**
   * Requests and limits per component, as in Kubernetes: `{Operator?, MetricsServer?, Webhooks?}`
   * (`Resources`). @default the release manifest's
   */
  readonly resources?: { [key: string]: any };
}

/** KEDA with the IRSA values `helm install --set` used to carry, installed and waited for. */
export class KedaInstall extends Construct {
  /** The custom resource. */
  readonly resource: CustomResource;

  constructor(scope: Construct, id: string, props: KedaInstallProps) {
    super(scope, id);
    checkRoleArn('OperatorRoleArn', props.operatorRoleArn);
    if (props.manifestUrl !== undefined && !Token.isUnresolved(props.manifestUrl)) {
      if (!/^(https|s3):\/\//.test(props.manifestUrl)) {
        throw new KedaformValidation('ManifestUrl', 'only https:// and s3:// URLs are fetched');
      }
    }
    if (props.manifestSha256 !== undefined && !Token.isUnresolved(props.manifestSha256)) {
      if (!/^[0-9a-fA-F]{64}$/.test(props.manifestSha256.trim())) {
        throw new KedaformValidation('ManifestSha256', 'expected 64 hexadecimal digits');
      }
    }
    checkAvailability(props);
    this.resource = customResource(this, props.provider.kubernetesServiceToken, ResourceTypes.KEDA_INSTALL, KUBERNETES_TIMEOUT, {
      ClusterName: props.clusterName,
      OperatorRoleArn: props.operatorRoleArn,
      Version: props.version,
      ManifestUrl: props.manifestUrl,
      ManifestSha256: props.manifestSha256,
      IdentityMode: props.identityMode,
      TokenExpiration: props.tokenExpiration,
      LegacyFsGroup: props.legacyFsGroup,
      AllowDowngrade: props.allowDowngrade,
      OperatorReplicas: props.operatorReplicas,
      MetricsServerReplicas: props.metricsServerReplicas,
      WebhookReplicas: props.webhookReplicas,
      PodDisruptionBudgets: props.podDisruptionBudgets,
      TopologySpread: props.topologySpread,
      Resources: props.resources,
    });
  }

  /** The `helm --set` values this install stands for. */
  get helmValues(): string {
    return this.resource.getAttString('HelmValues');
  }
}

/** `OperatorReplicas`, `MetricsServerReplicas`, `WebhookReplicas` and `PodDisruptionBudgets` (lib/src/keda/availability.rs). */
function checkAvailability(props: KedaInstallProps): void {
  const replicas: [string, number | undefined][] = [
    ['OperatorReplicas', props.operatorReplicas],
    ['MetricsServerReplicas', props.metricsServerReplicas],
    ['WebhookReplicas', props.webhookReplicas],
  ];
  for (const [property, value] of replicas) {
    if (value !== undefined && !Token.isUnresolved(value) && (value < 1 || value > 10)) {
      throw new KedaformValidation(property, `${value} is outside 1 to 10`);
    }
  }
  const known = replicas.every(([, value]) => value === undefined || !Token.isUnresolved(value));
  if (props.podDisruptionBudgets === true && known && replicas.every(([, value]) => (value ?? 1) < 2)) {
    throw new KedaformValidation(
      'PodDisruptionBudgets',
      'protects nothing with one replica of each component (a budget would only block node drains); give ' +
        'OperatorReplicas, MetricsServerReplicas or WebhookReplicas 2 or more',
    );
  }
}

/** Props of {@link KedaScaledObject} (`Custom::KedaScaledObject`). */
export interface KedaScaledObjectProps {
  /** The two Lambdas. */
  readonly provider: IKedaformProvider;
  /** The EKS cluster (`ClusterName`). */
  readonly clusterName: string;
  /** The namespace of the ScaledObject and its target (`Namespace`). */
  readonly namespace: string;
  /** The ScaledObject's name (`Name`). */
  readonly name: string;
  /** The Deployment (or StatefulSet) to scale (`ScaleTargetName`). */
  readonly scaleTargetName: string;
  /** What `scaleTargetName` names (`ScaleTargetKind`). @default ScaleTargetKind.DEPLOYMENT */
  readonly scaleTargetKind?: ScaleTargetKind;
  /** `https://sqs.<region>.amazonaws.com/<account>/<name>` (`QueueUrl`). */
  readonly queueUrl: string;
  /** Target messages per replica (`QueueLength`). @default 5 */
  readonly queueLength?: number;
  /** Depth above which KEDA scales from zero (`ActivationQueueLength`). @default KEDA's, 0 */
  readonly activationQueueLength?: number;
  /** Must agree with the queue URL (`AwsRegion`). @default the queue URL's */
  readonly awsRegion?: string;
  /** `MinReplicas`. @default KEDA's, 0 */
  readonly minReplicas?: number;
  /** `MaxReplicas`. @default KEDA's, 100 */
  readonly maxReplicas?: number;
  /** Seconds, ≥ 1 (`PollingInterval`). @default KEDA's, 30 */
  readonly pollingInterval?: number;
  /** Seconds, ≥ 0 (`CooldownPeriod`). @default KEDA's, 300 */
  readonly cooldownPeriod?: number;
  /** Count in-flight messages (`ScaleOnInFlight`). @default KEDA's, true */
  readonly scaleOnInFlight?: boolean;
  /** The consumer role KEDA assumes to read the queue (`RoleArn`); left out only with `IdentityOwner.WORKLOAD`. */
  readonly roleArn?: string;
  /** How the KEDA operator gets its own credentials (`IdentityMode`). @default IdentityMode.IRSA */
  readonly identityMode?: IdentityMode;
  /** Whose identity KEDA uses (`IdentityOwner`). @default IdentityOwner.KEDA */
  readonly identityOwner?: IdentityOwner;
  /** The `sts:ExternalId` KEDA passes when it assumes `roleArn` (`ExternalId`). @default none */
  readonly externalId?: string;
  /** The HPA behavior, camelCase as in Kubernetes (`Behavior`). @default none */
  readonly behavior?: { [key: string]: any };
  /** KEDA's fallback (`Fallback`). @default none */
  readonly fallback?: ScaledObjectFallback;
}

/** A TriggerAuthentication and a ScaledObject with an `aws-sqs-queue` trigger, waited for. */
export class KedaScaledObject extends Construct {
  /** The custom resource. */
  readonly resource: CustomResource;

  constructor(scope: Construct, id: string, props: KedaScaledObjectProps) {
    super(scope, id);
    checkDnsLabel('Namespace', props.namespace);
    checkDnsLabel('Name', props.name);
    checkQueueUrl(props.queueUrl, props.awsRegion);
    checkScaledObjectIdentity(props.identityMode, props.identityOwner, props.roleArn, props.externalId);
    if (props.queueLength !== undefined && !Token.isUnresolved(props.queueLength) && props.queueLength < 1) {
      throw new KedaformValidation('QueueLength', 'must be at least 1 (messages per replica)');
    }
    checkReplicas(props.minReplicas, props.maxReplicas);
    checkRange('MinReplicas', props.minReplicas, 0);
    checkRange('MaxReplicas', props.maxReplicas, 1);
    checkRange('PollingInterval', props.pollingInterval, 1);
    checkRange('CooldownPeriod', props.cooldownPeriod, 0);
    this.resource = customResource(this, props.provider.kubernetesServiceToken, ResourceTypes.SCALED_OBJECT, KUBERNETES_TIMEOUT, {
      ClusterName: props.clusterName,
      Namespace: props.namespace,
      Name: props.name,
      ScaleTargetName: props.scaleTargetName,
      ScaleTargetKind: props.scaleTargetKind,
      QueueUrl: props.queueUrl,
      QueueLength: props.queueLength,
      ActivationQueueLength: props.activationQueueLength,
      AwsRegion: props.awsRegion,
      MinReplicas: props.minReplicas,
      MaxReplicas: props.maxReplicas,
      PollingInterval: props.pollingInterval,
      CooldownPeriod: props.cooldownPeriod,
      ScaleOnInFlight: props.scaleOnInFlight,
      RoleArn: props.roleArn,
      IdentityMode: props.identityMode,
      IdentityOwner: props.identityOwner,
      ExternalId: props.externalId,
      Behavior: props.behavior,
      // camelCase inside, as in Kubernetes (like Behavior).
      Fallback: props.fallback,
    });
  }

  /** The ScaledObject's name. */
  get scaledObjectName(): string {
    return this.resource.getAttString('ScaledObjectName');
  }
}

/** Props of {@link KubernetesManifest} (`Custom::KubernetesManifest`). */
export interface KubernetesManifestProps {
  /** The two Lambdas. */
  readonly provider: IKedaformProvider;
  /** The EKS cluster (`ClusterName`). */
  readonly clusterName: string;
  /** YAML (one or many documents), or objects (sent as JSON documents, which YAML reads) (`Manifest`). */
  readonly manifest: string | { [key: string]: any }[];
  /** Wait for every object to be ready (`WaitForReady`). @default true */
  readonly waitForReady?: boolean;
}

/** Any Kubernetes objects, applied server-side in dependency order, pruned, waited for. */
export class KubernetesManifest extends Construct {
  /** The custom resource. */
  readonly resource: CustomResource;

  constructor(scope: Construct, id: string, props: KubernetesManifestProps) {
    super(scope, id);
    const manifest =
      typeof props.manifest === 'string'
        ? props.manifest
        : props.manifest.map((document) => JSON.stringify(document)).join('\n---\n');
    if (!Token.isUnresolved(manifest) && manifest.trim() === '') {
      throw new KedaformValidation('Manifest', 'is empty: give one or more YAML documents');
    }
    this.resource = customResource(this, props.provider.kubernetesServiceToken, ResourceTypes.MANIFEST, KUBERNETES_TIMEOUT, {
      ClusterName: props.clusterName,
      Manifest: manifest,
      WaitForReady: props.waitForReady,
    });
  }
}

/** One custom resource of `resourceType`; unset properties are left out, for the handler's defaults. */
function customResource(
  scope: Construct,
  serviceToken: string,
  resourceType: string,
  serviceTimeout: Duration,
  properties: Record<string, unknown>,
): CustomResource {
  return new CustomResource(scope, 'Resource', {
    serviceToken,
    resourceType,
    serviceTimeout,
    properties: Object.fromEntries(Object.entries(properties).filter(([, value]) => value !== undefined)),
  });
}
