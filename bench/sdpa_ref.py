"""PyTorch's causal scaled_dot_product_attention on the flash backend, timed at the shapes of `bytelm
bench-attention`, with the same JSON fields: impl, device, commit, B, T, H, Dh, pass, ms, tflops. Runs on the GPU
machine (bench/device_attention.sh).

q, k and v are [B, H, T, Dh] views of one packed bf16 buffer [B, T, 3, H, Dh], the layout bytelm reads (a qkv
projection's output), each a leaf of its own so that the backward returns dq, dk, dv and nothing accumulates into
the packed buffer; dout is a [B, H, T, Dh] view of a dense [B, T, H, Dh] tensor, as bytelm's dout is. Inputs are
uniform in [-2, 2), never zeros. "fwd" runs under no_grad (the flash forward still writes its log-sum-exp);
"fwd+bwd" is the forward and torch.autograd.grad of it. Each call is timed with CUDA events after `--warmup`
untimed calls; ms is the median of `--iters`. FLOPs as bytelm counts them: forward 2 B H T^2 Dh (causal), the
backward 2.5x the forward.

usage: python3 bench/sdpa_ref.py [--tokens 32768 --heads 8 --head-dim 64 --seqs 1024,2048,4096
                                  --warmup 10 --iters 50 --commit C]
"""
import argparse
import json
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


def median_ms(call, warmup, iters):
    for _ in range(warmup):
        call()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(iters):
        start.record()
        call()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    times.sort()
    return times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=32768, help="B * T at every length")
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--seqs", default="1024,2048,4096")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--commit", default="", help="the bytelm commit this run is compared with")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("sdpa_ref: no CUDA device")
    print(f"sdpa_ref: torch {torch.__version__}", file=sys.stderr)
    H, Dh = args.heads, args.head_dim
    torch.manual_seed(0)
    for T in (int(x) for x in args.seqs.split(",")):
        if args.tokens % T:
            sys.exit(f"sdpa_ref: {T} does not divide --tokens {args.tokens}")
        B = args.tokens // T
        qkv = torch.empty(B, T, 3, H, Dh, device="cuda", dtype=torch.bfloat16).uniform_(-2, 2)
        q, k, v = (qkv[:, :, i].transpose(1, 2).detach().requires_grad_() for i in range(3))
        dout = torch.empty(B, T, H, Dh, device="cuda", dtype=torch.bfloat16).uniform_(-2, 2).transpose(1, 2)

        def forward():
            with torch.no_grad():
                return F.scaled_dot_product_attention(q, k, v, is_causal=True)

        def forward_backward():
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return torch.autograd.grad(out, (q, k, v), dout)

        fwd_flops = 2 * 2 * B * H * T * T * Dh / 2
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):  # raises if the flash backend cannot run these inputs
            for name, call, flops in (("fwd", forward, fwd_flops), ("fwd+bwd", forward_backward, 3.5 * fwd_flops)):
                ms = median_ms(call, args.warmup, args.iters)
                print(json.dumps({"impl": "torch-sdpa-flash", "device": torch.cuda.get_device_name(),
                                  "commit": args.commit, "B": B, "T": T, "H": H, "Dh": Dh, "pass": name,
                                  "ms": round(ms, 4), "tflops": round(flops / (ms * 1e-3) / 1e12, 1)}), flush=True)
        del qkv, q, k, v, dout


if __name__ == "__main__":
    main()
