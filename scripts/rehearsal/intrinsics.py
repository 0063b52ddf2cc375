"""CloudFormation's intrinsic functions and condition functions, evaluated against a stack's
parameters, conditions, created resources and exports. A function the rehearsal does not know,
or one it cannot evaluate, raises TemplateError naming the resource and the function."""

import base64
import ipaddress
import re

from .errors import TemplateError

NO_VALUE = object()
"""`Ref AWS::NoValue`: removes the property or list item it stands in."""

_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


def references(value):
    """Logical ids and parameter names `value` refers to through Ref, GetAtt and Sub."""
    found = set()

    def walk(node):
        if isinstance(node, dict):
            if len(node) == 1:
                (key, argument), = node.items()
                if key == "Ref" and isinstance(argument, str):
                    found.add(argument)
                elif key == "Fn::GetAtt":
                    target = argument[0] if isinstance(argument, list) else str(argument).split(".", 1)[0]
                    if isinstance(target, str):
                        found.add(target)
                elif key == "Fn::Sub":
                    template, variables = (argument, {}) if isinstance(argument, str) else (argument[0], argument[1])
                    if isinstance(template, str):
                        for name in _SUB_VARIABLE.findall(template):
                            if name not in variables:
                                found.add(name.split(".", 1)[0])
                    walk(variables)
                    return
            for item in node.values():
                walk(item)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(value)
    return {name for name in found if not name.startswith("AWS::")}


class Evaluator:
    """Evaluates one stack's expressions. `stack` answers parameter, pseudo_parameter,
    condition, ref, get_att, import_value and mapping lookups."""

    def __init__(self, stack):
        self.stack = stack

    def evaluate(self, value, where):
        """`value` with every intrinsic replaced by its result; `where` names the resource
        (or output, or rule) in errors."""
        result = self._eval(value, where)
        return None if result is NO_VALUE else result

    def condition(self, name, where):
        return self.stack.condition(name, where)

    def _eval(self, node, where):
        if isinstance(node, list):
            items = [self._eval(item, where) for item in node]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, argument), = node.items()
            if key == "Ref" or key == "Condition" or key.startswith("Fn::"):
                return self._function(key, argument, where)
        result = {}
        for key, item in node.items():
            item = self._eval(item, where)
            if item is not NO_VALUE:
                result[key] = item
        return result

    def _function(self, name, argument, where):
        handler = getattr(self, "_" + name.removeprefix("Fn::").lower(), None)
        if handler is None:
            raise TemplateError(where, name, "is not an intrinsic function the rehearsal knows")
        try:
            return handler(argument, where)
        except TemplateError:
            raise
        except (TypeError, ValueError, IndexError, KeyError, AttributeError):
            raise TemplateError(where, name, "has arguments of the wrong shape") from None

    def _string(self, value, where, function):
        value = self._eval(value, where)
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return str(value)
        if not isinstance(value, str):
            raise TemplateError(where, function, "needs a string here")
        return value

    def _ref(self, name, where):
        if not isinstance(name, str):
            raise TemplateError(where, "Ref", "needs a name")
        if name == "AWS::NoValue":
            return NO_VALUE
        if name.startswith("AWS::"):
            return self.stack.pseudo_parameter(name, where)
        found = self.stack.parameter(name)
        if found is not None:
            return found
        return self.stack.ref(name, where)

    def _getatt(self, argument, where):
        if isinstance(argument, str):
            argument = argument.split(".", 1)
        resource, attribute = argument
        attribute = self._string(attribute, where, "Fn::GetAtt")
        return self.stack.get_att(resource, attribute, where)

    def _sub(self, argument, where):
        template, variables = (argument, {}) if isinstance(argument, str) else argument
        if not isinstance(template, str) or not isinstance(variables, dict):
            raise TemplateError(where, "Fn::Sub", "needs a string and a mapping of variables")
        values = {key: self._eval(value, where) for key, value in variables.items()}

        def replace(match):
            name = match.group(1)
            if name in values:
                value = values[name]
            elif "." in name and not name.startswith("AWS::"):
                resource, attribute = name.split(".", 1)
                value = self.stack.get_att(resource, attribute, where)
            else:
                value = self._ref(name, where)
            if isinstance(value, (list, dict)) or value is NO_VALUE:
                raise TemplateError(where, "Fn::Sub", f"variable {name} is not a string")
            return str(value)

        text = _SUB_VARIABLE.sub(replace, template)
        return text.replace("${!", "${")

    def _join(self, argument, where):
        delimiter, items = argument
        items = self._eval(items, where)
        if not isinstance(items, list):
            raise TemplateError(where, "Fn::Join", "needs a list to join")
        return self._string(delimiter, where, "Fn::Join").join(self._string(item, where, "Fn::Join") for item in items)

    def _select(self, argument, where):
        index, items = argument
        index = int(self._string(index, where, "Fn::Select"))
        items = self._eval(items, where)
        if not isinstance(items, list) or not 0 <= index < len(items):
            raise TemplateError(where, "Fn::Select", "index is outside the list")
        return items[index]

    def _split(self, argument, where):
        delimiter, text = argument
        return self._string(text, where, "Fn::Split").split(self._string(delimiter, where, "Fn::Split"))

    def _if(self, argument, where):
        name, when_true, when_false = argument
        return self._eval(when_true if self.condition(name, where) else when_false, where)

    def _condition(self, name, where):
        return self.condition(name, where)

    def _equals(self, argument, where):
        left, right = (self._eval(side, where) for side in argument)
        return _canonical(left) == _canonical(right)

    def _not(self, argument, where):
        (value,) = argument
        return not self._boolean(value, where, "Fn::Not")

    def _and(self, argument, where):
        return all(self._boolean(value, where, "Fn::And") for value in argument)

    def _or(self, argument, where):
        return any(self._boolean(value, where, "Fn::Or") for value in argument)

    def _contains(self, argument, where):
        """Rules only: whether the list holds the value."""
        items, value = argument
        items = self._eval(items, where)
        if not isinstance(items, list):
            raise TemplateError(where, "Fn::Contains", "needs a list of strings")
        return _canonical(self._eval(value, where)) in [_canonical(item) for item in items]

    def _boolean(self, value, where, function):
        value = self._eval(value, where)
        if not isinstance(value, bool):
            raise TemplateError(where, function, "needs a condition")
        return value

    def _importvalue(self, argument, where):
        return self.stack.import_value(self._string(argument, where, "Fn::ImportValue"), where)

    def _base64(self, argument, where):
        return base64.b64encode(self._string(argument, where, "Fn::Base64").encode()).decode()

    def _getazs(self, argument, where):
        region = self._string(argument, where, "Fn::GetAZs") or self.stack.pseudo_parameter("AWS::Region", where)
        return [f"{region}{zone}" for zone in "abcdef"]

    def _findinmap(self, argument, where):
        name, first, second = (self._string(part, where, "Fn::FindInMap") for part in argument[:3])
        try:
            return self.stack.mapping(name)[first][second]
        except KeyError:
            raise TemplateError(where, "Fn::FindInMap", f"finds no {name}.{first}.{second}") from None

    def _cidr(self, argument, where):
        block, count, bits = argument
        network = ipaddress.ip_network(self._string(block, where, "Fn::Cidr"))
        prefix = network.max_prefixlen - int(self._string(bits, where, "Fn::Cidr"))
        subnets = network.subnets(new_prefix=prefix)
        return [str(next(subnets)) for _ in range(int(self._string(count, where, "Fn::Cidr")))]


def _canonical(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return value
