"""``python -m core``: the command line. Every step of the explorer can be run from here.

One module per group of commands (``data``: demo, info, faces; ``predict``: predict,
evaluate; ``train``: train, lr-find, label-issues); each registers its subcommands with
:func:`core.cli.main.build_parser`. Every flag is built from a rule of the rule book
(core.rules, core.rulebook), so its help, its type and its error message are the rule's.
Bad input ends with one line on stderr (``error: ...``) and exit status 2, never a traceback.
"""

from core.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
