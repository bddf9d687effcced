// Row-parallel loops whose reductions are reproducible: each thread sums into
// its own partial buffer and the partials are added in thread order, so a run
// with a fixed thread count gives bit-identical results every time (exact
// resume and deterministic compression depend on that).
#pragma once
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace bytelm {

inline int thread_count() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// body(i, partial) for i in [0, N); partial has `width` zeroed entries per thread.
// Afterwards out[k] += sum over threads of partial[k].
template <class T, class Body>
void parallel_rows_reduce(int N, int width, T* out, Body body) {
  int threads = thread_count();
  std::vector<T> part((size_t)threads * width, T(0));
#pragma omp parallel num_threads(threads)
  {
    int tid = 0;
#ifdef _OPENMP
    tid = omp_get_thread_num();
#endif
    T* mine = part.data() + (size_t)tid * width;
#pragma omp for schedule(static)
    for (int i = 0; i < N; i++) body(i, mine);
  }
  for (int t = 0; t < threads; t++)
    for (int k = 0; k < width; k++) out[k] += part[(size_t)t * width + k];
}

}  // namespace bytelm
