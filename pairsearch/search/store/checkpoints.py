"""Checkpoints: where a study's low-budget trainings stand, so that survivors continue.

Successive halving trains every configuration for a few epochs and the best for longer.
A rung's trial saves each configuration's ``evaluation.TrainingState`` (per run:
weights, optimizer state, random generator state) here; the next rung continues from it
instead of training from epoch 0, which gives the same scores (the learning rate is
constant) for 1/eta less training per survivor.

One file per configuration under ``<storage file>.checkpoints/<study>/`` (a SQLite or
journal storage; a server storage has no folder of its own, so its searches retrain),
named by a hash of the configuration without its epochs: a rung's save replaces the
last one's. A file holds the SHA-256 of its payload, then the payload, written to a
temporary file and renamed into place, so a kill leaves the old file or the new one,
never half of one. A file that is missing, corrupt, or was made under another protocol,
device, precision or torch means a training from scratch (with a warning for the
corrupt one), never a wrong score. Optuna's artifact store was the other candidate; it
cannot forget an artifact it has listed on a trial, and halving drops most of its
checkpoints, so the files are ours. The folder goes once the search is complete.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Mapping, Optional

import torch

from pairsearch.evaluation import Config, TrainingState

SUFFIX = ".checkpoints"
"""Checkpoints of the studies in ``studies.db`` live under ``studies.db.checkpoints/``."""

_DIGEST = 32  # bytes of SHA-256


def resume_key(config: Config) -> str:
    """A configuration without its epochs: trainings that one continues into another."""
    effective = {k: v for k, v in config.effective().items() if k != "epochs"}
    return json.dumps(effective, sort_keys=True)


def study_folder(storage_file: str, study_name: str) -> Path:
    """The folder of ``study_name``'s checkpoints beside its storage file."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", study_name)[:80]
    digest = hashlib.sha256(study_name.encode()).hexdigest()[:8]
    return Path(storage_file + SUFFIX) / f"{slug}-{digest}"


class CheckpointStore:
    """The training states of one study's configurations, one file each.

    Args:
        folder: Where the files go (made on the first save).
        fingerprint: What a state must have been trained under to be continued here (the
            protocol, device type, precision, torch version); another means retraining.
    """

    def __init__(self, folder: Path, fingerprint: Mapping[str, Any]) -> None:
        self.folder = Path(folder)
        self.fingerprint = json.loads(json.dumps(fingerprint, sort_keys=True))

    def _path(self, key: str) -> Path:
        return self.folder / (hashlib.sha256(key.encode()).hexdigest()[:40] + ".pt")

    def save(self, key: str, state: TrainingState, curve: list[tuple[int, float]]) -> None:
        """Keep ``state`` (and the ``(step, mean validation accuracy)`` curve that led to
        it) for ``key``.

        A failure to write (a full disk) costs only the continuation: it warns and goes on.
        """
        buffer = io.BytesIO()
        torch.save({"fingerprint": self.fingerprint, "key": key,
                    "curve": [[int(step), float(value)] for step, value in curve],
                    "state": state.to_dict()}, buffer)
        payload = buffer.getvalue()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
            with os.fdopen(handle, "wb") as file:
                file.write(hashlib.sha256(payload).digest())
                file.write(payload)
            os.replace(temporary, self._path(key))
        except OSError as error:
            warnings.warn(f"checkpoint not saved ({error}): a longer budget of this "
                          "configuration will train from scratch", stacklevel=2)

    def load(self, key: str, below: int
             ) -> Optional[tuple[TrainingState, list[tuple[int, float]]]]:
        """The state kept for ``key`` and its curve, if one exists at fewer than ``below``
        epochs and was made under this store's fingerprint; else ``None`` (train anew)."""
        path = self._path(key)
        try:
            raw = path.read_bytes()
        except OSError:
            return None  # never saved, or removed
        try:
            digest, payload = raw[:_DIGEST], raw[_DIGEST:]
            if hashlib.sha256(payload).digest() != digest:
                raise ValueError("its checksum does not match")
            saved = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
            state = TrainingState.from_dict(saved["state"])
            curve = [(int(step), float(value)) for step, value in saved.get("curve", [])]
        except Exception as error:  # a truncated or damaged file: any decoding error
            warnings.warn(f"checkpoint {path} is unreadable ({error}); training from "
                          "scratch", stacklevel=2)
            self.remove(key)
            return None
        if saved.get("key") != key or saved.get("fingerprint") != self.fingerprint:
            return None
        if state.epochs >= below:
            return None
        return state, curve

    def remove(self, key: str) -> None:
        """Forget ``key``'s state (nothing happens if there is none)."""
        try:
            self._path(key).unlink()
        except OSError:
            pass

    def clear(self) -> None:
        """Remove the study's folder (a complete search needs none of it)."""
        shutil.rmtree(self.folder, ignore_errors=True)
        try:
            self.folder.parent.rmdir()  # the storage's folder, once no study has any
        except OSError:
            pass
