package io.csranet;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Finds and loads the JNI glue ({@code libcsranet_jni.so}), which in turn loads the csranet C
 * library ({@code libcsranet.so}) from its own directory (it is linked with an
 * {@code $ORIGIN} run path).
 *
 * <p>Where it looks, in this order:
 * <ol>
 *   <li>an explicit path: {@link #load(Path)} before first use, or the system property
 *       {@value #PROPERTY} (a directory holding the libraries, or the glue library itself);</li>
 *   <li>{@code java.library.path} ({@code System.loadLibrary("csranet_jni")});</li>
 *   <li>the jar: {@code natives/<os>-<arch>/} (listed in {@code files.txt} there) is copied to a
 *       temporary directory and loaded from it.</li>
 * </ol>
 * The first success wins; if all fail, the {@link UnsatisfiedLinkError} lists every attempt.
 * A JVM can load the library in one class loader only (a JNI rule).
 */
public final class NativeLibrary {
    /** System property naming the directory (or file) of the JNI library. */
    public static final String PROPERTY = "csranet.library.path";
    /** Base name of the JNI glue library ({@code libcsranet_jni.so} on Linux). */
    public static final String JNI_NAME = "csranet_jni";

    private static String loadedFrom;

    private NativeLibrary() {}

    /**
     * Loads the libraries from {@code path}: a directory holding {@code libcsranet_jni.so} and
     * {@code libcsranet.so}, or the JNI library file itself. Call it before any other csranet
     * class is used; a no-op if this very file is already loaded.
     *
     * @throws IllegalStateException when the library was already loaded from elsewhere
     * @throws UnsatisfiedLinkError when the file cannot be loaded
     */
    public static synchronized void load(Path path) {
        Path file = resolve(path);
        if (loadedFrom != null) {
            if (loadedFrom.equals(file.toString())) {
                return;
            }
            throw new IllegalStateException("the csranet native library is already loaded from " + loadedFrom);
        }
        System.load(file.toString());
        loadedFrom = file.toString();
    }

    /** Where the JNI library was loaded from (a path, or "java.library.path"); null if not yet. */
    public static synchronized String loadedFrom() {
        return loadedFrom;
    }

    /** This platform's directory name under {@code natives/}, e.g. {@code linux-x86_64}. */
    public static String platform() {
        String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
        String arch = System.getProperty("os.arch", "").toLowerCase(Locale.ROOT);
        String o = os.contains("win") ? "windows" : os.contains("mac") || os.contains("darwin") ? "macos" : os.contains("linux") ? "linux" : os.replaceAll("[^a-z0-9]", "");
        String a;
        switch (arch) {
            case "amd64":
            case "x86_64":
            case "x64":
                a = "x86_64";
                break;
            case "aarch64":
            case "arm64":
                a = "aarch64";
                break;
            default:
                a = arch.replaceAll("[^a-z0-9_]", "");
        }
        return o + "-" + a;
    }

    private static Path resolve(Path path) {
        if (path == null) {
            throw new NullPointerException("path");
        }
        Path p = path.toAbsolutePath().normalize();
        if (Files.isDirectory(p)) {
            p = p.resolve(System.mapLibraryName(JNI_NAME));
        }
        return p;
    }

    /** Loads the library if no one has yet (called by the classes that need it). */
    static synchronized void ensureLoaded() {
        if (loadedFrom != null) {
            return;
        }
        List<String> attempts = new ArrayList<>();
        String prop = System.getProperty(PROPERTY);
        if (prop != null && !prop.isEmpty()) {
            Path file = resolve(Path.of(prop));
            try {
                System.load(file.toString());
                loadedFrom = file.toString();
                return;
            } catch (UnsatisfiedLinkError e) {
                // An explicit path that fails is an error, not a reason to look elsewhere.
                throw new UnsatisfiedLinkError("-D" + PROPERTY + "=" + prop + ": " + e.getMessage());
            }
        }
        try {
            System.loadLibrary(JNI_NAME);
            loadedFrom = "java.library.path";
            return;
        } catch (UnsatisfiedLinkError e) {
            attempts.add("java.library.path (" + System.getProperty("java.library.path") + "): " + e.getMessage());
        }
        try {
            Path file = extractFromJar();
            System.load(file.toString());
            loadedFrom = file.toString();
            return;
        } catch (IOException | UnsatisfiedLinkError e) {
            attempts.add("jar natives/" + platform() + "/: " + e.getMessage());
        }
        throw new UnsatisfiedLinkError("cannot load the csranet JNI library (" + System.mapLibraryName(JNI_NAME)
                + "); set -D" + PROPERTY + "=DIR or java.library.path, or use a jar with natives/"
                + platform() + "/. Tried: " + String.join("; ", attempts));
    }

    private static Path extractFromJar() throws IOException {
        String dir = "/natives/" + platform() + "/";
        List<String> names = new ArrayList<>();
        try (InputStream index = NativeLibrary.class.getResourceAsStream(dir + "files.txt")) {
            if (index == null) {
                throw new IOException("no " + dir + "files.txt in the class path");
            }
            BufferedReader r = new BufferedReader(new InputStreamReader(index, StandardCharsets.UTF_8));
            for (String line = r.readLine(); line != null; line = r.readLine()) {
                line = line.trim();
                if (!line.isEmpty() && !line.startsWith("#")) {
                    if (line.contains("/") || line.contains("\\") || line.startsWith(".")) {
                        throw new IOException("bad file name in files.txt: " + line);
                    }
                    names.add(line);
                }
            }
        }
        String jniName = System.mapLibraryName(JNI_NAME);
        if (!names.contains(jniName)) {
            throw new IOException(dir + "files.txt does not list " + jniName);
        }
        Path tmp = Files.createTempDirectory("csranet-natives-");
        tmp.toFile().deleteOnExit();
        for (String name : names) {
            Path target = tmp.resolve(name);
            try (InputStream in = NativeLibrary.class.getResourceAsStream(dir + name)) {
                if (in == null) {
                    throw new IOException("files.txt lists " + name + " but " + dir + name + " is missing");
                }
                Files.copy(in, target, StandardCopyOption.REPLACE_EXISTING);
            }
            target.toFile().deleteOnExit();
        }
        return tmp.resolve(jniName);
    }
}
