"""What every stack of a rehearsal shares: moto (in this process, with IAM access control on),
the administrator identity CloudFormation acts as, the Lambda service, the custom-resource
response endpoint, EKS's stand-in, the exports and the event stream."""

import json
import logging
import os
import threading
import urllib.parse

import boto3
from botocore.config import Config

from . import trust
from .custom import CustomResources
from .eks import DescribeCluster, LocalCluster
from .events import Events
from .lambdas import Lambdas, free_port
from .memory import own_cgroup
from .resources import Providers

ACCOUNT = "123456789012"


class World:
    def __init__(self, workdir, emulator, moto_port, issuer, region="us-east-1", cluster_endpoint=None, ca_pem=b"", mapping=None,
                 function_environment=None):
        os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
        from moto import settings
        from moto.moto_server.threaded_moto_server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)

        self.region, self.account, self.workdir = region, ACCOUNT, workdir
        self.lock = threading.Lock()
        self.exports, self.stacks, self.stand_ins = {}, [], set()
        self.events = Events()
        self.providers = Providers()
        self.moto = ThreadedMotoServer("127.0.0.1", moto_port or free_port(), verbose=False)
        self.moto.start()
        self.moto_url = f"http://127.0.0.1:{self.moto._port}"
        settings.INITIAL_NO_AUTH_ACTION_COUNT = float("inf")
        self._admin = self._make_admin()
        # From here on every request to moto is checked against the caller's IAM policies.
        settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
        self._clients = {}
        self.cluster = LocalCluster(self, cluster_endpoint or "https://127.0.0.1:1", ca_pem, mapping, issuer)
        self.eks = DescribeCluster(self.cluster, ACCOUNT)
        endpoints = {"AWS_ENDPOINT_URL": self.moto_url, "AWS_ENDPOINT_URL_EKS": self.eks.url}
        endpoints.update(function_environment or {})
        self.lambdas = Lambdas(emulator, workdir, region, self._download, self.service_credentials, endpoints, own_cgroup())
        self.custom = CustomResources(self.lambdas)

    def _make_admin(self):
        """The identity `sam deploy` runs as: an IAM user with AdministratorAccess."""
        iam = boto3.client("iam", endpoint_url=self.moto_url, region_name=self.region,
                           aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
        iam.create_user(UserName="deployer")
        iam.attach_user_policy(UserName="deployer", PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
        key = iam.create_access_key(UserName="deployer")["AccessKey"]
        return {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}

    @property
    def admin_credentials(self):
        return dict(self._admin)

    def client(self, service):
        with self.lock:
            if service not in self._clients:
                self._clients[service] = boto3.client(
                    service, endpoint_url=self.moto_url, region_name=self.region,
                    config=Config(retries={"max_attempts": 2}), **self._admin)
            return self._clients[service]

    def _download(self, bucket, key):
        return self.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()

    def service_credentials(self, role_arn, function):
        """What the Lambda service gets for a function: AssumeRole of its execution role, which
        must trust lambda.amazonaws.com (else Lambda refuses the function, as here)."""
        from moto.sts.models import sts_backends

        name = role_arn.rsplit("/", 1)[-1]
        role = self.client("iam").get_role(RoleName=name)["Role"]
        document = role["AssumeRolePolicyDocument"]
        document = json.loads(urllib.parse.unquote(document)) if isinstance(document, str) else document
        if not trust.service_allowed(document, "lambda.amazonaws.com"):
            raise RuntimeError(f"{function}: The role defined for the function cannot be assumed by Lambda.")
        assumed = sts_backends[self.account]["global"].assume_role(
            region_name=self.region, role_session_name=function, role_arn=role_arn, policy=None,
            duration=3600, external_id=None)
        return {"AccessKeyId": assumed.access_key_id, "SecretAccessKey": assumed.secret_access_key,
                "SessionToken": assumed.session_token}

    def fetch_template(self, url, logical):
        parsed = urllib.parse.urlsplit(url)
        path = parsed.path.lstrip("/")
        if parsed.scheme == "s3":
            bucket, key = parsed.netloc, path
        elif url.startswith(self.moto_url + "/") or parsed.netloc.startswith("s3.") or parsed.netloc == "s3.amazonaws.com":
            # sam package against an endpoint URL names the object path-style on that endpoint.
            bucket, key = path.split("/", 1)
        elif ".s3." in parsed.netloc:
            bucket, key = parsed.netloc.split(".s3.", 1)[0], path
        else:
            from .errors import TemplateError

            raise TemplateError(logical, "TemplateURL", "is not an S3 URL (run sam package first)")
        return self._download(bucket, urllib.parse.unquote(key)).decode()

    def sam_parameters(self, values):
        return dict(values, **{"AWS::Region": self.region, "AWS::AccountId": self.account, "AWS::Partition": "aws"})

    def close(self):
        self.lambdas.close()
        self.custom.close()
        self.eks.close()
        self.moto.stop()

