#!/usr/bin/env bash
# The CDK construct library (integrations/cdk): its pinned packages, the compile, its tests, a
# `cdk synth` of the TypeScript example (scale-eks-with-keda's system on an existing cluster) with
# the Lambdas `sam build` wrote; then the jsii build (the npm package, a Python wheel, a Java jar,
# Go source) and scale-eks-with-keda's CDK-Python app ported to kedaform (examples/python),
# synthesized from the wheel. Every template is linted as the others are.
#   scripts/cdk.sh DIR   (DIR: where sam build wrote the deployer stack's functions, <build-dir>/Deployer)
set -euo pipefail
source "$(dirname "$0")/common.sh"
SAM_BUILD=${1:?usage: scripts/cdk.sh DIR (<sam build --build-dir>/Deployer)}
command -v npm > /dev/null || { echo "npm is missing: apt-get install nodejs npm (Node.js 20 or later)" >&2; exit 1; }
command -v mvn > /dev/null || { echo "mvn is missing (the Java package): apt-get install maven openjdk-17-jdk-headless" >&2; exit 1; }
# jsii's notice that Node.js 20 is past its end of life, once per process: not this script's news.
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION=1 CDK_DISABLE_CLI_TELEMETRY=true
cd "$ROOT/integrations/cdk"
npm ci --no-audit --no-fund --loglevel=error
npx tsc
# The first synth loads aws-cdk-lib, slower than vitest's 5 s default on a busy machine: the
# tests check what is synthesized, not how fast.
npx vitest run --testTimeout=60000
rm -rf cdk.out cdk-pod-identity.out
export KEDAFORM_TRUST_POLICY_CODE=$SAM_BUILD/TrustPolicyFunction KEDAFORM_KUBERNETES_CODE=$SAM_BUILD/DeployerFunction
npx cdk synth --no-notices --quiet > /dev/null
# CDK writes DependsOn beside the GetAtt that already orders a function after its role (W3005).
"$VENV/bin/cfn-lint" --ignore-checks W3005 -- cdk.out/KedaformExample.template.json
node -e '
const t = require("./cdk.out/KedaformExample.template.json").Resources;
const types = Object.values(t).map((r) => r.Type);
for (const type of ["Custom::KedaTrustPolicy", "Custom::KedaInstall", "Custom::KubernetesManifest", "Custom::KedaScaledObject"]) {
  if (!types.includes(type)) { console.error(`the example has no ${type}`); process.exit(1); }
}
const runtimes = Object.values(t).filter((r) => r.Type === "AWS::Lambda::Function").map((r) => r.Properties.Runtime);
if (runtimes.length !== 2 || runtimes.some((r) => r !== "provided.al2023")) {
  console.error(`expected kedaform'"'"'s two provided.al2023 functions and no other, found ${runtimes}`); process.exit(1);
}
console.log(`example synthesized: ${types.length} resources, the four custom resources, two provided.al2023 functions`);
'
# The same app with EKS Pod Identity: associations instead of IRSA, each role trusting EKS for
# its service account, KEDA and the ScaledObject told, every pod after its association.
npx cdk synth --no-notices --quiet -c identityMode=pod-identity --output cdk-pod-identity.out > /dev/null
"$VENV/bin/cfn-lint" --ignore-checks W3005 -- cdk-pod-identity.out/KedaformExample.template.json
node -e '
const t = require("./cdk-pod-identity.out/KedaformExample.template.json").Resources;
const fail = (why) => { console.error(`the Pod Identity example: ${why}`); process.exit(1); };
const of = (type) => Object.entries(t).filter(([, r]) => r.Type === type);
const associations = of("AWS::EKS::PodIdentityAssociation").map(([id, r]) => [id, r.Properties]);
const bound = associations.map(([, p]) => `${p.Namespace}/${p.ServiceAccount}`).sort().join(" ");
if (bound !== "keda/keda-operator sales/consumer") fail(`associations for ${bound}`);
for (const [, p] of associations) {
  const role = t[p.RoleArn["Fn::GetAtt"][0]].Properties.AssumeRolePolicyDocument.Statement;
  const s = role.length === 1 ? role[0] : fail("one trust statement per role");
  const tags = s.Condition.StringEquals;
  if (s.Principal.Service !== "pods.eks.amazonaws.com" || !s.Action.includes("sts:TagSession")
      || tags["aws:RequestTag/kubernetes-namespace"] !== p.Namespace
      || tags["aws:RequestTag/kubernetes-service-account"] !== p.ServiceAccount) fail(`trust of ${p.ServiceAccount}: ${JSON.stringify(s)}`);
}
if (JSON.stringify(t).includes("oidc-provider") || JSON.stringify(t).includes("eks.amazonaws.com/role-arn")) fail("IRSA is left");
const ids = associations.map(([id]) => id);
for (const [id, r] of [...of("Custom::KedaInstall"), ...of("Custom::KubernetesManifest")]) {
  if (!ids.every((a) => (r.DependsOn || []).includes(a))) fail(`${id} does not wait for the associations`);
}
for (const [id, r] of [...of("Custom::KedaInstall"), ...of("Custom::KedaScaledObject")]) {
  if (r.Properties.IdentityMode !== "pod-identity") fail(`${id} is not told`);
}
console.log(`Pod Identity example synthesized: ${associations.length} associations, no OIDC provider or IRSA annotation`);
'

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
mkdir -p "$TARGET"

# jsii: the same constructs for every CDK language. Go's source is generated but not compiled:
# aws-cdk-go v2.263.0 needs github.com/cdklabs/cloud-assembly-schema-go/awscdkcloudassemblyschema/v54,
# of which the Go module proxy serves no version.
rm -rf lib .jsii dist-packages
npx jsii --generate-tsconfig tsconfig.jsii.json --silence-warnings reserved-word
npx jsii-pacmak --targets js python java > "$TARGET/jsii-pacmak.log" 2>&1 || {
  cat "$TARGET/jsii-pacmak.log" >&2; exit 1; }
npx jsii-pacmak --targets go --code-only > /dev/null
wheel=$(ls dist-packages/python/kedaform_cdk-*-py3-none-any.whl)
jar=$(ls dist-packages/java/io/github/kedaform/kedaform-cdk/*/kedaform-cdk-*[0-9].jar)
ls dist-packages/js/kedaform-cdk@*.jsii.tgz "$wheel" "$jar" dist-packages/go/kedaformcdk/KedaInstall.go

# scale-eks-with-keda's CDK-Python app on kedaform, from the wheel just built.
venv=$VENV-cdk-python
ensure_venv_at "$venv" "$ROOT/integrations/cdk/examples/python/requirements.txt"
"$venv/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps "$wheel"
out=$TARGET/cdk-python.out
rm -rf "$out"
(cd examples/python && ../../node_modules/.bin/cdk synth --no-notices --quiet --app "$venv/bin/python app.py" --output "$out" > /dev/null)
"$VENV/bin/cfn-lint" --ignore-checks W3005 -- "$out/ScaleEksWithKeda.template.json"
"$VENV/bin/python" "$ROOT/scripts/cdk_python_check.py" "$out/ScaleEksWithKeda.template.json"

