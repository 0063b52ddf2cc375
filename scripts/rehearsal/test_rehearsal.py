"""The rehearsal driver's own checks (`python -m unittest rehearsal.test_rehearsal`, run by
`make test`): what it cannot evaluate fails naming the resource and the function, the engine
orders, rolls back and cleans up as CloudFormation does, and the STS check accepts exactly what
an AWS SDK signs."""

import io
import threading
import time
import unittest

from .custom import stringify
from .memory import MemoryLimit, own_cgroup
from .errors import TemplateError
from .public import presigned_signature
from .trust import caller_allowed, service_allowed, web_identity_allowed
from .resources import InlinePolicy, Providers
from .stack import Stack, StackFailed
from .template import parse

TEMPLATE = """
Parameters:
  Name: {Type: String, Default: a, AllowedPattern: "[a-z]+"}
  Fail: {Type: String, Default: ""}
Conditions:
  Failing: !Not [!Equals [!Ref Fail, ""]]
Rules:
  NotB:
    Assertions:
      - Assert: !Not [!Equals [!Ref Name, b]]
        AssertDescription: Name must not be b
Resources:
  First: {Type: Test::Thing, Properties: {Value: !Ref Name}}
  Second: {Type: Test::Thing, Properties: {Value: !Sub "${First}-${First.Echo}"}}
  Third: {Type: Test::Thing, DependsOn: Second, Properties: {Value: !If [Failing, fail, ok]}}
Outputs:
  Out: {Value: !GetAtt Third.Echo}
"""


class Things:
    """A provider for the engine tests: records what it was asked, fails on Value "fail"."""

    def __init__(self):
        self.log, self.lock = [], threading.Lock()

    def _record(self, entry):
        with self.lock:
            self.log.append(entry)

    def create(self, stack, resource):
        time.sleep(0.01)
        if resource.properties.get("Value") == "fail":
            raise RuntimeError("told to fail")
        if resource.properties.get("Value") == "fail-with-id":
            error = RuntimeError("told to fail")
            error.physical = "half-made"
            raise error
        self._record(("create", resource.logical, resource.properties["Value"]))
        return f"{resource.logical}-id", {"Echo": resource.properties["Value"]}

    def update(self, stack, resource, properties):
        if properties.get("Value") == "fail":
            raise RuntimeError("told to fail")
        self._record(("update", resource.logical, properties["Value"]))
        return resource.physical, {"Echo": properties["Value"]}

    def delete(self, stack, resource):
        if resource.properties.get("Value") == "stuck":
            raise RuntimeError("cannot delete")
        self._record(("delete", resource.logical))


class ParameterNotFound(Exception):
    """What boto3's SSM client raises for a name it does not hold."""


class World:
    region, account = "us-east-1", "123456789012"

    def __init__(self):
        from .events import Events

        self.things = Things()
        self.providers = Providers()
        self.providers.by_type["Test::Thing"] = self.things
        self.exports, self.stacks, self.lock = {}, [], threading.Lock()
        self.events = Events(out=io.StringIO())
        self.ssm = {"/cdk-bootstrap/hnb659fds/version": "21"}

    def client(self, service):
        assert service == "ssm", service
        world = self

        class Ssm:
            exceptions = type("Exceptions", (), {"ParameterNotFound": ParameterNotFound})

            def get_parameter(self, Name):  # noqa: N803 (boto3's name)
                if Name not in world.ssm:
                    raise ParameterNotFound(Name)
                return {"Parameter": {"Value": world.ssm[Name]}}

        return Ssm()


def stack(text=TEMPLATE, **values):
    world = World()
    return Stack(world, "test", parse(text, "test"), values), world.things


class Engine(unittest.TestCase):
    def test_create_follows_references_and_depends_on(self):
        s, things = stack()
        s.create()
        order = [entry[1] for entry in things.log]
        self.assertEqual(order, ["First", "Second", "Third"])
        self.assertEqual(things.log[1], ("create", "Second", "First-id-a"))
        self.assertEqual(s.outputs, {"Out": "ok"})

    def test_a_failed_create_deletes_what_it_made_in_reverse(self):
        s, things = stack(Fail="yes")
        with self.assertRaisesRegex(StackFailed, "^Third: told to fail"):
            s.create()
        self.assertEqual([e for e in things.log if e[0] == "delete"], [("delete", "Second"), ("delete", "First")])
        self.assertEqual(s.resources, {})

    def test_a_rollback_that_cannot_delete_says_so(self):
        s, _ = stack(TEMPLATE.replace("!Ref Name}", "stuck}", 1), Fail="yes")
        with self.assertRaisesRegex(StackFailed, "the rollback failed too: First: cannot delete"):
            s.create()

    def test_a_custom_resource_that_failed_with_an_id_gets_a_delete(self):
        s, things = stack(TEMPLATE.replace("fail, ok", "fail-with-id, ok"), Fail="yes")
        with self.assertRaises(StackFailed):
            s.create()
        self.assertEqual([e for e in things.log if e[0] == "delete"], [("delete", "Third"), ("delete", "Second"), ("delete", "First")])

    def test_an_update_changes_only_what_changed_and_a_failed_one_goes_back(self):
        s, things = stack()
        s.create()
        template = parse(TEMPLATE, "test")
        s.update(template, {"Name": "c"})
        self.assertEqual([e for e in things.log if e[0] == "update"], [("update", "First", "c"), ("update", "Second", "First-id-c")])
        things.log.clear()
        with self.assertRaisesRegex(StackFailed, "^Third: told to fail"):
            s.update(template, {"Name": "d", "Fail": "yes"})
        updates = [e for e in things.log if e[0] == "update"]
        # Forward: First and Second; back, dependents first, with the old values, the failed
        # one included (it may have changed part of itself).
        self.assertEqual(updates[:2], [("update", "First", "d"), ("update", "Second", "First-id-d")])
        self.assertEqual(updates[2:], [("update", "Third", "ok"), ("update", "Second", "First-id-c"), ("update", "First", "c")])
        self.assertEqual(s.resources["First"].properties, {"Value": "c"})

    def test_delete_goes_dependents_first(self):
        s, things = stack()
        s.create()
        things.log.clear()
        s.delete()
        self.assertEqual(things.log, [("delete", "Third"), ("delete", "Second"), ("delete", "First")])


class BadInput(unittest.TestCase):
    def fails(self, text, resource, function, **values):
        s, _ = stack(text, **values)
        with self.assertRaises((StackFailed, TemplateError)) as caught:
            s.create()
        message = str(caught.exception)
        self.assertIn(resource, message)
        self.assertIn(function, message)

    def test_an_unknown_intrinsic_names_the_resource_and_the_function(self):
        self.fails("Resources:\n  A: {Type: Test::Thing, Properties: {Value: {'Fn::Bogus': x}}}\n", "A", "Fn::Bogus")

    def test_an_unknown_transform_function_is_refused_not_skipped(self):
        self.fails("Resources:\n  A: {Type: Test::Thing, Properties: {Value: !Transform {Name: X}}}\n", "A", "Fn::Transform")

    def test_a_reference_to_nothing(self):
        self.fails("Resources:\n  A: {Type: Test::Thing, Properties: {Value: !Ref Nope}}\n", "A", "Nope")

    def test_an_attribute_the_type_does_not_return(self):
        self.fails("Resources:\n  A: {Type: Test::Thing, Properties: {Value: x}}\n"
                   "  B: {Type: Test::Thing, Properties: {Value: !GetAtt A.Nope}}\n", "B", "Fn::GetAtt")

    def test_an_unknown_type(self):
        self.fails("Resources:\n  A: {Type: AWS::Made::Up}\n", "A", "AWS::Made::Up")

    def test_a_property_no_provider_applies(self):
        self.fails("Resources:\n  Q: {Type: AWS::SQS::Queue, Properties: {Shiny: true}}\n", "Q", "Shiny")

    def test_a_cycle(self):
        self.fails("Resources:\n  A: {Type: Test::Thing, DependsOn: B}\n  B: {Type: Test::Thing, DependsOn: A}\n", "A", "cycle")

    def test_a_rule_and_a_pattern(self):
        self.fails(TEMPLATE, "Rules.NotB", "Name must not be b", Name="b")
        with self.assertRaisesRegex(TemplateError, "Parameters.Name does not match its AllowedPattern"):
            stack(Name="B1")

    def test_cdk_bootstrap_version_from_ssm_and_its_rule(self):
        text = """
Parameters:
  BootstrapVersion: {Type: "AWS::SSM::Parameter::Value<String>", Default: /cdk-bootstrap/hnb659fds/version}
Rules:
  CheckBootstrapVersion:
    Assertions:
      - Assert: {"Fn::Not": [{"Fn::Contains": [["1", "2", "3", "4", "5"], {Ref: BootstrapVersion}]}]}
        AssertDescription: CDK bootstrap stack version 6 required.
Resources:
  A: {Type: Test::Thing, Properties: {Value: !Ref BootstrapVersion}}
"""
        made, things = stack(text)
        made.create()
        self.assertEqual(things.log, [("create", "A", "21")])
        old = World()
        old.ssm["/cdk-bootstrap/hnb659fds/version"] = "5"
        with self.assertRaisesRegex((StackFailed, TemplateError), "Rules.CheckBootstrapVersion fails: CDK bootstrap stack version 6"):
            Stack(old, "old", parse(text, "test"), {}).create()
        with self.assertRaisesRegex(TemplateError, "Parameters.BootstrapVersion names SSM parameter /none, which does not exist"):
            stack(text, BootstrapVersion="/none")

    def test_bad_yaml_names_the_line_not_the_text(self):
        with self.assertRaises(TemplateError) as caught:
            parse("Resources:\n  A: {Type: [secret\n", "t.yaml")
        self.assertIn("line", str(caught.exception))
        self.assertNotIn("secret", str(caught.exception))


class FakeIam:
    """Inline role policies, as IAM keeps them: {(role, name): document}."""

    class exceptions:  # noqa: N801 (boto3's name)
        class NoSuchEntityException(Exception):
            pass

    def __init__(self):
        self.policies = {}

    def put_role_policy(self, RoleName, PolicyName, PolicyDocument):  # noqa: N803 (boto3's names)
        self.policies[(RoleName, PolicyName)] = PolicyDocument

    def delete_role_policy(self, RoleName, PolicyName):  # noqa: N803
        if self.policies.pop((RoleName, PolicyName), None) is None:
            raise self.exceptions.NoSuchEntityException(RoleName)


class InlinePolicies(unittest.TestCase):
    def test_an_update_moves_the_policy_and_a_delete_survives_a_role_deleted_first(self):
        iam = FakeIam()
        world = type("World", (), {"client": staticmethod(lambda service: iam)})()
        stack = type("Stack", (), {"world": world, "physical_name": staticmethod(lambda logical: f"{logical}-X")})()
        resource = type("Resource", (), {"logical": "Grants", "type": "AWS::IAM::Policy", "properties": {
            "PolicyName": "p", "PolicyDocument": {"Statement": []}, "Roles": ["a", "b"]}})()
        provider = InlinePolicy("Roles")
        resource.physical, _ = provider.create(stack, resource)
        self.assertEqual(set(iam.policies), {("a", "p"), ("b", "p")})
        new = {"PolicyName": "p", "PolicyDocument": {"Statement": [1]}, "Roles": ["b", "c"]}
        provider.update(stack, resource, new)
        self.assertEqual(iam.policies, {("b", "p"): '{"Statement": [1]}', ("c", "p"): '{"Statement": [1]}'})
        resource.properties = new
        del iam.policies[("c", "p")]  # role c deleted first, its inline policies with it
        provider.delete(stack, resource)
        self.assertEqual(iam.policies, {})


class Memory(unittest.TestCase):
    def test_a_function_past_its_memory_size_is_killed_and_counted(self):
        import os
        import subprocess
        import sys

        parent = own_cgroup()
        self.assertIsNotNone(parent, "no writable cgroup v1 memory controller: the rehearsal cannot hold MemorySize (run as root)")
        limit = MemoryLimit(parent, f"kedaform-test-{os.getpid()}", 64)
        try:
            grow = "import sys; block = bytearray(int(sys.argv[1]) * 1024 * 1024); block[::4096] = b'x' * len(block[::4096])"
            small = subprocess.run(limit.command([sys.executable, "-c", grow, "16"]))
            self.assertEqual((small.returncode, limit.oom_kills()), (0, 0))
            large = subprocess.run(limit.command([sys.executable, "-c", grow, "200"]))
            self.assertEqual(large.returncode, -9, "the kernel kills a process past the limit")
            self.assertEqual(limit.oom_kills(), 1)
        finally:
            limit.remove()


class Requests(unittest.TestCase):
    def test_every_scalar_property_is_a_string(self):
        self.assertEqual(stringify({"A": 1, "B": True, "C": [2, {"D": False}], "E": "x"}),
                         {"A": "1", "B": "true", "C": ["2", {"D": "false"}], "E": "x"})

    def test_the_sts_check_accepts_what_botocore_presigns_and_nothing_else(self):
        import urllib.parse

        from botocore.auth import SigV4QueryAuth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        credentials = Credentials("ASIAEXAMPLE", "secret", "token")
        request = AWSRequest("GET", "https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15",
                             headers={"x-k8s-aws-id": "cluster"})
        SigV4QueryAuth(credentials, "sts", "us-east-1", expires=60).add_auth(request)
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(request.url).query))
        signature = query.pop("X-Amz-Signature")
        headers = {"host": "sts.us-east-1.amazonaws.com", "x-k8s-aws-id": "cluster"}
        self.assertIn(signature, presigned_signature("secret", "GET", "sts.us-east-1.amazonaws.com", "/", query, headers))
        self.assertNotIn(signature, presigned_signature("other", "GET", "sts.us-east-1.amazonaws.com", "/", query, headers))
        headers["x-k8s-aws-id"] = "another-cluster"
        self.assertNotIn(signature, presigned_signature("secret", "GET", "sts.us-east-1.amazonaws.com", "/", query, headers))


class Trust(unittest.TestCase):
    """The STS endpoint's reading of trust policies, where moto's differs from IAM's."""

    ACCOUNT = "123456789012"
    KEDA = f"arn:aws:iam::{ACCOUNT}:role/keda-operator"

    def test_a_role_arn_covers_its_sessions_and_nothing_else(self):
        policy = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": self.KEDA}, "Action": "sts:AssumeRole"}]}
        session = f"arn:aws:sts::{self.ACCOUNT}:assumed-role/keda-operator/1700000000"
        self.assertTrue(caller_allowed(policy, session, self.ACCOUNT))
        self.assertFalse(caller_allowed(policy, f"arn:aws:sts::{self.ACCOUNT}:assumed-role/other/1", self.ACCOUNT))
        denied = {"Statement": policy["Statement"] + [{"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "sts:*"}]}
        self.assertFalse(caller_allowed(denied, session, self.ACCOUNT))

    def test_web_identity_needs_the_provider_and_the_conditions(self):
        provider = f"arn:aws:iam::{self.ACCOUNT}:oidc-provider/oidc.example/id/X"
        policy = {"Statement": [{"Effect": "Allow", "Principal": {"Federated": provider}, "Action": "sts:AssumeRoleWithWebIdentity",
                                 "Condition": {"StringEquals": {"oidc.example/id/X:sub": "system:serviceaccount:keda:keda-operator",
                                                                "oidc.example/id/X:aud": "sts.amazonaws.com"}}}]}
        context = {"oidc.example/id/X:sub": "system:serviceaccount:keda:keda-operator", "oidc.example/id/X:aud": "sts.amazonaws.com"}
        self.assertTrue(web_identity_allowed(policy, provider, context))
        self.assertFalse(web_identity_allowed(policy, provider, dict(context, **{"oidc.example/id/X:sub": "system:serviceaccount:keda:other"})))
        self.assertFalse(web_identity_allowed(policy, provider.replace("X", "Y"), context))

    def test_only_the_named_service_may_assume_a_function_role(self):
        policy = {"Statement": {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}}
        self.assertTrue(service_allowed(policy, "lambda.amazonaws.com"))
        self.assertFalse(service_allowed(policy, "ec2.amazonaws.com"))


if __name__ == "__main__":
    unittest.main()
