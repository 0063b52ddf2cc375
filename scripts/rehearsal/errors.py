"""The rehearsal's one error: what in the template it could not run, and where."""


class TemplateError(Exception):
    """`resource` (a logical id, or the template) and `function` (an intrinsic, a property or
    a section) locate the problem; `message` says what is wrong, never a secret value."""

    def __init__(self, resource, function, message):
        super().__init__(f"{resource}: {function} {message}")
        self.resource = resource
        self.function = function
