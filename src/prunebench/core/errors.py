"""User errors: problems a researcher can fix, reported as one line, never a traceback."""


class UserError(Exception):
    """A bad input. The message names the problem and the fix, on one line."""


def config_known(where: str, value, allowed) -> None:
    """A config value that must be one of ``allowed``."""
    if value not in allowed:
        raise UserError(f"config: {where}: unknown {value!r}; choose one of {', '.join(map(str, allowed))}")


def config_check(where: str, check) -> None:
    """Run ``check``; a UserError it raises is reported at the config key ``where``."""
    try:
        check()
    except UserError as e:
        raise UserError(f"config: {where}: {e}") from None
