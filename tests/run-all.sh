#!/usr/bin/env bash
# Builds and runs every test of libssm (README's second command; .ci/run).
#  1. strict build (-Wall -Wextra -Wpedantic -Werror), whole CTest suite
#  2. AddressSanitizer + UBSan build, whole CTest suite
#  3. the LAPACK-backed suite under valgrind, once with the reference
#     LAPACK/BLAS and once with OpenBLAS (the system's alternative)
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/install-deps
jobs=$(nproc)
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)

echo "== 1/3 strict build and tests =="
cmake -S . -B build-test -DCMAKE_BUILD_TYPE=Release -DSSM_WERROR=ON >/dev/null
cmake --build build-test -j"$jobs"
ctest --test-dir build-test --output-on-failure -j"$jobs"

echo "== 2/3 AddressSanitizer + UndefinedBehaviorSanitizer =="
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS="-O1" \
      -DSSM_WERROR=ON -DSSM_SANITIZE=ON -DSSM_BUILD_BENCH=OFF >/dev/null
cmake --build build-asan -j"$jobs"
ctest --test-dir build-asan --output-on-failure -j"$jobs"

echo "== 3/3 LAPACK-backed paths under valgrind, reference and OpenBLAS =="
vg="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite"
for blas in reference openblas; do
  if [ $blas = reference ]; then
    libs="/usr/lib/$arch/blas:/usr/lib/$arch/lapack"
  else
    libs="/usr/lib/$arch/openblas-openmp"
  fi
  echo "-- $blas: $libs"
  LD_LIBRARY_PATH="$libs" CK_FORK=no CK_RUN_CASE=valgrind \
    $vg build-test/tests/test_hippo
done
echo "run-all: every stage passed"
