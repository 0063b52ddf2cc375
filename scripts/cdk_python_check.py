#!/usr/bin/env python3
"""What scale-eks-with-keda's CDK-Python app, ported to kedaform, must synthesize to: the four
custom resources, in CloudFormation's order (the ScaledObject after KEDA, the trust fix and the
consumer; every Kubernetes resource after the node group and the access entry), the trust fix
on the consumer role for the KEDA operator role, and no Lambda but kedaform's two (no kubectl
provider, no Node.js custom-resource handler).

  cdk_python_check.py TEMPLATE.json
"""

import json
import sys


def main():
    with open(sys.argv[1]) as file:
        resources = json.load(file)["Resources"]
    failures = []

    def one(resource_type, prefix=""):
        found = [k for k, v in resources.items() if v["Type"] == resource_type and k.startswith(prefix)]
        if len(found) != 1:
            failures.append(f"expected one {resource_type} {prefix}, found {found}")
            return None
        return found[0]

    def depends(logical):
        value = resources[logical].get("DependsOn", [])
        return {value} if isinstance(value, str) else set(value)

    trust = one("Custom::KedaTrustPolicy")
    keda = one("Custom::KedaInstall")
    scaled = one("Custom::KedaScaledObject")
    consumer = one("Custom::KubernetesManifest", "ConsumerManifest")
    producer = one("Custom::KubernetesManifest", "ProducerManifest")
    nodes = one("AWS::EKS::Nodegroup")
    access = one("AWS::EKS::AccessEntry")
    consumer_role = one("AWS::IAM::Role", "ConsumerRole")
    keda_role = one("AWS::IAM::Role", "KedaOperatorRole")
    if None in (trust, keda, scaled, consumer, producer, nodes, access, consumer_role, keda_role):
        sys.exit("\n".join(failures))
    if not {keda, trust, consumer} <= depends(scaled):
        failures.append(f"{scaled} must come after {keda}, {trust} and {consumer}: DependsOn {sorted(depends(scaled))}")
    for logical in (keda, consumer, producer):
        if not {nodes, access} <= depends(logical):
            failures.append(f"{logical} must come after {nodes} and {access}: DependsOn {sorted(depends(logical))}")
    properties = resources[trust]["Properties"]
    if properties.get("RoleName") != {"Ref": consumer_role}:
        failures.append(f"{trust} patches {properties.get('RoleName')}, not the consumer role {consumer_role}")
    if properties.get("KedaRoleArn") != {"Fn::GetAtt": [keda_role, "Arn"]}:
        failures.append(f"{trust} admits {properties.get('KedaRoleArn')}, not the KEDA operator role {keda_role}")
    runtimes = sorted(v["Properties"].get("Runtime", "") for v in resources.values() if v["Type"] == "AWS::Lambda::Function")
    if runtimes != ["provided.al2023", "provided.al2023"]:
        failures.append(f"expected kedaform's two provided.al2023 functions and no other, found {runtimes}")
    if failures:
        sys.exit("\n".join(failures))
    print(f"CDK-Python app: {len(resources)} resources; the four custom resources in order; the trust fix on "
          f"{consumer_role} for {keda_role}; no Lambda but kedaform's two")


if __name__ == "__main__":
    main()
