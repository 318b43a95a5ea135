"""The largest costs in a py-spy raw profile (``py-spy record -f raw``), by self time and by
inclusive time, as shares of all samples.

    python bench/spy_top.py profile.txt [--top 30] [--match TEXT]

A raw profile has one line per distinct stack: frames ``function (file:line)`` joined by
``;`` from the thread's root to the running frame, then the number of samples. Idle samples
(the loop waiting in ``select``/``epoll``, a thread waiting on a lock) are counted apart, so
the shares are of the time the process was busy.
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

IDLE = re.compile(r"\b(select|poll|epoll|_run_once|run_forever|wait|get|acquire|_worker|"
                  r"sleep)\b \(")
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def frame_key(frame: str) -> str:
    """``function (file)`` without the line number, the path cut to its last two parts."""
    match = FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    file = "/".join(match["file"].split("/")[-2:])
    return f"{match['func']} ({file})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profile", type=Path)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--match", default=None, help="only stacks with a frame containing this")
    args = ap.parse_args()
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    busy = idle = 0
    for line in args.profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = [frame_key(f) for f in stack.split(";") if f.strip()]
        if args.match and not any(args.match in f for f in frames):
            continue
        if not frames or IDLE.search(stack.split(";")[-1] + " ("):
            idle += n
            continue
        busy += n
        own[frames[-1]] += n
        for key in set(frames):
            incl[key] += n
    print(f"{busy} busy samples, {idle} idle")
    for title, table in (("self", own), ("inclusive", incl)):
        print(f"\n-- {title} --")
        for key, n in table.most_common(args.top):
            print(f"{100 * n / max(busy, 1):5.1f}%  {key}")


if __name__ == "__main__":
    main()
