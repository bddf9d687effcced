#include "layers/cross_entropy.h"

#include <cmath>

namespace bytelm {

template <class T>
void cross_entropy_forward_backward(T* loss, T* dlogits, const T* logits, const uint8_t* y, int N, T scale) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < N; i++) {
    const T* li = logits + (size_t)i * 256;
    T mx = li[0];
    for (int k = 1; k < 256; k++) mx = li[k] > mx ? li[k] : mx;
    T sum = 0;
    for (int k = 0; k < 256; k++) sum += std::exp(li[k] - mx);
    T lse = mx + std::log(sum);
    loss[i] = lse - li[y[i]];
    if (dlogits) {
      T* di = dlogits + (size_t)i * 256;
      for (int k = 0; k < 256; k++) di[k] = std::exp(li[k] - lse) * scale;
      di[y[i]] -= scale;
    }
  }
}

template void cross_entropy_forward_backward<float>(float*, float*, const float*, const uint8_t*, int, float);
template void cross_entropy_forward_backward<double>(double*, double*, const double*, const uint8_t*, int, double);

}  // namespace bytelm
