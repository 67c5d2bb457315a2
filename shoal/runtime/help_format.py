"""`--help` that shows what each option defaults to, and for servers where else it can be set.

argparse's own ArgumentDefaultsHelpFormatter prints "(default: None)" for
options whose absence means something better said in words, and repeats a
default the help text already describes; these formatters leave both alone.
"""

import argparse

ENV_PREFIX = "SHOAL_"


def env_name(flag: str) -> str:
    """The variable a server reads for --flag: --data-dir is SHOAL_DATA_DIR."""
    return ENV_PREFIX + flag.upper().replace("-", "_")


def _shown_default(action: argparse.Action) -> object | None:
    """The default worth printing: not for positionals, flags, or unset (None) options."""
    default = action.default
    if not action.option_strings or default is None or default is False:
        return None
    if default is argparse.SUPPRESS:
        return None
    if isinstance(action, argparse._HelpAction | argparse._VersionAction):
        return None
    return "''" if default == "" else default


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Adds "(default: X)" to each option's help, unless the text already speaks of it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = _shown_default(action)
        if default is not None and "(default" not in text:
            text = f"{text} (default: {str(default).replace('%', '%%')})".lstrip()
        return text


class ServerHelpFormatter(HelpFormatter):
    """Also names the SHOAL_<FLAG> variable each server flag reads (shoal.runtime.settings.env)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = super()._get_help_string(action) or ""
        long_options = [option for option in action.option_strings if option.startswith("--")]
        if long_options and long_options[0] != "--help":
            text = f"{text} [env {env_name(long_options[0][2:])}]".lstrip()
        return text
