"""What a CDK app finds in an account before `cdk deploy`: the bootstrap (the version CDK checks
in SSM, the assets bucket) and the cluster's OIDC provider, which its IRSA roles name; and what
`cdk deploy` does before it creates the stack: each file asset of cdk.out published to the
bucket. All of it is removed again, so that the rehearsal's final listing sees only stacks."""

import io
import json
import os
import zipfile

BOOTSTRAP_VERSION = ("/cdk-bootstrap/hnb659fds/version", "21")


class CdkAccount:
    """`cluster_provider`: the app names a cluster made elsewhere, so the cluster's OIDC provider
    exists before it (its owner made it with the cluster)."""

    def __init__(self, world, cluster_provider):
        self.world, self.buckets, self.provider = world, set(), None
        world.client("ssm").put_parameter(Name=BOOTSTRAP_VERSION[0], Value=BOOTSTRAP_VERSION[1], Type="String")
        if cluster_provider:
            self.provider = world.client("iam").create_open_id_connect_provider(
                Url=world.cluster.issuer, ClientIDList=["sts.amazonaws.com"], ThumbprintList=["0" * 40])["OpenIDConnectProviderArn"]

    def publish(self, cdk_out, name):
        """Uploads the file assets of stack `name` as the CDK CLI does (a directory zipped,
        modes kept); returns the stack's template."""
        with open(os.path.join(cdk_out, f"{name}.assets.json")) as file:
            assets = json.load(file)
        s3 = self.world.client("s3")
        for asset in assets.get("files", {}).values():
            source = os.path.join(cdk_out, asset["source"]["path"])
            if asset["source"].get("packaging") == "zip":
                body = zipped(source)
            else:
                with open(source, "rb") as file:
                    body = file.read()
            for destination in asset["destinations"].values():
                bucket = destination["bucketName"].replace("${AWS::AccountId}", self.world.account)
                bucket = bucket.replace("${AWS::Region}", self.world.region)
                if bucket not in self.buckets:
                    s3.create_bucket(Bucket=bucket)
                    self.buckets.add(bucket)
                s3.put_object(Bucket=bucket, Key=destination["objectKey"], Body=body)
        with open(os.path.join(cdk_out, f"{name}.template.json")) as file:
            return json.load(file)

    def remove(self):
        s3 = self.world.client("s3")
        for bucket in self.buckets:
            for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
                s3.delete_object(Bucket=bucket, Key=item["Key"])
            s3.delete_bucket(Bucket=bucket)
        if self.provider:
            self.world.client("iam").delete_open_id_connect_provider(OpenIDConnectProviderArn=self.provider)
        self.world.client("ssm").delete_parameter(Name=BOOTSTRAP_VERSION[0])


def zipped(directory):
    """The directory as a zip, each file's mode kept (a function's bootstrap stays executable)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for root, _, files in os.walk(directory):
            for file in sorted(files):
                path = os.path.join(root, file)
                info = zipfile.ZipInfo(os.path.relpath(path, directory))
                info.external_attr = (os.stat(path).st_mode & 0o777 | 0o100000) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                with open(path, "rb") as content:
                    archive.writestr(info, content.read())
    return out.getvalue()
