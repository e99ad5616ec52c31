"""The ``eie`` argument parser class: argparse's errors in the one-line form of every other
refusal (``eie <command>: error: <message>``, exit 2), without the usage block."""

from __future__ import annotations

import argparse
import sys

__all__ = ["EieArgumentParser"]


class EieArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose :meth:`error` prints one line and exits 2.

    The line names the subcommand when the parser is one (``prog`` ``"eie golden"``), else
    ``eie``. Help (``-h``) is unchanged.
    """

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        # Unrecognized arguments are reported by the top parser, after the subcommand's has
        # run: remember the subcommand so that the line names it.
        self._command = getattr(namespace, "command", None)
        return namespace, extras

    def error(self, message: str):
        # The message is argparse's own; keep it on one line (it never holds a traceback).
        text = " ".join(str(message).split())
        command = getattr(self, "_command", None)
        prog = f"{self.prog} {command}" if command and " " not in self.prog else self.prog
        print(f"{prog}: error: {text}", file=sys.stderr)
        sys.exit(2)
