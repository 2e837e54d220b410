"""Counts and kill rate of the last mutation run (scripts/mutation.sh), per module and in all.

Reads ``mutmut results --all true``; mutants listed in ``scripts/mutation-equivalent.txt`` (a name
and the reason it cannot change behaviour) are left out of the non-equivalent rate.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

__all__ = ["main"]

EQUIVALENT_FILE = Path(__file__).with_name("mutation-equivalent.txt")


def equivalent_names() -> set[str]:
    if not EQUIVALENT_FILE.is_file():
        return set()
    names = set()
    for line in EQUIVALENT_FILE.read_text().splitlines():
        name = line.split("#", 1)[0].strip()
        if name:
            names.add(name)
    return names


def main() -> int:
    done = subprocess.run(
        [str(Path(sys.executable).with_name("mutmut")), "results", "--all", "true"],
        capture_output=True,
        text=True,
        check=True,
    )
    by_module: dict[str, Counter[str]] = defaultdict(Counter)
    survivors: list[str] = []
    equivalent = equivalent_names()
    for line in done.stdout.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if not sep or "__mutmut_" not in name:
            continue
        module = name.split(".x", 1)[0]  # functions: .x_name, methods: .xǁClassǁname
        if name in equivalent and status == "survived":
            status = "equivalent"
        by_module[module][status] += 1
        if status in ("survived", "no tests"):
            survivors.append(f"{name}: {status}")
    total: Counter[str] = Counter()
    print(
        f"{'module':42} {'killed':>7} {'timeout':>7} {'survived':>8} {'equiv':>6} "
        f"{'no test':>7} {'not run':>7}"
    )
    for module in sorted(by_module):
        c = by_module[module]
        total.update(c)
        print(
            f"{module:42} {c['killed']:7} {c['timeout']:7} {c['survived']:8} "
            f"{c['equivalent']:6} {c['no tests']:7} {c['not checked']:7}"
        )
    caught = total["killed"] + total["timeout"]
    live = caught + total["survived"] + total["no tests"]
    rate = 100 * caught / live if live else 0.0
    print(f"killed {caught} of {live} non-equivalent mutants run: {rate:.1f} %")
    print(
        f"({total['equivalent']} equivalent survivors set aside; {total['not checked']} of "
        f"{sum(total.values())} mutants not run yet)"
    )
    for line in survivors:
        print("  " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
