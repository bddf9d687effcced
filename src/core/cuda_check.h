// Error checks for CUDA runtime and cuBLAS calls (CUDA builds only): a failed
// call throws bytelm::Error with "file:line: <call>: <error name>: <message>".
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

#include "core/error.h"

namespace bytelm {

[[noreturn]] inline void cuda_fail(const char* call, const std::string& what, const char* file, int line) {
  throw Error(std::string(file) + ":" + std::to_string(line) + ": " + call + ": " + what);
}

// True when a CUDA device can be used. No device, no driver or a stub driver
// gives false (never throws); the answer is computed once.
bool cuda_available();

}  // namespace bytelm

#define BYTELM_CUDA_CHECK(expr)                                                                               \
  do {                                                                                                        \
    cudaError_t bytelm_err_ = (expr);                                                                         \
    if (bytelm_err_ != cudaSuccess)                                                                           \
      ::bytelm::cuda_fail(#expr, std::string(cudaGetErrorName(bytelm_err_)) + ": " + cudaGetErrorString(bytelm_err_), \
                          __FILE__, __LINE__);                                                                \
  } while (0)

#define BYTELM_CUBLAS_CHECK(expr)                                                                       \
  do {                                                                                                  \
    cublasStatus_t bytelm_st_ = (expr);                                                                 \
    if (bytelm_st_ != CUBLAS_STATUS_SUCCESS)                                                            \
      ::bytelm::cuda_fail(#expr, std::string(cublasGetStatusName(bytelm_st_)) + ": " +                  \
                                     cublasGetStatusString(bytelm_st_), __FILE__, __LINE__);            \
  } while (0)
