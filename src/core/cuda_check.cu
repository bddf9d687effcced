#include "core/cuda_check.h"

namespace bytelm {

bool cuda_available() {
  static const bool available = [] {
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
      cudaGetLastError();  // clear it so later calls do not report this failure
      return false;
    }
    return n > 0;
  }();
  return available;
}

}  // namespace bytelm
