"""Outputs: atomic files, one run per folder, rollback after failures and kills,
one-line errors for OS failures, permissions that follow the umask."""

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from vta.errors import VtaError
from vta.io import JOURNAL, MANIFEST, OutputTransaction, atomic_write_bytes, atomic_write_json

ROOT = Path(__file__).resolve().parents[1]


def visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def publish(out: Path, files: dict[str, bytes], kind: str = "run") -> None:
    with OutputTransaction(out, kind=kind) as tx:
        for name, data in files.items():
            if name != "summary.json":
                tx.path(name).write_bytes(data)
        if "summary.json" in files:
            tx.write_json("summary.json", json.loads(files["summary.json"]))


def test_atomic_json_handles_numpy_and_nan(tmp_path):
    p = atomic_write_json(tmp_path / "a.json", {"x": np.float32(1.5), "n": np.int64(3), "v": np.arange(2), "bad": float("nan")})
    assert json.loads(p.read_text()) == {"x": 1.5, "n": 3, "v": [0, 1], "bad": None}
    assert [f.name for f in tmp_path.iterdir()] == ["a.json"]


def test_transaction_publishes_everything(tmp_path):
    out = tmp_path / "out"
    with OutputTransaction(out) as tx:
        tx.path("data.bin").write_bytes(b"123")
        tx.write_json("summary.json", {"ok": True})
        assert visible(out) == []
    assert visible(out) == ["data.bin", "summary.json"]
    assert hidden(out) == [MANIFEST]
    assert json.loads((out / MANIFEST).read_text()) == {"run": ["data.bin", "summary.json"]}
    assert [f.name for f in tmp_path.iterdir()] == ["out"]


def test_transaction_failure_leaves_the_old_run(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text('{"old": 1}')
    with pytest.raises(RuntimeError):
        with OutputTransaction(out) as tx:
            tx.path("vta.nii.gz").write_bytes(b"partial")
            raise RuntimeError("boom")
    assert [f.name for f in out.iterdir()] == ["summary.json"]
    assert json.loads((out / "summary.json").read_text()) == {"old": 1}


def test_failed_first_run_leaves_no_folder(tmp_path):
    out = tmp_path / "new"
    with pytest.raises(RuntimeError):
        with OutputTransaction(out):
            raise RuntimeError("boom")
    assert not out.exists()


def test_second_run_with_fewer_outputs_removes_the_first_runs_files(tmp_path):
    """A run without NIfTI/VTU/tracts must not leave the previous run's files beside its
    summary; files that vta did not write, and other commands' outputs, stay."""
    out = tmp_path / "out"
    publish(out, {"vta.nii.gz": b"1", "field.vtu": b"2", "tracts.csv": b"3", "summary.json": b'{"run": 1}'})
    publish(out, {"sweep.csv": b"s"}, kind="sweep")
    (out / "notes.txt").write_text("mine")
    publish(out, {"summary.json": b'{"run": 2}'})
    assert visible(out) == ["notes.txt", "summary.json", "sweep.csv"]
    assert json.loads((out / "summary.json").read_text()) == {"run": 2}
    assert json.loads((out / MANIFEST).read_text()) == {"run": ["summary.json"], "sweep": ["sweep.csv"]}


def test_folder_of_an_older_vta_is_cleaned_from_its_summary(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "vta.nii.gz").write_bytes(b"old")
    (out / "summary.json").write_text(json.dumps({"version": "0.1.0", "outputs": ["vta.nii.gz", "summary.json"]}))
    (out / "mine.txt").write_text("keep")
    publish(out, {"summary.json": b'{"new": 1}'})
    assert visible(out) == ["mine.txt", "summary.json"]


def test_a_folder_in_the_way_changes_nothing(tmp_path):
    out = tmp_path / "out"
    publish(out, {"a.csv": b"old a", "summary.json": b'{"old": 1}'})
    (out / "vta.nii.gz").mkdir()
    with pytest.raises(VtaError, match="vta.nii.gz: a folder of that name is in the way"):
        publish(out, {"a.csv": b"new a", "vta.nii.gz": b"x", "summary.json": b'{"new": 1}'})
    assert (out / "a.csv").read_bytes() == b"old a"
    assert json.loads((out / "summary.json").read_text()) == {"old": 1}
    assert hidden(out) == [MANIFEST]


def test_one_writer_at_a_time(tmp_path):
    out = tmp_path / "out"
    with OutputTransaction(out):
        with pytest.raises(VtaError, match="another vta process is writing"):
            with OutputTransaction(out):
                pass


def test_empty_output_path_is_an_error():
    with pytest.raises(VtaError, match="empty"):
        OutputTransaction("")


_KILLER = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path
    import vta.io as vio
    out, die_at = Path(sys.argv[1]), int(sys.argv[2])
    calls = 0
    real_replace = os.replace
    def replace(src, dst):
        global calls
        calls += 1
        if calls == die_at:
            os._exit(9)          # killed like kill -9: no cleanup of any kind
        real_replace(src, dst)
    with vio.OutputTransaction(out) as tx:
        tx.path("vta.nii.gz").write_bytes(b"new vta")
        tx.path("extra.csv").write_bytes(b"new extra")
        os.replace = replace     # count the renames of the publication only
        tx.write_json("summary.json", {"run": "new"})
    print("published")
""")


def test_kill_at_any_step_of_publishing_leaves_a_whole_run(tmp_path):
    """Kill the writer at every rename of the publication: the next transaction finds
    either the old run, complete, or (killed after the commit) the new one - never a mix."""
    script = tmp_path / "killer.py"
    script.write_text(_KILLER)
    outcomes = set()
    for die_at in range(1, 15):
        out = tmp_path / f"out{die_at}"
        publish(out, {"vta.nii.gz": b"old vta", "field.vtu": b"old vtu", "summary.json": b'{"run": "old"}'})
        (out / "mine.txt").write_text("user file")
        proc = subprocess.run([sys.executable, str(script), str(out), str(die_at)], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        with OutputTransaction(out, kind="other"):  # the next writer recovers the folder first
            pass
        run = json.loads((out / "summary.json").read_text())["run"]
        outcomes.add(run)
        expected = {"old": ["field.vtu", "mine.txt", "summary.json", "vta.nii.gz"],
                    "new": ["extra.csv", "mine.txt", "summary.json", "vta.nii.gz"]}[run]
        assert visible(out) == expected, (die_at, proc.returncode)
        assert (out / "vta.nii.gz").read_bytes() == f"{run} vta".encode()
        assert not any(n.startswith((".vta-staging", ".vta-backup")) or n == JOURNAL for n in hidden(out))
        if proc.returncode == 0:
            assert run == "new"
    assert outcomes == {"old", "new"}


def test_staging_left_by_a_killed_run_is_removed_by_the_next(tmp_path):
    out = tmp_path / "out"
    code = ("import os, sys; import vta.io as v\n"
            "tx = v.OutputTransaction(sys.argv[1]).__enter__()\n"
            "tx.path('big.nii.gz').write_bytes(b'x' * 1000)\n"
            "os._exit(9)\n")
    subprocess.run([sys.executable, "-c", code, str(out)], env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert any(n.startswith(".vta-staging") for n in hidden(out))
    publish(out, {"summary.json": b"{}"})
    assert hidden(out) == [MANIFEST] and visible(out) == ["summary.json"]


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_outputs_follow_the_umask(tmp_path, umask):
    """Files are created like any other file (0666 less the umask), not 0600 (mkstemp)."""
    old = os.umask(umask)
    try:
        out = tmp_path / "out"
        publish(out, {"table.csv": b"a,b\n", "summary.json": b"{}"})
        single = atomic_write_bytes(tmp_path / "group.csv", b"x")
    finally:
        os.umask(old)
    for path in (out / "table.csv", out / "summary.json", single):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path


def test_vta_run_outputs_follow_the_umask(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(["bash", "-c", f'umask 002 && "{sys.executable}" -m vta run '
                           f'"{ROOT / "examples" / "homogeneous_3389.toml"}" --out "{out}" -q'],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for name in ("summary.json", "vta.nii.gz", "efield_norm.nii.gz"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o664, name


def _small_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_full_disk_is_one_line_and_keeps_the_old_run(tmp_path):
    """ENOSPC from nibabel while writing the NIfTI: `vta: error: ...` naming the file,
    exit 2, no traceback, the previous run in the folder untouched."""
    disk = tmp_path / "disk"
    if not _small_tmpfs(disk, "256k"):
        pytest.skip("needs root to mount a small tmpfs")
    try:
        out = disk / "out"
        publish(out, {"summary.json": b'{"run": "old"}'})
        config = tmp_path / "big.toml"
        text = (ROOT / "examples" / "homogeneous_3389.toml").read_text()
        config.write_text(text.replace("1 = -1.0", "1 = -3.0") + "\n[output]\ngrid_spacing_mm = 0.1\n")
        proc = subprocess.run([sys.executable, "-m", "vta", "run", str(config), "--out", str(out), "-q"],
                              capture_output=True, text=True)
        assert proc.returncode == 2
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("vta: error: cannot write") and "No space left" in lines[0], proc.stderr
        assert "Traceback" not in proc.stderr
        assert visible(out) == ["summary.json"] and hidden(out) == [MANIFEST]
        assert json.loads((out / "summary.json").read_text()) == {"run": "old"}
    finally:
        subprocess.run(["umount", str(disk)])


def test_file_size_limit_is_one_line(tmp_path):
    """Any OS error while writing (here EFBIG under a file-size limit) is one line, exit 2."""
    out = tmp_path / "out"
    code = ("import resource, signal, sys\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))\n"
            "from vta.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    proc = subprocess.run([sys.executable, "-c", code, "run", str(ROOT / "examples" / "homogeneous_3389.toml"),
                           "--out", str(out), "-q"], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vta: error: cannot write") and "File too large" in lines[0]
    assert not out.exists()
