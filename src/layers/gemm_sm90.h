// Own matrix products for Hopper (sm_90a: TMA copies and wgmma), beside the cuBLASLt ones of linear_cuda.h.
// cuBLASLt's epilogues cannot apply the SwiGLU gate or its backward to a tile, so each costs a pass over the
// product's output; these do that work while the tile is on chip. `bytelm bench-gemm` times all three against
// cuBLAS. No layer uses them yet: on an H100 (cac857f) the fused ones took longer than cuBLAS's product plus the
// separate gate kernel, because a block's epilogue stalls its tensor cores (bench/NOTES_gemm.md).
#pragma once
#include <cuda_runtime.h>

#include "core/bf16.h"

namespace bytelm {

// True on a GPU of compute capability 9.0 (H100, H200), the only one the kernel is built for.
bool gemm_sm90_available();

// What the tensor copies need: N, K and every leading dimension a multiple of 8 (rows 16-byte aligned), the
// pointers 16-byte aligned, ld >= the row's length.
bool gemm_sm90_fits(const bf16* C, int ldc, const bf16* A, int lda, const bf16* B, int ldb, int M, int N, int K);

// A block's tiles: 128 x 128 or 128 x 256 (fewer blocks re-read A), both warpgroups on each tile; or 128 x 128 with
// the two warpgroups taking tiles in turn (pingpong: one stores while the other multiplies).
enum class GemmTileN { n128, n256, n128_pingpong };
const char* gemm_tile_name(GemmTileN tile);  // "n128", "n256", "n128-pingpong"

// Row-major C[M,N] (ldc) = A[M,K] (lda) B[N,K]^T (ldb): the forward product y = x W^T. bf16 in and out, fp32
// accumulation. Throws Error where !gemm_sm90_available() or the operands do not fit. Queued on stream; no sync.
void gemm_sm90_tn(bf16* C, int ldc, const bf16* A, int lda, const bf16* B, int ldb, int M, int N, int K,
                  GemmTileN tile_n, cudaStream_t stream);

// The SwiGLU forward's first product and its gate in one pass: with W12 = [W1; W2] ([2S, K], ld ldw; W2 from row
// S), g [M, 2S] = [x W1^T | x W2^T] = [a | b] and m [M, S] = silu(a) b, m computed from the bf16-rounded a and b
// as swiglu_gate_kernel computes it from g (so the two paths agree where the products do). Rows of W12 that are
// zero (the padding past H) give zero columns of g and m. Same requirements and errors as gemm_sm90_tn, with S
// for N; tile_n is n128 or n128_pingpong (n256 throws: a tile's outputs are staged whole in shared memory).
bool gemm_sm90_swiglu_fits(const bf16* g, const bf16* m, const bf16* x, int ldx, const bf16* W12, int ldw, int M, int S,
                           int K);
void gemm_sm90_swiglu(bf16* g, bf16* m, const bf16* x, int ldx, const bf16* W12, int ldw, int M, int S, int K,
                      GemmTileN tile_n, cudaStream_t stream);

// The gate's backward in the epilogue of dm = dy W3: with W3t = W3^T ([S, K], ld ldw; rows past H zero) and g
// [M, 2S] from the forward, dg [M, 2S] = [dm b silu'(a) | dm silu(a)] from the bf16-rounded dm, as
// swiglu_gate_backward_kernel computes it from a stored dm, which never reaches memory here. Tiles as
// gemm_sm90_swiglu.
bool gemm_sm90_swiglu_backward_fits(const bf16* dg, const bf16* dy, int lddy, const bf16* W3t, int ldw, const bf16* g,
                                    int M, int S, int K);
void gemm_sm90_swiglu_backward(bf16* dg, const bf16* dy, int lddy, const bf16* W3t, int ldw, const bf16* g, int M,
                               int S, int K, GemmTileN tile_n, cudaStream_t stream);

}  // namespace bytelm
