"""Skip and xfail files, read once for the pytest plugin (`--vaespec-skip`, `--vaespec-xfail`) and for
`vaespec check` (`--skip`, `--xfail`).

One entry per line, `#` starts a comment: `law_prefix` or `law_prefix[backend_prefix]` (`kl_` matches every
law starting with it; `[independent-cpu-bfloat16]` one backend label, `name-device-dtype`). The first
matching entry decides (skip files first, then xfail files, each in the order given). An entry that
matches no law, or whose backend part matches no selected backend, is stale (`stale` says which).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from vaespec.spec.errors import ConfigError

_ENTRY = re.compile(r"^(?P<law>[A-Za-z0-9_]+)(?:\[(?P<backend>[^\[\]\s]+)\])?$")


@dataclass
class Entry:
    """One line of a skip/xfail file."""

    law: str
    backend: str | None
    where: str  # "FILE:LINE", for messages
    kind: str  # "skip" or "xfail"
    used: bool = False

    def matches(self, law: str, label: str) -> bool:
        return law.startswith(self.law) and (self.backend is None or label.startswith(self.backend))


def read_entries(path: str, kind: str, option: str | None = None) -> list[Entry]:
    """Parse a skip/xfail file; a missing file or a malformed line is a ConfigError naming FILE:LINE
    (`option`: how the file was given, for the message; default `--vaespec-<kind>`)."""
    option = option or f"--vaespec-{kind}"
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{option} {path}: cannot read the file ({error})") from None
    entries = []
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        match = _ENTRY.match(text)
        if not match:
            raise ConfigError(f"{path}:{number}: expected 'law_prefix' or 'law_prefix[backend_prefix]', "
                              f"got {text!r}")
        entries.append(Entry(match["law"], match["backend"], f"{path}:{number}", kind))
    return entries


def first_match(entries: list[Entry], law: str, label: str) -> Entry | None:
    """The entry that decides for (law, backend label), marked used; None if none matches."""
    for entry in entries:
        if entry.matches(law, label):
            entry.used = True
            return entry
    return None


def stale(entries: list[Entry], labels) -> list[str]:
    """One line per entry that matches no law, or whose backend part matches none of `labels`."""
    from vaespec.spec.laws import LAWS

    lines = []
    for entry in entries:
        if not any(law.startswith(entry.law) for law in LAWS):
            lines.append(f"{entry.where}: {entry.law!r} matches no law")
        elif entry.backend is not None and not any(label.startswith(entry.backend) for label in labels):
            lines.append(f"{entry.where}: [{entry.backend}] matches no selected backend (selected: {sorted(labels)})")
    return lines
