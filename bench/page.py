"""docs/performance.md: the page ``python -m bench`` writes after a full run."""

from __future__ import annotations

from pathlib import Path

from bench.goals import goal_lines
from bench.measure import BenchConfig, machine_description
from bench.results import Results
from bench.table import format_markdown_table

PAGE_INTRO = """# Performance

Written by `python -m bench` (bench/run.py); rerun it to refresh this page. Every row times this
project and a peer library in the same process on the same data: {warmup} warm-up call(s), then
the median of {repeats} timed calls, alternating ours and the peer call by call so that load
from other jobs hits both sides alike. **ratio = peer time / our time** (> 1: this project is
faster). "outputs agree" compares the two results on that same data (exact equality for event
representations, tolerances stated per row for the networks).

**Machine of this run:** {machine}. The run took {elapsed:.0f} s. The box is a 2-core CPU shared
with other jobs, so absolute times are noisy; ratios (both sides measured back to back) are the
numbers to read. Without a GPU the per-method rows (groups methods, e2v_data) run on the CPU and
GPU-only measurements are **not measured**.
"""

PAGE_ANALYSIS = """
## Where the time goes in the event kernels

Profiled on this machine with per-thread CPU time (so other jobs' load drops out; the table's
wall-clock numbers vary more). Each kernel is one compiled pass over the 13-byte packed records
that checks every event (`validate`'s rules), indexes it and counts or filters it
(`event_lightning/events/kernels/`); the bandwidth notes in the table compare the bytes each
pass must move with two copies measured in the same run: 128 MB (main memory) and one of the
event stream's size (6.5 MB, which stays in cache between repeated calls, as the kernels'
inputs do).

- **to_frame, time_window=10 ms.** The output is 599x2x128x128 int16, 39 MB. The main rows
  drop each output, so the next call writes into the same memory
  (`event_lightning/events/represent/reused_memory.py`). When the caller keeps its outputs
  (the *fresh output memory* row), every call maps fresh memory and the operating system zeroes
  it as the first writes touch it: ~4-4.5 ms here (the *page faults* row), the same cost
  tonic's `np.zeros` pays. Nothing on our side cuts it: numpy already madvises huge pages
  (~390 faults per call, not 9,600); a 2 MB-aligned mapping with `MADV_HUGEPAGE`, or
  `MADV_POPULATE_WRITE`, measured the same 3.9-4.2 ms (the kernel zeroing at ~10 GB/s, this
  machine's write bandwidth); taking the output from `np.zeros` (calloc, zeroed by those
  faults) and skipping the pass's own zeroing of each frame saved nothing measurable (that
  zeroing runs on the page just faulted in, in cache). So that row's ratio is bounded by
  tonic's time over the page faults, ~10x at tonic's ~46 ms, before a single count; the row's
  note and its goal line state that bound from the same run. The counting pass adds ~2.5-3 ms.
  The other modes write 1-6.5 MB and run at ~2 ms (~4 ns per event).
- **voxel_grid.** ~1.4-1.5 ms with warm caches (~3 ns per event), ~1.7 ms right after a
  tonic call (as the table's rows alternate), far below bandwidth: it is bound by the
  instructions each event needs. tonic's float sums are reproduced bit for bit, so per event:
  `validate`'s checks, tonic's division for its time position, and two scattered
  read-modify-write float adds into a 128 KB row (in L2, not L1), the right part kept in
  scratch until the next bin's left parts are in. Record indices are unsigned (one pointer
  increment per event, no negative-index test) and the kept and re-derived right parts run in
  separate loops (no per-event test): ~35 instructions per event, 13% less time than the
  pass it replaced (per-thread CPU time, both in one process). Reading and checking the
  records alone takes ~0.35 ms, the right parts' adds ~0.3 ms. Tried and not kept: a
  vectorised first pass (AVX-512 gathers of the 13-byte records) ran no faster than the
  scalar loop here; one loop adding a bin's left parts together with the right parts of the
  bin two before (three scratch rows) was faster in one form but not once it also handled
  runs longer than the scratch, so it was not kept.
- **denoise / refractory_period.** A checking pass that also finds the bounding box, the filter
  pass over a per-pixel table (tonic's sequential rule, branch-free neighbour test), then a copy
  of the kept records: ~2-3 ms (4-6 ns per event) against tonic's per-event Python loop of
  2-3 µs per event.
- **downsample.** One read and one write of each record: ~0.7 ms, near the stream-sized copy's
  bandwidth.
- **First calls.** The kernels compile on the first call of a fresh installation (~5-9 s here
  in all, the first module also paying numba's start-up), then load from numba's on-disk cache:
  ~1.5-2 s in a new process, nearly all numba's import and target set-up, a few milliseconds
  per kernel after that.
"""

HGVAE_ANALYSIS = """
## Where the time goes in the HG-VAE step

Profiled with torch.profiler and counted minor page faults (`getrusage`) around each side's step,
1 thread, per-process CPU time (other jobs' load drops out), on the **reference** rows' shapes.

- **The convolutions are the step.** Both sides run the same convolutions with the same
  multiply-adds: ours over all bins at once (T x B images per call, channels-last), the
  reference's over B images per bin. oneDNN runs both near this core's peak (the 64->128 5x5
  conv on 16x16, forward and backward: 60 GMAC/s at 480 images channels-last, 49 at 8 images
  NCHW). On DVSGesture (conv [32, 64, 128], T=60, B=8) they are 3.05 s of our 3.39 s profiled
  step on the idle machine (90 %: forward 1.01 s, backward 2.04 s, 2026-12-05; 4.85 s of the
  reference's 6.3 s in an earlier profile under load), and the reference's whole step takes
  4.0-4.2 s, so even with everything else free ours could reach only ~1.35x there: 1.5x would
  need fewer convolution multiply-adds, and the reference's model
  has none to spare (a conv, a max-pool and a threshold per bin; the LIF traces are linear but
  every bin's conv output goes through the pool and the threshold; only the last conv layer's
  last bin, and one more bin per layer below it, never reach the readout: 2-5 % at T=60).
  N-MNIST's convolutions (2->12, 12->30 channels) are small, so the rest of the step counts more.
- **Fewer multiply-adds, tried on DVSGesture's 64->128 layer** (480 images of 16x16, one thread):
  a spectral convolution (18x18 DFT, the channel mixing per frequency as one batched product: 2.8
  G multiply-adds instead of 25.2 G, 11.3 G with dense transforms) took 0.49 s forward with
  pocketfft or DFT matrices and 0.61 s with its transforms and mixing as oneDNN 1x1 convolutions,
  against 0.42 s for oneDNN's direct convolution, which already runs at ~60 GMAC/s, this core's
  peak (MKL's sgemm reaches 37-45 GMAC/s here, and the mixing ran at 10-28); a sparse convolution
  of the spikes (the traces are linear, so the conv could act on the spikes before the trace
  filter) does not pay either: with the bench's weights the three conv layers fire at 82 %, 55 %
  and 66 % of their sites per bin.
- **The N-MNIST row's spread, and what closed it.** Until 2026-12-05 its steps took 1.8-2.4 s,
  varying from process to process (six processes: 1.4-1.8x; the full runs drew 1.6x and 1.3x).
  The step's time followed its page faults (1.67 s with none, 2.31 s with 216k), which came in
  multiples of 24,001 pages (98.3 MB): the last conv layer's `[T * B, 30, 16, 16]` potentials and
  their gradient, above glibc's 32 MiB mmap ceiling, mapped afresh at every step. That layer's
  spikes feed only the dense readout, which reads their sum over time weighted by one row of its
  trace kernel; so the layer now hands on only that sum and `U[T-1]`
  (`blocked_conv_weighted_spikes` in `event_lightning/nn/decolle/blocked.py`). Each block of steps
  keeps its own potentials (at most 16 MiB, from the heap) for the backward, which builds the
  surrogate gradient block by block, so neither `[T, ...]` buffer exists. One process, 10 steps:
  faults 128k, 80k, 9k, 6k, then 0 from the fifth step (before: 224k, falling to 24-105k and never
  0); steady-state step 1.55 s (before: 1.8-1.95 s). The DVSGesture step is unchanged (3.39 s; its
  faults were already 0 after two steps).
- **What was ours, and is gone.** Each conv LIF layer formed its traces for the whole window
  (a `[T, T]` kernel product, `T^2 N` multiply-adds), then one conv over all `T x B` images,
  then the max-pool with int64 indices; every one of those `[T * B, ...]` tensors and their
  gradients (30-160 MB each) is above glibc's mmap threshold, so it was mapped afresh and
  page-faulted in at every step: 365-460k minor faults per N-MNIST step, 160-250k per
  DVSGesture step (1-2 us each on a quiet box, 10-30 us under load), against ~0 for the
  reference's per-bin tensors after its first step. Now, on a CPU in eager mode, a conv layer
  runs in blocks of steps of at most 16 MB of conv output (`blocked_conv_potentials` in
  `event_lightning/nn/decolle/blocked.py`): each block's traces come from its own spikes and the trace
  state the block before handed on (`T n N` multiply-adds), then the conv and the pool; the
  backward recomputes a block's traces from its spikes and saved start state and runs the
  blocks in reverse with the state's adjoint. The spike function writes its spikes and its
  gradient without extra buffers. Faults per step: N-MNIST 125-175k, DVSGesture 70-90k; step
  CPU time (same load, alternating): N-MNIST ours 1.9 s against the reference's 3.0 s (was 2.4-2.6 s),
  DVSGesture 3.6 s against 4.0 s (was 3.7 s); peak step memory at batch 32, 50 bins: 190 MB
  (was 277 MB). On a GPU, compiled, or under autocast the whole-sequence form runs as before.
"""

PAGE_NOTES = """
## What each group measures

- **represent**: a DVSGesture-like stream (uniform random pixels on 128x128, 2 polarities,
  sorted times over 6 s) against tonic 1.7's transforms on the same structured array:
  `to_frame` in each slicing mode vs `ToFrame`, `voxel_grid` vs `ToVoxelGrid` (bit equality),
  `denoise` vs `Denoise`, `refractory_period` vs `RefractoryPeriod`, `downsample` vs
  `Downsample`. Outputs must be identical (array equality). Each note gives the bytes the pass
  must move (records read, output written; re-reads counted) over its time, as a share of the
  two `np.copyto` rows measured first (main memory, and a copy of the stream's size that stays
  in cache). *first calls*: two fresh processes with a new `NUMBA_CACHE_DIR`, each calling every
  kernel twice on 20k events: the first call's extra time, with the cache empty (JIT compile),
  then filled (load); the first kernel also pays numba's import.
- **lif**: one training step (forward, NLL on the max readout voltage, backward, Adam step) of
  the POKER-DVS classifier (T=200, B=32, 2450 -> 100 -> 4, sparse binary input frames) against
  the same network built from norse 1.1 (`LIFRecurrentCell` + `Linear` + `LICell`, looped per
  time step) with the same initial weights. Agreement: the loss of the first step with
  SuperSpike alpha=1 (norse 1.1.0 ignores alpha in SuperSpike's backward) to 1e-5, and every
  weight gradient's worst |difference| relative to its largest entry to 1e-5.
- **pose_lif**: the pose SNN's decay-input LIF layer (`event_lightning.nn.pose.lif.lif_multistep`)
  forward + backward against spikingjelly 2.0's `LIFNode` in multi-step mode (torch backend, same
  tau, threshold, soft reset, ATan surrogate): equal spikes and input gradients to 1e-5.
- **data**: samples/s of a full pass over each DataModule's train loader (synthetic stand-ins,
  batch 32, no workers), first epoch and second epoch. These loaders have no representation
  cache (they re-read and re-frame every epoch), so the second epoch only gains the OS file
  cache and warm code paths. Both fetch a batch at a time (the dataset's `__getitems__`): the
  batch's files are read and framed in one vectorised pass and counted straight into the padded
  batch (uint8 when every count fits, else int16). The NMNIST row compares the per-sample path
  (one file read + `to_frame`) with tonic's reader + `ToFrame` on the same files.
- **growth**: every kernel as the recording grows from 10k to 10M events at the represent
  stream's rate (500k events per 6 s, so a filter keeps the same share at every size): time
  (median, as above) and peak memory (tracemalloc's peak of the bytes allocated through numpy
  and Python during one call, the output included; the kernels allocate nothing themselves).
  The exponent is the least-squares slope of log(value) against log(events) (1.0 = linear);
  below 1 means fixed costs per call (the 16x2x128x128 output, the pixel tables) still dominate
  the small streams, and a constant output gives a memory exponent near 0.
- **methods** (rows 4-6 per method): each method's synthetic config in `config/` (LIF classifier
  on the quickstart N-MNIST frames, HG-VAE N-MNIST and DVSGesture, Event2Vec, pose CNN / SNN /
  hybrid CNN-SNN on the DHP19 stand-in, TVAE), built as the CLI builds it (DataModule -> model
  links), with smaller stand-ins where the size column or note says so (`bench/rows_methods.py`
  lists the overrides). Loaders run with `num_workers=0`. *cold epoch*: `setup` plus one pass
  with an empty cache folder (stand-in files already written); *cached epoch*: two later passes,
  one before and one after the training measurement. Their "peer" is the training step's
  consumption (seconds per sample of a step), so **ratio = loader samples/s / training
  samples/s**. *train step*: median wall time of a `pl.Trainer` step (`training_step`, backward,
  optimiser) on batches fetched beforehand and held in memory, so no step waits on data.
  *peak train-step memory*: one more step; on CUDA `torch.cuda.max_memory_allocated` above the
  step's start, on the CPU the peak live bytes of the tensors the step allocates (running sum of
  the allocations and frees `torch.profiler(profile_memory=True)` records during the step:
  activations, gradients, optimiser temporaries; parameters and optimiser state, alive before the
  step, are in the note). The garbage collector runs before that step and is paused in it: the
  profiler also records the frees of tensors allocated while an earlier step was profiled (an
  earlier fit's last gradients, freed whenever the collector happened to run), and one inside the
  step lowered its peak by their size (1.02 MB of the LIF classifier's 3.01 MB at 50 bins, which
  put its memory exponent over T at 1.19-1.21 instead of 0.98). Such frees still come from earlier
  groups' tensors (a full step_growth run read the same LIF step at 100 bins as 4.91 MB, not
  5.89 MB, and a TVAE step at 36 frames 9 MB low), so the peak is the running sum's rise above its
  lowest point before it: equal to the plain peak when no such free comes first.
- **e2v_data**: Event2Vec's data path against a re-creation of the reference's
  (`bench/event2vec_datapath.py`: one compressed spikingjelly `.npz` read per sample,
  `rng.choice` of 255 events, `pad_sequence` collate) on the same ASL-DVS-sized recordings
  (~28k events each), same batch size, `num_workers=0` on both sides: batches alone, and batches
  plus a training step of the same network and optimiser (samples/s as per-sample times).
- **dhp19_mem**: bytes per DHP19 training sample. The reference's sample layout (hybrid_pose spec
  §6 and pitfall 10: `event_representation` (T,2,H,W) float32, dense one-hot `label`
  (T,13,H,W) float64, `cnn_input` (2,20,H,W) float32 for the hybrid, `landmarks` (2,T,13) and
  `label_3d` (T,3,13) float64, `ms_start`/`ms_end`; fields whose layout the spec does not give,
  such as `cnn_label`, are left out, so the reference figure is a lower bound) is computed for
  the same window configuration (100 ms windows, 10 ms bins, 10-bin CNN frames, 256x256 crop)
  and compared with what the DataLoader carries for one sample of our DHP19 DataModule on the
  synthetic stand-in at that configuration (the count stack as sparse entries, int32 index + uint8
  count per non-zero cell, made dense float32 on the device after the transfer; coordinates
  instead of dense maps), and with the size of its cache file (the same sparse entries).
- **reference**: every method's training step against its reference implementation, rebuilt in
  `bench/reference/` from the method specs (facts, not the reference's code) and run in the same
  process on the same initial weights and the same batches: HG-VAE (the DECOLLE layers called once
  per time bin with their trace state, bin 0 run once more without gradient first, the
  time-surface target as two causal exponential filters, three phases stepping four optimisers) on the
  reference's N-MNIST encoder and window and on its DVSGesture encoder (60 of its 200 bins);
  Event2Vec (one table lookup per neighbour offset, stock `nn.TransformerEncoder`, fused AdamW;
  the batches carry the real pipeline's token counts: 255 per sample, fewer only in the <= 5 % of
  recordings under 255 events, none under the real minimum 195);
  the pose SNN (the whole UNet called once per bin, spikingjelly `LIFNode` in single-step mode,
  per-bin BatchNorm, bilinear upsampling then the 5x5 conv, blurred one-hot targets) and the pose
  hybrid CNN-SNN (the same SNN with a bare 1x1 tail, its `LIFNode` potentials set by nine
  state-initialiser heads from a frozen UNet CNN before the first bin, the output accumulated on
  the decayed CNN heatmap, the membrane-potential loss on the next window's CNN states; CNN and
  SNN of width 16 at 64x64, T=10, B=2); the TVAE (full-image convs, a frozen
  `ConvTranspose3d` grouper after a circular pad, `torch.distributions`). Our step runs in a
  `pl.Trainer` (hooks and logging included); after each of its steps the reference takes one on
  the same batch, starting from the random-number state ours started from, so both draw the same
  noise. *outputs agree*: the first step's losses equal to 1e-5 relative; that step is a warm-up
  and is not timed (the pose rows take two more untimed steps, see below). HG-VAE's three phases
  are judged on one extra first step of both sides in float64: phase C's loss follows two
  optimiser steps, and Adam-type updates of near-zero gradients amplify float32 rounding (1e-7)
  into loss differences of 1e-5 to 1e-4, which a 1e-7 perturbation of the reference's own weights
  reproduces; in float64 the phases agree exactly. The float32
  difference is shown beside it. The ratio is the median reference step over
  ours, steps alternating. The LIF classifier's reference comparison is the **lif** row (norse).
  Our pose SNN step folds each up layer's bilinear x2 upsampling into its 5x5 convolution (four
  4x4 phase kernels at the low resolution, stacked as the output channels of one convolution over
  the replicate-padded input: 64 instead of 100 multiply-adds per input pixel, plus 6-13 % for the
  stacked convolution's extra row and column; the zero-padded border restored exactly by 1-D edge
  corrections; the convolutions are over 70 % of both steps) and runs BatchNorm's fused kernels per
  bin in CPU training; `python -m bench --only reference --case pose` runs just the pose rows.
  What closed the gap (CPU, one thread, the bench shapes, both steps in one process, thread time):
  the phase convolutions in one autograd node around that one convolution, each phase written
  into its strided pixels and the edge corrections subtracted in place (before: four convolutions
  on copied windows, a stack, a pixel shuffle, and in the backward pass a zero-filled gradient
  per window slice and a full output-gradient copy per edge correction; up3 and up2 10-15 % and
  then 5 % and 12 % faster); inputs over 4 MiB in chunks of images (oneDNN's input gradient is 2x
  slower per image above that); up1 (8x8 at the bench size) upsampled and convolved, where the
  folded phases' 8x8 outputs are slower, stacked or not (131-138 vs 109-118 ms); the 1x1 tail as
  one `bmm` per spike tensor it reads (no concatenation; `matmul`'s transposing copies made it
  3.6x slower); the LIF window's two loops compiled with numba (bit-identical to the torch loops),
  the backward one with the surrogate derivatives of a step in a loop of their own that LLVM
  vectorises (numba's numpy error model, no zero-division branch: 2.7 -> 1.5 ms for 10 x 131k
  neurons); Adam with `foreach=True` (bit-identical to the CPU's per-parameter loop, 7.7 -> 4.2 ms
  for the hybrid's 100 parameter tensors); the 2-channel first conv in NCHW (channels-last only
  when its input needs a gradient, which event counts do not); in the hybrid, the frozen CNN run
  once on the window's frame and the next window's (the membrane-potential loss's target) with
  its 20-channel first conv channels-last in inference (two frames 44.5 -> 38.4 ms); and glibc's
  heap kept between steps in CPU training (`event_lightning.nn.cpu_memory`, set by every model's
  `on_fit_start` on the CPU, so by the Trainer these rows run in, for both sides of every row,
  which share the process): the whole-window tensors made glibc trim and fault back 25-110 MB per
  step (6k-28k minor faults, 10-40 ms), where the reference's per-bin tensors fault none. Even so
  our steps right after the first grow the heap: the reference's first step, run between ours,
  takes its optimiser state and per-bin tensors out of the memory our first step freed, and our
  next steps page-fault 26k, 2-5k and 0-4k times (hybrid: 0.6-1.5 s, 0.55-0.8 s and 0.5-0.75 s,
  where later steps take 0.5 s with no faults); the pose rows therefore time 3 steps after 3
  warm-up steps (the first checks the losses), both sides in their steady state. Hybrid, steady
  steps in thread time on the loaded shared box (both sides alternating, before and after in the
  same half hour): ours 546-574 -> 498-522 ms, the reference 728-850 ms, medians of 7-11
  alternating steps 1.36-1.42x -> 1.46-1.47x; before the earlier changes it was 673 ms against
  755 ms (1.12x). The hybrid's frozen CNN and state heads on two frames (~57 ms of our step, ~64
  ms of the reference's) keep its ratio below the SNN's. What is left is the convolutions (75 % of our step):
  up1 (upsampled, 108 ms forward and backward, as the reference's 111 ms), the folded up2 and up3
  (85 and 84 ms where the reference's per-bin upsampling and 5x5 convolution take 114 and 126 ms
  plus 10 and 19 ms of upsampling gradients), and the other layers' convolutions, which cost both
  sides the same. Tried and dropped: channels-last phase convolutions (no gain with the copies), a
  transposed convolution with the 8x8 composite kernel (slower backward), compiled per-step
  BatchNorm (2x faster alone, no measurable gain inside the step), explicit contiguous gradient
  windows, channels-last or chunked up1 (no gain), the state heads' 1x1 convolutions as `baddbmm`
  (slower), the decaying residual as a time loop instead of the `[T, T]` matmul (4.2 vs 2.6 ms),
  and fused Adam (a further 2.7 ms, but not bit-identical). The stacked phase kernels once moved
  the seed-0 hybrid short fit of tests/pose/test_pose_training.py from 0.84 to 0.93 of its
  starting MPJPE (bound 0.85): at its lr of 2e-2 that fit was chaotic for seed 0 (0.68 with one
  validation pass fewer before the CNN's fit) while seeds 1-9 learnt alike with both (0.55-0.74);
  at 1e-2, which the test now uses, both give 0.59-0.81 for seeds 0-9, each seed within 0.02, and
  a hybrid that does not learn ends at 0.92-1.32 (lr 0, or the SNN frozen).
- **step_growth**: each method's training step (our side only, the shapes of **reference**, the
  LIF classifier on POKER-DVS-sized frames) at three batch sizes with the sequence length fixed,
  then three sequence lengths (time bins; TVAE frames; Event2Vec events per sample) with the batch
  fixed: median step time and peak step memory as in **methods**. The exponent is the slope of
  log(value) against log(swept size) (1.0 = linear; below 1 while fixed per-step costs, such as
  optimiser steps and weight gradients, still dominate).
- Threads: both sides run with the same torch intra-op thread count (`--threads`, default 1).
  On this shared 2-core box, 2 threads made every LIF step wait on busy cores (a single training
  step took 10-20 s instead of ~0.2-0.5 s, for norse and for us alike), so 1 thread is the
  measurement that means something here.
"""


def render_performance_page(results: Results, cfg: BenchConfig, machine: str, elapsed: float) -> str:
    parts = [
        PAGE_INTRO.format(warmup=cfg.warmup, repeats=cfg.repeats, machine=machine, elapsed=elapsed),
        "## Results\n",
        format_markdown_table(results),
    ]
    for issue in (7, 20):
        parts.append(f"\n## Goals of issue {issue} in this run\n")
        parts += goal_lines(results, issue)
    if results.skipped:
        parts.append("\nSkipped rows:\n")
        parts += [f"- {s.group} / {s.operation}: {s.reason}" for s in results.skipped]
    parts.append(PAGE_ANALYSIS)
    parts.append(HGVAE_ANALYSIS)
    parts.append(PAGE_NOTES)
    parts.append(
        "## Reproduce\n\n```\npython -m bench            # full run, rewrites this page\n"
        "python -m bench --quick    # < 2 min, prints the table only\n```\n"
    )
    return "\n".join(parts)


def write_markdown(results: Results, path: Path, cfg: BenchConfig, elapsed: float) -> None:
    """docs/performance.md: machine, method, the measured table, skipped rows, how to reproduce;
    a GPU section already on the page (``--gpu-preflight``) is kept at its end."""
    path.parent.mkdir(parents=True, exist_ok=True)
    page = render_performance_page(results, cfg, machine_description(), elapsed)
    gpu = gpu_section(path.read_text(encoding="utf-8")) if path.is_file() else None
    path.write_text(page + ("\n" + gpu + "\n" if gpu else ""), encoding="utf-8")


GPU_START = "<!-- gpu-preflight: start (written by python -m bench --gpu-preflight) -->"
GPU_END = "<!-- gpu-preflight: end -->"


def gpu_section(page: str) -> str | None:
    """The GPU section of a page, markers included, or None."""
    start, end = page.find(GPU_START), page.find(GPU_END)
    return page[start : end + len(GPU_END)] if 0 <= start < end else None


def write_gpu_section(path: Path, markdown: str) -> None:
    """Put ``markdown`` between the GPU markers of the page at ``path``: in place of the previous
    GPU section, else at the end; the rest of the page is left as it is."""
    page = path.read_text(encoding="utf-8") if path.is_file() else ""
    section = f"{GPU_START}\n{markdown.rstrip()}\n{GPU_END}"
    old = gpu_section(page)
    if old is not None:
        page = page.replace(old, section)
    else:
        page = (page.rstrip() + "\n\n" if page.strip() else "") + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
