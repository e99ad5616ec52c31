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

    def error(self, message: str):
        # The message is argparse's own; keep it on one line (it never holds a traceback).
        text = " ".join(str(message).split())
        print(f"{self.prog}: error: {text}", file=sys.stderr)
        sys.exit(2)
