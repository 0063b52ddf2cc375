"""EKS, the one AWS service here with no public implementation: the local control plane
stands in for the cluster, and this module answers `DescribeCluster` with its endpoint and CA
after checking the caller as IAM would (moto's own signature check and policy evaluation, on
the cluster's ARN). An access entry becomes what EKS makes of it: aws-iam-authenticator's
mapping of the role to a Kubernetes user and an RBAC binding of its access policy."""

import base64
import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# What each EKS access policy grants, as the cluster role it binds.
ACCESS_POLICIES = {
    "AmazonEKSClusterAdminPolicy": "cluster-admin",
    "AmazonEKSAdminPolicy": "admin",
    "AmazonEKSEditPolicy": "edit",
    "AmazonEKSViewPolicy": "view",
}


class LocalCluster:
    """`endpoint` and `ca_pem` of the local API server, `issuer` the OIDC issuer its
    service-account tokens name; `mapping` (authenticator.py) turns access entries into users."""

    def __init__(self, world, endpoint, ca_pem, mapping, issuer):
        self.world, self.endpoint, self.ca_pem, self.mapping, self.issuer = world, endpoint, ca_pem, mapping, issuer
        self.clusters = {}
        self.lock = threading.Lock()

    def register(self, name):
        with self.lock:
            self.clusters[name] = {"issuer": self.issuer, "security_group": f"sg-{secrets.token_hex(8)}"}
        if self.mapping is not None:
            # The authenticator verifies tokens signed for this cluster's name.
            self.mapping.start(name)
        return self

    def attributes_of(self, name):
        cluster = self.clusters[name]
        return {
            "Arn": self.arn(name), "Endpoint": self.endpoint,
            "CertificateAuthorityData": base64.b64encode(self.ca_pem).decode(),
            "OpenIdConnectIssuerUrl": cluster["issuer"], "ClusterSecurityGroupId": cluster["security_group"],
            "EncryptionConfigKeyArn": "", "Id": name,
        }

    def arn(self, name):
        return f"arn:aws:eks:{self.world.region}:{self.world.account}:cluster/{name}"

    def unregister(self, name):
        with self.lock:
            self.clusters.pop(name, None)
        if self.mapping is not None:
            self.mapping.stop()

    def grant(self, cluster, principal, policies):
        if cluster not in self.clusters:
            raise RuntimeError(f"No cluster found for name: {cluster}.")
        roles = []
        for policy in policies:
            name = policy["PolicyArn"].rsplit("/", 1)[-1]
            if name not in ACCESS_POLICIES:
                raise RuntimeError(f"access policy {name} is not one the rehearsal maps")
            roles.append(ACCESS_POLICIES[name])
        if self.mapping is not None:
            self.mapping.grant(principal, roles)

    def revoke(self, cluster, principal):
        if self.mapping is not None:
            self.mapping.revoke(principal)


class DescribeCluster:
    """EKS's `GET /clusters/{name}`, on its own HTTP endpoint (AWS_ENDPOINT_URL_EKS of the
    functions)."""

    def __init__(self, cluster, account):
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                status, body, kind = owner.answer(self)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if kind:
                    self.send_header("x-amzn-ErrorType", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.cluster, self.account = cluster, account
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, request):
        from moto.core.exceptions import HTTPException
        from moto.iam.access_control import IAMRequest

        parts = request.path.split("?")[0].strip("/").split("/")
        if len(parts) != 2 or parts[0] != "clusters":
            return 404, json.dumps({"message": "the rehearsal's EKS answers DescribeCluster only"}).encode(), "NotFoundException"
        name = parts[1]
        from werkzeug.datastructures import Headers

        # As moto's server gets them from WSGI: names in title case (X-Amz-Date, not x-amz-date).
        headers = Headers([("-".join(part.capitalize() for part in name.split("-")), value) for name, value in request.headers.items()])
        try:
            check = IAMRequest(account_id=self.account, method="GET", path=request.path, data={}, body=b"",
                               headers=headers, action="DescribeCluster")
            check.check_signature()
            check.check_action_permitted(self.cluster.arn(name))
        except HTTPException as denied:
            return 403, json.dumps({"message": f"not authorized to perform eks:DescribeCluster on {self.cluster.arn(name)} ({denied.code})"}).encode(), "AccessDeniedException"
        except KeyError:
            return 403, json.dumps({"message": "missing authentication"}).encode(), "AccessDeniedException"
        if name not in self.cluster.clusters:
            return 404, json.dumps({"message": f"No cluster found for name: {name}."}).encode(), "ResourceNotFoundException"
        attributes = self.cluster.attributes_of(name)
        body = {"cluster": {
            "name": name, "arn": attributes["Arn"], "version": "1.35", "endpoint": attributes["Endpoint"],
            "status": "ACTIVE", "certificateAuthority": {"data": attributes["CertificateAuthorityData"]},
            "identity": {"oidc": {"issuer": attributes["OpenIdConnectIssuerUrl"]}},
            "accessConfig": {"authenticationMode": "API"},
        }}
        return 200, json.dumps(body).encode(), None

    def close(self):
        self.server.shutdown()
