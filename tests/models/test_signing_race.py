"""Several programs starting at once on a fresh machine (two `edgefleet train` runs, a server and a training run)
all create the fleet signing key: they must end up sharing one key, the one the file keeps, or packages signed by
the losers would fail verification everywhere.

The workers are real processes (spawned, so nothing is shared but the file system), released together by a barrier
on every round; each round uses a fresh key path under a directory that does not exist yet, so the directory
creation, the key file and its public PEM are all contended."""

from __future__ import annotations

import multiprocessing
import stat
from pathlib import Path
from typing import Any

from models.signing import load_private_key, public_key_path_for, public_key_pem, verify_signature

WORKERS = 6
ROUNDS = 8


def _key_path(root: Path, round_no: int) -> Path:
    return root / f"round-{round_no}" / "state" / "keys" / "model-signing.pem"


def _message(round_no: int, worker: int) -> bytes:
    return f"manifest of round {round_no} from worker {worker}".encode()


def _create_and_sign(root: str, worker: int, barrier: Any) -> None:
    """In a child process: on each round, wait for every worker, then create-or-load the key and sign with it."""
    from models.signing import load_or_create_private_key, sign

    try:
        for round_no in range(ROUNDS):
            path = _key_path(Path(root), round_no)
            barrier.wait()
            key = load_or_create_private_key(path)
            (path.parents[2] / f"worker-{worker}.sig").write_bytes(sign(_message(round_no, worker), key))
    except BaseException:
        barrier.abort()  # the others fail at their next wait instead of waiting for this worker forever
        raise


def test_concurrent_creators_share_the_key_the_file_keeps(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS, timeout=300)  # only against a hang if a worker dies outside Python
    workers = [ctx.Process(target=_create_and_sign, args=(str(tmp_path), w, barrier)) for w in range(WORKERS)]
    for p in workers:
        p.start()
    for p in workers:
        p.join()
    assert [p.exitcode for p in workers] == [0] * WORKERS

    for round_no in range(ROUNDS):
        path = _key_path(tmp_path, round_no)
        final = load_private_key(path)
        for w in range(WORKERS):
            signature = (path.parents[2] / f"worker-{w}.sig").read_bytes()
            verify_signature(_message(round_no, w), signature, final.public_key())
        assert public_key_path_for(path).read_text() == public_key_pem(final)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert sorted(p.name for p in path.parent.iterdir()) == ["model-signing.pem", "model-signing.pub.pem"]
