#!/usr/bin/env bash
# Install the build tree into a scratch prefix, then build an MPI program
# against libssm_mpi through find_package(ssm) (target ssm::ssm_mpi) and
# through pkg-config ssm-mpi, and run each on 2 ranks.
# usage: run.sh BUILD_DIR WORK_DIR MPIEXEC [MPIEXEC flags...]
set -euo pipefail
build=$1; work=$2; shift 2
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work"; mkdir -p "$work"
prefix="$work/prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null
cmake -S "$here" -B "$work/cm" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/cm" >/dev/null
libdir=$(ls -d "$prefix"/lib*/pkgconfig | head -n1)
LD_LIBRARY_PATH="$(dirname "$libdir")" "$@" -np 2 "$work/cm/downstream_mpi"
export PKG_CONFIG_PATH="$libdir"
cc -std=c11 -Wall -Wextra -Wpedantic -Werror -o "$work/pc_mpi" "$here/main.c" \
   $(pkg-config --cflags --libs ssm-mpi) -lm
LD_LIBRARY_PATH="$(dirname "$libdir")" "$@" -np 2 "$work/pc_mpi"
echo "mpi downstream: 2 ways built and ran"
