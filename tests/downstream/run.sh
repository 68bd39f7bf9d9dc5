#!/usr/bin/env bash
# Install the build tree into a scratch prefix, then build a downstream
# program against it through find_package(ssm) (shared, static, C++11) and
# through pkg-config (shared, --static, C++11), and run each.  Also checks
# that OpenMP stays libssm's business: no -fopenmp on any consumer compile
# line (pkg-config --cflags, the CMake package's compile commands).
set -euo pipefail
build=$1; work=$2
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work"; mkdir -p "$work"
prefix="$work/prefix"
fail() { echo "downstream: FAIL: $*" >&2; exit 1; }
cmake --install "$build" --prefix "$prefix" >/dev/null
cmake -S "$here" -B "$work/cm" -DCMAKE_PREFIX_PATH="$prefix" \
      -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
cmake --build "$work/cm" >/dev/null
if grep -q -- "-fopenmp" "$work/cm/compile_commands.json"; then
  grep -- "-fopenmp" "$work/cm/compile_commands.json" >&2
  fail "the CMake package leaks -fopenmp into consumers' compile flags"
fi
LD_LIBRARY_PATH="$prefix/lib" "$work/cm/downstream_shared"
"$work/cm/downstream_static"
LD_LIBRARY_PATH="$prefix/lib" "$work/cm/downstream_cxx"
libdir=$(ls -d "$prefix"/lib*/pkgconfig | head -n1)
export PKG_CONFIG_PATH="$libdir"
cflags=$(pkg-config --cflags ssm)
case " $cflags " in *fopenmp*) fail "pkg-config --cflags ssm carries -fopenmp: $cflags";; esac
libs=$(pkg-config --libs ssm)
case " $libs " in *fopenmp*) fail "pkg-config --libs ssm carries -fopenmp: $libs";; esac
strict="-Wall -Wextra -Wpedantic -Werror"
cc -std=c11 $strict -o "$work/pc_shared" "$here/main.c" $cflags $libs
LD_LIBRARY_PATH="$(dirname "$libdir")" "$work/pc_shared"
cc -std=c11 $strict -o "$work/pc_static" "$here/main.c" \
   $cflags "$(dirname "$libdir")/libssm.a" $(pkg-config --static --libs ssm | sed "s/-lssm\b//")
"$work/pc_static"
c++ -std=c++11 $strict -x c++ -o "$work/pc_cxx" "$here/main.c" -x none $cflags $libs
LD_LIBRARY_PATH="$(dirname "$libdir")" "$work/pc_cxx"
echo "downstream: 6 ways built and ran; no -fopenmp in consumers' flags (cflags: $cflags)"
