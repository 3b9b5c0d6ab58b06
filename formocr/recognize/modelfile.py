"""Model files: safetensors weights plus a JSON card, verified before use.

Weights are stored with safetensors, which cannot execute code on load (unlike pickle). The preprocessing
constants and the architecture are stored twice: in the safetensors metadata (so the weights file alone is
self-describing) and in the human-readable card, which also records how the model was made and its sha256. The
loader refuses a weights file whose sha256 differs from its card.
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from formocr.errors import ModelError


def code_version() -> str:
    """Which formocr is training: the commit of a source checkout ("-dirty" with uncommitted changes), else the
    package version. Training cards record it, so a model can be rebuilt with the code that made it."""
    from formocr import __version__

    root = Path(__file__).resolve().parents[2]
    commit = ""
    if (root / ".git").exists():  # a checkout of this project, not some repository an installed copy sits in
        try:
            commit = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty", "--abbrev=12"],
                                    capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            commit = ""
    return f"formocr {__version__} at commit {commit}" if commit else f"formocr {__version__}"


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def card_path(weights: str | Path) -> Path:
    p = Path(weights)
    return p.with_name(p.name.removesuffix(".safetensors") + ".card.json")


@dataclass(frozen=True)
class LoadedModel:
    state: dict[str, torch.Tensor]
    meta: dict[str, Any]  # from the safetensors header: arch, norm, classes, temperature
    card: dict[str, Any]
    sha256: str
    path: Path

    def require_arch(self, arch: str) -> None:
        """Refuse a model file of another kind (a string model given as a digit model, say)."""
        if self.meta.get("arch") != arch:
            raise ModelError(f"unknown architecture {self.meta.get('arch')!r} (expected {arch})", self.path)

    def mismatch(self, e: Exception) -> ModelError:
        """The error for weights or settings that do not fit the architecture the file declares."""
        return ModelError(f"weights do not match the declared model ({type(e).__name__}: {e})", self.path)

    @property
    def identity(self) -> str:
        """A short name for JSON output: the card's name and the first 12 hex of the weights' sha256."""
        return f"{self.card.get('name', self.path.stem)}@sha256:{self.sha256[:12]}"


def save_model(path: str | Path, state: dict[str, torch.Tensor], meta: dict[str, Any], card: dict[str, Any]) -> Path:
    """Write weights (with ``meta`` in the header) and the card carrying their checksum."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    save_file(tensors, str(p), metadata={"formocr": json.dumps(meta, sort_keys=True)})
    full = dict(card)
    full.update(meta)
    full["weights"] = p.name
    full["sha256"] = sha256_file(p)
    card_path(p).write_text(json.dumps(full, indent=2, sort_keys=False) + "\n", "utf-8")
    return p


def shipped_model(name: str) -> Path:
    """A model file shipped inside the package (``formocr/models/``), found through importlib.resources so an
    installed wheel, a zipapp-free site-packages or a Ray node's copy finds it as a checkout does."""
    return Path(str(resources.files("formocr") / "models" / name))


def load_model(path: str | Path, verify: bool = True) -> LoadedModel:
    """Load and verify; any problem is a :class:`ModelError` naming the file."""
    p = Path(path)
    if not p.is_file():
        raise ModelError("model file not found", p)
    cp = card_path(p)
    card: dict[str, Any] = {}
    digest = sha256_file(p)
    if verify:
        if not cp.is_file():
            raise ModelError(f"model card {cp.name} not found beside the weights", p)
        try:
            card = json.loads(cp.read_text("utf-8"))
        except (OSError, ValueError, RecursionError) as e:  # ValueError: bad JSON or not UTF-8
            raise ModelError(f"model card unreadable: {type(e).__name__}: {str(e)[:120]}", cp) from None
        if not isinstance(card, dict):
            raise ModelError(f"model card is not a JSON object but {type(card).__name__}", cp)
        if not isinstance(card.get("sha256"), str):
            raise ModelError("model card records no sha256 of its weights: not a formocr model card", cp)
        if card.get("sha256") != digest:
            raise ModelError(
                f"checksum mismatch: weights sha256 {digest[:16]}… but the card says "
                f"{str(card.get('sha256'))[:16]}… (file damaged or replaced)",
                p,
            )
    try:
        state = load_file(str(p))
        from safetensors import safe_open

        with safe_open(str(p), framework="pt") as f:
            header = f.metadata() or {}
        meta = json.loads(header["formocr"])
    except (SafetensorError, OSError, KeyError, json.JSONDecodeError, ValueError, RecursionError) as e:
        raise ModelError(f"not a valid formocr model file ({type(e).__name__}: {str(e)[:120]})", p) from None
    check_meta(meta, p)
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise ModelError(f"weights {bad[0]!r} hold NaN or infinite values", p)
    return LoadedModel(state, meta, card, digest, p)


MAX_WIDTH = 1024  # channels of a layer; the shipped networks use at most 128
MAX_HIDDEN = 4096


def load_parent(path: str | Path, arch: str, what: str) -> tuple[LoadedModel, dict[str, Any]]:
    """A single network of ``arch`` to train on from (``--init``), and its card's training record; an ensemble or
    another architecture is a :class:`ModelError`. The caller checks what its own kind of model must share."""
    parent = load_model(path)
    if "members" in parent.meta:
        raise ModelError(f"not a single {arch} {what} model but an ensemble, cannot train on from it (take one "
                         "member out with `formocr-train extract-member`)", path)
    if parent.meta.get("arch") != arch:
        raise ModelError(f"not a single {arch} {what} model, cannot train on from it", path)
    return parent, parent.card.get("training", {})


def check_meta(meta: Any, path: Path) -> None:
    """The settings in a model file's header, checked before any network is built from them: a header that asks
    for layers thousands of channels wide would take gigabytes before its weights are found not to fit."""
    if not isinstance(meta, dict):
        raise ModelError(f"header settings are not a JSON object but {type(meta).__name__}", path)
    members = meta.get("members", [meta])
    if not isinstance(members, list) or not members or not all(isinstance(m, dict) for m in members):
        raise ModelError("header 'members': expected a non-empty list of objects", path)
    for m in members:
        widths = m.get("widths")
        if widths is not None and (not isinstance(widths, list) or len(widths) != 5 or not all(
                isinstance(w, int) and not isinstance(w, bool) and 1 <= w <= MAX_WIDTH for w in widths)):
            raise ModelError(f"header 'widths': expected 5 integers from 1 to {MAX_WIDTH}, got {widths!r}", path)
        hidden = m.get("hidden")
        if hidden is not None and (not isinstance(hidden, int) or isinstance(hidden, bool)
                                   or not 1 <= hidden <= MAX_HIDDEN):
            raise ModelError(f"header 'hidden': expected an integer from 1 to {MAX_HIDDEN}, got {hidden!r}", path)
        t = m.get("temperature", 1.0)
        if not isinstance(t, (int, float)) or isinstance(t, bool) or not math.isfinite(t) or t <= 0:
            raise ModelError(f"header 'temperature': expected a positive number, got {t!r}", path)
    norm = meta.get("norm")
    if norm is not None:
        std, mean = (norm.get("std"), norm.get("mean")) if isinstance(norm, dict) else (None, None)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (std, mean)) \
                or std <= 0:  # type: ignore[operator]
            raise ModelError(f"header 'norm': expected a finite mean and a positive std, got {norm!r}", path)


def member_weights(meta: dict[str, Any], state: dict[str, torch.Tensor]
                   ) -> list[tuple[dict[str, Any], dict[str, torch.Tensor]]]:
    """(settings, weights) of each network in a model file: the file's own meta for one network, else each entry
    of ``meta["members"]`` with the weights stored under ``members.i.``."""
    if "members" not in meta:
        return [(meta, state)]
    out = []
    for i, m in enumerate(meta["members"]):
        prefix = f"members.{i}."
        out.append((m, {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}))
    return out


def save_ensemble(paths: Sequence[str | Path], out: str | Path, *, arch: str, shared: tuple[str, ...],
                  shared_name: str, member_keys: tuple[str, ...], task: str, ensemble: str, figure: str,
                  command: str) -> dict[str, Any]:
    """Write one model file holding several trained single models of ``arch`` as an ensemble; returns its card.

    The members must agree on the ``shared`` meta (what they read, and what they answer in); each keeps its own
    ``member_keys`` settings, and the card keeps each member's own card (its command, seed, data and figures, so
    every member can be rebuilt), with ``figure`` of each under ``figures[figure + "_per_member"]``.
    """
    loaded = [load_model(p) for p in paths]
    if len(loaded) < 2:
        raise ModelError("an ensemble needs at least two models", Path(out))
    first = loaded[0]
    state: dict[str, torch.Tensor] = {}
    members, cards = [], []
    drop = (*shared, "arch", "weights", "evaluation")  # the ensemble has its own evaluation
    for i, m in enumerate(loaded):
        if m.meta.get("arch") != arch or "members" in m.meta:
            raise ModelError(f"not a single {arch} model", m.path)
        if any(m.meta.get(k) != first.meta.get(k) for k in shared):
            raise ModelError(f"{shared_name} differ from {first.path.name}'s", m.path)
        members.append({k: m.meta[k] for k in member_keys if k in m.meta})
        state.update({f"members.{i}.{k}": v for k, v in m.state.items()})
        cards.append({k: v for k, v in m.card.items() if k not in drop})
    meta = {"arch": arch, "members": members, **{k: first.meta[k] for k in shared}}
    card: dict[str, Any] = {
        "name": Path(out).name.removesuffix(".safetensors"),
        "task": first.card.get("task", task),
        "training": {"command": command, "ensemble": ensemble, "members": cards},
        "figures": {f"{figure}_per_member": [c.get("figures", {}).get(figure) for c in cards]},
    }
    save_model(out, state, meta, card)
    return card
