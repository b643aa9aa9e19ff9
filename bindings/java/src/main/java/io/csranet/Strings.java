package io.csranet;

import java.nio.charset.Charset;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Objects;

/** Strings and paths as the bytes the C API expects. */
final class Strings {
    private Strings() {}

    /** The platform's file-name encoding (what the JVM itself uses for paths). */
    private static final Charset PATH_CHARSET = pathCharset();

    private static Charset pathCharset() {
        String name = System.getProperty("sun.jnu.encoding");
        try {
            return name == null ? Charset.defaultCharset() : Charset.forName(name);
        } catch (RuntimeException e) {
            return Charset.defaultCharset();
        }
    }

    static byte[] utf8(String s, String what) {
        Objects.requireNonNull(s, what);
        if (s.indexOf('\0') >= 0) {
            throw new IllegalArgumentException(what + " contains a NUL character");
        }
        return s.getBytes(StandardCharsets.UTF_8);
    }

    /** An absolute path as file-system bytes; rejects NUL characters. */
    static byte[] path(Path path) {
        Objects.requireNonNull(path, "path");
        String s = path.toAbsolutePath().toString();
        if (s.indexOf('\0') >= 0) {
            throw new IllegalArgumentException("path contains a NUL character");
        }
        return s.getBytes(PATH_CHARSET);
    }
}
