"""Atomic outputs: all or nothing."""

import json

import numpy as np
import pytest

from vta.io import OutputTransaction, atomic_write_json


def test_atomic_json_handles_numpy_and_nan(tmp_path):
    p = atomic_write_json(tmp_path / "a.json", {"x": np.float32(1.5), "n": np.int64(3), "v": np.arange(2), "bad": float("nan")})
    assert json.loads(p.read_text()) == {"x": 1.5, "n": 3, "v": [0, 1], "bad": None}
    assert [f.name for f in tmp_path.iterdir()] == ["a.json"]


def test_transaction_publishes_everything(tmp_path):
    out = tmp_path / "out"
    with OutputTransaction(out) as tx:
        tx.path("data.bin").write_bytes(b"123")
        tx.write_json("summary.json", {"ok": True})
        assert not out.exists() or not any(out.iterdir())
    assert sorted(f.name for f in out.iterdir()) == ["data.bin", "summary.json"]
    assert [f.name for f in tmp_path.iterdir()] == ["out"]


def test_transaction_failure_leaves_nothing(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text('{"old": 1}')
    with pytest.raises(RuntimeError):
        with OutputTransaction(out) as tx:
            tx.path("vta.nii.gz").write_bytes(b"partial")
            raise RuntimeError("boom")
    assert [f.name for f in out.iterdir()] == ["summary.json"]
    assert json.loads((out / "summary.json").read_text()) == {"old": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["out"]
