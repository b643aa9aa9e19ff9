#!/usr/bin/env bash
# Builds the Java binding with nothing but a JDK (17 or later), gcc and the csranet library:
#   classes   javac --release 17        -> $BUILD_DIR/classes (and the JNI header)
#   JNI glue  gcc against include/csranet.h, linked to libcsranet.so with an $ORIGIN rpath
#             -> $BUILD_DIR/resources/natives/<os>-<arch>/{libcsranet_jni.so,libcsranet.so.<major>,files.txt}
#   jar       $BUILD_DIR/csranet.jar (classes + natives; loads from the jar when nothing else is set)
#
# Usage: bindings/java/build.sh [--tests]
# Environment:
#   CSRANET_LIB_DIR  directory holding libcsranet.so (default: <repo>/target/release;
#                    build it with `cargo build --release`)
#   BUILD_DIR        output directory (default: bindings/java/build)
#   JAVA_HOME        JDK (default: derived from `javac` on the PATH)
#   CC               C compiler (default: gcc)
# --tests also compiles the tests (src/test/java) into $BUILD_DIR/test-classes and the C
# reference program (src/test/c/reference.c) into $BUILD_DIR/reference.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
LIB_DIR="${CSRANET_LIB_DIR:-$ROOT/target/release}"
OUT="${BUILD_DIR:-$HERE/build}"
CC="${CC:-gcc}"
WITH_TESTS=0
for a in "$@"; do
  case "$a" in
    --tests) WITH_TESTS=1 ;;
    *) echo "build.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done

need() { command -v "$1" >/dev/null 2>&1 || { echo "build.sh: '$1' not found on PATH ($2)" >&2; exit 1; }; }
need javac "install a JDK 17+, e.g. apt-get install openjdk-17-jdk-headless"
need jar "part of the JDK"
need "$CC" "a C compiler for the JNI glue"
if [ -z "${JAVA_HOME:-}" ]; then
  JAVA_HOME="$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")"
fi
[ -f "$JAVA_HOME/include/jni.h" ] || { echo "build.sh: no jni.h under JAVA_HOME=$JAVA_HOME" >&2; exit 1; }
[ -f "$LIB_DIR/libcsranet.so" ] || { echo "build.sh: no libcsranet.so in $LIB_DIR (run 'cargo build --release' or set CSRANET_LIB_DIR)" >&2; exit 1; }

case "$(uname -s)" in
  Linux) OS=linux; JNI_OS=linux ;;
  *) echo "build.sh: only Linux is supported by this script (got $(uname -s))" >&2; exit 1 ;;
esac
case "$(uname -m)" in
  x86_64|amd64) ARCH=x86_64 ;;
  aarch64|arm64) ARCH=aarch64 ;;
  *) ARCH="$(uname -m)" ;;
esac
PLATFORM="$OS-$ARCH"
NATIVES="$OUT/resources/natives/$PLATFORM"

rm -rf "$OUT/classes" "$OUT/include" "$OUT/resources" "$OUT/csranet.jar"
mkdir -p "$OUT/classes" "$OUT/include" "$NATIVES"

echo "== javac (release 17)"
find "$HERE/src/main/java" -name '*.java' | sort > "$OUT/sources.txt"
javac --release 17 -Xlint:all -Werror -encoding UTF-8 -d "$OUT/classes" -h "$OUT/include" @"$OUT/sources.txt"

echo "== JNI glue ($PLATFORM)"
# -h wrote io_csranet_Native.h: compiling against it checks every C signature against Java.
# --disable-new-dtags: DT_RPATH ($ORIGIN) wins over LD_LIBRARY_PATH, so the glue always loads
# the libcsranet.so beside it.
"$CC" -std=c11 -O2 -g -fPIC -shared -Wall -Wextra -Werror -Wno-unused-parameter \
  -I"$JAVA_HOME/include" -I"$JAVA_HOME/include/$JNI_OS" -I"$ROOT/include" -I"$OUT/include" \
  "$HERE/src/main/c/csranet_jni.c" -o "$NATIVES/libcsranet_jni.so" \
  -L"$LIB_DIR" -lcsranet -Wl,-rpath,'$ORIGIN' -Wl,--disable-new-dtags -Wl,--no-undefined
# The library goes beside the glue, under its SONAME (libcsranet.so.<major>, the name the glue
# loads); debug builds are stripped of their debug info (hundreds of MB).
SONAME="$(readelf -d "$LIB_DIR/libcsranet.so" 2>/dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')"
LIB_NAME="${SONAME:-libcsranet.so}"
if command -v strip >/dev/null 2>&1; then
  strip --strip-debug -o "$NATIVES/$LIB_NAME" "$LIB_DIR/libcsranet.so"
else
  cp "$LIB_DIR/libcsranet.so" "$NATIVES/$LIB_NAME"
fi
printf '%s\n' "$LIB_NAME" libcsranet_jni.so > "$NATIVES/files.txt"

echo "== jar"
jar --create --file "$OUT/csranet.jar" -C "$OUT/classes" . -C "$OUT/resources" natives

if [ "$WITH_TESTS" = 1 ]; then
  echo "== tests"
  rm -rf "$OUT/test-classes"
  mkdir -p "$OUT/test-classes"
  find "$HERE/src/test/java" -name '*.java' | sort > "$OUT/test-sources.txt"
  javac --release 17 -Xlint:all,-try -Werror -encoding UTF-8 -cp "$OUT/classes" -d "$OUT/test-classes" @"$OUT/test-sources.txt"
  "$CC" -std=c11 -O2 -Wall -Wextra -Werror -I"$ROOT/include" "$HERE/src/test/c/reference.c" \
    -o "$OUT/reference" -L"$LIB_DIR" -lcsranet -Wl,-rpath,"$NATIVES" -Wl,--disable-new-dtags
fi
echo "built $OUT/csranet.jar ($(du -h "$OUT/csranet.jar" | cut -f1)) for $PLATFORM from $LIB_DIR/libcsranet.so"
