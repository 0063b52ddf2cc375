"""The local cluster read as its administrator (the client certificate scripts/cluster.sh made):
what the verdict checks on the cluster, by listing, never assumed."""

import json
import os
import ssl
import time
import urllib.error
import urllib.request

SERVER = "https://127.0.0.1:6443"
# What the stack's Kubernetes resources create: KEDA's cluster-wide objects and the workloads.
LISTED = {
    "Namespace": "/api/v1/namespaces",
    "CustomResourceDefinition": "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
    "ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    "ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
    "APIService": "/apis/apiregistration.k8s.io/v1/apiservices",
    "ValidatingWebhookConfiguration": "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
    "Deployment": "/apis/apps/v1/deployments",
}


class Cluster:
    def __init__(self, cluster_dir):
        pki = os.path.join(cluster_dir, "pki")
        self.context = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))
        self.context.load_cert_chain(os.path.join(pki, "admin.crt"), os.path.join(pki, "admin.key"))
        self.anonymous = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))

    def get(self, path):
        """The object at `path`, or None when it does not exist."""
        try:
            with urllib.request.urlopen(urllib.request.Request(SERVER + path), context=self.context, timeout=15) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise

    def status_as(self, path, token):
        """The HTTP status the API server answers `path` with for a bearer `token`."""
        request = urllib.request.Request(SERVER + path, headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, context=self.anonymous, timeout=15) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    def inventory(self):
        found = set()
        for kind, path in LISTED.items():
            listing = self.get(path) or {"items": []}
            for item in listing["items"]:
                metadata = item["metadata"]
                found.add(f"{kind} {metadata.get('namespace', '') + '/' if metadata.get('namespace') else ''}{metadata['name']}")
        return found

    def settled(self, expected, seconds=180):
        """Waits until the inventory equals `expected` (namespaces take a while to go); returns
        what differs at the end."""
        deadline = time.monotonic() + seconds
        while True:
            now = self.inventory()
            difference = (now - expected) | {f"missing: {item}" for item in expected - now}
            if not difference or time.monotonic() > deadline:
                return difference
            time.sleep(2)
