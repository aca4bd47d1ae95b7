"""Event2Vec's data path against a re-creation of the reference's (group ``e2v_data``)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.measure import BenchConfig, paired_times
from bench.results import Results, Row


@dataclass(frozen=True)
class DatapathShape:
    """The Event2Vec data-path comparison: stand-in size, batch, network width, batches per call."""

    classes: int
    per_class: int
    events: int = 28_000  # mean events per ASL-DVS recording
    batch: int = 32
    d_model: int = 64
    batches_per_call: int = 1

    @classmethod
    def make(cls, quick: bool) -> DatapathShape:
        if quick:
            return cls(classes=4, per_class=12)
        return cls(classes=6, per_class=40, d_model=256, batches_per_call=2)


def _cycle(loader: Any) -> Any:
    while True:
        yield from loader


def run_event2vec_datapath_rows(cfg: BenchConfig, results: Results, shape: DatapathShape | None = None) -> None:
    """Event2Vec: our packed loader vs a re-creation of the reference's per-file loader, alone and
    feeding the same network's training step (see bench/event2vec_datapath.py)."""
    from bench.event2vec_datapath import ReferenceEventDataset, _unpack, reference_collate
    from event_lightning.data.datasets.asl_dvs import ASLDVSDataModule, find_asl_dvs_files, split_per_class
    from event_lightning.data.standins.asl_dvs import SyntheticASLConfig
    from event_lightning.nn.event2vec import Event2VecConfig, Event2VecNet

    shape = shape or DatapathShape.make(cfg.quick)
    group = "e2v_data"
    with tempfile.TemporaryDirectory(prefix="el_bench_e2v_") as tmp:
        synthetic = SyntheticASLConfig(
            num_classes=shape.classes, samples_per_class=shape.per_class, events_per_sample=shape.events
        )
        common = {"batch_size": shape.batch, "num_workers": 0, "sample_number": 255}
        ours = ASLDVSDataModule(root=tmp, synthetic=synthetic, seed=0, pin_memory=False, **common)
        ours.prepare_data()  # writes the compressed npz stand-in and packs it
        ours.setup("fit")
        # packing alone (the stand-in files are written): a second DataModule on a fresh cache folder
        start = time.perf_counter()
        packer = ASLDVSDataModule(
            root=tmp,
            synthetic=synthetic,
            seed=0,
            pin_memory=False,
            cache_dir=str(Path(tmp) / "pack-timed"),
            **common,
        )
        packer.prepare_data()
        pack_s = time.perf_counter() - start
        del packer
        paths, labels = find_asl_dvs_files(ours.data_root, "npz", ours.classes)
        train_ids, _ = split_per_class(labels)
        if len(train_ids) < shape.batch:
            raise ValueError(f"bench: {len(train_ids)} training recordings for batches of {shape.batch}")
        reference = ReferenceEventDataset([paths[i] for i in train_ids], labels[train_ids], 255, ours.t_max_used)
        ref_loader = torch.utils.data.DataLoader(
            reference, batch_size=shape.batch, shuffle=True, drop_last=True, collate_fn=reference_collate
        )
        iterators = {"ours": _cycle(ours.train_dataloader()), "reference": _cycle(ref_loader)}
        prepare = {"ours": ours, "reference": None}  # ours normalises its integer times as on the device
        first = {name: _unpack(next(it), prepare[name]) for name, it in iterators.items()}
        sizes = {name: len(batch[-1]) for name, batch in first.items()}
        if set(sizes.values()) != {shape.batch}:
            raise RuntimeError(f"bench: batch sizes {sizes}, expected {shape.batch} on both sides")
        samples = shape.batch * shape.batches_per_call

        def fetch(name: str) -> Callable[[], None]:
            def call() -> None:
                for _ in range(shape.batches_per_call):
                    next(iterators[name])

            return call

        ours_t, ref_t = paired_times(fetch("ours"), fetch("reference"), cfg)
        mean_events = float(np.diff(ours.train_set.packed.offsets).mean())
        size = f"{len(train_ids)} recordings of ~{mean_events / 1000:.0f}k events, batch {shape.batch}"
        peer = "reference per-file npz loader (re-created)"
        results.rows.append(
            Row(
                group,
                "Event2Vec loader, per sample",
                size,
                ours_t / samples,
                peer,
                ref_t / samples,
                note=f"ours {samples / ours_t:.0f} vs reference {samples / ref_t:.0f} samples/s; "
                f"num_workers=0; ours packs the recordings once first ({pack_s:.2f} s)",
            )
        )

        net_config = Event2VecConfig(
            d_model=shape.d_model,
            n_head=max(1, shape.d_model // 16),
            d_feedforward=2 * shape.d_model,
            num_classes=shape.classes,
        )
        steps = {}
        for name in iterators:
            torch.manual_seed(0)  # the same initial network on both sides
            net = Event2VecNet(net_config)
            optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)

            def step(
                net: torch.nn.Module = net, optimizer: torch.optim.Optimizer = optimizer, name: str = name
            ) -> None:
                for _ in range(shape.batches_per_call):
                    x, y, t, p, valid, label = _unpack(next(iterators[name]), prepare[name])
                    loss = torch.nn.functional.cross_entropy(net(x, y, t, p, valid), label)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()

            steps[name] = step
        ours_t, ref_t = paired_times(steps["ours"], steps["reference"], cfg)
        results.rows.append(
            Row(
                group,
                "Event2Vec loader + train step, per sample",
                f"{size}, d_model {shape.d_model}",
                ours_t / samples,
                peer,
                ref_t / samples,
                note=f"ours {samples / ours_t:.1f} vs reference {samples / ref_t:.1f} samples/s; same network, AdamW",
            )
        )
