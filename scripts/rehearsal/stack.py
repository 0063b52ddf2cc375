"""A stack's life cycle as CloudFormation runs it: parameters checked against their
constraints, rules asserted, conditions evaluated, resources created in dependency order
(independent ones concurrently), updated in place or replaced, deleted in reverse order, and a
failed operation rolled back. What each resource type does is the provider's (resources.py)."""

import json
import re
import secrets
import string
import threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from .errors import TemplateError
from .intrinsics import Evaluator, references

WORKERS = 16


class StackFailed(Exception):
    """The operation failed; the stack was rolled back as CloudFormation would. `reason` is the
    first resource's failure."""


def _physical_suffix():
    return "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(12))


class Resource:
    def __init__(self, logical, definition):
        self.logical = logical
        self.type = definition.get("Type")
        self.definition = definition
        self.physical = None
        self.attributes = {}
        self.properties = None


class Stack:
    """One stack: `template` already translated (template.translate), `values` the
    parameter values given. `world` holds what every stack shares: providers, exports, events,
    AWS settings."""

    def __init__(self, world, name, template, values, parent=None):
        self.world = world
        self.name = name
        self.id = f"arn:aws:cloudformation:{world.region}:{world.account}:stack/{name}/{secrets.token_hex(16)}"
        self.parent = parent
        self.template = template
        self.parameters = self._check_parameters(template, values)
        self.resources = {}
        self.outputs = {}
        self.exports = []
        self.retained = []
        self.evaluator = Evaluator(self)
        self._lock = threading.Lock()
        self._conditions = {}

    # ------------------------------------------------------------------ lookups for intrinsics
    def parameter(self, name):
        return self.parameters.get(name)

    def pseudo_parameter(self, name, where):
        values = {
            "AWS::Region": self.world.region,
            "AWS::AccountId": self.world.account,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": self.name,
            "AWS::StackId": self.id,
            "AWS::NotificationARNs": [],
        }
        if name not in values:
            raise TemplateError(where, "Ref", f"names {name}, a pseudo parameter the rehearsal does not know")
        return values[name]

    def condition(self, name, where):
        if name not in self._conditions:
            conditions = self.template.get("Conditions", {})
            if name not in conditions:
                raise TemplateError(where, "Fn::If", f"names condition {name}, which the template does not define")
            self._conditions[name] = None  # a cycle reads as an error below
            value = self.evaluator.evaluate(conditions[name], f"Conditions.{name}")
            if not isinstance(value, bool):
                raise TemplateError(f"Conditions.{name}", "condition", "does not evaluate to true or false")
            self._conditions[name] = value
        value = self._conditions[name]
        if value is None:
            raise TemplateError(f"Conditions.{name}", "condition", "refers to itself")
        return value

    def ref(self, logical, where):
        return self._created(logical, where, "Ref").physical

    def get_att(self, logical, attribute, where):
        resource = self._created(logical, where, "Fn::GetAtt")
        if attribute not in resource.attributes:
            raise TemplateError(where, "Fn::GetAtt", f"asks {logical} for {attribute}, which a {resource.type} does not return")
        return resource.attributes[attribute]

    def import_value(self, name, where):
        exports = self.world.exports
        if name not in exports:
            raise TemplateError(where, "Fn::ImportValue", f"names export {name}, which no stack exports")
        return exports[name][1]

    def mapping(self, name):
        return self.template.get("Mappings", {})[name]

    def _created(self, logical, where, function):
        resource = self.resources.get(logical)
        if logical not in self.template["Resources"]:
            raise TemplateError(where, function, f"names {logical}, which is no parameter or resource of the template")
        if resource is None or resource.physical is None:
            raise TemplateError(where, function, f"names {logical}, which is not created (its condition is false)")
        return resource

    # ------------------------------------------------------------------ parameters and rules
    def _check_parameters(self, template, values):
        declared = template.get("Parameters", {})
        unknown = sorted(set(values) - set(declared))
        if unknown:
            raise TemplateError(self.name, "Parameters", f"{unknown[0]} is given but not declared")
        resolved = {}
        for name, spec in declared.items():
            value = values.get(name, spec.get("Default"))
            if value is None:
                raise TemplateError(self.name, "Parameters", f"{name} has no value and no default")
            value = value if isinstance(value, str) else (",".join(map(str, value)) if isinstance(value, list) else str(value))
            resolved[name] = self._check_parameter(name, spec, value)
        return resolved

    def _check_parameter(self, name, spec, value):
        kind = spec.get("Type", "String")
        fail = lambda what: TemplateError(self.name, f"Parameters.{name}", what)  # noqa: E731
        items = value.split(",") if kind in ("CommaDelimitedList", "List<Number>") else [value]
        if kind == "CommaDelimitedList":
            items = [item.strip() for item in items]
        for item in items:
            if kind in ("Number", "List<Number>"):
                try:
                    number = float(item)
                except ValueError:
                    raise fail("is not a number") from None
                if "MinValue" in spec and number < float(spec["MinValue"]):
                    raise fail(f"is below its MinValue {spec['MinValue']}")
                if "MaxValue" in spec and number > float(spec["MaxValue"]):
                    raise fail(f"is above its MaxValue {spec['MaxValue']}")
            if "AllowedValues" in spec and item not in [str(allowed) for allowed in spec["AllowedValues"]]:
                raise fail("is not one of its AllowedValues")
            if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], item):
                raise fail("does not match its AllowedPattern")
            if "MinLength" in spec and len(item) < int(spec["MinLength"]):
                raise fail(f"is shorter than its MinLength {spec['MinLength']}")
            if "MaxLength" in spec and len(item) > int(spec["MaxLength"]):
                raise fail(f"is longer than its MaxLength {spec['MaxLength']}")
        if kind in ("CommaDelimitedList", "List<Number>"):
            return items
        if kind.startswith("AWS::SSM::Parameter::Value<"):
            # The value given is the parameter's name; CloudFormation resolves it from SSM.
            try:
                return self.world.client("ssm").get_parameter(Name=value)["Parameter"]["Value"]
            except self.world.client("ssm").exceptions.ParameterNotFound:
                raise fail(f"names SSM parameter {value}, which does not exist") from None
        if kind not in ("String", "Number") and not kind.startswith("AWS::"):
            raise fail(f"has type {kind}, which the rehearsal does not know")
        return value

    def _check_rules(self):
        for name, rule in self.template.get("Rules", {}).items():
            where = f"Rules.{name}"
            if "RuleCondition" in rule and not self.evaluator.evaluate(rule["RuleCondition"], where):
                continue
            for assertion in rule.get("Assertions", []):
                if self.evaluator.evaluate(assertion["Assert"], where) is not True:
                    raise TemplateError(self.name, where, f"fails: {assertion.get('AssertDescription', 'assertion false')}")

    # ------------------------------------------------------------------ the graph
    def _wanted(self):
        """Logical ids whose condition holds, with the ids each depends on."""
        wanted = {}
        for logical, definition in self.template["Resources"].items():
            if not isinstance(definition, dict) or "Type" not in definition:
                raise TemplateError(logical, "Type", "is missing")
            if "Condition" in definition and not self.condition(definition["Condition"], logical):
                continue
            wanted[logical] = definition
        graph = {}
        for logical, definition in wanted.items():
            depends = definition.get("DependsOn", [])
            depends = [depends] if isinstance(depends, str) else depends
            # References in Metadata order resources too (a WaitConditionHandle that stands for
            # resources which may not exist, say).
            needed = (references(definition.get("Properties", {})) | references(definition.get("Metadata", {}))
                      | set(depends))
            needed = {name for name in needed if name not in self.parameters}
            for name in needed:
                if name not in self.template["Resources"]:
                    raise TemplateError(logical, "Ref", f"names {name}, which is no parameter or resource of the template")
            graph[logical] = {name for name in needed if name in wanted}
        self._check_acyclic(graph)
        return wanted, graph

    @staticmethod
    def _check_acyclic(graph):
        state = {}

        def visit(node, path):
            if state.get(node) == "done":
                return
            if state.get(node) == "open":
                raise TemplateError(node, "DependsOn", "is part of a dependency cycle: " + " -> ".join(path + [node]))
            state[node] = "open"
            for child in graph[node]:
                visit(child, path + [node])
            state[node] = "done"

        for node in graph:
            visit(node, [])

    def _run(self, nodes, graph, work, reverse=False):
        """Runs work(logical) for each node once all it waits for are done: dependencies
        first, or dependents first when `reverse`. Stops scheduling after the first failure and
        returns (done, first failure)."""
        waits = {node: set() for node in nodes}
        for node in nodes:
            for other in graph.get(node, ()):
                if other in waits:
                    if reverse:
                        waits[other].add(node)
                    else:
                        waits[node].add(other)
        done, failure, running = [], None, {}
        with ThreadPoolExecutor(WORKERS) as pool:
            while True:
                if failure is None:
                    for node in [n for n in waits if n not in running and n not in done and waits[n] <= set(done)]:
                        running[node] = pool.submit(work, node)
                if not running:
                    break
                finished, _ = wait(running.values(), return_when=FIRST_COMPLETED)
                for node, future in list(running.items()):
                    if future in finished:
                        del running[node]
                        error = future.exception()
                        if error is None:
                            done.append(node)
                        elif failure is None:
                            failure = (node, error)
        return done, failure

    # ------------------------------------------------------------------ operations
    def _event(self, logical, kind, status, reason=""):
        self.world.events.emit(self.name, logical, kind, status, reason)

    def _evaluate_properties(self, resource):
        properties = self.evaluator.evaluate(resource.definition.get("Properties", {}), resource.logical)
        return properties or {}

    def _provider(self, resource):
        return self.world.providers.find(resource.type, resource.logical)

    def _create_one(self, logical, definition):
        resource = Resource(logical, definition)
        self._event(logical, resource.type, "CREATE_IN_PROGRESS")
        try:
            resource.properties = self._evaluate_properties(resource)
            physical, attributes = self._provider(resource).create(self, resource)
        except Exception as error:
            self._event(logical, resource.type, "CREATE_FAILED", _reason(error))
            if getattr(error, "physical", None):
                # A custom resource that answered FAILED with an id: the rollback deletes it.
                resource.physical = error.physical
                with self._lock:
                    self.resources[logical] = resource
            raise
        resource.physical, resource.attributes = physical, attributes
        with self._lock:
            self.resources[logical] = resource
        self._event(logical, resource.type, "CREATE_COMPLETE")

    def _delete_one(self, logical, status="DELETE"):
        resource = self.resources[logical]
        if resource.definition.get("DeletionPolicy") == "Retain":
            self._event(logical, resource.type, f"{status}_SKIPPED", "DeletionPolicy Retain")
            self.retained.append((logical, resource.type, resource.physical))
        else:
            self._event(logical, resource.type, f"{status}_IN_PROGRESS")
            try:
                self._provider(resource).delete(self, resource)
            except Exception as error:
                self._event(logical, resource.type, f"{status}_FAILED", _reason(error))
                raise
            self._event(logical, resource.type, f"{status}_COMPLETE")
        with self._lock:
            del self.resources[logical]

    def create(self):
        """Creates every resource; on a failure deletes what was created (ROLLBACK_COMPLETE)
        and raises StackFailed."""
        self._event(self.name, "AWS::CloudFormation::Stack", "CREATE_IN_PROGRESS")
        try:
            self._check_rules()
            wanted, graph = self._wanted()
        except TemplateError as error:
            self._event(self.name, "AWS::CloudFormation::Stack", "CREATE_FAILED", str(error))
            raise StackFailed(str(error)) from error
        self.graph = graph
        _, failure = self._run(list(wanted), graph, lambda logical: self._create_one(logical, wanted[logical]))
        if failure is None:
            try:
                self._publish_outputs()
            except TemplateError as error:
                failure = ("Outputs", error)
        if failure is not None:
            reason = f"{failure[0]}: {_reason(failure[1])}"
            self._event(self.name, "AWS::CloudFormation::Stack", "ROLLBACK_IN_PROGRESS", f"The following resource(s) failed to create: [{failure[0]}]")
            self._withdraw_exports()
            _, stuck = self._run(list(self.resources), graph, self._delete_one, reverse=True)
            if stuck is not None:
                self._event(self.name, "AWS::CloudFormation::Stack", "ROLLBACK_FAILED", f"{stuck[0]}: {_reason(stuck[1])}")
                raise StackFailed(f"{reason}; the rollback failed too: {stuck[0]}: {_reason(stuck[1])}")
            self._event(self.name, "AWS::CloudFormation::Stack", "ROLLBACK_COMPLETE")
            raise StackFailed(reason)
        self._event(self.name, "AWS::CloudFormation::Stack", "CREATE_COMPLETE")

    def update(self, template, values):
        """Moves the stack to `template` with `values`: new resources created, changed ones
        updated (or replaced, the old ones deleted in the cleanup), removed ones deleted. On a
        failure, every updated resource is updated back with its old properties and every new
        one deleted (UPDATE_ROLLBACK_COMPLETE), then StackFailed is raised."""
        old = (self.template, self.parameters, dict(self._conditions), self.graph)
        self._event(self.name, "AWS::CloudFormation::Stack", "UPDATE_IN_PROGRESS")
        try:
            self.template, self.parameters, self._conditions = template, self._check_parameters(template, values), {}
            self._check_rules()
            wanted, graph = self._wanted()
        except TemplateError as error:
            self.template, self.parameters, self._conditions, self.graph = old
            self._event(self.name, "AWS::CloudFormation::Stack", "UPDATE_FAILED", str(error))
            raise StackFailed(str(error)) from error
        before = {logical: (r.physical, dict(r.attributes), r.properties, r.definition) for logical, r in self.resources.items()}
        created, updated, replaced, attempted = [], [], [], {}

        def update_one(logical):
            definition = wanted[logical]
            if logical not in before:
                try:
                    self._create_one(logical, definition)
                finally:
                    if logical in self.resources:
                        created.append(logical)
                return
            resource = self.resources[logical]
            if resource.type != definition["Type"]:
                raise TemplateError(logical, "Type", "changed, which CloudFormation refuses")
            properties = self.evaluator.evaluate(definition.get("Properties", {}), logical) or {}
            if properties == resource.properties:
                # Only attributes such as DependsOn or Metadata changed: nothing is sent.
                resource.definition = definition
                return
            self._event(logical, resource.type, "UPDATE_IN_PROGRESS")
            attempted[logical] = properties
            try:
                physical, attributes = self._provider(resource).update(self, resource, properties)
            except Exception as error:
                self._event(logical, resource.type, "UPDATE_FAILED", _reason(error))
                updated.append(logical)  # rolled back too: it may have changed part of itself
                raise
            if physical != resource.physical:
                replaced.append((logical, resource.physical, resource.properties))
                self._event(logical, resource.type, "UPDATE_IN_PROGRESS", "Requested update required the provider to create a new physical resource")
            else:
                updated.append(logical)
            resource.physical, resource.attributes, resource.properties, resource.definition = physical, attributes, properties, definition
            self._event(logical, resource.type, "UPDATE_COMPLETE")

        _, failure = self._run(list(wanted), graph, update_one)
        if failure is None:
            try:
                self._withdraw_exports()
                self._publish_outputs()
            except TemplateError as error:
                failure = ("Outputs", error)
        if failure is None:
            self.graph = graph
            self._event(self.name, "AWS::CloudFormation::Stack", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")
            removed = [logical for logical in before if logical not in wanted]
            old_graph = old[3]
            self._run(removed, old_graph, self._delete_one, reverse=True)
            for logical, physical, properties in replaced:
                self._delete_replaced(logical, physical, properties)
            self._event(self.name, "AWS::CloudFormation::Stack", "UPDATE_COMPLETE")
            return
        reason = f"{failure[0]}: {_reason(failure[1])}"
        self._event(self.name, "AWS::CloudFormation::Stack", "UPDATE_ROLLBACK_IN_PROGRESS", f"The following resource(s) failed to update: [{failure[0]}]")
        self.template, self.parameters, self._conditions, self.graph = old

        def roll_back(logical):
            resource = self.resources[logical]
            physical, attributes, properties, definition = before[logical]
            if any(r[0] == logical for r in replaced):
                # The replacement goes; the old physical resource, never deleted, is back.
                self._event(logical, resource.type, "DELETE_IN_PROGRESS", "the replacement")
                self._provider(resource).delete(self, resource)
                self._event(logical, resource.type, "DELETE_COMPLETE")
            else:
                self._event(logical, resource.type, "UPDATE_IN_PROGRESS")
                resource.properties = attempted[logical]
                physical, attributes = self._provider(resource).update(self, resource, properties)
                self._event(logical, resource.type, "UPDATE_COMPLETE")
            resource.physical, resource.attributes, resource.properties, resource.definition = physical, attributes, properties, definition

        back = [logical for logical in updated if logical in before]
        back += [logical for logical, _, _ in replaced]
        self._run(back, self.graph, roll_back, reverse=True)
        self._event(self.name, "AWS::CloudFormation::Stack", "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS")
        self._run([logical for logical in created if logical in self.resources], graph, self._delete_one, reverse=True)
        self._withdraw_exports()
        self._publish_outputs()
        self._event(self.name, "AWS::CloudFormation::Stack", "UPDATE_ROLLBACK_COMPLETE")
        raise StackFailed(reason)

    def _delete_replaced(self, logical, physical, properties):
        resource = Resource(logical, self.template["Resources"][logical])
        resource.physical, resource.properties = physical, properties
        self._event(logical, resource.type, "DELETE_IN_PROGRESS", "the replaced physical resource")
        self._provider(resource).delete(self, resource)
        self._event(logical, resource.type, "DELETE_COMPLETE")

    def delete(self):
        """Deletes every resource, dependents first; DeletionPolicy Retain ones are left and
        listed in `retained`."""
        self._event(self.name, "AWS::CloudFormation::Stack", "DELETE_IN_PROGRESS")
        for name, (stack, _) in list(self.world.exports.items()):
            if stack == self.id and any(name in json.dumps(s.template) for s in self.world.stacks if s is not self):
                raise StackFailed(f"export {name} is imported by another stack")
        self._withdraw_exports()
        _, failure = self._run(list(self.resources), self.graph, self._delete_one, reverse=True)
        if failure is not None:
            self._event(self.name, "AWS::CloudFormation::Stack", "DELETE_FAILED", f"{failure[0]}: {_reason(failure[1])}")
            raise StackFailed(f"{failure[0]}: {_reason(failure[1])}")
        self._event(self.name, "AWS::CloudFormation::Stack", "DELETE_COMPLETE")

    # ------------------------------------------------------------------ outputs
    def _publish_outputs(self):
        self.outputs = {}
        for name, output in self.template.get("Outputs", {}).items():
            if "Condition" in output and not self.condition(output["Condition"], f"Outputs.{name}"):
                continue
            self.outputs[name] = self.evaluator.evaluate(output["Value"], f"Outputs.{name}")
            if "Export" in output:
                export = self.evaluator.evaluate(output["Export"]["Name"], f"Outputs.{name}")
                with self.world.lock:
                    if export in self.world.exports:
                        raise TemplateError(f"Outputs.{name}", "Export", f"{export} is exported by another stack already")
                    self.world.exports[export] = (self.id, self.outputs[name])
                self.exports.append(export)

    def _withdraw_exports(self):
        with self.world.lock:
            for export in self.exports:
                self.world.exports.pop(export, None)
        self.exports = []

    def physical_name(self, logical, limit=64, lower=False):
        """The name CloudFormation gives a resource that names none: stack-logical-random."""
        name = f"{self.name}-{logical}"[: limit - 13] + "-" + _physical_suffix()
        return name.lower() if lower else name


def _reason(error):
    return str(error) or type(error).__name__
