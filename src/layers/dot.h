// The dot product the CPU references use: summed in index order, so a kernel that must match them knows the order.
#pragma once

namespace bytelm {

template <class T>
T dot(const T* a, const T* b, int n) {
  T s = 0;
  for (int i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

}  // namespace bytelm
