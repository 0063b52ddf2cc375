#!/usr/bin/env bash
# The CDK construct library (integrations/cdk): its pinned packages, the compile, its tests, and
# a `cdk synth` of the example app (scale-eks-with-keda's system on an existing cluster) with the Lambdas
# `sam build` wrote, linted as the templates are.
#   scripts/cdk.sh DIR   (DIR: where sam build wrote the deployer stack's functions, <build-dir>/Deployer)
set -euo pipefail
source "$(dirname "$0")/common.sh"
SAM_BUILD=${1:?usage: scripts/cdk.sh DIR (<sam build --build-dir>/Deployer)}
command -v npm > /dev/null || { echo "npm is missing: apt-get install nodejs npm (Node.js 20 or later)" >&2; exit 1; }
cd "$ROOT/integrations/cdk"
npm ci --no-audit --no-fund --loglevel=error
npx tsc
npx vitest run
rm -rf cdk.out
KEDAFORM_TRUST_POLICY_CODE=$SAM_BUILD/TrustPolicyFunction KEDAFORM_KUBERNETES_CODE=$SAM_BUILD/DeployerFunction \
  CDK_DISABLE_CLI_TELEMETRY=true npx cdk synth --no-notices --quiet > /dev/null
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
