"""Firmware memory analysis: flash and RAM from the linked ELF, the model's share, the gate."""
from .elf import ElfUsage, analyze_elf
from .gate import GateResult, check_budget

__all__ = ["ElfUsage", "analyze_elf", "GateResult", "check_budget"]
