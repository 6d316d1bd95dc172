"""The GPU lease's pieces: the tree that travels, the staged data, the job's returned files."""

import json
import shutil
import subprocess
import sys

import pytest

from benchmarks.lease import job, land, rehearse, stage, travel


def fake_dataset(root, sizes=(700, 3000, 1500, 9000, 200, 4000)):
    """An ImageFolder tree of files with distinct bytes (staging never decodes them)."""
    for split in ("train", "val"):
        for number, size in enumerate(sizes):
            path = root / stage.FOLDER / split / f"class{number % 2}" / f"image{number}.JPEG"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(bytes([number, len(split)]) * (size // 2))
    return root


def test_staging_in_chunks_keeps_every_byte_and_is_done_once(tmp_path):
    source = fake_dataset(tmp_path / "source")
    here, carried, machine = tmp_path / "here", tmp_path / "tree" / ".device-data", tmp_path / "machine"
    largest = 12_000 + stage.chunk_reserve(12)
    manifest = stage.cut(source, here, max_mib=largest / stage.MiB)
    chunks = manifest["chunks"]
    assert len(chunks) >= 2 and sum(c["files"] for c in chunks) == 12
    assert all((here / c["name"]).stat().st_size <= largest for c in chunks)
    first = (here / chunks[0]["name"]).read_bytes()
    stage.cut(source, here, max_mib=manifest["max_mib"])
    assert (here / chunks[0]["name"]).read_bytes() == first  # the same files make the same chunk

    for number, chunk in enumerate(chunks, start=1):  # one call each: the chunk leaves the tree
        carried.mkdir(parents=True, exist_ok=True)
        for name in (chunk["name"], stage.MANIFEST):
            shutil.copyfile(here / name, carried / name)
        stage.receive(carried, machine / "stage")
        assert not list(carried.iterdir())
        if number < len(chunks):
            with pytest.raises(stage.StageError, match="not staged yet"):
                stage.assemble(machine / "stage", machine / "data")
    folder = stage.assemble(machine / "stage", machine / "data")
    for path in (source / stage.FOLDER).rglob("*.JPEG"):
        assert (folder / path.relative_to(source / stage.FOLDER)).read_bytes() == path.read_bytes()
    (folder / "train" / "class0" / "image0.JPEG").unlink()
    assert stage.assemble(machine / "stage", machine / "data") == folder  # found assembled: not redone
    assert not (folder / "train" / "class0" / "image0.JPEG").exists()


def test_a_corrupted_chunk_is_refused(tmp_path):
    carried, machine = tmp_path / ".device-data", tmp_path / "machine"
    manifest = stage.cut(fake_dataset(tmp_path / "source"), carried)
    stage.receive(carried, machine / "stage")
    chunk = machine / "stage" / manifest["chunks"][0]["name"]
    data = bytearray(chunk.read_bytes())
    data[5000] ^= 1
    chunk.write_bytes(bytes(data))
    with pytest.raises(stage.StageError, match="sha256"):
        stage.assemble(machine / "stage", machine / "data")
    assert not (machine / "data" / stage.FOLDER).exists()


def test_split_files_come_back_whole_or_not_at_all(tmp_path, monkeypatch):
    monkeypatch.setattr(job, "PART_BYTES", 1000)
    whole = tmp_path / "weights.pt"
    whole.write_bytes(bytes(range(256)) * 10)
    out = tmp_path / "out"
    out.mkdir()
    files = job.split_file(whole, out)
    assert sorted(files) == ["weights.pt.part1", "weights.pt.part2", "weights.pt.part3"]
    assert not rehearse.returned_problems(out)
    joined = land.join_parts(out, files, "weights.pt", tmp_path / "joined.pt")
    assert joined.read_bytes() == whole.read_bytes()
    (out / "weights.pt.part2").write_bytes(b"x" * 1000)
    with pytest.raises(land.LandError, match="sha256"):
        land.join_parts(out, files, "weights.pt", tmp_path / "joined.pt")
    del files["weights.pt.part3"]
    with pytest.raises(land.LandError, match="parts missing"):
        land.join_parts(out, files, "weights.pt", tmp_path / "joined.pt")


def test_return_limits_are_checked(tmp_path):
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    (tmp_path / "a" / "b" / "c" / "deep.txt").write_text("x")
    (tmp_path / "odd name.txt").write_text("x")
    problems = " ".join(rehearse.returned_problems(tmp_path))
    assert "2 folders down" in problems and "characters" in problems


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def test_results_go_aside_for_the_lease_and_come_back_as_they_were(tmp_path):
    repo = tmp_path / "repo"
    (repo / "results" / "paper").mkdir(parents=True)
    (repo / "results" / "paper" / "big.csv").write_bytes(b"r" * 5000)
    (repo / "code.py").write_text("print(1)\n")
    (repo / ".gitignore").write_text("/.device-data/\n")
    (repo / ".device-data").mkdir()
    (repo / ".device-data" / "chunk.tar").write_bytes(b"c" * 300)
    (repo / "notes.txt").write_text("untracked, not ignored: travels\n")
    git(repo, "init", "-q")
    git(repo, "add", "results", "code.py", ".gitignore")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "x")
    before = git(repo, "status", "--porcelain")

    now = travel.travelling_files(repo)
    assert "results/paper/big.csv" in now and ".device-data/chunk.tar" not in now and "notes.txt" in now
    carried = travel.travelling_files(repo, [".device-data/chunk.tar"], without=["results"])
    assert set(carried) == {"code.py", ".gitignore", "notes.txt", ".device-data/chunk.tar"}

    aside = travel.aside(repo)
    assert not (repo / "results").exists() and "results/" not in git(repo, "ls-files")
    assert set(travel.travelling_files(repo)) == {"code.py", ".gitignore", "notes.txt"}
    with pytest.raises(travel.TravelError, match="aside already"):
        travel.aside(repo)
    travel.back(repo, aside)
    assert git(repo, "status", "--porcelain") == before
    assert (repo / "results" / "paper" / "big.csv").read_bytes() == b"r" * 5000


def test_a_tiny_job_trains_packs_within_the_return_limits_and_lands(data_root, tmp_path, monkeypatch):
    """The lease's last call on this CPU: staged Imagenette (one image a class), a CNN
    trained for one epoch through benchmarks.train, Table 1's row, the pack, the landing."""
    machine = tmp_path / "machine"
    carried = tmp_path / "tree" / ".device-data"
    stage.cut(data_root, carried, per_class=1)
    stage.receive(carried, machine / "stage")
    stage.assemble(machine / "stage", machine / "data")
    monkeypatch.setenv("SIGNED_SALIENCY_CACHE", str(machine / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "out"
    job.main(["--stages", "train,table1", "--model", "cnn", "--epochs", "1", "--device", "cpu", "--threads", "1",
              "--work", str(machine / "work"), "--data-root", str(machine / "data"), "--out", str(out)])
    report = json.loads((out / job.REPORT).read_text())
    assert report["stages"]["train"]["status"] == "done" and report["stages"]["table1"]["status"] == "done"
    assert report["calls"][-1]["table1"]["paper"] == 0.6205
    assert not rehearse.returned_problems(out)

    results = tmp_path / "results" / "paper"
    landed = land.land(out, results)
    assert "imagenette-cnn.pt" in landed[0]
    from signed_saliency.models.checkpoints import load_checkpoint

    _, manifest = load_checkpoint(results / "checkpoints" / "imagenette-cnn.pt", expect={"channels_last": True})
    assert manifest["train_images"] == 10 and manifest["epochs"] == 1
    assert land.land(out, results)[0].endswith("is there already")  # landing twice changes nothing


def test_a_stage_running_past_the_calls_end_is_stopped(tmp_path):
    started = __import__("time").time()
    status = job.stream([sys.executable, "-c", "import time; print('working', flush=True); time.sleep(60)"],
                        stop_at=started + 2)
    assert status == "stopped for time" and __import__("time").time() - started < 30
