#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace bytelm {

std::string apply_runtime_flags(const Args& args) {
  std::string device = args.get("device", "cpu");
  if (device != "cpu" && device != "cuda" && device != "cuda-tf32" && device != "cuda-fp32")
    throw Error("--device must be cpu, cuda, cuda-tf32 or cuda-fp32, got '" + device + "'");
  int threads = args.get_int("threads", 0);
  if (threads < 0) throw Error("--threads must be >= 1");
#ifdef _OPENMP
  if (threads > 0) omp_set_num_threads(threads);
#endif
  return device;
}

}  // namespace bytelm
