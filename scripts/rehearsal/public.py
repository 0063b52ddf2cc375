"""The two public HTTPS endpoints the deployed system reaches by name, served on one address of
the cluster's network namespace (hosts file: scripts/rehearse.sh) with a CA of the rehearsal's
own, which the authenticator and the functions trust (SSL_CERT_FILE):

- STS (`sts.<region>.amazonaws.com`): aws-iam-authenticator verifies a kube token by sending
  its pre-signed GetCallerIdentity. The signature is checked against moto's own credentials
  and the identity is moto's answer, in the JSON form the authenticator asks for.
  Pods' AssumeRoleWithWebIdentity (IRSA) is checked as STS checks it: the token's signature
  against the cluster's service-account key (what EKS publishes at the OIDC issuer), the issuer
  an OIDC provider of the account (in moto), the audience one of its client ids, and the role's
  trust policy (its Federated principal and StringEquals/StringLike conditions on
  `<issuer>:sub` and `:aud`); the credentials are moto's. A signed AssumeRole is checked with
  moto's signature check and its evaluation of the caller's policies, and the target role's
  trust as IAM reads it: a role ARN as principal covers that role's sessions (moto compares the
  session's ARN with it and refuses). Every other signed STS call is moto's own.
- GitHub releases: KEDA's release manifest, from the mirror directory the rehearsal is given
  (KEDAFORM_KEDA_MIRROR), at the path the Lambda asks for.
"""

import base64
import datetime
import hashlib
import hmac
import json
import os
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.x509.oid import NameOID

from . import trust

STS_HOSTS = ("sts.amazonaws.com",)
GITHUB_HOSTS = ("github.com",)
# The names the server certificate holds.
HOSTS = ["sts.amazonaws.com", "sts.us-east-1.amazonaws.com", "github.com"]


def _name(common):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_ca(directory, hosts):
    """A CA and a server certificate for `hosts`; returns (ca.pem, server.pem, server.key)."""
    os.makedirs(directory, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("kedaform rehearsal CA")).issuer_name(_name("kedaform rehearsal CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    server = (x509.CertificateBuilder().subject_name(_name(hosts[0])).issuer_name(ca.subject)
              .public_key(key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
              .add_extension(x509.SubjectAlternativeName([x509.DNSName(host) for host in hosts]), critical=False)
              .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
              .sign(ca_key, hashes.SHA256()))
    paths = [os.path.join(directory, name) for name in ("ca.pem", "server.pem", "server.key")]
    with open(paths[0], "wb") as out:
        out.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(paths[1], "wb") as out:
        out.write(server.public_bytes(serialization.Encoding.PEM))
    with open(paths[2], "wb") as out:
        out.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return paths


def _sign(key, message):
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def presigned_signature(secret, method, host, path, query, headers):
    """SigV4 of a pre-signed request: `query` without X-Amz-Signature, `headers` the signed
    ones (lower-case names). Returns the hex signatures for both payload forms SDKs use."""
    credential = query["X-Amz-Credential"].split("/")
    date, region, service = credential[1], credential[2], credential[3]
    canonical_query = "&".join(
        f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}" for k, v in sorted(query.items()))
    signed = query["X-Amz-SignedHeaders"].split(";")
    canonical_headers = "".join(f"{name}:{headers.get(name, '').strip()}\n" for name in signed)
    results = []
    for payload in ("UNSIGNED-PAYLOAD", hashlib.sha256(b"").hexdigest()):
        canonical = "\n".join([method, path, canonical_query, canonical_headers, ";".join(signed), payload])
        scope = f"{date}/{region}/{service}/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", query["X-Amz-Date"], scope, hashlib.sha256(canonical.encode()).hexdigest()])
        key = _sign(_sign(_sign(_sign(("AWS4" + secret).encode(), date), region), service), "aws4_request")
        results.append(hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest())
    return results


def _b64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sts_error(status, code, message):
    body = (f'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
            f"<Code>{code}</Code><Message>{message}</Message></Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>")
    return status, body.encode(), "text/xml"


class PublicEndpoints:
    def __init__(self, address, port, certificate, key, account, region, keda_mirror, moto_url, service_account_key):
        self.account, self.region, self.keda_mirror, self.moto_url = account, region, keda_mirror, moto_url
        with open(service_account_key, "rb") as pem:
            self.service_account_key = serialization.load_pem_public_key(pem.read())
        self.sts_calls = 0
        self.web_identity_calls = 0
        self.errors = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                self.answer(b"")

            def do_POST(self):  # noqa: N802
                self.answer(self.rfile.read(min(int(self.headers.get("Content-Length", "0")), 1 << 20)))

            def answer(self, body):
                host = self.headers.get("Host", "").split(":")[0]
                try:
                    if host in STS_HOSTS or (host.startswith("sts.") and host.endswith(".amazonaws.com")):
                        status, reply, kind = owner.sts(self, host, body)
                    elif host in GITHUB_HOSTS and self.command == "GET":
                        status, reply, kind = owner.github(self.path)
                    else:
                        status, reply, kind = 404, b"unknown host", "text/plain"
                except Exception as error:  # noqa: BLE001 (answered, and failed in the verdict)
                    owner.errors.append(f"{host} {self.command}: {type(error).__name__}: {error}")
                    status, reply, kind = 500, b"the rehearsal's endpoint failed", "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((address, port), Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certificate, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def sts(self, request, host, body):
        parsed = urllib.parse.urlsplit(request.path)
        form = dict(urllib.parse.parse_qsl(body.decode(errors="replace"))) if body else {}
        action = form.get("Action") or dict(urllib.parse.parse_qsl(parsed.query)).get("Action")
        if action == "AssumeRoleWithWebIdentity":
            return self.web_identity(form or dict(urllib.parse.parse_qsl(parsed.query)))
        if action == "AssumeRole" and request.headers.get("Authorization"):
            return self.assume_role(request, body, form)
        if request.headers.get("Authorization"):
            return self.forward(request, body)
        return self.presigned(request, host)

    def forward(self, request, body):
        """A signed STS call: moto's, signature and policies checked there (the Host header,
        which the signature covers, goes along)."""
        forwarded = urllib.request.Request(self.moto_url + request.path, data=body or None, method=request.command,
                                           headers=dict(request.headers.items()))
        try:
            with urllib.request.urlopen(forwarded, timeout=30) as response:
                return response.status, response.read(), response.headers.get("Content-Type", "text/xml")
        except urllib.error.HTTPError as error:
            return error.code, error.read(), error.headers.get("Content-Type", "text/xml")

    def assume_role(self, request, body, form):
        """sts:AssumeRole (see the module docstring)."""
        from moto.core.exceptions import HTTPException, ServiceException
        from moto.iam.access_control import IAMPolicy, PermissionResult, IAMRequest
        from moto.iam.models import iam_backends
        from moto.sts.models import sts_backends
        from werkzeug.datastructures import Headers

        role_arn = form.get("RoleArn", "")
        headers = Headers([("-".join(p.capitalize() for p in name.split("-")), value) for name, value in request.headers.items()])
        try:
            check = IAMRequest(account_id=self.account, method=request.command, path=request.path,
                               data={key: [value] for key, value in form.items()}, body=body, headers=headers, action="AssumeRole")
            check.check_signature()
            results = [IAMPolicy(policy).is_action_permitted("sts:AssumeRole", role_arn)
                       for policy in check._access_key.collect_policies()]  # noqa: SLF001 (moto's own evaluation)
            caller = check._access_key.arn  # noqa: SLF001
        except HTTPException:
            return _sts_error(403, "SignatureDoesNotMatch", "The request signature does not match")
        if PermissionResult.DENIED in results or PermissionResult.PERMITTED not in results:
            return _sts_error(403, "AccessDenied", f"User: {caller} is not authorized to perform: sts:AssumeRole on resource: {role_arn}")
        try:
            role = iam_backends[self.account]["global"].get_role_by_arn(role_arn)
        except ServiceException:
            return _sts_error(403, "AccessDenied", f"User: {caller} is not authorized to perform: sts:AssumeRole on resource: {role_arn}")
        if not trust.caller_allowed(json.loads(urllib.parse.unquote(role.assume_role_policy_document)), caller, self.account):
            return _sts_error(403, "AccessDenied", f"User: {caller} is not authorized to perform: sts:AssumeRole on resource: {role_arn}")
        assumed = sts_backends[self.account]["global"].assume_role(
            region_name=self.region, role_session_name=form.get("RoleSessionName", "session"), role_arn=role_arn,
            policy=None, duration=int(form.get("DurationSeconds", "3600")), external_id=form.get("ExternalId"))
        expiration = assumed.expiration.strftime("%Y-%m-%dT%H:%M:%SZ")
        body = (
            '<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>'
            f"<AssumedRoleUser><Arn>{assumed.arn}</Arn><AssumedRoleId>{assumed.user_id}</AssumedRoleId></AssumedRoleUser>"
            f"<Credentials><SessionToken>{assumed.session_token}</SessionToken><SecretAccessKey>{assumed.secret_access_key}</SecretAccessKey>"
            f"<Expiration>{expiration}</Expiration><AccessKeyId>{assumed.access_key_id}</AccessKeyId></Credentials>"
            f"</AssumeRoleResult><ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata></AssumeRoleResponse>")
        return 200, body.encode(), "text/xml"

    def web_identity(self, form):
        """AssumeRoleWithWebIdentity, checked as STS checks it (module docstring)."""
        from moto.core.exceptions import ServiceException
        from moto.iam.models import iam_backends
        from moto.sts.models import sts_backends

        self.web_identity_calls += 1
        token, role_arn = form.get("WebIdentityToken", ""), form.get("RoleArn", "")
        try:
            header, payload, signature = token.split(".")
            self.service_account_key.verify(_b64url(signature), f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
            claims = json.loads(_b64url(payload))
        except (ValueError, InvalidSignature):
            return _sts_error(400, "InvalidIdentityToken", "The web identity token is not signed by the issuer's key")
        now = datetime.datetime.now(datetime.timezone.utc).timestamp()
        if claims.get("exp", 0) < now:
            return _sts_error(400, "ExpiredTokenException", "Token expired")
        issuer = claims.get("iss", "").removeprefix("https://")
        provider_arn = f"arn:aws:iam::{self.account}:oidc-provider/{issuer}"
        iam = iam_backends[self.account]["global"]
        try:
            provider = iam.get_open_id_connect_provider(provider_arn)
            role = iam.get_role_by_arn(role_arn)
        except ServiceException:
            return _sts_error(400, "InvalidIdentityToken", f"No OpenIDConnect provider found in your account for https://{issuer}, or no role {role_arn}")
        audiences = claims.get("aud", [])
        audiences = [audiences] if isinstance(audiences, str) else audiences
        audience = next((a for a in audiences if a in provider.client_id_list), None)
        if audience is None:
            return _sts_error(400, "InvalidIdentityToken", "Incorrect token audience")
        context = {f"{issuer}:sub": claims.get("sub", ""), f"{issuer}:aud": audience}
        if not trust.web_identity_allowed(json.loads(urllib.parse.unquote(role.assume_role_policy_document)), provider_arn, context):
            return _sts_error(403, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity")
        assumed = sts_backends[self.account]["global"].assume_role_with_web_identity(
            region_name=self.region, role_session_name=form.get("RoleSessionName", "session"), role_arn=role_arn,
            policy=None, duration=int(form.get("DurationSeconds", "3600")), external_id=None)
        expiration = assumed.expiration.strftime("%Y-%m-%dT%H:%M:%SZ")
        body = (
            '<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            "<AssumeRoleWithWebIdentityResult>"
            f"<SubjectFromWebIdentityToken>{claims.get('sub', '')}</SubjectFromWebIdentityToken><Audience>{audience}</Audience>"
            f"<AssumedRoleUser><Arn>{assumed.arn}</Arn><AssumedRoleId>{assumed.user_id}</AssumedRoleId></AssumedRoleUser>"
            f"<Credentials><SessionToken>{assumed.session_token}</SessionToken><SecretAccessKey>{assumed.secret_access_key}</SecretAccessKey>"
            f"<Expiration>{expiration}</Expiration><AccessKeyId>{assumed.access_key_id}</AccessKeyId></Credentials>"
            f"<Provider>{issuer}</Provider></AssumeRoleWithWebIdentityResult>"
            f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>")
        return 200, body.encode(), "text/xml"

    def presigned(self, request, host):
        """A pre-signed GetCallerIdentity (aws-iam-authenticator's token check), answered in JSON."""
        from moto.iam.access_control import CreateAccessKeyFailure, create_access_key
        from moto.sts.models import sts_backends

        self.sts_calls += 1
        parsed = urllib.parse.urlsplit(request.path)
        query = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
        denied = (403, json.dumps({"Error": {"Code": "SignatureDoesNotMatch"}}).encode(), "application/json")
        if query.get("Action") != "GetCallerIdentity" or "X-Amz-Signature" not in query or "X-Amz-Credential" not in query:
            return denied
        signature = query.pop("X-Amz-Signature")
        access_key_id = query["X-Amz-Credential"].split("/")[0]
        try:
            key = create_access_key(self.account, "aws", access_key_id,
                                    {"X-Amz-Security-Token": query.get("X-Amz-Security-Token", "")})
        except CreateAccessKeyFailure:
            return 403, json.dumps({"Error": {"Code": "InvalidClientTokenId"}}).encode(), "application/json"
        headers = {name.lower(): value for name, value in request.headers.items()}
        headers["host"] = host
        secret = key.create_credentials().secret_key
        if signature not in presigned_signature(secret, "GET", host, parsed.path or "/", query, headers):
            return denied
        issued = datetime.datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
        # STS honours a pre-signed GetCallerIdentity for 15 minutes whatever X-Amz-Expires says
        # (aws-iam-authenticator's token.go relies on it).
        if datetime.datetime.now(datetime.timezone.utc) > issued + datetime.timedelta(minutes=15):
            return 403, json.dumps({"Error": {"Code": "ExpiredToken"}}).encode(), "application/json"
        user_id, arn, account = sts_backends[self.account]["global"].get_caller_identity(access_key_id, self.region)
        body = {"GetCallerIdentityResponse": {"GetCallerIdentityResult": {"Account": account, "Arn": arn, "UserId": user_id},
                                              "ResponseMetadata": {"RequestId": "rehearsal"}}}
        return 200, json.dumps(body).encode(), "application/json"

    def close(self):
        self.server.shutdown()

    def github(self, path):
        prefix = "/kedacore/keda/releases/download/v"
        if self.keda_mirror and path.startswith(prefix):
            name = path.rsplit("/", 1)[-1]
            file = os.path.join(self.keda_mirror, name)
            if "/" not in name and os.path.isfile(file):
                return 200, open(file, "rb").read(), "application/octet-stream"
        return 404, b"Not Found", "text/plain"

