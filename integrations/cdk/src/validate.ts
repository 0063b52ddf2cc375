// The handlers' checks that need no call, for values known at synth time, with the handlers'
// messages (lib/src/iam/mod.rs, lib/src/resources/scaled_object.rs): a template that synthesizes
// does not fail on them at deploy time. Values that are tokens are left to the handler.

import { Token } from 'aws-cdk-lib';

/** Wrong input, named by the property the custom resource gives it. */
export class KedaformValidationError extends Error {
  constructor(property: string, message: string) {
    super(`property ${property}: ${message}`);
    this.name = 'KedaformValidationError';
  }
}

const PARTITIONS = ['aws', 'aws-cn', 'aws-us-gov', 'aws-iso', 'aws-iso-b', 'aws-iso-e', 'aws-iso-f', 'aws-eusc'];

function known(value: unknown): boolean {
  return value !== undefined && !Token.isUnresolved(value);
}

function quoted(text: string): string {
  return JSON.stringify(text);
}

/** `arn:<partition>:iam::<account>:role/<path/><name>`. */
export function checkRoleArn(property: string, text: string): void {
  if (!known(text)) {
    return;
  }
  const bad = (why: string) =>
    new KedaformValidationError(
      property,
      `${quoted(text)} is not an IAM role ARN (${why}); expected arn:aws:iam::<12-digit account>:role/<name>`,
    );
  const parts = text.split(':');
  if (parts.length < 6) {
    throw bad("it has fewer than six ':'-separated parts");
  }
  const [arn, partition, service, region, account] = parts;
  const resource = parts.slice(5).join(':');
  if (arn !== 'arn' || service !== 'iam' || region !== '') {
    throw bad('it does not start with arn:<partition>:iam::');
  }
  if (!PARTITIONS.includes(partition)) {
    throw bad(`unknown partition ${quoted(partition)}`);
  }
  if (!/^[0-9]{12}$/.test(account)) {
    throw bad('the account is not 12 digits');
  }
  if (!resource.startsWith('role/')) {
    throw bad('the resource is not role/...');
  }
  const name = resource.split('/').pop() ?? '';
  if (!/^[A-Za-z0-9+=,.@_-]{1,64}$/.test(name)) {
    throw bad('the role name is empty or has characters IAM does not allow');
  }
}

/** A Kubernetes name: lower-case letters, digits and '-', 63 at most. */
export function checkDnsLabel(property: string, value: string): void {
  if (known(value) && !/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(value)) {
    throw new KedaformValidationError(
      property,
      `${quoted(value)} is not a Kubernetes name (lower-case letters, digits, '-', 63 at most)`,
    );
  }
}

/** `https://sqs.<region>.amazonaws.com/<account>/<name>`, and a region that agrees with it. */
export function checkQueueUrl(url: string, awsRegion?: string): void {
  if (!known(url)) {
    return;
  }
  const bad = (why: string) =>
    new KedaformValidationError(
      'QueueUrl',
      `${quoted(url)} ${why}; expected https://sqs.<region>.amazonaws.com/<12-digit account>/<queue name>`,
    );
  if (!url.startsWith('https://sqs.')) {
    throw bad('does not start with https://sqs.');
  }
  const rest = url.slice('https://sqs.'.length);
  const slash = rest.indexOf('/');
  if (slash < 0) {
    throw bad('has no path');
  }
  const host = rest.slice(0, slash);
  const path = rest.slice(slash + 1);
  const region = host.endsWith('.amazonaws.com.cn')
    ? host.slice(0, -'.amazonaws.com.cn'.length)
    : host.endsWith('.amazonaws.com')
      ? host.slice(0, -'.amazonaws.com'.length)
      : undefined;
  if (region === undefined) {
    throw bad('is not an amazonaws.com host');
  }
  const split = path.indexOf('/');
  if (split < 0) {
    throw bad('has no queue name');
  }
  const account = path.slice(0, split);
  const name = path.slice(split + 1);
  if (!/^[a-z0-9-]+$/.test(region)) {
    throw bad('has no valid region');
  }
  if (!/^[0-9]{12}$/.test(account)) {
    throw bad('has no 12-digit account');
  }
  if (!/^[A-Za-z0-9._-]{1,80}$/.test(name)) {
    throw bad('has no valid queue name');
  }
  if (known(awsRegion) && awsRegion !== region) {
    throw new KedaformValidationError('AwsRegion', `${awsRegion} disagrees with QueueUrl, which is in ${region}`);
  }
}

/** `MinReplicas` ≤ `MaxReplicas`. */
export function checkReplicas(min?: number, max?: number): void {
  if (known(min) && known(max) && (min as number) > (max as number)) {
    throw new KedaformValidationError('MinReplicas', `${min} is above MaxReplicas ${max}`);
  }
}

/** At least `least`. */
export function checkRange(property: string, value: number | undefined, least: number): void {
  if (known(value) && (value as number) < least) {
    throw new KedaformValidationError(property, `${value} is below ${least}`);
  }
}

/**
 * `RoleArn`, `IdentityMode`, `IdentityOwner` and `ExternalId` together
 * (lib/src/resources/scaled_object.rs). The external id is never repeated in a message.
 */
export function checkScaledObjectIdentity(
  identityMode: string | undefined,
  identityOwner: string | undefined,
  roleArn: string | undefined,
  externalId: string | undefined,
): void {
  if (identityOwner === 'workload') {
    if (identityMode === 'pod-identity') {
      throw new KedaformValidationError(
        'IdentityOwner',
        "workload does not work with IdentityMode pod-identity: KEDA then looks for the workload's IRSA role, " +
          'which Pod Identity never sets (kedacore/keda issue 6418); leave IdentityOwner out so that KEDA ' +
          "assumes RoleArn with the operator's credentials",
      );
    }
    if (roleArn !== undefined && roleArn !== '') {
      throw new KedaformValidationError('RoleArn', 'must be left out with IdentityOwner workload (KEDA takes one or the other)');
    }
    if (externalId !== undefined) {
      throw new KedaformValidationError(
        'ExternalId',
        'applies only when KEDA assumes RoleArn; leave it out with IdentityOwner workload',
      );
    }
    return;
  }
  if (roleArn === undefined || roleArn === '') {
    throw new KedaformValidationError(
      'RoleArn',
      'is required: the role KEDA assumes to read the queue (or set IdentityOwner workload)',
    );
  }
  checkRoleArn('RoleArn', roleArn);
  if (known(externalId) && !/^[A-Za-z0-9+=,.@:\/_-]{2,1224}$/.test(externalId as string)) {
    throw new KedaformValidationError(
      'ExternalId',
      'is not an STS external id (2 to 1224 of A-Z a-z 0-9 and + = , . @ : / - _)',
    );
  }
}

/** `KedaAccountId`: the 12-digit account of a KEDA role in another account. */
export function checkAccountId(property: string, value: string | undefined): void {
  if (known(value) && !/^[0-9]{12}$/.test(value as string)) {
    throw new KedaformValidationError(property, 'is not a 12-digit AWS account id');
  }
}
