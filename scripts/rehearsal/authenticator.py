"""EKS authentication on the local cluster: aws-iam-authenticator (the upstream server EKS's
authentication descends from) is the API server's token webhook. It runs once the template's
cluster exists, with the cluster's name as its cluster ID (the name the kube Lambda signs into
its token); each AWS::EKS::AccessEntry becomes a role mapping in its DynamicFile backend plus an
RBAC binding of the access policy's cluster role, so a role without an entry is refused."""

import json
import os
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request

PORT = 21362


class Authenticator:
    def __init__(self, binary, state, cluster_dir, ca_file, account):
        self.binary, self.state, self.cluster_dir, self.ca_file, self.account = binary, state, cluster_dir, ca_file, account
        self.mapping_file = os.path.join(state, "mapping.json")
        self.entries, self.process, self.lock = {}, None, threading.Lock()
        self._write_mapping()
        self.context = ssl.create_default_context(cafile=os.path.join(cluster_dir, "pki", "ca.crt"))
        self.context.load_cert_chain(os.path.join(cluster_dir, "pki", "admin.crt"), os.path.join(cluster_dir, "pki", "admin.key"))

    def start(self, cluster_id):
        """The authenticator server for `cluster_id`, on the certificate and webhook kubeconfig
        `aws-iam-authenticator init` made before the API server started."""
        self.stop()
        config = os.path.join(self.state, "config.json")
        with open(config, "w") as out:
            json.dump({"clusterID": cluster_id, "server": {
                "stateDir": self.state, "address": "127.0.0.1", "port": PORT, "kubeconfigPregenerated": True,
                "generateKubeconfig": os.path.join(self.state, "aws-iam-authenticator.kubeconfig"),
                "backendMode": ["DynamicFile"], "dynamicfilepath": self.mapping_file}}, out)
        log = open(os.path.join(self.state, "server.log"), "ab")
        self.process = subprocess.Popen([self.binary, "server", "--config", config], stdout=log, stderr=subprocess.STDOUT,
                                        env=dict(os.environ, SSL_CERT_FILE=self.ca_file), start_new_session=True)
        insecure = ssl.create_default_context()
        insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"https://127.0.0.1:{PORT}/healthz", context=insecure, timeout=2).read()
                return
            except (urllib.error.URLError, OSError):
                if self.process.poll() is not None:
                    break
                time.sleep(0.2)
        raise RuntimeError(f"aws-iam-authenticator did not start; see {self.state}/server.log")

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(2)
            except subprocess.TimeoutExpired:
                # Its HTTP server drains connections for longer than a test wants to wait.
                self.process.kill()
                self.process.wait()
        self.process = None

    def _write_mapping(self):
        roles = [{"rolearn": principal, "username": f"{principal}:{{{{SessionName}}}}".replace(":role/", ":assumed-role/", 1).replace(":iam:", ":sts:", 1),
                  "groups": [f"kedaform:access-entry:{role}" for role in cluster_roles]}
                 for principal, cluster_roles in sorted(self.entries.items())]
        temporary = self.mapping_file + ".tmp"
        with open(temporary, "w") as out:
            json.dump({"mapRoles": roles, "mapUsers": [], "mapAccounts": []}, out)
        os.replace(temporary, self.mapping_file)

    def _api(self, method, path, body=None):
        server = "https://127.0.0.1:6443"
        request = urllib.request.Request(server + path, method=method, data=json.dumps(body).encode() if body else None,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    def grant(self, principal, cluster_roles):
        with self.lock:
            self.entries[principal] = cluster_roles
            self._write_mapping()
            for role in cluster_roles:
                binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                           "metadata": {"name": f"kedaform-access-entry-{role}"},
                           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                           "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": f"kedaform:access-entry:{role}"}]}
                status = self._api("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", binding)
                if status not in (201, 409):
                    raise RuntimeError(f"the RBAC binding of access policy {role} failed: HTTP {status}")
        # The DynamicFile backend reloads on change; give it the moment it takes.
        time.sleep(1)

    def revoke(self, principal):
        with self.lock:
            roles = self.entries.pop(principal, [])
            self._write_mapping()
            still = {role for others in self.entries.values() for role in others}
            for role in set(roles) - still:
                self._api("DELETE", f"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/kedaform-access-entry-{role}")

    def bindings(self):
        """The access-entry bindings left on the cluster (the verdict lists them)."""
        request = urllib.request.Request("https://127.0.0.1:6443/apis/rbac.authorization.k8s.io/v1/clusterrolebindings")
        with urllib.request.urlopen(request, context=self.context, timeout=10) as response:
            items = json.load(response)["items"]
        return {item["metadata"]["name"] for item in items if item["metadata"]["name"].startswith("kedaform-access-entry-")}
