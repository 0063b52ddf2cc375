#!/usr/bin/env python3
"""The kubelet of the local cluster, for the images it knows: runs one local process per pod.

kwok makes pods Running and gives them an IP from the namespace-local pod range; it runs
nothing. For each Running pod whose container image is in the image map, this runs the mapped
binary the way a kubelet and a container runtime would: the container's args, its env (values,
field references), its secret, emptyDir and projected service-account-token volumes as
directories (mount paths in the args and env values are rewritten to them, secrets kept in sync,
tokens from the TokenRequest API renewed as a kubelet does), and its own service-account token as
a kubeconfig. IRSA's settings are not made here: AWS's pod identity webhook
(scripts/cluster.sh) adds them to the pod as on EKS, and this mounts the token it asks for.
A pod that goes away gets SIGTERM, then SIGKILL after its grace period; a process that exits is
restarted with back-off.

  podrunner.py --run DIR --images FILE.json
The image map: {"image": {"binary": PATH, "args": [extra args], "env": {NAME: value}}}; in
extra args and env values {pod_ip}, {namespace}, {kubeconfig}, {mount:/path} and
{service:NAME.NAMESPACE:PORT} are filled in. A service reference becomes the address of a local
forwarder that plays kube-proxy: each connection goes to a ready endpoint of the Service as it
is when the connection opens (the first that accepts), so a process keeps reaching the Service
when its pods are replaced (KEDA's metrics server, say, reaches whichever operator replica
leads). DNS is the one thing of a cluster this does not emulate.
"""

import argparse
import base64
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

POLL_SECONDS = 1.0
# A kubelet backs off to 5 minutes; a local cluster for tests wants its pods back sooner.
RESTART_BACKOFF_CAP = 10
# A kubelet renews a projected token once 80 % of its lifetime has passed.
TOKEN_RENEWAL = 0.8
# What the pods see of AWS: the cluster's moto, through the standard settings only; in the
# rehearsal, also its STS endpoint and the CA that signs it.
AWS_PASSTHROUGH = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS", "AWS_REGION", "AWS_DEFAULT_REGION",
                   "AWS_EC2_METADATA_DISABLED", "SSL_CERT_FILE")


def log(message):
    print(time.strftime("%H:%M:%S"), message, flush=True)


class Api:
    def __init__(self, run):
        self.base = "https://127.0.0.1:6443"
        self.context = ssl.create_default_context(cafile=f"{run}/pki/ca.crt")
        self.context.load_cert_chain(f"{run}/pki/admin.crt", f"{run}/pki/admin.key")

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise

    def get(self, path):
        return self.call("GET", path)


class Pod:
    """One running process for one pod."""

    def __init__(self, pod, container, spec, run):
        meta = pod["metadata"]
        self.uid = meta["uid"]
        self.key = f"{meta['namespace']}/{meta['name']}"
        self.pod = pod
        self.container = container
        self.spec = spec
        self.dir = f"{run}/pods/{meta['namespace']}_{meta['name']}"
        os.makedirs(self.dir, exist_ok=True)
        self.process = None
        self.restarts = 0
        self.next_start = 0.0
        self.grace = pod["spec"].get("terminationGracePeriodSeconds", 30)

    def mount(self, path):
        return f"{self.dir}/mounts{path}"


def container_of(pod, images):
    for container in pod["spec"].get("containers", []):
        if container.get("image") in images:
            return container
    return None


def write_if_changed(path, data):
    try:
        with open(path, "rb") as current:
            if current.read() == data:
                return False
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "wb") as new:
        new.write(data)
    os.replace(path + ".tmp", path)
    return True


def sync_volumes(api, pod, container):
    """Secret, emptyDir and projected service-account-token volumes as directories; False while
    a required secret is missing."""
    namespace = pod.pod["metadata"]["namespace"]
    volumes = {v["name"]: v for v in pod.pod["spec"].get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        volume = volumes.get(mount["name"], {})
        target = pod.mount(mount["mountPath"])
        os.makedirs(target, exist_ok=True)
        if "secret" in volume:
            secret = api.get(f"/api/v1/namespaces/{namespace}/secrets/{volume['secret']['secretName']}")
            if secret is None:
                if not volume["secret"].get("optional", False):
                    return False
                continue
            for name, value in (secret.get("data") or {}).items():
                write_if_changed(f"{target}/{name}", base64.b64decode(value))
        for source in (volume.get("projected") or {}).get("sources", []):
            wanted = source.get("serviceAccountToken")
            if wanted:
                project_token(api, pod, f"{target}/{wanted['path']}", wanted)
    return True


def project_token(api, pod, path, wanted):
    """A projected service-account token at `path`, renewed once most of its lifetime passed."""
    lifetime = wanted.get("expirationSeconds", 3600)
    try:
        if time.time() - os.path.getmtime(path) < lifetime * TOKEN_RENEWAL:
            return
    except FileNotFoundError:
        pass
    write_if_changed(path, token(api, pod, wanted.get("audience"), lifetime).encode())


def service_endpoints(api, reference):
    """NAME.NAMESPACE:PORT -> the IP:PORT of each ready endpoint."""
    match = re.fullmatch(r"([a-z0-9-]+)\.([a-z0-9-]+):(\d+)", reference)
    if not match:
        raise ValueError(f"bad service reference {reference}")
    name, namespace, port = match.groups()
    slices = api.get(
        f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"
        f"?labelSelector=kubernetes.io%2Fservice-name%3D{name}"
    )
    return [f"{endpoint['addresses'][0]}:{port}"
            for item in (slices or {}).get("items", [])
            for endpoint in item.get("endpoints") or []
            if endpoint.get("conditions", {}).get("ready") and endpoint.get("addresses")]


def pipe(source, target):
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, target):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class ServiceProxy:
    """A Service's stand-in for kube-proxy: a listener on 127.0.0.1 whose connections go to a
    ready endpoint of the Service, looked up when each connection opens."""

    def __init__(self, api, reference):
        self.api, self.reference = api, reference
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            client, _ = self.listener.accept()
            threading.Thread(target=self.forward, args=(client,), daemon=True).start()

    def forward(self, client):
        try:
            endpoints = service_endpoints(self.api, self.reference)
        except (OSError, urllib.error.URLError, ValueError):
            endpoints = []
        for endpoint in endpoints:
            host, port = endpoint.rsplit(":", 1)
            try:
                upstream = socket.create_connection((host, int(port)), timeout=5)
            except OSError:
                continue
            upstream.settimeout(None)
            threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
            pipe(client, upstream)
            return
        client.close()


PROXIES = {}


def service_address(api, reference):
    """The address that reaches the Service `reference`, or None while it has no ready endpoint."""
    if not service_endpoints(api, reference):
        return None
    if reference not in PROXIES:
        PROXIES[reference] = ServiceProxy(api, reference)
    return PROXIES[reference].address


def token(api, pod, audience, lifetime):
    """A token for the pod's service account, bound to the pod (TokenRequest API)."""
    meta = pod.pod["metadata"]
    account = pod.pod["spec"].get("serviceAccountName", "default")
    spec = {
        "expirationSeconds": lifetime,
        "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]},
    }
    if audience:
        spec["audiences"] = [audience]
    review = api.call(
        "POST",
        f"/api/v1/namespaces/{meta['namespace']}/serviceaccounts/{account}/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
    )
    return review["status"]["token"]


def kubeconfig(api, pod):
    """The pod's own service-account token, as a kubeconfig for the API server."""
    run = os.path.dirname(os.path.dirname(pod.dir))
    return json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "pod",
        "clusters": [{"name": "local", "cluster": {"server": api.base, "certificate-authority": f"{run}/pki/ca.crt"}}],
        "users": [{"name": "pod", "user": {"token": token(api, pod, None, 86400)}}],
        "contexts": [{"name": "pod", "context": {"cluster": "local", "user": "pod", "namespace": pod.pod["metadata"]["namespace"]}}],
    })


def field(pod, path):
    values = {
        "metadata.namespace": pod["metadata"]["namespace"],
        "metadata.name": pod["metadata"]["name"],
        "metadata.uid": pod["metadata"]["uid"],
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
        "spec.nodeName": pod["spec"].get("nodeName", ""),
        "status.podIP": pod["status"].get("podIP", ""),
    }
    return values.get(path, "")


def environment(api, pod, container):
    meta = pod.pod["metadata"]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": pod.dir, "HOSTNAME": meta["name"]}
    env.update({k: os.environ[k] for k in AWS_PASSTHROUGH if k in os.environ})
    config = f"{pod.dir}/kubeconfig"
    write_if_changed(config, kubeconfig(api, pod).encode())
    env["KUBECONFIG"] = config
    rewrite = mount_paths(pod, container)
    for variable in container.get("env", []):
        source = variable.get("valueFrom")
        if source is None:
            env[variable["name"]] = rewrite(variable.get("value", ""))
        elif "fieldRef" in source:
            env[variable["name"]] = field(pod.pod, source["fieldRef"]["fieldPath"])
        elif "secretKeyRef" in source or "configMapKeyRef" in source:
            kind, ref = ("secrets", source["secretKeyRef"]) if "secretKeyRef" in source else ("configmaps", source["configMapKeyRef"])
            found = api.get(f"/api/v1/namespaces/{meta['namespace']}/{kind}/{ref['name']}") or {}
            value = (found.get("data") or {}).get(ref["key"], "")
            env[variable["name"]] = base64.b64decode(value).decode() if kind == "secrets" and value else value
    for name, value in pod.spec.get("env", {}).items():
        env[name] = fill(api, pod, value)
    return env


def mount_paths(pod, container):
    """A function rewriting the container's mount paths in an arg or env value (`/path/...` or
    `--flag=/path/...`) to where they are in the pod's directory."""
    mounts = sorted((m["mountPath"] for m in container.get("volumeMounts", [])), key=len, reverse=True)
    # One pass, longest mount path first: a rewritten path (under the pod's own directory, which
    # may itself start with a mount path such as /tmp) is never rewritten again.
    pattern = re.compile(rf"(^|=)({'|'.join(map(re.escape, mounts))})(?=/|$)") if mounts else None
    return lambda text: pattern.sub(lambda m: m.group(1) + pod.mount(m.group(2)), text) if pattern else text


def command(api, pod, container):
    """The container's command line with mount paths rewritten, plus the map's extra args; None
    while a referenced service has no ready endpoint."""
    rewrite = mount_paths(pod, container)
    extra = [fill(api, pod, arg) for arg in pod.spec.get("args", [])]
    if None in extra:
        return None
    return [pod.spec["binary"], *map(rewrite, container.get("args", [])), *extra]


def fill(api, pod, text):
    """The image map's placeholders filled in; None while a referenced service has no ready endpoint."""
    for reference in re.findall(r"\{service:([^}]+)\}", text):
        address = service_address(api, reference)
        if address is None:
            return None
        text = text.replace(f"{{service:{reference}}}", address)
    text = re.sub(r"\{mount:([^}]+)\}", lambda m: pod.mount(m.group(1)), text)
    return (
        text.replace("{pod_ip}", pod.pod["status"]["podIP"])
        .replace("{namespace}", pod.pod["metadata"]["namespace"])
        .replace("{kubeconfig}", f"{pod.dir}/kubeconfig")
    )


def start(api, pod):
    if not sync_volumes(api, pod, pod.container):
        return
    argv = command(api, pod, pod.container)
    if argv is None:
        return
    env = environment(api, pod, pod.container)
    with open(f"{pod.dir}/log", "ab") as output:
        pod.process = subprocess.Popen(argv, env=env, stdout=output, stderr=output, stdin=subprocess.DEVNULL, start_new_session=True)
    log(f"started {pod.key}: pid {pod.process.pid}, {os.path.basename(argv[0])}")


def stop(pod):
    if pod.process is None or pod.process.poll() is not None:
        return
    pod.process.send_signal(signal.SIGTERM)
    try:
        pod.process.wait(timeout=pod.grace)
    except subprocess.TimeoutExpired:
        pod.process.kill()
        pod.process.wait()
    log(f"stopped {pod.key}: exit {pod.process.returncode}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="the cluster's run directory")
    parser.add_argument("--images", required=True, help="JSON image map")
    options = parser.parse_args()
    with open(options.images) as file:
        images = json.load(file)
    api = Api(options.run)
    running = {}
    stopping = [False]
    signal.signal(signal.SIGTERM, lambda *_: stopping.__setitem__(0, True))
    signal.signal(signal.SIGINT, lambda *_: stopping.__setitem__(0, True))
    log(f"running pods of {len(images)} images")
    while not stopping[0]:
        try:
            listed = api.get("/api/v1/pods?fieldSelector=status.phase%3DRunning")["items"]
        except (OSError, urllib.error.URLError) as error:
            log(f"cannot list pods: {error}")
            time.sleep(POLL_SECONDS)
            continue
        wanted = {}
        for item in listed:
            container = container_of(item, images)
            if container and item["status"].get("podIP") and not item["metadata"].get("deletionTimestamp"):
                wanted[item["metadata"]["uid"]] = (item, container)
        for uid in list(running):
            if uid not in wanted:
                stop(running.pop(uid))
        for uid, (item, container) in wanted.items():
            pod = running.get(uid)
            if pod is None:
                pod = running[uid] = Pod(item, container, images[container["image"]], options.run)
            try:
                if pod.process is None or pod.process.poll() is not None:
                    if pod.process is not None:
                        log(f"{pod.key} exited with {pod.process.returncode}; restarting")
                        pod.process = None
                        pod.restarts += 1
                        pod.next_start = time.monotonic() + min(2 ** pod.restarts, RESTART_BACKOFF_CAP)
                    if time.monotonic() >= pod.next_start:
                        start(api, pod)
                else:
                    sync_volumes(api, pod, container)
            except (OSError, urllib.error.URLError, KeyError) as error:
                log(f"{pod.key}: {error}")
        time.sleep(POLL_SECONDS)
    for pod in running.values():
        stop(pod)
    return 0


if __name__ == "__main__":
    sys.exit(main())
