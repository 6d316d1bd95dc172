"""What a lease call carries, and ``results/`` moved out of it for the lease.

    python -m benchmarks.lease.travel measure --carry .whl --carry .device-data/imagenette-224.03.tar
    python -m benchmarks.lease.travel aside        # before the first call of a lease
    python -m benchmarks.lease.travel back         # after the last

A call carries the session's checkout: its tracked files, its untracked files that git
does not ignore, a ``shared/`` folder inside it, and the ignored paths named in ``carry``,
64 MiB in all. ``results/`` alone is about 90 MB, and the job needs none of it (it trains
its own weights and writes its own output folders outside the tree), so ``aside`` takes
it out of the tree for the lease: out of git's index (``git rm --cached``, so no listing of
tracked files names it) and out of the folder (moved beside the checkout, so no walk of
the disk finds it). ``back`` restores both; ``git status`` is then as before.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterable, Optional

from benchmarks.lease.stage import MiB

LIMIT = 64 * MiB
RESULTS = "results"


class TravelError(Exception):
    """The tree cannot be moved aside or back as asked."""


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if done.returncode:
        raise TravelError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def _files_under(path: Path) -> Iterable[Path]:
    if path.is_dir() and not path.is_symlink():
        for directory, _, names in os.walk(path):
            yield from (Path(directory) / name for name in names)
    elif path.exists() or path.is_symlink():
        yield path


def travelling_files(repo: Path, carry: Iterable[str] = (), without: Iterable[str] = ()) -> dict[str, int]:
    """Relative path -> bytes of every file a call would carry from ``repo``: what git
    lists as tracked or as untracked and not ignored (where it is on disk), ``shared/``,
    and the ``carry`` paths. ``without`` leaves out top-level folders, as ``aside`` would."""
    listed = _git(repo, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    paths = {name for name in listed if name}
    extra = [repo / "shared", *(repo / path for path in carry)]
    paths |= {file.relative_to(repo).as_posix() for path in extra for file in _files_under(path)}
    skipped = tuple(f"{folder.rstrip('/')}/" for folder in without)
    sizes = {}
    for name in sorted(paths):
        path = repo / name
        if name.startswith(skipped) or not (path.exists() or path.is_symlink()):
            continue
        sizes[name] = path.lstat().st_size
    return sizes


def summary(sizes: dict[str, int], limit: int = LIMIT) -> str:
    by_top: dict[str, int] = {}
    for name, size in sizes.items():
        top = name.split("/", 1)[0] if "/" in name else "(top level)"
        by_top[top] = by_top.get(top, 0) + size
    total = sum(sizes.values())
    lines = [f"  {top:<24} {size / MiB:8.2f} MiB" for top, size in sorted(by_top.items(), key=lambda kv: -kv[1])]
    verdict = "fits" if total <= limit else "TOO LARGE"
    lines.append(f"  {'total':<24} {total / MiB:8.2f} MiB of {limit / MiB:.0f} MiB: {verdict}, "
                 f"{(limit - total) / MiB:.2f} MiB to spare ({len(sizes)} files)")
    return "\n".join(lines)


def default_aside(repo: Path) -> Path:
    return repo.resolve().parent / f".{repo.resolve().name}-{RESULTS}-aside"


def aside(repo: Path, to: Optional[Path] = None) -> Path:
    """Take ``results/`` out of the index and the folder; refuse if it has changes, which
    ``back`` could not restore as they were."""
    to = to or default_aside(repo)
    if to.exists():
        raise TravelError(f"{to} exists: results are aside already (run `back`), or remove it")
    if not (repo / RESULTS).is_dir():
        raise TravelError(f"{repo / RESULTS} not found")
    if _git(repo, "status", "--porcelain", "--", RESULTS).strip():
        raise TravelError(f"{RESULTS}/ has uncommitted changes: commit or stash them first")
    _git(repo, "rm", "-r", "-q", "--cached", "--", RESULTS)
    os.replace(repo / RESULTS, to)
    return to


def back(repo: Path, to: Optional[Path] = None) -> None:
    to = to or default_aside(repo)
    if not to.is_dir():
        raise TravelError(f"{to} not found: nothing is aside")
    if (repo / RESULTS).exists():
        raise TravelError(f"{repo / RESULTS} exists: move it away before bringing {to} back")
    os.replace(to, repo / RESULTS)
    _git(repo, "reset", "-q", "--", RESULTS)
    changed = _git(repo, "status", "--porcelain", "--", RESULTS).strip()
    if changed:
        raise TravelError(f"{RESULTS}/ is back but differs from the index:\n{changed}")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lease.travel", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("measure", "aside", "back"))
    parser.add_argument("--repo", type=Path, default=Path.cwd(), help="the checkout that travels (default: here)")
    parser.add_argument("--carry", action="append", default=[], help="an ignored path the call carries (repeatable)")
    parser.add_argument("--to", type=Path, help="where results/ waits (default: .<repo>-results-aside beside it)")
    args = parser.parse_args(argv)
    try:
        if args.command == "measure":
            sizes = travelling_files(args.repo, args.carry)
            print(f"what a call from {args.repo.resolve()} carries now:\n{summary(sizes)}")
            if any(name.startswith(f"{RESULTS}/") for name in sizes):
                print(f"with {RESULTS}/ aside:\n{summary(travelling_files(args.repo, args.carry, [RESULTS]))}")
        elif args.command == "aside":
            print(f"{RESULTS}/ is aside in {aside(args.repo, args.to)}; bring it back with: "
                  "python -m benchmarks.lease.travel back")
        else:
            back(args.repo, args.to)
            print(f"{RESULTS}/ is back and git status is as before")
    except TravelError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
