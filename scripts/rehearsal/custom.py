"""A custom resource's request as CloudFormation makes it: the function its ServiceToken names
invoked asynchronously with the request event (every property value a string, ServiceToken
included, OldResourceProperties on Update), the answer awaited on the pre-signed ResponseURL
(here, an HTTP endpoint of the rehearsal's) for ServiceTimeout seconds (3600 without one), and
checked as CloudFormation checks it."""

import json
import threading
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .errors import TemplateError

MAX_RESPONSE_BYTES = 4096


class Failed(RuntimeError):
    """A FAILED answer. `physical` is the PhysicalResourceId it named: after a failed Create,
    CloudFormation's rollback sends that resource a Delete."""

    def __init__(self, reason, physical):
        super().__init__(reason)
        self.physical = physical
DEFAULT_TIMEOUT = 3600


def stringify(value):
    """CloudFormation hands a custom resource every scalar property as a string."""
    if isinstance(value, dict):
        return {key: stringify(item) for key, item in value.items()}
    if isinstance(value, list):
        return [stringify(item) for item in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class _Pending:
    def __init__(self):
        self.done = threading.Event()
        self.body = None
        self.error = None


class CustomResources:
    def __init__(self, lambdas):
        self.lambdas = lambdas
        self.pending = {}
        self.requests = {}
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self):  # noqa: N802 (http.server's name)
                key = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path.rsplit("/", 1)[-1])
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(min(length, 1 << 20))
                with owner.lock:
                    pending = owner.pending.get(key)
                if pending is None:
                    self.send_response(403)  # an expired or unknown pre-signed URL
                else:
                    pending.body = body if length <= 1 << 20 else b"x" * (MAX_RESPONSE_BYTES + 1)
                    pending.done.set()
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def send(self, stack, resource, kind, properties, old=None):
        """Sends one request and returns (physical id, Data) from its SUCCESS answer; raises
        with the answer's Reason on FAILED, and on no answer within ServiceTimeout."""
        token = properties.get("ServiceToken")
        if not isinstance(token, str):
            raise TemplateError(resource.logical, "ServiceToken", "is missing")
        function = self.lambdas.find(token)
        if function is None:
            raise TemplateError(resource.logical, "ServiceToken", "names no function of this account (SNS tokens are not rehearsed)")
        timeout = int(properties.get("ServiceTimeout", DEFAULT_TIMEOUT))
        request_id = str(uuid.uuid4())
        key = f"{stack.id}|{resource.logical}|{request_id}"
        url = (f"http://127.0.0.1:{self.server.server_address[1]}/cloudformation-custom-resource-response-"
               f"{stack.world.region.replace('-', '')}/{urllib.parse.quote(key, safe='')}"
               f"?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=7200")
        event = {
            "RequestType": kind, "ServiceToken": token, "ResponseURL": url, "StackId": stack.id,
            "RequestId": request_id, "LogicalResourceId": resource.logical, "ResourceType": resource.type,
            "ResourceProperties": stringify(properties),
        }
        if kind != "Create":
            event["PhysicalResourceId"] = resource.physical
        if kind == "Update":
            event["OldResourceProperties"] = stringify(old)
        pending = _Pending()
        with self.lock:
            self.pending[key] = pending
            self.requests[resource.type] = self.requests.get(resource.type, 0) + 1

        def failed(message):
            pending.error = message
            pending.done.set()

        self.lambdas.invoke_async(token, json.dumps(event).encode(), failed)
        answered = pending.done.wait(timeout)
        with self.lock:
            del self.pending[key]
        if not answered:
            raise RuntimeError("CloudFormation did not receive a response from your Custom Resource within its ServiceTimeout")
        if pending.error is not None:
            raise RuntimeError(f"the function failed three times without answering: {pending.error}")
        return self._check(pending.body, event, kind, resource)

    @staticmethod
    def _check(body, event, kind, resource):
        if len(body) > MAX_RESPONSE_BYTES:
            raise RuntimeError("Response object is too long.")
        try:
            answer = json.loads(body)
        except ValueError:
            raise RuntimeError("Invalid response object: not JSON") from None
        for field in ("StackId", "RequestId", "LogicalResourceId"):
            if answer.get(field) != event[field]:
                raise RuntimeError(f"Invalid response object: {field} does not match the request")
        physical = answer.get("PhysicalResourceId")
        if not isinstance(physical, str) or not physical:
            raise RuntimeError("Invalid PhysicalResourceId")
        if answer.get("Status") == "FAILED":
            raise Failed(answer.get("Reason") or "See the details in CloudWatch Log Stream", physical)
        if answer.get("Status") != "SUCCESS":
            raise RuntimeError("Invalid response object: Status is neither SUCCESS nor FAILED")
        if kind == "Delete" and physical != event["PhysicalResourceId"]:
            raise RuntimeError("Invalid response: a Delete answered another PhysicalResourceId")
        data = answer.get("Data") or {}
        if not isinstance(data, dict):
            raise RuntimeError("Invalid response object: Data is not an object")
        return physical, dict(data)

    def close(self):
        self.server.shutdown()
