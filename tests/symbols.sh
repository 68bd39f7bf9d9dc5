#!/usr/bin/env bash
# CTest "symbols": the public prefix ssm_ is a promise.  Every global symbol
# of libssm.a and every symbol exported by libssm.so is either declared with
# SSM_API in an installed header (include/ssm.h, include/ssm/*.h) or, for the
# static library only, an internal helper with the prefix ssmi_ (hidden in
# the shared library).  Anything else (an ssm_ symbol no header declares, a
# global without either prefix that could clash with a host program) fails.
#   usage: symbols.sh libssm.a libssm.so include-dir
set -euo pipefail
export LC_ALL=C   # one collation for sort and comm
a=$1; so=$2; inc=$3
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# Declared names: functions and objects marked SSM_API, comments removed.
cat "$inc"/ssm.h "$inc"/ssm/*.h | perl -0777 -ne '
  s{/\*.*?\*/}{ }gs; s{//[^\n]*}{ }g;
  while (/\bSSM_API\b[^;{}()]*?\b(ssm_\w+)\s*[(;\[]/g) { print "$1\n"; }' \
  | sort -u > "$tmp/declared"
[ -s "$tmp/declared" ] || { echo "symbols: no SSM_API declaration found under $inc" >&2; exit 1; }
# Defined global symbols (any type but U/w/v: those are references or weak).
nm -g --defined-only "$a" 2>/dev/null | awk 'NF == 3 && $2 !~ /^[wWvV]$/ {print $3}' \
  | sort -u > "$tmp/static"
nm -D --defined-only "$so" | awk 'NF == 3 && $2 !~ /^[wWvV]$/ {print $3}' \
  | grep -v -E '^(_init|_fini|_edata|_end|__bss_start)$' | sort -u > "$tmp/shared" || true
# clang names the lock of an OpenMP reduction that falls back to a critical
# section .gomp_critical_user_.reduction.var: a runtime-defined name shared
# by every OpenMP library in the process (by design) that no C identifier
# can spell, so it is not libssm's to prefix.
grep -v '^\.gomp_critical_user_' "$tmp/static" > "$tmp/s2" || true; mv "$tmp/s2" "$tmp/static"
grep -v '^\.gomp_critical_user_' "$tmp/shared" > "$tmp/s2" || true; mv "$tmp/s2" "$tmp/shared"
bad=0
# libssm.a: ssmi_* internal; ssm_* must be declared; nothing else.
grep '^ssm_' "$tmp/static" | comm -23 - "$tmp/declared" > "$tmp/undeclared" || true
grep -v -E '^ssmi?_' "$tmp/static" > "$tmp/unprefixed" || true
comm -23 "$tmp/shared" "$tmp/declared" > "$tmp/exported" || true
while read -r s; do echo "libssm.a: $s has the public prefix but no installed header declares it (internal: ssmi_ or static)"; bad=1; done < "$tmp/undeclared"
while read -r s; do echo "libssm.a: global symbol $s has neither prefix ssm_ (public) nor ssmi_ (internal)"; bad=1; done < "$tmp/unprefixed"
while read -r s; do echo "libssm.so: exports $s, which no installed header declares with SSM_API"; bad=1; done < "$tmp/exported"
echo "symbols: $(wc -l < "$tmp/declared") declared, $(grep -c '^ssm_' "$tmp/static" || true) public and $(grep -c '^ssmi_' "$tmp/static" || true) internal globals in $(basename "$a"), $(wc -l < "$tmp/shared") exported by $(basename "$so")"
if [ $bad -ne 0 ]; then echo "symbols: FAIL" >&2; exit 1; fi
echo "symbols: ok"
