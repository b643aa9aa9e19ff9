#!/usr/bin/env bash
# Builds the Java binding with its tests and runs them (what `cargo test --test java` runs):
#   1. build.sh --tests (classes, JNI glue, jar, test classes, the C reference program);
#   2. the C reference program segments tests/fixtures/tiles/patch1.png through the C API;
#   3. the Java tests (src/test/java/io/csranet/CsraTests.java) under -Xcheck:jni compare the
#      Java API's results with it and test threads, cancellation, closing and bad inputs;
#   4. fresh JVMs load the native library from java.library.path, from the jar alone, and fail
#      cleanly on a wrong explicit path;
#   5. the QuPath extension (bindings/qupath/src) compiles against hand-written stand-ins for the
#      QuPath 0.6.0 API and runs against them (bindings/qupath/stubs; QuPath's jars cannot be
#      downloaded here, see bindings/qupath/README.md); groovyc, where present, compiles the
#      Groovy scripts.
# Same environment as build.sh (CSRANET_LIB_DIR, BUILD_DIR, JAVA_HOME). Exit status 0 = all passed.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="${BUILD_DIR:-$HERE/build}"
export BUILD_DIR="$OUT"
"$HERE/build.sh" --tests

if [ -z "${JAVA_HOME:-}" ]; then
  JAVA_HOME="$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")"
fi
JAVA="$JAVA_HOME/bin/java"
[ -x "$JAVA" ] || JAVA="$(command -v java)"
NATIVES="$(ls -d "$OUT"/resources/natives/*/ | head -n1)"
NATIVES="${NATIVES%/}"
FIXTURES="$ROOT/tests/fixtures/tiles"
CP="$OUT/classes:$OUT/test-classes"
# A stale libcsranet.so on LD_LIBRARY_PATH (cargo test sets one) must not be picked up.
unset LD_LIBRARY_PATH

echo "== C reference (patch1.png through the C API)"
"$JAVA" -cp "$CP" io.csranet.Tools ppm "$FIXTURES/patch1.png" "$OUT/patch1.ppm"
"$OUT/reference" default "$OUT/patch1.ppm" > "$OUT/reference.txt"
grep -E '^(pass|instances)' "$OUT/reference.txt"

echo "== Java tests"
mkdir -p "$OUT/scratch"
set +e
"$JAVA" -Xcheck:jni -ea \
  -Dcsranet.library.path="$NATIVES" \
  -Dcsranet.test.fixtures="$FIXTURES" \
  -Dcsranet.test.reference="$OUT/reference.txt" \
  -Dcsranet.test.ppm="$OUT/patch1.ppm" \
  -Dcsranet.test.scratch="$OUT/scratch" \
  -Dcsranet.test.expectedLib="$(ls "$NATIVES"/libcsranet.so* | head -n1)" \
  -cp "$CP" io.csranet.CsraTests 2>&1 | tee "$OUT/java-tests.log"
status=${PIPESTATUS[0]}
set -e
if grep -q "WARNING in native method" "$OUT/java-tests.log"; then
  echo "test.sh: -Xcheck:jni reported JNI misuse (see above)" >&2
  status=1
fi
[ "$status" = 0 ] || { echo "test.sh: Java tests failed" >&2; exit 1; }

echo "== loading the native library"
out="$("$JAVA" -Djava.library.path="$NATIVES" -cp "$CP" io.csranet.Tools loader)"
echo "java.library.path: $out"
case "$out" in "loaded java.library.path version "*) ;; *) echo "test.sh: unexpected: $out" >&2; exit 1 ;; esac
out="$("$JAVA" -cp "$OUT/csranet.jar:$OUT/test-classes" io.csranet.Tools loader)"
echo "jar only: $out"
case "$out" in "loaded "*/csranet-natives-*/libcsranet_jni.so" version "*) ;; *) echo "test.sh: unexpected: $out" >&2; exit 1 ;; esac
set +e
err="$("$JAVA" -Dcsranet.library.path=/nonexistent/dir -cp "$OUT/csranet.jar:$OUT/test-classes" io.csranet.Tools loader 2>&1)"
code=$?
set -e
echo "wrong explicit path: exit $code, $(echo "$err" | grep -m1 -o 'UnsatisfiedLinkError.*' | cut -c1-160)"
[ "$code" != 0 ] && echo "$err" | grep -q "csranet.library.path=/nonexistent/dir" \
  || { echo "test.sh: a wrong explicit path should fail with UnsatisfiedLinkError naming it" >&2; exit 1; }
echo "== QuPath extension against stand-ins for the QuPath 0.6.0 API (not QuPath itself)"
QP="$ROOT/bindings/qupath"
rm -rf "$OUT/qupath-check"
mkdir -p "$OUT/qupath-check/stubs" "$OUT/qupath-check/classes" "$OUT/qupath-check/test"
javac --release 17 -nowarn -encoding UTF-8 -d "$OUT/qupath-check/stubs" $(find "$QP/stubs/src" -name '*.java' | sort)
javac --release 17 -Xlint:all -Werror -encoding UTF-8 -cp "$OUT/qupath-check/stubs" -d "$OUT/qupath-check/classes" \
  $(find "$QP/src/main/java" "$HERE/src/main/java" -name '*.java' | sort)
echo "bindings/qupath/src compiles against the stand-ins"
QCP="$OUT/qupath-check/stubs:$OUT/qupath-check/classes"
javac --release 17 -Xlint:all -Werror -encoding UTF-8 -cp "$QCP" -d "$OUT/qupath-check/test" \
  $(find "$QP/stubs/test" -name '*.java' | sort)
"$JAVA" -Xcheck:jni -Dcsranet.library.path="$NATIVES" -cp "$QCP:$OUT/qupath-check/test" \
  io.csranet.qupath.FakeQuPathTest "$FIXTURES" 2>&1 | tee "$OUT/fake-qupath.log"
[ "${PIPESTATUS[0]}" = 0 ] || { echo "test.sh: the extension failed against the QuPath stand-ins" >&2; exit 1; }
if grep -q "WARNING in native method" "$OUT/fake-qupath.log"; then
  echo "test.sh: -Xcheck:jni reported JNI misuse" >&2
  exit 1
fi
# The Groovy scripts need QuPath to run; where groovyc exists, they are at least compiled
# (syntax and imports) against the same classes.
if command -v groovyc >/dev/null 2>&1; then
  mkdir -p "$OUT/qupath-check/groovy"
  JAVA_HOME="$JAVA_HOME" groovyc -cp "$QCP" -d "$OUT/qupath-check/groovy" "$QP/scripts/csranet_java_api.groovy" \
    "$QP/src/main/resources/io/csranet/qupath/csranet_detect.groovy" 2>&1 | grep -v '^WARNING' || true
  [ -f "$OUT/qupath-check/groovy/csranet_java_api.class" ] && [ -f "$OUT/qupath-check/groovy/csranet_detect.class" ] \
    || { echo "test.sh: groovyc could not compile the Groovy scripts" >&2; exit 1; }
  echo "Groovy scripts compile (groovyc)"
else
  echo "groovyc not found: the Groovy scripts were not compiled (optional check)"
fi
echo "test.sh: all Java binding tests passed"
