#!/usr/bin/env python3
"""EKS Pod Identity on the local cluster: the agent's credentials endpoint and EKS Auth, as one
stand-in (AWS's agent, github.com/aws/eks-pod-identity-agent, is not served by the Go module
proxy, and moto has no EKS Auth API).

What stays real: AWS's pod identity webhook (scripts/cluster.sh) reads the associations file
below as its container-credentials config and gives each associated pod
AWS_CONTAINER_CREDENTIALS_FULL_URI, AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE and a projected
token for the pods.eks.amazonaws.com audience, as on EKS; the pod's AWS SDK then calls this
endpoint, as it calls the agent on a node.

What this does, as the agent and EKS Auth's AssumeRoleForPodIdentity do together: the token
(the Authorization header) is checked by the API server's TokenReview for that audience; the
service account it names must have an association; the association's role is assumed through
STS (moto) with Pod Identity's session tags; the credentials are answered in the container
credentials format. Anything else gets 400 or 403 with the reason, and no credentials.

  podidentity.py --run DIR --port PORT --cluster NAME
The associations: DIR/pod-identity/associations.json, {"identities": [{"namespace": N,
"serviceAccount": S, "roleArn": R}]} (the webhook reads namespace and serviceAccount from the
same file); scripts/cluster.sh starts it empty, tests replace it whole.
"""

import argparse
import http.server
import json
import sys
import time

import boto3

from podrunner import Api

AUDIENCE = "pods.eks.amazonaws.com"


def log(message):
    print(time.strftime("%H:%M:%S"), message, flush=True)


def associations_path(run):
    return f"{run}/pod-identity/associations.json"


def association(run, namespace, account):
    """The role associated with namespace/account, or None."""
    try:
        with open(associations_path(run), encoding="utf-8") as file:
            identities = json.load(file).get("identities") or []
    except (OSError, ValueError):
        return None
    for item in identities:
        if item.get("namespace") == namespace and item.get("serviceAccount") == account:
            return item.get("roleArn")
    return None


def review(api, token):
    """The TokenReview of `token` for Pod Identity's audience: (namespace, account, pod name,
    pod uid), or the reason it is refused."""
    answer = api.call("POST", "/apis/authentication.k8s.io/v1/tokenreviews", {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "spec": {"token": token, "audiences": [AUDIENCE]}})
    status = (answer or {}).get("status") or {}
    if not status.get("authenticated"):
        return None, status.get("error") or "the token is not valid for " + AUDIENCE
    user = status.get("user") or {}
    parts = user.get("username", "").split(":")
    if len(parts) != 4 or parts[:2] != ["system", "serviceaccount"]:
        return None, "the token is not a service account's"
    extra = user.get("extra") or {}
    pod = (extra.get("authentication.kubernetes.io/pod-name") or ["unknown"])[0]
    uid = (extra.get("authentication.kubernetes.io/pod-uid") or ["unknown"])[0]
    return (parts[2], parts[3], pod, uid), None


def credentials(sts, cluster, role, namespace, account, pod, uid):
    """STS AssumeRole of `role` as EKS Auth does it for an association, in the container
    credentials format the AWS SDKs read."""
    tags = {"eks-cluster-name": cluster, "kubernetes-namespace": namespace,
            "kubernetes-service-account": account, "kubernetes-pod-name": pod, "kubernetes-pod-uid": uid}
    answer = sts.assume_role(RoleArn=role, RoleSessionName=f"eks-{cluster}-{pod}"[:64],
                             Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    issued = answer["Credentials"]
    return {"AccessKeyId": issued["AccessKeyId"], "SecretAccessKey": issued["SecretAccessKey"],
            "Token": issued["SessionToken"], "Expiration": issued["Expiration"].strftime("%Y-%m-%dT%H:%M:%SZ"),
            "AccountId": role.split(":")[4]}


def handler(run, cluster, api, sts):
    class Handler(http.server.BaseHTTPRequestHandler):
        def answer(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802 (http.server's name)
            if self.path != "/v1/credentials":
                self.answer(404, {"code": "NotFound", "message": "only /v1/credentials is served"})
                return
            token = self.headers.get("Authorization", "").strip()
            if not token:
                self.answer(400, {"code": "InvalidToken", "message": "no Authorization header"})
                return
            subject, why = review(api, token)
            if subject is None:
                log(f"refused a token: {why}")
                self.answer(400, {"code": "InvalidToken", "message": why})
                return
            namespace, account, pod, uid = subject
            role = association(run, namespace, account)
            if role is None:
                log(f"refused {namespace}/{account}: no association")
                self.answer(403, {"code": "AccessDeniedException",
                                  "message": f"no pod identity association for {namespace}/{account}"})
                return
            try:
                body = credentials(sts, cluster, role, namespace, account, pod, uid)
            except Exception as error:  # noqa: BLE001 (STS's refusal is the answer)
                log(f"STS refused {role} for {namespace}/{account}: {error}")
                self.answer(403, {"code": "AccessDeniedException", "message": str(error)})
                return
            log(f"credentials of {role} for {namespace}/{account} (pod {pod})")
            self.answer(200, body)

        def log_message(self, *_):
            pass

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cluster", required=True)
    options = parser.parse_args()
    api = Api(options.run)
    sts = boto3.client("sts")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", options.port), handler(options.run, options.cluster, api, sts))
    log(f"pod identity credentials on http://127.0.0.1:{options.port}/v1/credentials for cluster {options.cluster}")
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
