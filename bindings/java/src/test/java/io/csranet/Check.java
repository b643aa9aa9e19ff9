package io.csranet;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Objects;

/**
 * A minimal test harness (no JUnit download needed): named tests, assertions that throw
 * {@link AssertionError}, a summary, and a non-zero exit status when anything failed.
 */
final class Check {
    interface Body {
        void run() throws Exception;
    }

    interface Thrower {
        void run() throws Exception;
    }

    private final List<String> failures = new ArrayList<>();
    private int passed;

    void test(String name, Body body) {
        long t0 = System.nanoTime();
        System.out.println("--- " + name);
        try {
            body.run();
            passed++;
            System.out.printf(Locale.ROOT, "ok   %s (%.2f s)%n", name, (System.nanoTime() - t0) / 1e9);
        } catch (Throwable t) {
            failures.add(name);
            System.out.printf(Locale.ROOT, "FAIL %s (%.2f s): %s%n", name, (System.nanoTime() - t0) / 1e9, t);
            t.printStackTrace(System.out);
        }
        System.out.flush();
    }

    /** Prints the summary and exits 0 only when every test passed. */
    void finish() {
        System.out.println();
        System.out.println("java tests: " + passed + " passed, " + failures.size() + " failed"
                + (failures.isEmpty() ? "" : " " + failures));
        System.out.flush();
        System.exit(failures.isEmpty() ? 0 : 1);
    }

    static void check(boolean cond, String message) {
        if (!cond) {
            throw new AssertionError(message);
        }
    }

    static void equal(Object expected, Object actual, String what) {
        if (!Objects.equals(expected, actual)) {
            throw new AssertionError(what + ": expected " + expected + ", got " + actual);
        }
    }

    /** Runs {@code body}, which must throw an exception of type {@code type}; returns it. */
    static <T extends Throwable> T fails(Class<T> type, Thrower body) {
        try {
            body.run();
        } catch (Throwable t) {
            if (type.isInstance(t)) {
                return type.cast(t);
            }
            AssertionError e = new AssertionError("expected " + type.getSimpleName() + ", got " + t);
            e.initCause(t);
            throw e;
        }
        throw new AssertionError("expected " + type.getSimpleName() + ", nothing was thrown");
    }
}
