"""EIE/ESE sparse-accelerator generator: shared configuration, CLI and flows."""

from contract.config import EIEConfig

__all__ = ["EIEConfig"]
