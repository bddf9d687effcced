"""The PyTorch peer (ByteSSM of ssm_ref.py) trained on a real file for a wall-clock budget, then scored on a
validation file the way `bytelm eval` scores it; prints one JSON line. Runs on the GPU machine.

The model is imported from the peer file (--peer, a copy of ../shared/peers/ssm_ref.py carried in .peers), not
copied. One training step is ssm_ref.py's: a batch of random windows of the training file (uniform offsets), bf16
autocast around the compiled model, fp32 cross-entropy, AdamW (fused, betas 0.9/0.95, weight decay 0.1 on every
parameter, lr 2e-3), the global gradient norm clipped to 1.0.

Learning rate: by default (--schedule constant) the constant lr of ssm_ref.py. --schedule bytelm gives bytelm's
schedule instead (src/train/adamw.cpp lr_at): linear warmup over --warmup steps (-1: min(100, steps / 10)), then a
cosine from --lr down to --lr * --min-lr-frac at --steps; use it with the same --steps as the bytelm run so both
sides see the same lr at every step. --steps also caps the run, as bytelm's does (0: no cap, the clock alone).

Clock: it starts after the first step, which triggers torch.compile's compilation (tens of seconds, reported as
compile_s) and still counts as a training step; bytelm's clock likewise leaves out its start-up (reading data,
building the model). --count-compile 1 starts the clock before the first step instead. The run stops at the first
step boundary at or past --seconds, like `bytelm train --max-seconds`.

Validation (src/infer/score.cpp): byte 0 of --val costs a flat 8 bits; the other n-1 bytes are predicted in
non-overlapping windows of --seq predictions, window w reading bytes [w*seq, w*seq + seq) to predict bytes
[w*seq + 1, w*seq + seq], so every window's first prediction has one byte of context; a last, shorter window
predicts the remaining bytes. bpb = total bits / n. The scoring runs the eager (uncompiled) model under bf16
autocast, so new shapes cost no recompilation.

usage: python3 bench/peer_ssm_timed.py --data TRAIN --val VAL --seconds 240 --d 512 --layers 6 --batch 16 --seq 256
       [--schedule bytelm --steps 1000000] [--peer .peers/ssm_ref.py]
prints: {"impl", "params", "d", "layers", "patch", "batch", "seq", "lr", "schedule", "budget_s", "seconds",
         "compile_s", "steps", "bytes_per_s", "train_bpb", "val_bpb", "val_bytes", "peak_gib"}
(seconds: the measured training time; bytes_per_s: training bytes over it; train_bpb: the last step's loss)
"""
import argparse
import importlib.util
import json
import math
import sys
import time

import torch
import torch.nn.functional as F


def load_peer(path):
    """The peer file as a module (its main() stays behind its __name__ guard)."""
    spec = importlib.util.spec_from_file_location("ssm_ref", path)
    if spec is None or spec.loader is None:
        sys.exit(f"peer_ssm_timed: cannot import the peer from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bytelm_lr(step, lr, steps, warmup, min_lr_frac):
    """bytelm's learning rate at 0-based `step` (adamw.cpp lr_at with TrainConfig::warmup_steps)."""
    warm = warmup if warmup >= 0 else min(100, steps // 10)
    if step < warm:
        return lr * (step + 1) / warm
    decay_steps = steps - warm
    progress = (step - warm) / decay_steps if decay_steps > 0 else 1.0
    progress = min(1.0, max(0.0, progress))
    floor = lr * min_lr_frac
    return floor + (lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def check_length(seq, patch, what):
    """ByteSSM takes whole patches, and its chunked scan (chunk 64) a patch count that 64 divides or that is <= 64."""
    patches = seq // patch
    if seq % patch != 0 or (patches > 64 and patches % 64 != 0):
        sys.exit(f"peer_ssm_timed: {what} {seq} does not fit the peer model: it needs a multiple of --patch {patch} "
                 f"whose patch count is at most 64 or a multiple of 64")


def read_bytes(path):
    with open(path, "rb") as f:
        return torch.frombuffer(bytearray(f.read()), dtype=torch.uint8)


@torch.no_grad()
def val_bits_per_byte(model, val, seq, batch, device, autocast_device):
    """Bits per byte of the uint8 tensor `val` (on `device`), with bytelm's scoring protocol (see the docstring)."""
    n = val.numel()
    if n == 0:
        return 0.0
    to_bits = 1 / math.log(2)

    def window_bits(x, y):
        # per-byte costs in fp32 as bytelm's are, summed in double
        with torch.autocast(autocast_device, dtype=torch.bfloat16):
            logits = model(x)
        logits = logits[:, : y.shape[1]].float()
        nats = F.cross_entropy(logits.reshape(-1, 256), y.reshape(-1), reduction="none")
        return nats.double().sum().item() * to_bits

    total = 8.0  # byte 0: no context, uniform
    predictions = n - 1
    full = predictions // seq
    offsets = torch.arange(seq + 1, device=device)
    for w0 in range(0, full, batch):
        count = min(batch, full - w0)
        starts = (w0 + torch.arange(count, device=device)) * seq
        chunk = val[starts[:, None] + offsets].long()  # windows overlap by one byte: x and y are two views
        total += window_bits(chunk[:, :-1], chunk[:, 1:])
    start = full * seq
    tail = predictions - start
    if tail > 0:
        # The peer only takes lengths it was built for, so the short window is padded on the right to seq; the model
        # is causal, so the padding changes none of the tail's own predictions (window_bits drops the padded ones).
        x = torch.zeros(1, seq, dtype=torch.long, device=device)
        x[0, :tail] = val[start : start + tail].long()
        y = val[start + 1 : start + 1 + tail].long()[None]
        total += window_bits(x, y)
    return total / n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peer", default=".peers/ssm_ref.py", help="the peer file that defines ByteSSM")
    ap.add_argument("--data", required=True, help="training file (raw bytes)")
    ap.add_argument("--val", required=True, help="validation file, scored whole after training")
    ap.add_argument("--seconds", type=float, default=240, help="wall-clock training budget")
    ap.add_argument("--d", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--patch", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seq", type=int, default=2048, help="bytes per training window, and per validation window")
    ap.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    ap.add_argument("--schedule", choices=["constant", "bytelm"], default="constant",
                    help="constant: ssm_ref.py's; bytelm: warmup then cosine to --lr * --min-lr-frac at --steps")
    ap.add_argument("--steps", type=int, default=0, help="stop after this many steps (0: no cap); the bytelm "
                    "schedule's length")
    ap.add_argument("--warmup", type=int, default=-1, help="bytelm schedule: warmup steps (-1: min(100, steps/10))")
    ap.add_argument("--min-lr-frac", type=float, default=0.1, help="bytelm schedule: final lr as a fraction of --lr")
    ap.add_argument("--compile", type=int, default=1, help="torch.compile the model (1, as ssm_ref.py) or not (0)")
    ap.add_argument("--count-compile", type=int, default=0, help="1: the clock includes the first (compiling) step")
    ap.add_argument("--eval-batch", type=int, default=16, help="validation windows per forward pass")
    ap.add_argument("--seed", type=int, default=0, help="torch seed (ssm_ref.py uses 0)")
    ap.add_argument("--device", default="cuda", help="cuda; cpu only to smoke-test this script (with --compile 0)")
    a = ap.parse_args()
    if a.schedule == "bytelm" and a.steps < 1:
        sys.exit("peer_ssm_timed: --schedule bytelm needs --steps N (the length of the cosine, as bytelm's --steps)")
    check_length(a.seq, a.patch, "--seq")

    peer = load_peer(a.peer)
    device = torch.device(a.device)
    on_gpu = device.type == "cuda"
    sync = torch.cuda.synchronize if on_gpu else (lambda: None)

    torch.manual_seed(a.seed)
    model = peer.ByteSSM(a.d, a.layers, a.patch).to(device)
    nparams = sum(p.numel() for p in model.parameters())
    fused = {"fused": True} if on_gpu else {}  # fused AdamW is CUDA-only
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.95), weight_decay=0.1, **fused)
    fwd = torch.compile(model) if a.compile else model
    train = read_bytes(a.data).to(device)
    val = read_bytes(a.val).to(device)
    window = a.seq + 1
    if train.numel() <= window:
        sys.exit(f"peer_ssm_timed: --data has {train.numel()} bytes, fewer than a window of {window} + 1")

    def lr_at(step):
        if a.schedule == "constant":
            return a.lr
        return bytelm_lr(step, a.lr, a.steps, a.warmup, a.min_lr_frac)

    def train_step(step):
        # ssm_ref.py's batch() and step(); the lr is set just before the update (a float: no recompilation, no sync)
        ix = torch.randint(0, train.numel() - window, (a.batch,), device=device)
        chunk = train[ix[:, None] + torch.arange(window, device=device)].long()
        x, y = chunk[:, :-1], chunk[:, 1:]
        with torch.autocast(device.type, dtype=torch.bfloat16):
            logits = fwd(x)
        loss = F.cross_entropy(logits.float().view(-1, 256), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        opt.step()
        return loss

    started = time.perf_counter()
    loss = train_step(0)  # compiles
    sync()
    compile_s = time.perf_counter() - started
    steps = 1
    clock = started if a.count_compile else time.perf_counter()
    untimed_steps = 0 if a.count_compile else 1  # the compiling step, when outside the clock, is not in bytes_per_s
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    next_report = 30.0
    # The clock is read without a device sync: the CPU runs at most a few queued steps ahead of the GPU, and the
    # sync after the loop makes `seconds` the true time, a little past the budget, as bytelm's last step is.
    while (a.steps == 0 or steps < a.steps) and time.perf_counter() - clock < a.seconds:
        loss = train_step(steps)
        steps += 1
        if time.perf_counter() - clock >= next_report:  # a sign of life in the device log (one sync per 30 s)
            print(f"step {steps}  {time.perf_counter() - clock:.0f} s  loss {loss.item() / math.log(2):.3f} bpb",
                  file=sys.stderr, flush=True)
            next_report += 30.0
    sync()
    seconds = time.perf_counter() - clock
    peak_gib = torch.cuda.max_memory_allocated() / 2**30 if on_gpu else None
    bytes_per_s = (steps - untimed_steps) * a.batch * a.seq / seconds

    model.eval()
    val_bpb = val_bits_per_byte(model, val, a.seq, a.eval_batch, device, device.type)
    print(json.dumps(dict(impl="pytorch" + ("+compile" if a.compile else ""), params=nparams, d=a.d, layers=a.layers,
                          patch=a.patch, batch=a.batch, seq=a.seq, lr=a.lr, schedule=a.schedule, budget_s=a.seconds,
                          seconds=round(seconds, 2), compile_s=round(compile_s, 2), steps=steps,
                          bytes_per_s=round(bytes_per_s), train_bpb=round(loss.item() / math.log(2), 4),
                          val_bpb=round(val_bpb, 5), val_bytes=val.numel(),
                          peak_gib=None if peak_gib is None else round(peak_gib, 2))), flush=True)


if __name__ == "__main__":
    main()
