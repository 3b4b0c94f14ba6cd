"""The exceptions the CLI turns into a clear message and a non-zero exit."""


class LauncherError(Exception):
    """A problem the operator can fix; its message names the setting or resource at fault.

    Messages never contain the database password: they are built from settings and driver
    messages, and the CLI's log filter masks the password as a second line of defence.
    """

    exit_code = 2


class VerificationFailed(LauncherError):
    """``verify`` found the deployed server unusable; the message is the one-line reason."""

    exit_code = 3
