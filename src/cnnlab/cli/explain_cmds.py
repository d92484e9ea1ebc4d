"""`cnnlab explain|filter|report|...`: the commands that show what happens inside a network."""


def register(subparsers) -> None:
    """Add the explain commands to the top-level parser (filled in by the explain work)."""
