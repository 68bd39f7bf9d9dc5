#!/usr/bin/env bash
# Builds and runs every test of libssm (README's second command; .ci/run).
#  1. gcc: strict build (-Wall -Wextra -Wpedantic -Werror; an implicit
#     declaration is always an error), whole CTest suite
#  2. clang: the same strict build and whole CTest suite, plus the libFuzzer
#     targets (CTest label fuzz, SSM_FUZZ_SECONDS each, fixed seed)
#  3. AddressSanitizer + UBSan build (gcc), whole CTest suite
#  4. ThreadSanitizer (clang, libomp with its Archer TSan annotations): the
#     concurrency tests (label concurrency)
#  5. the LAPACK-backed suite under valgrind, once with the reference
#     LAPACK/BLAS and once with OpenBLAS (the system's alternative)
# On the 2-core development machine the whole run takes about 10 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/install-deps
jobs=$(nproc)
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
refblas="/usr/lib/$arch/blas:/usr/lib/$arch/lapack"
t0=$(date +%s)
stage() { echo "== $1 ($(( $(date +%s) - t0 )) s)"; }

stage "1/5 gcc: strict build and tests"
cmake -S . -B build-test -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER=gcc \
      -DCMAKE_CXX_COMPILER=g++ -DSSM_WERROR=ON >/dev/null
cmake --build build-test -j"$jobs"
ctest --test-dir build-test --output-on-failure -j"$jobs"

stage "2/5 clang: strict build, tests and fuzz targets"
cmake -S . -B build-clang-test -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER=clang \
      -DCMAKE_CXX_COMPILER=clang++ -DSSM_WERROR=ON -DSSM_FUZZ=ON >/dev/null
cmake --build build-clang-test -j"$jobs"
ctest --test-dir build-clang-test --output-on-failure -j"$jobs"

stage "3/5 AddressSanitizer + UndefinedBehaviorSanitizer"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS="-O1" \
      -DCMAKE_C_COMPILER=gcc -DCMAKE_CXX_COMPILER=g++ \
      -DSSM_WERROR=ON -DSSM_SANITIZE=ON -DSSM_BUILD_BENCH=OFF >/dev/null
cmake --build build-asan -j"$jobs"
ctest --test-dir build-asan --output-on-failure -j"$jobs"

# TSan sees the synchronisation of libomp through Archer (libomp's OMPT
# tool, shipped with libomp-14-dev); ignore_noninstrumented_modules drops
# reports whose accesses are all inside uninstrumented libraries (libomp,
# FFTW), never one with an access in libssm or the test.  The reference BLAS
# keeps OpenBLAS's own libgomp threads (uninstrumented) out of the process.
stage "4/5 ThreadSanitizer: concurrency tests"
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
      -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_FLAGS="-fsanitize=thread" \
      -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=thread" \
      -DSSM_WERROR=ON -DSSM_FUZZ=OFF -DSSM_BUILD_BENCH=OFF -DSSM_BUILD_DEMOS=OFF >/dev/null
cmake --build build-tsan -j"$jobs" --target test_concurrency
archer=$(ls /usr/lib/llvm-*/lib/libarcher.so 2>/dev/null | head -n1)
[ -n "$archer" ] || { echo "run-all: libarcher.so not found (apt-get install libomp-14-dev)"; exit 1; }
LD_LIBRARY_PATH="$refblas" OMP_TOOL_LIBRARIES="$archer" OMP_NUM_THREADS=2 CK_FORK=no \
  TSAN_OPTIONS="halt_on_error=1 exitcode=66 ignore_noninstrumented_modules=1" \
  ctest --test-dir build-tsan --output-on-failure -L concurrency

stage "5/5 LAPACK-backed paths under valgrind, reference and OpenBLAS"
vg="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite"
for blas in reference openblas; do
  if [ $blas = reference ]; then
    libs="$refblas"
  else
    libs="/usr/lib/$arch/openblas-openmp"
  fi
  echo "-- $blas: $libs"
  LD_LIBRARY_PATH="$libs" CK_FORK=no CK_RUN_CASE=valgrind \
    $vg build-test/tests/test_hippo
done
echo "run-all: every stage passed in $(( $(date +%s) - t0 )) s"
