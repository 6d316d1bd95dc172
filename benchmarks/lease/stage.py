"""Imagenette at 224 px in chunks that each travel beside the code in one lease call.

    python -m benchmarks.lease.stage cut                  # here: .device-data/imagenette-224.{01,02,03}.tar + manifest
    python -m benchmarks.lease.stage receive              # there: move the carried chunk out of the tree
    python -m benchmarks.lease.stage assemble             # there: check every chunk and file, build the folder
    python -m benchmarks.lease.stage bundle               # here, for a later lease: the trained weights + archived rows

A call carries at most 64 MiB, and the two splits are 162 MB of JPEGs, so they go in
chunks on consecutive calls while the machine stays warm. A chunk is an uncompressed tar
of the unchanged JPEG bytes (JPEG does not compress further), its first member the sha256
of every file in it; the manifest beside the chunks holds each chunk's sha256. ``receive``
moves a carried chunk out of the working tree into the stage folder, where it outlives the
call (the next call's tree replaces this one's); ``assemble`` checks every chunk and every
file against its sum and unpacks them into ``<data root>/imagenette2-224/``, the layout the
dataset loader reads. A later lease, which finds the model trained, carries instead a
bundle of its weights and its rows archived so far (``bundle``; ``unbundle`` there puts
them where the job finds them), so the suite resumes rather than starts over. Standard
library only: a staging call starts no torch.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import shutil
import sys
import tarfile
from pathlib import Path
from typing import Optional, Sequence

from benchmarks.lease.progress import log

MiB = 1 << 20
FOLDER = "imagenette2-224"  # signed_saliency.datasets.imagenette.COPY_FOLDER (not imported: it pulls torch)
SPLITS = ("train", "val")
PREFIX = "imagenette-224"
MANIFEST = f"{PREFIX}.manifest.json"
SUMS_SUFFIX = ".sha256"
CARRIED = Path(".device-data")  # ignored by git; what a call carries lands here in its tree
DONE_MARKER = ".assembled"
BUNDLE = "lease-resume.tar"
PART_FOLDERS = ("paper-deletion", "paper-suite")
# The code, the captum wheel and the manifest travel beside each chunk: about 1.5 MB today.
DEFAULT_CHUNK_MIB = 60
BLOCK = tarfile.BLOCKSIZE


class StageError(Exception):
    """A chunk or file is missing or does not match its sum."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MiB), b""):
            digest.update(block)
    return digest.hexdigest()


def source_files(root: Path, splits: Sequence[str] = SPLITS, per_class: Optional[int] = None) -> list[Path]:
    """The split folders' files relative to ``root`` (``imagenette2-224/<split>/<class>/<file>``),
    in ImageFolder order; ``per_class`` keeps the first files of each class (a rehearsal)."""
    files = []
    for split in splits:
        folder = root / FOLDER / split
        if not folder.is_dir():
            raise StageError(f"{folder} not found: point --data-root at the folder holding {FOLDER}/")
        for class_folder in sorted(p for p in folder.iterdir() if p.is_dir()):
            names = sorted(p for p in class_folder.iterdir() if p.is_file())
            files += [p.relative_to(root) for p in names[:per_class]]
    return files


def tar_bytes(size: int) -> int:
    """What one member adds to a tar: a header block and its data padded to whole blocks."""
    return BLOCK + math.ceil(size / BLOCK) * BLOCK


def chunk_reserve(files: int) -> int:
    """A chunk's bytes besides its files: its sums member (about 100 bytes a file, counted
    for every file of the cut), the end-of-archive blocks, the padding to 10 KiB records."""
    return 2 * BLOCK + tarfile.RECORDSIZE + tar_bytes(120 * files)


def plan_chunks(sizes: Sequence[int], max_bytes: int) -> list[range]:
    """Consecutive runs of files, as few chunks as fit ``max_bytes`` each, filled evenly (so
    no call carries much more than another)."""
    reserve = chunk_reserve(len(sizes))
    members = [tar_bytes(size) for size in sizes]
    if max(members, default=0) > max_bytes - reserve:
        raise StageError(f"a file is larger than a chunk of {max_bytes / MiB:.1f} MiB")
    target = sum(members) / max(1, math.ceil(sum(members) / (max_bytes - reserve)))
    chunks, start, filled = [], 0, 0
    for index, size in enumerate(members):
        # close the chunk at the target, or when the file would overflow it
        if index > start and (filled + size > max_bytes - reserve or filled >= target):
            chunks.append(range(start, index))
            start, filled = index, 0
        filled += size
    chunks.append(range(start, len(members)))
    return chunks


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    # fixed owner, mode and time: the same files make the same chunk, byte for byte
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tar.addfile(info, io.BytesIO(data))


def cut(
    root: Path,
    dest: Path = CARRIED,
    *,
    splits: Sequence[str] = SPLITS,
    max_mib: float = DEFAULT_CHUNK_MIB,
    per_class: Optional[int] = None,
) -> dict:
    """Write ``dest/imagenette-224.NN.tar`` and ``dest/imagenette-224.manifest.json``; return the manifest."""
    files = source_files(root, splits, per_class)
    sizes = [(root / f).stat().st_size for f in files]
    dest.mkdir(parents=True, exist_ok=True)
    for stale in dest.glob(f"{PREFIX}.*"):
        stale.unlink()
    chunks = []
    plan = plan_chunks(sizes, int(max_mib * MiB))
    for number, members in enumerate(plan, start=1):
        name = f"{PREFIX}.{number:02d}.tar"
        contents = {files[i].as_posix(): (root / files[i]).read_bytes() for i in members}
        sums = "".join(f"{sha256_bytes(data)}  {path}\n" for path, data in contents.items())
        with tarfile.open(dest / name, "w", format=tarfile.USTAR_FORMAT) as tar:
            _add(tar, name + SUMS_SUFFIX, sums.encode())
            for path, data in contents.items():
                _add(tar, path, data)
        chunks.append({"name": name, "bytes": (dest / name).stat().st_size, "sha256": sha256_file(dest / name),
                       "files": len(contents)})
        log(f"cut {name}: {len(contents)} files, {chunks[-1]['bytes'] / MiB:.1f} MiB")
    counts = {split: sum(1 for f in files if f.parts[1] == split) for split in splits}
    manifest = {"folder": FOLDER, "splits": counts, "per_class": per_class, "max_mib": max_mib,
                "jpeg_bytes": sum(sizes), "chunks": chunks}
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def receive(carried: Path, stage: Path) -> list[str]:
    """Move the chunks and manifest carried into this call's tree into ``stage``, outside
    it, where they stay while the machine is warm; return the names moved."""
    stage.mkdir(parents=True, exist_ok=True)
    moved = []
    for path in sorted([*carried.glob(f"{PREFIX}.*"), *carried.glob(BUNDLE)]) if carried.is_dir() else []:
        target = stage / path.name
        temporary = target.with_name(target.name + ".partial")
        shutil.copyfile(path, temporary)  # the tree and the stage may be on different filesystems
        os.replace(temporary, target)
        path.unlink()
        moved.append(path.name)
    have = ", ".join(sorted(p.name for p in stage.glob(f"{PREFIX}.*.tar"))) or "none"
    log(f"received {', '.join(moved) or 'nothing'}; staged chunks: {have}")
    return moved


def read_manifest(stage: Path) -> dict:
    path = stage / MANIFEST
    if not path.is_file():
        raise StageError(f"{path} missing: carry .device-data/{MANIFEST} in a staging call")
    return json.loads(path.read_text())


def missing_chunks(stage: Path) -> list[str]:
    return [chunk["name"] for chunk in read_manifest(stage)["chunks"] if not (stage / chunk["name"]).is_file()]


def assemble(stage: Path, data_root: Path) -> Path:
    """Check every chunk, unpack every file after checking its sum, and return the
    dataset folder ``data_root/imagenette2-224``. Done once: a later call finds it assembled."""
    manifest = read_manifest(stage)
    folder = data_root / FOLDER
    digest = sha256_bytes(json.dumps(manifest, sort_keys=True).encode())
    if (folder / DONE_MARKER).is_file() and (folder / DONE_MARKER).read_text() == digest:
        log(f"{folder} already assembled from these chunks")
        return folder
    missing = missing_chunks(stage)
    if missing:
        raise StageError(f"chunks not staged yet: {', '.join(missing)} (carry each in a call, then assemble)")
    for chunk in manifest["chunks"]:
        actual = sha256_file(stage / chunk["name"])
        if actual != chunk["sha256"]:
            raise StageError(f"{chunk['name']}: sha256 {actual[:12]}... but the manifest says {chunk['sha256'][:12]}...")
    building = data_root / f".{FOLDER}.partial"
    shutil.rmtree(building, ignore_errors=True)
    count = 0
    for chunk in manifest["chunks"]:
        with tarfile.open(stage / chunk["name"]) as tar:
            first = tar.next()
            if first is None or first.name != chunk["name"] + SUMS_SUFFIX:
                raise StageError(f"{chunk['name']} does not start with its sums")
            sums = dict(reversed(line.split("  ", 1)) for line in tar.extractfile(first).read().decode().splitlines())
            for member in tar:
                if member.name == first.name:
                    continue
                parts = Path(member.name).parts
                if not member.isfile() or parts[0] != FOLDER or ".." in parts or member.name not in sums:
                    raise StageError(f"{chunk['name']}: unexpected member {member.name!r}")
                data = tar.extractfile(member).read()
                if sha256_bytes(data) != sums[member.name]:
                    raise StageError(f"{chunk['name']}: {member.name} does not match its sha256")
                target = building / Path(*parts[1:])
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                count += 1
    expected = sum(manifest["splits"].values())
    if count != expected:
        raise StageError(f"unpacked {count} files, the manifest counts {expected}")
    (building / DONE_MARKER).write_text(digest)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(building, folder)
    log(f"assembled {folder}: {manifest['splits']} files, every chunk and file matches its sha256")
    return folder


def bundle(results: Path, dest: Path = CARRIED, model: str = "resnet18", dataset: str = "imagenette") -> Path:
    """``dest/lease-resume.tar``: ``checkpoints/<dataset>-<model>.{pt,json}`` from
    ``results`` (results/paper) and every part's archived rows of that model."""
    stem = f"{dataset}-{model}"
    weights = [results / "checkpoints" / f"{stem}{suffix}" for suffix in (".pt", ".json")]
    missing = [str(path) for path in weights if not path.is_file()]
    if missing:
        raise StageError(f"{', '.join(missing)} not found: land the trained model first")
    rows = [path for part in PART_FOLDERS for path in sorted((results / part / "archive" / dataset / model).rglob("*"))
            if path.is_file()]
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(dest / BUNDLE, "w") as tar:
        for path in [*weights, *rows]:
            tar.add(path, arcname=path.relative_to(results).as_posix())
    log(f"bundled {stem}'s weights and {len(rows)} archive files: {(dest / BUNDLE).stat().st_size / MiB:.1f} MiB")
    return dest / BUNDLE


def unbundle(stage: Path, cache: Path, work: Path) -> bool:
    """Put a staged bundle's weights where the job's benchmarks.run finds them (the cache's
    checkpoints/, the tree having no results/) and its rows into the job's part folders."""
    path = stage / BUNDLE
    if not path.is_file():
        return False
    with tarfile.open(path) as tar:
        for member in tar:
            parts = Path(member.name).parts
            if not member.isfile() or ".." in parts or parts[0] not in ("checkpoints", *PART_FOLDERS):
                raise StageError(f"{BUNDLE}: unexpected member {member.name!r}")
            target = (cache if parts[0] == "checkpoints" else work) / member.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())
    for manifest in (cache / "checkpoints").glob("*.json"):
        weights = manifest.with_suffix(".pt")
        if weights.is_file() and sha256_file(weights) != json.loads(manifest.read_text())["sha256"]:
            raise StageError(f"{weights} does not match its manifest's sha256")
    path.unlink()
    log(f"unbundled {BUNDLE}: the weights into {cache / 'checkpoints'}, the archived rows into {work}")
    return True


def main(argv: Optional[list[str]] = None) -> int:
    lease_root = Path(os.environ.get("LEASE_ROOT", "/root/lease"))
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lease.stage", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    cut_parser = commands.add_parser("cut", help="cut the data root's Imagenette into chunks (here)")
    cut_parser.add_argument("--data-root", type=Path, help="folder holding imagenette2-224/ (default: the suite's)")
    cut_parser.add_argument("--dest", type=Path, default=CARRIED)
    cut_parser.add_argument("--splits", default=",".join(SPLITS), help="comma-separated (default: train,val)")
    cut_parser.add_argument("--max-mib", type=float, default=DEFAULT_CHUNK_MIB, help="largest chunk (default 60)")
    cut_parser.add_argument("--per-class", type=int, help="the first N files of each class only (a rehearsal)")
    receive_parser = commands.add_parser("receive", help="move carried chunks into the stage folder (there)")
    receive_parser.add_argument("--carried", type=Path, default=CARRIED)
    assemble_parser = commands.add_parser("assemble", help="check and unpack every staged chunk (there)")
    assemble_parser.add_argument("--data-root", type=Path, default=lease_root / "data")
    bundle_parser = commands.add_parser("bundle", help="the trained weights and their archived rows, for a later lease (here)")
    bundle_parser.add_argument("--results", type=Path, default=Path("results/paper"))
    bundle_parser.add_argument("--dest", type=Path, default=CARRIED)
    unbundle_parser = commands.add_parser("unbundle", help="put a staged bundle where the job finds it (there)")
    unbundle_parser.add_argument("--cache", type=Path, default=Path(os.environ.get("SIGNED_SALIENCY_CACHE", lease_root / "cache")))
    unbundle_parser.add_argument("--work", type=Path, default=lease_root / "work")
    for sub in (receive_parser, assemble_parser, unbundle_parser):
        sub.add_argument("--stage", type=Path, default=lease_root / "stage")
    args = parser.parse_args(argv)
    try:
        if args.command == "cut":
            if args.data_root is None:
                from benchmarks.paths import default_data_root

                args.data_root = default_data_root()
            cut(args.data_root, args.dest, splits=args.splits.split(","), max_mib=args.max_mib, per_class=args.per_class)
        elif args.command == "receive":
            receive(args.carried, args.stage)
        elif args.command == "assemble":
            assemble(args.stage, args.data_root)
        elif args.command == "bundle":
            bundle(args.results, args.dest)
        else:
            unbundle(args.stage, args.cache, args.work)
    except StageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
