// Deterministic random numbers (same stream on every machine and build), so a
// seed fully determines initialisation, data order and sampling.
#pragma once
#include <cmath>
#include <cstdint>

namespace bytelm {

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

struct Rng {
  uint64_t state;
  explicit Rng(uint64_t seed) : state(splitmix64(seed)) {}
  uint64_t next_u64() { return state = splitmix64(state); }
  // uniform in [0, 1) with 53 random bits
  double uniform() { return double(next_u64() >> 11) * 0x1.0p-53; }
  double normal() {  // Box-Muller; one value per call keeps the stream simple
    double u1 = uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log1p(-u1)) * std::cos(6.283185307179586 * u2);
  }
};

}  // namespace bytelm
