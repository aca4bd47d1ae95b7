"""Event2Vec data path: this implementation against a re-creation of the reference's, same data.

The reference (Event2Vec arxiv_v1, ``event_dataset.py``) opens one spikingjelly ``.npz`` per sample in
the DataLoader workers, draws 255 events with ``rng.choice(np.arange(n), 255, replace=False)``,
sorts them, normalises t, and pads the batch with ``pad_sequence(..., padding_value=-1)``.  This
implementation packs the recordings once into a memory-mapped cache and draws a whole batch per
worker call (``PackedEventDataset.__getitems__``).

Both loaders read the same synthetic ASL-DVS-sized recordings (about 28k events each, as in the
real dataset, compressed npz as spikingjelly writes by default) with the same batch size, worker
count and DataLoader settings.  Reported: batches-only throughput (samples/s) and training
throughput with the same network and optimiser (samples/s), and their ratios.

    python bench/event2vec_datapath.py --workers 2 --batches 30 --train-steps 6
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset

from event_lightning.data.datasets.asl_dvs import ASLDVSDataModule, find_asl_dvs_files, split_per_class
from event_lightning.data.standins.asl_dvs import SyntheticASLConfig
from event_lightning.nn.event2vec import Event2VecConfig, Event2VecNet


class ReferenceEventDataset(Dataset):
    """The reference's per-sample path, re-created from its description (not its code)."""

    def __init__(self, paths: list[Path], labels: np.ndarray, sample_number: int, t_max: float) -> None:
        self.paths, self.labels = paths, labels
        self.sample_number, self.t_max = sample_number, t_max
        self.rng = np.random.default_rng(0)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        sample = np.load(self.paths[i], mmap_mode="r")  # mmap is ignored for .npz: every array is read whole
        t, y, x, p = sample["t"], sample["y"], sample["x"], sample["p"]
        n = t.shape[0]
        if self.sample_number <= n:
            indices = self.rng.choice(np.arange(n), self.sample_number, replace=False)
            indices.sort()
            t, y, x, p = t[indices], y[indices], x[indices], p[indices]
        t = t - t[0]
        t = torch.from_numpy(t.astype(np.float32) / np.float32(self.t_max))
        to_long = lambda a: torch.from_numpy(np.asarray(a, dtype=np.int64))  # noqa: E731
        return to_long(x), to_long(y), t, to_long(p), int(self.labels[i])


def reference_collate(batch: list):
    x, y, t, p, label = zip(*batch, strict=True)
    x, y, t, p = (pad_sequence(list(v), batch_first=True, padding_value=-1) for v in (x, y, t, p))
    return (x, y, t, p), p != -1, torch.as_tensor(label, dtype=torch.long)


def reference_seed_worker(worker_id: int) -> None:
    info = torch.utils.data.get_worker_info()
    info.dataset.rng = np.random.default_rng(torch.initial_seed())


def _unpack(batch, data: ASLDVSDataModule | None = None) -> tuple[torch.Tensor, ...]:
    """(x, y, t, p, valid, label) from either loader's batch; ``data`` normalises the times of ours
    (its ``on_after_batch_transfer``, which runs on the device in training)."""
    if isinstance(batch, tuple) and len(batch) == 3:
        (x, y, t, p), valid, label = batch
        return x, y, t, p, valid, label
    if data is not None:
        batch = data.on_after_batch_transfer(batch, 0)
    return batch.x, batch.y, batch.t, batch.p, batch.valid_mask, batch.label


def _cycle(loader: DataLoader):
    """Batches of ``loader`` over as many epochs as asked for (workers persist across epochs)."""
    while True:
        yield from loader


def loader_throughput(loader: DataLoader, batches: int, data: ASLDVSDataModule | None = None) -> float:
    """Samples per second over ``batches`` batches, after one warm-up batch (worker start excluded)."""
    iterator = _cycle(loader)
    next(iterator)
    seen, start = 0, time.perf_counter()
    for _ in range(batches):
        seen += len(_unpack(next(iterator), data)[-1])
    return seen / (time.perf_counter() - start)


def training_throughput(
    loader: DataLoader, steps: int, config: Event2VecConfig, seed: int, data: ASLDVSDataModule | None = None
) -> float:
    """Samples per second of full training steps (forward, backward, AdamW) fed by ``loader``."""
    torch.manual_seed(seed)
    net = Event2VecNet(config)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    iterator = _cycle(loader)

    def step() -> int:
        x, y, t, p, valid, label = _unpack(next(iterator), data)
        loss = torch.nn.functional.cross_entropy(net(x, y, t, p, valid), label)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return len(label)

    step()  # warm-up (worker start, allocator)
    seen, start = 0, time.perf_counter()
    for _ in range(steps):
        seen += step()
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", default="/tmp/event2vec_bench", help="where the stand-in recordings go")
    parser.add_argument("--classes", type=int, default=24)
    parser.add_argument("--per-class", type=int, default=60, help="recordings per class")
    parser.add_argument("--events", type=int, default=28_000, help="mean events per recording (ASL-DVS: 28k)")
    parser.add_argument(
        "--uncompressed", action="store_true", help="plain np.savez instead of spikingjelly's default"
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=30, help="batches timed for the data-only throughput")
    parser.add_argument("--train-steps", type=int, default=6, help="training steps timed (0: skip)")
    parser.add_argument("--d-model", type=int, default=256, help="network width for the training comparison")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: leave as is)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    synthetic = SyntheticASLConfig(
        num_classes=args.classes,
        samples_per_class=args.per_class,
        events_per_sample=args.events,
        short_fraction=0.01,
        compressed=not args.uncompressed,
    )
    common = {"batch_size": args.batch_size, "num_workers": args.workers, "sample_number": 255}
    start = time.perf_counter()
    ours = ASLDVSDataModule(root=args.root, synthetic=synthetic, seed=0, **common)
    ours.prepare_data()  # writes the stand-in (first run) and packs it
    ours.setup("fit")
    prepare_s = time.perf_counter() - start

    paths, labels = find_asl_dvs_files(ours.data_root, "npz", ours.classes)
    train_ids, _ = split_per_class(labels)
    reference = ReferenceEventDataset([paths[i] for i in train_ids], labels[train_ids], 255, ours.t_max_used)
    loader_settings = {"shuffle": True, "drop_last": True, "persistent_workers": args.workers > 0}
    if args.workers:
        loader_settings["prefetch_factor"] = 4
    reference_loader = DataLoader(
        reference,
        batch_size=args.batch_size,
        num_workers=args.workers,
        collate_fn=reference_collate,
        worker_init_fn=reference_seed_worker,
        **loader_settings,
    )
    if len(train_ids) < args.batch_size:
        raise SystemExit(
            f"{len(train_ids)} training recordings for batches of {args.batch_size}; raise --per-class"
        )

    results = {
        "recordings": len(paths),
        "train_recordings": len(train_ids),
        "mean_events": float(np.diff(ours.train_set.packed.offsets).mean()),
        "compressed_npz": not args.uncompressed,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "torch_threads": torch.get_num_threads(),
        "prepare_and_pack_s": round(prepare_s, 2),
    }
    results["reference_loader_samples_per_s"] = loader_throughput(reference_loader, args.batches)
    results["ours_loader_samples_per_s"] = loader_throughput(ours.train_dataloader(), args.batches, ours)
    results["loader_ratio"] = results["ours_loader_samples_per_s"] / results["reference_loader_samples_per_s"]
    if args.train_steps:
        config = Event2VecConfig(d_model=args.d_model, n_head=max(1, args.d_model // 16),
                                 d_feedforward=2 * args.d_model, num_classes=args.classes)  # fmt: skip
        results["train_d_model"] = args.d_model
        results["reference_train_samples_per_s"] = training_throughput(
            reference_loader, args.train_steps, config, 0
        )
        results["ours_train_samples_per_s"] = training_throughput(
            ours.train_dataloader(), args.train_steps, config, 0, ours
        )
        results["train_ratio"] = (
            results["ours_train_samples_per_s"] / results["reference_train_samples_per_s"]
        )
    text = json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in results.items()}, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text)


if __name__ == "__main__":
    main()
