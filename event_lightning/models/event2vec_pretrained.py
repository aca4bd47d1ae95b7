"""Starting an Event2Vec network from another run's checkpoint (the reference's loading options).

* ``embed_pretrained``: the embedding tables (and neighbour weights) only, key for key.
* ``pretrained``: the whole network except the classifier head, e.g. a self-supervised
  pre-training (:class:`~event_lightning.nn.event2vec.MaskedEventNet`, which has no head) or a
  classifier trained on other classes.

Checkpoints are Lightning ``.ckpt`` files of :class:`~event_lightning.models.event2vec.Event2VecClassifier`
(network keys under ``net.``), read with ``weights_only=True``.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from event_lightning.checkpoint_reading import CheckpointError, read_checkpoint

__all__ = ["HEAD_PREFIX", "load_pretrained_embedding", "load_pretrained_network", "network_state"]

HEAD_PREFIX = "classifier.head."
_EMBEDDING_PREFIX = "embedding.embed."


def network_state(path: str | Path, prefix: str = "net.") -> dict[str, Tensor]:
    """The network's weights in the Lightning checkpoint at ``path``, keys without ``prefix``."""
    checkpoint = read_checkpoint(path)
    state = {k[len(prefix) :]: v for k, v in checkpoint.get("state_dict", {}).items() if k.startswith(prefix)}
    if not state:
        raise CheckpointError(f"{path}: no network weights under '{prefix}' in the checkpoint's state_dict")
    return state


def load_pretrained_embedding(net: nn.Module, state: dict[str, Tensor], source: str) -> None:
    """Copy the embedding tables of ``state`` (a :func:`network_state`) into ``net.embedding.embed``.

    The two runs must use the same ``embed``, grid and ``d_model``; anything else is an error
    naming ``source``.
    """
    tables = {k[len(_EMBEDDING_PREFIX) :]: v for k, v in state.items() if k.startswith(_EMBEDDING_PREFIX)}
    try:
        net.embedding.embed.load_state_dict(tables)
    except RuntimeError as error:
        raise CheckpointError(f"{source}: its embedding does not fit this model's ({error})") from error


def load_pretrained_network(net: nn.Module, state: dict[str, Tensor], source: str) -> None:
    """Copy every weight of ``state`` but the classifier head into ``net`` (the head keeps its init).

    Every other key must match both ways: a pre-training with another temporal encoding or depth
    is an error naming the keys, where the reference's non-strict load skipped them silently.
    """
    kept = {k: v for k, v in state.items() if not k.startswith(HEAD_PREFIX)}
    try:
        result = net.load_state_dict(kept, strict=False)
    except RuntimeError as error:
        raise CheckpointError(f"{source}: its network does not fit this model's ({error})") from error
    missing = [k for k in result.missing_keys if not k.startswith(HEAD_PREFIX)]
    if missing or result.unexpected_keys:
        raise CheckpointError(
            f"{source}: not this model's network: missing {missing}, unexpected {result.unexpected_keys}"
        )
