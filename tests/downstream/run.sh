#!/usr/bin/env bash
# Install the build tree into a scratch prefix, then build a downstream
# program against it through find_package(ssm) (shared and static) and through
# pkg-config (shared and --static), and run each.
set -euo pipefail
build=$1; work=$2
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work"; mkdir -p "$work"
prefix="$work/prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null
cmake -S "$here" -B "$work/cm" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/cm" >/dev/null
LD_LIBRARY_PATH="$prefix/lib" "$work/cm/downstream_shared"
"$work/cm/downstream_static"
libdir=$(ls -d "$prefix"/lib*/pkgconfig | head -n1)
export PKG_CONFIG_PATH="$libdir"
cc -std=c11 -Wall -Wextra -Wpedantic -Werror -o "$work/pc_shared" "$here/main.c" $(pkg-config --cflags --libs ssm)
LD_LIBRARY_PATH="$(dirname "$libdir")" "$work/pc_shared"
cc -std=c11 -Wall -Wextra -Wpedantic -Werror -o "$work/pc_static" "$here/main.c" \
   $(pkg-config --cflags ssm) "$(dirname "$libdir")/libssm.a" $(pkg-config --static --libs-only-l --libs-only-other ssm | sed 's/-lssm//')
"$work/pc_static"
echo "downstream: 4 ways built and ran"
