"""The one exception type the project raises on purpose."""


class DamlError(Exception):
    """A problem the user can fix: the message names the file, key or value and the fix.

    Scripts let it propagate; `daml.logs.to_file` writes it to the rule's log as one
    readable line instead of a bare traceback.
    """
