"""The flags of ``vidseg bench`` (kept apart so ``--help`` imports nothing heavy)."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    pass
