// Row-major C[M,N] = A[M,K] B[N,K]^T on Hopper's tensor cores (wgmma), bf16 operands, fp32 accumulation, bf16
// output: the products of the forward passes (x W^T) without cuBLASLt, so that later epilogues (the SwiGLU gate,
// a residual) can work on the tile while it is in registers. See gemm_sm90.h for what it takes and why.
//
// A block (one an SM, persistent) computes BM x BN tiles of C in turn with three warpgroups: the first only
// issues the tensor-memory copies (TMA) of the A and B tiles, BK = 64 columns of K at a time, into a ring of
// shared-memory stages; the other two multiply (wgmma m64nBNk16, four a stage), either both on each tile, 64 of
// its 128 rows each (cooperative), or each on every other tile, all 128 rows (pingpong, see Tile), and keep the
// accumulator in registers. Two mbarriers a stage hand it over: `full` completes when both copies have landed
// (the copy engine counts the bytes), `empty` when every consumer warp that reads the stage is done with it. Tiles use
// the 128-byte swizzle, the layout TMA writes and wgmma's descriptors read: rows of 64 bf16 (128 bytes) in atoms of 8
// rows (1024 bytes), so the tile bases are 1024-byte aligned. The finished accumulator goes through shared memory on
// its way out, so that each warp stores whole rows in 16-byte packs: straight from the registers, a warp's store
// covered 8 rows x 16 bytes, half of every 32-byte sector it touched (the first version, 1d8ddbb, took 2.2x cuBLAS's
// time at 65536 x 1376 x 256, where writing C is most of the work). The fused epilogues (see Fuse) hand their boxes
// to TMA stores instead: with the consumers' own stores they stalled the tensor cores for the 1.5-2x bytes they
// move (cac857f). They are faster so (69049ed), but still slower than cuBLAS's product plus a separate gate kernel;
// bench/NOTES_gemm.md has the figures and what to look at next.
#include <cuda.h>  // CUtensorMap and its enums (the encode function comes from the runtime's entry point)
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <mutex>
#include <string>

#include "core/bf16.h"
#include "core/cuda_check.h"
#include "core/error.h"
#include "layers/gemm_sm90.h"

namespace bytelm {

namespace {

constexpr int kBM = 128, kBK = 64;
constexpr int kConsumers = 2;                     // warpgroups that multiply, 64 rows each
constexpr int kThreads = 128 * (1 + kConsumers);  // the copy warpgroup first
constexpr int kTileBytesA = kBM * kBK * 2;        // 16 KB
constexpr int kOutPitch = 128 * 2;                // a consumer's staging row: 128 columns of bf16
constexpr int kBoxBytes = 64 * 64 * 2;            // a fused epilogue's box: 64 rows of 64 columns, 8 KB

// What the epilogue does with a tile.
// - plain: C [M, N] (ldc) = the product, stored by the consumers' threads from a staging area.
// - swiglu: B is W12 = [W1; W2] ([2S, K], W2 from row S), and a tile's 128 columns are 64 hidden units u of each
//   half, so that a = x W1^T and b = x W2^T of the same units meet in one thread's accumulators (columns c and
//   c + 64): g [M, 2S] gets a at column u and b at S + u, and m [M, S] gets silu(a) b from the rounded a and b, as
//   swiglu_gate_kernel computes it from g. N counts units (N = S). Tensor maps: g's a half, g's b half, m.
// - swiglu_backward: the product is dm [M, S] = dy W3 (B = W3^T, [S, K]); with a and b from g [M, 2S], it writes
//   dg [M, 2S] = [dm b silu'(a) | dm silu(a)] from the rounded dm, as swiglu_gate_backward_kernel does. Tensor
//   maps: dg's a half, dg's b half, g's a half, g's b half.
// The fused epilogues leave through the tensor-memory engine (TMA stores from 64 x 64 boxes), so the consumers
// multiply the next tile while their last one is written; the backward's g boxes are loaded by TMA when its tile
// starts, so they have landed by its epilogue, and da and db overwrite them in place.
enum class Fuse { plain, swiglu, swiglu_backward };

struct Epilogue {
  bf16* C;             // plain
  int ldc;             // plain
  int S;               // both SwiGLU modes
  CUtensorMap map[4];  // the fused modes' outputs and inputs, each [M, S] in boxes of 64 x 64 (see Fuse)
};

// Two schedules. Cooperative: both consumers work on each tile, 64 rows each, and store it together (or, fused,
// stage it for the TMA stores) while the tensor cores wait. Pingpong (BN 128 only: a consumer then holds all 128 rows,
// 128 accumulators a thread): the consumers take the block's tiles in turn, and one stores its tile while the other
// multiplies the next.
template <int BN, Fuse kFuse, bool kPingpong>
struct Tile {
  static_assert(!kPingpong || BN == 128, "pingpong keeps a whole 128 x BN tile in one warpgroup's registers");
  static_assert(kFuse == Fuse::plain || BN == 128, "a fused epilogue stages its whole tile: room for BN 128 only");
  static constexpr int kRows = kPingpong ? 128 : 64;  // rows of a tile one consumer multiplies and stores
  // A consumer's staging: plain, kRows rows of 128 columns; swiglu, the a, b and m boxes of each 64 rows; the
  // backward, g's (then dg's) a and b boxes of both 64-unit halves of the tile, for each 64 rows.
  static constexpr int kBoxes = kFuse == Fuse::swiglu ? 3 : 4;
  static constexpr int kOutBytes = kFuse == Fuse::plain ? kRows * kOutPitch : kRows / 64 * kBoxes * kBoxBytes;
  // as many stages as fit beside the staging
  static constexpr int kPlainStages = kPingpong ? 5 : BN == 256 ? 4 : 6;
  static constexpr int kFusedStages = !kPingpong ? 5 : kFuse == Fuse::swiglu ? 4 : 3;
  static constexpr int kStages = kFuse == Fuse::plain ? kPlainStages : kFusedStages;
  static constexpr int kBytesB = BN * kBK * 2;
  static constexpr int kStageBytes = kTileBytesA + kBytesB;
  // the stages, each consumer's staging, then 2 kStages + 4 mbarriers; 1 KB more to align the base to 1024 bytes
  static constexpr int kSmemBytes = kStages * kStageBytes + kConsumers * kOutBytes + (2 * kStages + 4) * 8 + 1024;
  // the descriptors' base offset 0 and the 32-byte k steps hold only on 1024-byte aligned tiles
  static_assert(kStageBytes % 1024 == 0 && kTileBytesA % 1024 == 0 && (BN / 2 * kBK * 2) % 1024 == 0);
  static_assert(BN % 128 == 0, "the epilogue leaves in passes of 128 columns");
  static_assert(kSmemBytes <= 232448, "more shared memory than a block may have");
};

__device__ inline uint32_t smem_addr(const void* p) { return (uint32_t)__cvta_generic_to_shared(p); }

__device__ inline void mbar_init(uint64_t* bar, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(count));
}

__device__ inline void mbar_expect_tx(uint64_t* bar, int bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(bytes) : "memory");
}

__device__ inline void mbar_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_addr(bar)) : "memory");
}

// Whether the phase of `parity` has completed (try_wait itself waits a while before it answers no).
__device__ inline bool mbar_try_wait(uint64_t* bar, uint32_t parity) {
  uint32_t done;
  asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
               : "=r"(done)
               : "r"(smem_addr(bar)), "r"(parity)
               : "memory");
  return done;
}

// Waits until the phase of `parity` has completed. A fresh barrier is in phase 0, so waiting on parity 1 returns
// at once: that is how the producer's first pass over the ring finds every stage free. A wait of more than four
// seconds is a broken hand-over, never a slow one: trap, so that the launch fails with an error instead of hanging
// the GPU (and a device call's whole time).
__device__ inline void mbar_wait(uint64_t* bar, uint32_t parity) {
  if (mbar_try_wait(bar, parity)) return;
  uint64_t start, now;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
  while (!mbar_try_wait(bar, parity)) {
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
    if (now - start > 4000000000ull) __trap();
  }
}

// The box at (column c, row r) of the tensor `map` into dst, completing on `bar` (a transaction of the box's bytes).
__device__ inline void tma_load_2d(void* dst, const CUtensorMap* map, int c, int r, uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(
          smem_addr(dst)),
      "l"(map), "r"(c), "r"(r), "r"(smem_addr(bar))
      : "memory");
}

// The box at (column c, row r) of the tensor `map` from src, in this thread's bulk group. Out-of-bounds parts of
// the box are not written.
__device__ inline void tma_store_2d(const CUtensorMap* map, int c, int r, const void* src) {
  asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%1, %2}], [%3];\n" ::"l"(map), "r"(c),
               "r"(r), "r"(smem_addr(src))
               : "memory");
}
__device__ inline void tma_store_commit() { asm volatile("cp.async.bulk.commit_group;\n" ::: "memory"); }
// Waits until this thread's committed stores have read their shared memory (kRead), or are done.
template <bool kRead>
__device__ inline void tma_store_wait() {
  if constexpr (kRead)
    asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory");
  else
    asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory");
}
// Orders this thread's shared-memory accesses before later ones of the tensor-memory engine (the async proxy).
__device__ inline void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
// The 128 threads of one warpgroup (named barrier id: 0 is __syncthreads').
__device__ inline void warpgroup_sync(int id) { asm volatile("bar.sync %0, 128;\n" ::"r"(id) : "memory"); }

// Where the two bf16 of an accumulator pair sit in a 64 x 64 box in the 128-byte swizzle (TMA's layout): row r,
// 8-column group q, the pair's place (lane % 4) in it. The 8 rows a warp's fragment spans fall in 8 different
// 16-byte chunks, so its 32 lanes cover the 32 banks.
__device__ inline __nv_bfloat162* box_pair(uint8_t* box, int r, int q, int lane) {
  return reinterpret_cast<__nv_bfloat162*>(box + r * 128 + ((q ^ (r & 7)) << 4) + (lane % 4) * 4);
}

// The gate's backward, as swiglu_gate_backward_kernel computes it: da = dm b silu'(a) with
// silu'(a) = s (1 + a (1 - s)), s = sigmoid(a); db = dm silu(a). Zero where W3's padding gave dm = 0.
__device__ inline float gate_da(float dm, float a, float b) {
  const float sg = 1.f / (1.f + expf(-a));
  return dm * b * sg * (1.f + a * (1.f - sg));
}
__device__ inline float gate_db(float dm, float a) { return dm * a * (1.f / (1.f + expf(-a))); }

// A wgmma shared-memory descriptor for a K-major tile in the 128-byte swizzle: start address, leading byte offset
// (unused by this swizzle for K-major; 16 by convention), stride byte offset 1024 (one 8-row atom to the next),
// swizzle mode 1 (128 B) in bits 62-63. Addresses and offsets are in units of 16 bytes.
__device__ inline uint64_t smem_desc(const void* p) {
  uint64_t addr = smem_addr(p);
  return ((addr & 0x3FFFF) >> 4) | ((uint64_t)(16 >> 4) << 16) | ((uint64_t)(1024 >> 4) << 32) | (1ull << 62);
}

__device__ inline void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ inline void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ inline void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}

// d (+)= A B^T for one k16 step of a 64-row warpgroup slice: m64nBNk16, both operands K-major in shared memory.
// accumulate = 0 writes d (the first step), 1 adds to it. Register lists written out: the instruction takes the
// whole accumulator as operands.
template <int BN>
__device__ void wgmma_bf16(float (&d)[BN / 2], uint64_t desc_a, uint64_t desc_b, int accumulate);

template <>
__device__ inline void wgmma_bf16<128>(float (&d)[64], uint64_t desc_a, uint64_t desc_b, int accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
      "}, %64, %65, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),
        "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),
        "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),
        "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]),
        "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]),
        "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]),
        "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]),
        "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(desc_a), "l"(desc_b), "r"(accumulate));
}

template <>
__device__ inline void wgmma_bf16<256>(float (&d)[128], uint64_t desc_a, uint64_t desc_b, int accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "
      "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "
      "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "
      "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, "
      "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"
      "}, %128, %129, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),
        "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),
        "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),
        "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]),
        "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]),
        "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]),
        "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]),
        "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]),
        "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]),
        "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]),
        "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]),
        "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]),
        "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]),
        "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]),
        "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]),
        "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
      : "l"(desc_a), "l"(desc_b), "r"(accumulate));
}

// The tiles of C: see the top of the file.
template <int BN, Fuse kFuse, bool kPingpong>
__global__ void __launch_bounds__(kThreads, 1)
    gemm_tn_kernel(const __grid_constant__ CUtensorMap map_a, const __grid_constant__ CUtensorMap map_b,
                   const __grid_constant__ Epilogue e, int M, int N, int K) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr bool kSwiglu = kFuse == Fuse::swiglu;
  using Layout = Tile<BN, kFuse, kPingpong>;
  constexpr int kHalves = kPingpong ? 2 : 1;  // m64 row slices a consumer multiplies
  constexpr int kStages = Layout::kStages;
  extern __shared__ uint8_t smem_raw[];
  uint8_t* smem = smem_raw + ((1024 - (smem_addr(smem_raw) & 1023)) & 1023);  // the swizzle's 1024-byte atoms
  uint8_t* out_stage = smem + kStages * Layout::kStageBytes;                  // then kConsumers x kOutBytes
  uint64_t* full = reinterpret_cast<uint64_t*>(out_stage + kConsumers * Layout::kOutBytes);
  uint64_t* empty = full + kStages;
  uint64_t* turn = empty + kStages;  // pingpong: turn[c] completes when the other consumer's products are done
  uint64_t* g_full = turn + 2;       // the backward: g_full[c] completes when consumer c's g boxes have landed
  auto tile_a = [&](int s) { return smem + s * Layout::kStageBytes; };
  auto tile_b = [&](int s) { return smem + s * Layout::kStageBytes + kTileBytesA; };
  const int k_tiles = (K + kBK - 1) / kBK;       // the last one's columns past K arrive as zeros
  constexpr int kTileN = kSwiglu ? BN / 2 : BN;  // columns of C (units, for SwiGLU) a tile covers
  const int n_tiles = (N + kTileN - 1) / kTileN, tiles = (M + kBM - 1) / kBM * n_tiles;
  const int wg = threadIdx.x / 128, t = threadIdx.x % 128, warp = t / 32, lane = t % 32;

  if (threadIdx.x == 0) {
    for (int s = 0; s < kStages; s++) {
      mbar_init(&full[s], 1);                                  // the producer's arrive, plus the copies' bytes
      mbar_init(&empty[s], (kPingpong ? 1 : kConsumers) * 4);  // every warp of the consumers that read it
    }
    for (int c = 0; c < 2; c++) {
      mbar_init(&turn[c], 4);
      mbar_init(&g_full[c], 1);  // the consumer's own arrive, plus the copies' bytes
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");  // visible to the copy engine
  }
  __syncthreads();

  // Persistent: a block takes tiles blockIdx.x, + gridDim.x, ... in the order row block by row block, so that the
  // blocks at work share a few row blocks of A (read from memory once) and all of B (small, kept in L2). The ring
  // runs on across tiles (`it` counts a block's stages), so the producer loads the next tile while the consumers
  // store the last one.
  if (wg == 0) {  // producer: one thread keeps the ring full
    if (t == 0)
      for (int tile = blockIdx.x, it = 0; tile < tiles; tile += gridDim.x) {
        const int m0 = tile / n_tiles * kBM, n0 = tile % n_tiles * kTileN;
        for (int kt = 0; kt < k_tiles; kt++, it++) {
          int s = it % kStages;
          mbar_wait(&empty[s], ((it / kStages) & 1) ^ 1);
          mbar_expect_tx(&full[s], Layout::kStageBytes);
          tma_load_2d(tile_a(s), &map_a, kt * kBK, m0, &full[s]);
          tma_load_2d(tile_b(s), &map_b, kt * kBK, n0, &full[s]);
          if constexpr (kSwiglu)  // the same units' rows of W2 below those of W1 (a whole number of 1024-byte atoms
                                  // down)
            tma_load_2d(tile_b(s) + BN / 2 * kBK * 2, &map_b, kt * kBK, e.S + n0, &full[s]);
        }
      }
    return;
  }

  const int slice = wg - 1;  // cooperative: rows [64 slice, 64 slice + 64) of each tile; pingpong: tiles i % 2
  uint8_t* out = out_stage + slice * Layout::kOutBytes;
  float acc[kHalves][BN / 2];
  for (int tile = blockIdx.x, i = 0; tile < tiles; tile += gridDim.x, i++) {  // i: the block's i-th tile
    if (kPingpong && i % 2 != slice) continue;
    const int m0 = tile / n_tiles * kBM, n0 = tile % n_tiles * kTileN, it0 = i * k_tiles;
    const int ci = kPingpong ? i / 2 : i;                // this consumer's own tile count
    const int row0 = m0 + (kPingpong ? 0 : 64 * slice);  // this consumer's first row (+ 64 hh)
    auto box = [&](int hh, int k) { return out + (hh * Layout::kBoxes + k) * kBoxBytes; };  // fused: box k
    if constexpr (kFuse == Fuse::swiglu_backward)
      if (t == 0) {              // g's boxes for this tile's epilogue, in flight while it multiplies
        tma_store_wait<true>();  // once the last tile's dg stores have read the boxes
        mbar_expect_tx(&g_full[slice], Layout::kOutBytes);
        for (int hh = 0; hh < kHalves; hh++)
          for (int k = 0; k < 4; k++)  // a, b of units [n0, n0 + 64), then a, b of [n0 + 64, n0 + 128)
            tma_load_2d(box(hh, k), &e.map[2 + k % 2], n0 + 64 * (k / 2), row0 + 64 * hh, &g_full[slice]);
      }
    // Pingpong: start multiplying only once the other consumer has multiplied its tile before this one, so that the
    // stages this tile waits for are never a whole ring ahead of the ones the other still reads (a parity wait
    // cannot tell phase p from p + 2). turn[1]'s phase n: consumer 0's n-th tile is done; turn[0]'s: consumer 1's.
    if constexpr (kPingpong) {
      if (slice == 1)
        mbar_wait(&turn[1], (i / 2) & 1);
      else if (i >= 2)
        mbar_wait(&turn[0], (i / 2 - 1) & 1);
    }
#pragma unroll
    for (int hh = 0; hh < kHalves; hh++)
#pragma unroll
      for (int k = 0; k < BN / 2; k++) acc[hh][k] = 0.f;
    for (int kt = 0; kt < k_tiles; kt++) {
      const int it = it0 + kt, s = it % kStages;
      mbar_wait(&full[s], (it / kStages) & 1);
      const uint8_t* b = tile_b(s);
      wgmma_fence();
#pragma unroll
      for (int k = 0; k < kBK / 16; k++)  // k16 steps: 32 bytes along the swizzled 128-byte rows
#pragma unroll
        for (int hh = 0; hh < kHalves; hh++) {
          const uint8_t* a = tile_a(s) + (kPingpong ? hh : slice) * 64 * kBK * 2;
          wgmma_bf16<BN>(acc[hh], smem_desc(a + 32 * k), smem_desc(b + 32 * k), kt > 0 || k > 0);
        }
      wgmma_commit();
      wgmma_wait<1>();  // the previous stage's products have read their operands: hand that stage back
      if (kt > 0 && lane == 0) mbar_arrive(&empty[(it - 1) % kStages]);
    }
    wgmma_wait<0>();
    if (lane == 0) {
      mbar_arrive(&empty[(it0 + k_tiles - 1) % kStages]);  // the tile's last stage
      if constexpr (kPingpong) mbar_arrive(&turn[1 - slice]);
    }

    // The accumulator's layout (m64nN, f32): warp w holds rows 16 w + lane / 4 (+ 8), and in each 8-column group
    // j the columns 8 j + 2 (lane % 4) + {0, 1}: acc[4 j + 2 h + e] is row + 8 h, column + e.
    const int r0 = warp * 16 + lane / 4;  // + 64 hh for the pingpong consumer's second row slice
    if constexpr (kFuse == Fuse::plain) {
      // The tile leaves in passes of 128 columns through this consumer's staging rows (256 bytes; the 16-byte
      // chunks XOR-swizzled by row, so that the fragment stores and the row reads both spread over the 32 banks),
      // each warp then storing whole rows in 16-byte packs: straight from the registers, a warp's store covered 8
      // rows x 16 bytes, half of every 32-byte sector it touched.
      auto chunk_at = [&](int r, int q) { return out + r * kOutPitch + ((q ^ (r & 7)) * 16); };
#pragma unroll
      for (int pass = 0; pass < BN / 128; pass++) {
        warpgroup_sync(1 + slice);  // this warpgroup's last rows have left
#pragma unroll
        for (int hh = 0; hh < kHalves; hh++)
#pragma unroll
          for (int q = 0; q < 16; q++) {
            const int j = 16 * pass + q;  // the fragment's 8-column group in chunk q
#pragma unroll
            for (int h = 0; h < 2; h++)
              *reinterpret_cast<__nv_bfloat162*>(chunk_at(64 * hh + r0 + 8 * h, q) + (lane % 4) * 4) =
                  __floats2bfloat162_rn(acc[hh][4 * j + 2 * h], acc[hh][4 * j + 2 * h + 1]);
          }
        warpgroup_sync(1 + slice);
        for (int p = t; p < Layout::kRows * 16; p += 128) {
          const int r = p / 16, q = p % 16, row = m0 + (kPingpong ? 0 : slice * 64) + r, n = n0 + 128 * pass + 8 * q;
          if (row < M && n < N)  // N is a multiple of 8: a chunk is all in or all out
            *reinterpret_cast<uint4*>(e.C + (size_t)row * e.ldc + n) = *reinterpret_cast<const uint4*>(chunk_at(r, q));
        }
      }
    } else if constexpr (kFuse == Fuse::swiglu) {
      if (t == 0) tma_store_wait<true>();  // the last tile's stores have read the boxes
      warpgroup_sync(1 + slice);
#pragma unroll
      for (int hh = 0; hh < kHalves; hh++)
#pragma unroll
        for (int j = 0; j < 8; j++)  // a in columns 8 j.., b of the same units in 64 + 8 j..
#pragma unroll
          for (int h = 0; h < 2; h++) {
            const int r = r0 + 8 * h;
            const __nv_bfloat162 a = __floats2bfloat162_rn(acc[hh][4 * j + 2 * h], acc[hh][4 * j + 2 * h + 1]);
            const __nv_bfloat162 b =
                __floats2bfloat162_rn(acc[hh][4 * (j + 8) + 2 * h], acc[hh][4 * (j + 8) + 2 * h + 1]);
            const float2 af = __bfloat1622float2(a), bf = __bfloat1622float2(b);
            *box_pair(box(hh, 0), r, j, lane) = a;
            *box_pair(box(hh, 1), r, j, lane) = b;
            // as swiglu_gate_kernel: zero where the padded W12 rows gave a = b = 0
            *box_pair(box(hh, 2), r, j, lane) =
                __floats2bfloat162_rn(af.x / (1.f + expf(-af.x)) * bf.x, af.y / (1.f + expf(-af.y)) * bf.y);
          }
    } else {
      mbar_wait(&g_full[slice], ci & 1);  // g's boxes, loaded when the tile started
#pragma unroll
      for (int hh = 0; hh < kHalves; hh++)
#pragma unroll
        for (int j = 0; j < 16; j++)  // units 8 j..: in the boxes of half j / 8, at group j % 8
#pragma unroll
          for (int h = 0; h < 2; h++) {
            const int r = r0 + 8 * h;
            const float2 dm =
                __bfloat1622float2(__floats2bfloat162_rn(acc[hh][4 * j + 2 * h], acc[hh][4 * j + 2 * h + 1]));
            __nv_bfloat162* pa = box_pair(box(hh, 2 * (j / 8)), r, j % 8, lane);
            __nv_bfloat162* pb = box_pair(box(hh, 2 * (j / 8) + 1), r, j % 8, lane);
            const float2 a = __bfloat1622float2(*pa), b = __bfloat1622float2(*pb);
            *pa = __floats2bfloat162_rn(gate_da(dm.x, a.x, b.x), gate_da(dm.y, a.y, b.y));
            *pb = __floats2bfloat162_rn(gate_db(dm.x, a.x), gate_db(dm.y, a.y));
          }
    }
    if constexpr (kFuse != Fuse::plain) {
      fence_proxy_async();  // the boxes' writes before the stores read them
      warpgroup_sync(1 + slice);
      if (t == 0) {
#pragma unroll
        for (int hh = 0; hh < kHalves; hh++) {
          const int row = row0 + 64 * hh;
          if constexpr (kFuse == Fuse::swiglu) {
            for (int k = 0; k < 3; k++) tma_store_2d(&e.map[k], n0, row, box(hh, k));  // g's a, g's b, m
          } else {
            for (int k = 0; k < 4; k++) tma_store_2d(&e.map[k % 2], n0 + 64 * (k / 2), row, box(hh, k));
          }
        }
        tma_store_commit();
      }
    }
  }
  if constexpr (kFuse != Fuse::plain)
    if (t == 0) tma_store_wait<false>();  // the shared memory stays until the last stores are done
#else
  __trap();  // built without sm_90a: gemm_sm90_available() is false and nothing launches this
#endif
}

using EncodeTiled = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                                 const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                                 CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

// The driver's cuTensorMapEncodeTiled through the runtime, so that nothing links libcuda.
EncodeTiled encode_tiled() {
  static const EncodeTiled fn = [] {
    void* p = nullptr;
    cudaDriverEntryPointQueryResult found{};
    BYTELM_CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &found));
    if (found != cudaDriverEntryPointSuccess || !p) throw Error("gemm_sm90: the driver has no cuTensorMapEncodeTiled");
    return reinterpret_cast<EncodeTiled>(p);
  }();
  return fn;
}

// A row-major [rows, cols] bf16 matrix (leading dimension ld) read or written in boxes of box_rows x 64 columns,
// 128-byte swizzled; reads past its edges fill zeros, writes past them are dropped.
CUtensorMap tensor_map(const bf16* p, int rows, int cols, int ld, int box_rows) {
  CUtensorMap map;
  cuuint64_t dims[2] = {(cuuint64_t)cols, (cuuint64_t)rows};
  cuuint64_t strides[1] = {(cuuint64_t)ld * sizeof(bf16)};
  cuuint32_t box[2] = {(cuuint32_t)kBK, (cuuint32_t)box_rows};
  cuuint32_t steps[2] = {1, 1};
  CUresult r = encode_tiled()(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, const_cast<bf16*>(p), dims, strides, box,
                              steps, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                              CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS) throw Error("gemm_sm90: cuTensorMapEncodeTiled failed (CUresult " + std::to_string(r) + ")");
  return map;
}

constexpr int kMaxDevices = 64;

int current_device() {
  int device = 0;
  BYTELM_CUDA_CHECK(cudaGetDevice(&device));
  if (device >= kMaxDevices) throw Error("gemm_sm90: device index " + std::to_string(device) + " past 63");
  return device;
}

int multiprocessors() {
  static int count[kMaxDevices] = {};  // 0 = not asked yet (a data race only ever writes the same value)
  int device = current_device();
  if (count[device] == 0)
    BYTELM_CUDA_CHECK(cudaDeviceGetAttribute(&count[device], cudaDevAttrMultiProcessorCount, device));
  return count[device];
}

// Tiles of BN columns of the product over the rows of B (box_rows_b a copy: BN, or BN / 2 twice for SwiGLU).
template <int BN, Fuse kFuse, bool kPingpong>
void launch(const Epilogue& e, const bf16* A, int lda, const bf16* B, int ldb, int rows_b, int M, int N, int K,
            cudaStream_t stream) {
  static std::once_flag raised[kMaxDevices];  // the shared-memory limit, once a device
  std::call_once(raised[current_device()], [] {
    BYTELM_CUDA_CHECK(cudaFuncSetAttribute(gemm_tn_kernel<BN, kFuse, kPingpong>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           Tile<BN, kFuse, kPingpong>::kSmemBytes));
  });
  constexpr int kTileN = kFuse == Fuse::swiglu ? BN / 2 : BN;
  CUtensorMap map_a = tensor_map(A, M, K, lda, kBM), map_b = tensor_map(B, rows_b, K, ldb, kTileN);
  const long tiles = (long)((M + kBM - 1) / kBM) * ((N + kTileN - 1) / kTileN);
  const int grid = (int)std::min<long>(tiles, multiprocessors());  // one block an SM (its shared memory)
  gemm_tn_kernel<BN, kFuse, kPingpong>
      <<<grid, kThreads, Tile<BN, kFuse, kPingpong>::kSmemBytes, stream>>>(map_a, map_b, e, M, N, K);
  BYTELM_CUDA_CHECK(cudaGetLastError());
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// The tensor copies' rules: N, K and every leading dimension of an operand a multiple of 8 elements (rows 16-byte
// aligned), each such ld at least K, every pointer 16-byte aligned.
bool operands_fit(int M, int N, int K, std::initializer_list<int> lds, std::initializer_list<const void*> ptrs) {
  if (M < 1 || N < 1 || K < 1 || N % 8 != 0 || K % 8 != 0) return false;
  for (int ld : lds)
    if (ld % 8 != 0 || ld < K) return false;
  for (const void* p : ptrs)
    if (!aligned16(p)) return false;
  return true;
}

// Throws unless the kernels can run: a GPU of compute capability 9.0, and operands that fit (n_name: what N is).
void check(const char* what, const char* n_name, bool fits, int M, int N, int K) {
  if (!gemm_sm90_available()) throw Error(std::string(what) + ": needs a GPU of compute capability 9.0");
  if (!fits)
    throw Error(std::string(what) + ": M " + std::to_string(M) + ", " + n_name + " " + std::to_string(N) + ", K " +
                std::to_string(K) + ": " + n_name +
                ", K and the leading dimensions must be multiples of 8 and the pointers 16-byte aligned");
}

template <Fuse kFuse>
void run(const Epilogue& e, const bf16* A, int lda, const bf16* B, int ldb, int rows_b, int M, int N, int K,
         GemmTileN tile_n, cudaStream_t stream) {
  if (tile_n == GemmTileN::n256) {
    if constexpr (kFuse == Fuse::plain)
      launch<256, kFuse, false>(e, A, lda, B, ldb, rows_b, M, N, K, stream);
    else
      throw Error("gemm_sm90: the fused products take n128 or n128-pingpong tiles (no room to stage 256 columns)");
  } else if (tile_n == GemmTileN::n128_pingpong)
    launch<128, kFuse, true>(e, A, lda, B, ldb, rows_b, M, N, K, stream);
  else
    launch<128, kFuse, false>(e, A, lda, B, ldb, rows_b, M, N, K, stream);
}

}  // namespace

const char* gemm_tile_name(GemmTileN tile) {
  return tile == GemmTileN::n256 ? "n256" : tile == GemmTileN::n128_pingpong ? "n128-pingpong" : "n128";
}

bool gemm_sm90_available() {
#ifdef BYTELM_SM90A  // the kernels were built for sm_90a (CMakeLists.txt), not only compiled to a trap
  static const bool yes = [] {
    int device = 0, major = 0, minor = 0;
    if (cudaGetDevice(&device) != cudaSuccess) return false;
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
    cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device);
    return major == 9 && minor == 0;
  }();
  return yes;
#else
  return false;
#endif
}

bool gemm_sm90_fits(const bf16* C, int ldc, const bf16* A, int lda, const bf16* B, int ldb, int M, int N, int K) {
  return operands_fit(M, N, K, {lda, ldb}, {A, B, C}) && ldc % 8 == 0 && ldc >= N;
}

void gemm_sm90_tn(bf16* C, int ldc, const bf16* A, int lda, const bf16* B, int ldb, int M, int N, int K,
                  GemmTileN tile_n, cudaStream_t stream) {
  check("gemm_sm90_tn", "N", gemm_sm90_fits(C, ldc, A, lda, B, ldb, M, N, K), M, N, K);
  Epilogue e{};
  e.C = C;
  e.ldc = ldc;
  run<Fuse::plain>(e, A, lda, B, ldb, N, M, N, K, tile_n, stream);
}

bool gemm_sm90_swiglu_fits(const bf16* g, const bf16* m, const bf16* x, int ldx, const bf16* W12, int ldw, int M, int S,
                           int K) {
  return operands_fit(M, S, K, {ldx, ldw}, {g, m, x, W12});
}

void gemm_sm90_swiglu(bf16* g, bf16* m, const bf16* x, int ldx, const bf16* W12, int ldw, int M, int S, int K,
                      GemmTileN tile_n, cudaStream_t stream) {
  check("gemm_sm90_swiglu", "S", gemm_sm90_swiglu_fits(g, m, x, ldx, W12, ldw, M, S, K), M, S, K);
  Epilogue e{};
  e.S = S;
  e.map[0] = tensor_map(g, M, S, 2 * S, 64);      // a
  e.map[1] = tensor_map(g + S, M, S, 2 * S, 64);  // b
  e.map[2] = tensor_map(m, M, S, S, 64);
  run<Fuse::swiglu>(e, x, ldx, W12, ldw, 2 * S, M, S, K, tile_n, stream);
}

bool gemm_sm90_swiglu_backward_fits(const bf16* dg, const bf16* dy, int lddy, const bf16* W3t, int ldw, const bf16* g,
                                    int M, int S, int K) {
  return operands_fit(M, S, K, {lddy, ldw}, {dg, dy, W3t, g});
}

void gemm_sm90_swiglu_backward(bf16* dg, const bf16* dy, int lddy, const bf16* W3t, int ldw, const bf16* g, int M,
                               int S, int K, GemmTileN tile_n, cudaStream_t stream) {
  check("gemm_sm90_swiglu_backward", "S", gemm_sm90_swiglu_backward_fits(dg, dy, lddy, W3t, ldw, g, M, S, K), M, S, K);
  Epilogue e{};
  e.S = S;
  e.map[0] = tensor_map(dg, M, S, 2 * S, 64);      // da
  e.map[1] = tensor_map(dg + S, M, S, 2 * S, 64);  // db
  e.map[2] = tensor_map(g, M, S, 2 * S, 64);       // a
  e.map[3] = tensor_map(g + S, M, S, 2 * S, 64);   // b
  run<Fuse::swiglu_backward>(e, dy, lddy, W3t, ldw, S, M, S, K, tile_n, stream);
}

}  // namespace bytelm
