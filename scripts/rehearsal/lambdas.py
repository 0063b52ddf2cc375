"""Lambda as it runs a function: the zip `sam package` uploaded, unpacked; its bootstrap run by
AWS's Lambda Runtime Interface Emulator with the function's Environment, Timeout and
MemorySize (a memory cgroup of that size: memory.py), and the credentials of its own execution role, obtained from moto's STS as the
Lambda service obtains them. Each concurrent invocation gets an execution environment of its
own, as Lambda scales out; an idle one is reused (a warm start). Asynchronous invocations (how
CloudFormation invokes custom resources) are retried twice on a function error, as Lambda does."""

import io
import os
import shutil
import socket
import stat
import subprocess
import threading
import time
import urllib.error
import urllib.request
import zipfile

from .memory import MemoryLimit

INVOKE_PATH = "/2015-03-31/functions/function/invocations"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _peak_rss_kib(pid):
    """VmHWM of pid's children (the bootstrap under the emulator): its peak resident set."""
    peak, children = 0, []
    try:
        # A Go process starts children from any of its threads: each thread lists its own.
        for task in os.listdir(f"/proc/{pid}/task"):
            children += open(f"/proc/{pid}/task/{task}/children").read().split()
    except OSError:
        return 0
    for child in children:
        try:
            for line in open(f"/proc/{child}/status"):
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            pass
    return peak


class Environment:
    """One execution environment: an emulator process with the function's bootstrap."""

    def __init__(self, function, index):
        self.port = free_port()
        runtime_port = free_port()
        self.log = open(os.path.join(function.directory, f"..{os.sep}{function.name}-{index}.log"), "ab")
        bootstrap = [os.path.join(function.directory, "bootstrap")]
        self.limit = None
        if function.runtime.memory_cgroup:
            self.limit = MemoryLimit(function.runtime.memory_cgroup, f"kedaform-{function.name}-{index}", function.memory_mib)
            bootstrap = self.limit.command(bootstrap)
        self.process = subprocess.Popen(
            [function.runtime.emulator, "--log-level", "error",
             "--runtime-interface-emulator-address", f"127.0.0.1:{self.port}",
             "--runtime-api-address", f"127.0.0.1:{runtime_port}", *bootstrap],
            cwd=function.directory, env=function.environment(), stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the Runtime Interface Emulator for {function.name} did not start; see its log") from None
                time.sleep(0.05)
        self.peak_kib = 0
        self.oom_kills = 0

    def invoke(self, payload, timeout):
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{INVOKE_PATH}", data=payload, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout + 5) as response:
                body = response.read()
                error = response.headers.get("X-Amz-Function-Error")
        except urllib.error.HTTPError as failure:
            body, error = failure.read(), "Unhandled"
        finally:
            self.peak_kib = max(self.peak_kib, _peak_rss_kib(self.process.pid))
        return body, error

    def stop(self):
        self.peak_kib = max(self.peak_kib, _peak_rss_kib(self.process.pid))
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait()
        self.log.close()
        if self.limit:
            self.oom_kills = self.limit.oom_kills()
            self.limit.remove()


class Function:
    def __init__(self, runtime, arn, name, logical, properties, credentials, directory):
        self.runtime, self.arn, self.name, self.logical, self.properties = runtime, arn, name, logical, properties
        self.credentials, self.directory = credentials, directory
        self.memory_mib = int(properties.get("MemorySize", 128))
        self.timeout = int(properties.get("Timeout", 3))
        self.idle, self.all, self.lock = [], [], threading.Lock()
        self.invocations = 0

    def environment(self):
        variables = {key: str(value) for key, value in self.properties.get("Environment", {}).get("Variables", {}).items()}
        log_group = self.properties.get("LoggingConfig", {}).get("LogGroup", f"/aws/lambda/{self.name}")
        variables.update({
            "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "en_US.UTF-8", "TZ": ":UTC",
            "AWS_LAMBDA_FUNCTION_NAME": self.name, "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mib), "AWS_LAMBDA_FUNCTION_TIMEOUT": str(self.timeout),
            "AWS_LAMBDA_LOG_GROUP_NAME": log_group, "AWS_LAMBDA_LOG_STREAM_NAME": f"rehearsal/{self.name}",
            "AWS_REGION": self.runtime.region, "AWS_DEFAULT_REGION": self.runtime.region,
            "AWS_EXECUTION_ENV": "AWS_Lambda_" + self.properties.get("Runtime", "provided.al2023"),
            "AWS_ACCESS_KEY_ID": self.credentials["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": self.credentials["SecretAccessKey"],
            "AWS_SESSION_TOKEN": self.credentials["SessionToken"],
        })
        variables.update(self.runtime.endpoints)
        return variables

    def invoke(self, payload):
        with self.lock:
            environment = self.idle.pop() if self.idle else None
            if environment is None:
                environment = Environment(self, len(self.all))
                self.all.append(environment)
            self.invocations += 1
        try:
            return environment.invoke(payload, self.timeout)
        finally:
            with self.lock:
                if environment in self.all:
                    self.idle.append(environment)

    def stop(self):
        with self.lock:
            for environment in self.all:
                environment.stop()
            self.runtime.peaks[self.logical] = max([self.runtime.peaks.get(self.logical, 0)] + [e.peak_kib for e in self.all])
            self.runtime.oom_kills[self.logical] = self.runtime.oom_kills.get(self.logical, 0) + sum(e.oom_kills for e in self.all)
            self.all, self.idle = [], []


class Lambdas:
    """The functions of every stack, by ARN. `service_credentials(role_arn)` returns what
    Lambda's AssumeRole of the execution role returns; `endpoints` the AWS_ENDPOINT_URL*
    settings every function gets (the rehearsal's moto and EKS stand-in)."""

    def __init__(self, emulator, workdir, region, download, service_credentials, endpoints, memory_cgroup):
        self.emulator, self.workdir, self.region = emulator, workdir, region
        self.download, self.service_credentials, self.endpoints = download, service_credentials, endpoints
        # Where the functions' memory cgroups go (memory.own_cgroup()); None: MemorySize not held.
        self.memory_cgroup = memory_cgroup
        self.functions, self.peaks, self.memory, self.oom_kills = {}, {}, {}, {}
        self.lock = threading.Lock()

    def register(self, arn, name, logical, properties):
        """Unpacks the function's zip and gets its role's credentials; `logical` (its logical
        id) keys the peak-RSS report across stacks."""
        code = properties["Code"]
        archive = zipfile.ZipFile(io.BytesIO(self.download(code["S3Bucket"], code["S3Key"])))
        names = archive.namelist()
        if names != ["bootstrap"]:
            raise RuntimeError(f"{name}: the zip holds {len(names)} entries; provided.al2023 runs one executable named bootstrap")
        mode = archive.getinfo("bootstrap").external_attr >> 16
        if not mode & stat.S_IXUSR:
            raise RuntimeError(f"{name}: bootstrap in the zip is not executable")
        directory = os.path.join(self.workdir, "functions", name)
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory)
        archive.extractall(directory)
        os.chmod(os.path.join(directory, "bootstrap"), 0o755)
        credentials = self.service_credentials(properties["Role"], name)
        with self.lock:
            self.functions[arn] = Function(self, arn, name, logical, properties, credentials, directory)
            self.memory[logical] = int(properties.get("MemorySize", 128))

    def unregister(self, arn):
        with self.lock:
            function = self.functions.pop(arn, None)
        if function:
            function.stop()

    def names(self):
        with self.lock:
            return [function.name for function in self.functions.values()]

    def find(self, arn):
        with self.lock:
            return self.functions.get(arn)

    def invoke_async(self, arn, payload, on_error):
        """Invokes as InvocationType Event does: returns at once; a function error is retried
        twice; the last one is reported to on_error."""
        function = self.find(arn)

        def run():
            for attempt in range(3):
                body, error = function.invoke(payload)
                if not error:
                    return
                if attempt < 2:
                    time.sleep(1 + attempt)
            on_error(body[:500].decode(errors="replace"))

        threading.Thread(target=run, daemon=True).start()

    def close(self):
        for arn in list(self.functions):
            self.unregister(arn)

    def report(self):
        """Per function's logical id: peak RSS (MiB) of any of its environments, MemorySize, and
        how many of its processes the kernel killed at MemorySize."""
        return {logical: (self.peaks.get(logical, 0) / 1024, self.memory.get(logical), self.oom_kills.get(logical, 0))
                for logical in self.peaks}

