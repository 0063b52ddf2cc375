"""A template as CloudFormation reads it: YAML short-form intrinsics in their JSON form, and
the SAM transform applied by aws-sam-translator, the library CloudFormation's own
AWS::Serverless-2016-10-31 transform runs."""

import json

import yaml

from .errors import TemplateError

_SHORT = ["Ref", "Condition"] + [
    f"Fn::{name}"
    for name in (
        "And", "Base64", "Cidr", "Equals", "FindInMap", "GetAZs", "GetAtt", "If",
        "ImportValue", "Join", "Not", "Or", "Select", "Split", "Sub", "Transform",
    )
]


class _Loader(yaml.SafeLoader):
    """YAML 1.1 as CloudFormation parses it, with `!Ref`-style tags."""


def _construct(name):
    def construct(loader, node):
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if name == "Fn::GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}

    return construct


for _name in _SHORT:
    _Loader.add_constructor("!" + _name.removeprefix("Fn::"), _construct(_name))


def parse(text, source):
    """A template's text (YAML or JSON) as data; `source` names it in errors."""
    try:
        document = yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise TemplateError(source, "template", f"is not valid YAML{where}") from None
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(source, "template", "has no Resources mapping")
    return document


class _NoManagedPolicies:
    """SAM's policy-name shorthand needs the AWS managed policy list; kedaform's templates
    name roles instead, so a template that uses the shorthand fails, naming it."""

    def load(self):
        raise TemplateError("template", "Policies", "uses SAM managed-policy names, which the rehearsal does not resolve")


def translate(document, parameters, source):
    """The template after the SAM transform, as CloudFormation would run it."""
    transforms = document.get("Transform")
    if transforms is None:
        return document
    names = transforms if isinstance(transforms, list) else [transforms]
    unknown = [name for name in names if name != "AWS::Serverless-2016-10-31"]
    if unknown:
        raise TemplateError(source, "Transform", f"{unknown[0]} is not a transform the rehearsal runs")
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.translator.transform import transform

    try:
        # The transform sees a copy: it rewrites what it is given.
        return transform(json.loads(json.dumps(document)), dict(parameters), _NoManagedPolicies())
    except InvalidDocumentException as error:
        causes = "; ".join(str(cause) for cause in error.causes)
        raise TemplateError(source, "AWS::Serverless-2016-10-31", causes) from None
