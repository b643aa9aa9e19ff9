package io.csranet;

import static io.csranet.Check.check;
import static io.csranet.Check.equal;
import static io.csranet.Check.fails;

import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import javax.imageio.ImageIO;

/**
 * The Java binding's tests, run by {@code test.sh} (and so by {@code cargo test --test java}).
 *
 * <p>System properties: {@code csranet.test.fixtures} (tests/fixtures/tiles),
 * {@code csranet.test.reference} (the C reference program's output for patch1),
 * {@code csranet.test.ppm} (patch1 as PPM), {@code csranet.test.scratch} (a writable directory),
 * {@code csranet.test.expectedLib} (the libcsranet.so that must be the one loaded).
 */
public final class CsraTests {
    static Path fixtures;
    static Path scratch;
    static Map<String, List<Instance>> reference;
    static BufferedImage patch1;
    static Tools.Ppm patch1Ppm;
    static CsraModel model; // the bundled default model, shared by most tests

    public static void main(String[] args) throws Exception {
        fixtures = Path.of(prop("csranet.test.fixtures"));
        scratch = Path.of(prop("csranet.test.scratch"));
        Files.createDirectories(scratch);
        reference = Tools.readReference(Path.of(prop("csranet.test.reference")));
        patch1 = ImageIO.read(fixtures.resolve("patch1.png").toFile());
        patch1Ppm = Tools.readPpm(Path.of(prop("csranet.test.ppm")));

        Check c = new Check();
        c.test("native library: version, loaded from the expected file", CsraTests::library);
        model = CsraModel.createDefault();
        c.test("segmentTile matches the C API on patch1 (BufferedImage, ARGB, RGB bytes)", CsraTests::matchesC);
        c.test("segmentImage (tiles 128, overlap 32) matches the C API, progress reported", CsraTests::matchesCTiled);
        c.test("image layouts: TYPE_3BYTE_BGR, TYPE_INT_ARGB, sub-image, RGBA bytes with stride", CsraTests::layouts);
        c.test("8 threads segment concurrently with identical results", CsraTests::concurrent);
        c.test("cancellation: listener false, listener throws, thread interrupted", CsraTests::cancellation);
        c.test("close() or loadWeights() from inside a listener throws instead of deadlocking", CsraTests::reentrant);
        c.test("bad inputs give exceptions, never a crash", CsraTests::badInputs);
        c.test("weights: save, load(Path), fromBytes, loadWeights, failed load keeps weights", CsraTests::weights);
        c.test("class names and colours: defaults, from the weights, UTF-8, bad indices", CsraTests::classes);
        c.test("TiledSegmenter: merge logic on synthetic candidates", CsraTests::mergeLogic);
        c.test("TiledSegmenter on 2x2 copies of patch1: exactly the per-tile results", CsraTests::tiledExact);
        c.test("TiledSegmenter on he_500.png: threads, regions, cancellation, reader errors", CsraTests::tiled);
        c.test("CsraTrainer: supervised and CSRA steps, checkpoint round trip; CsraSampler", CsraTests::training);
        c.test("close during use: waits for running segmentations, then refuses", CsraTests::closeDuringUse);
        c.test("Cleaner frees unreachable models", CsraTests::cleaner);
        c.finish();
    }

    static String prop(String name) {
        String v = System.getProperty(name);
        if (v == null) {
            throw new IllegalStateException("system property " + name + " is not set (run bindings/java/test.sh)");
        }
        return v;
    }

    // ----------------------------------------------------------------------------------------

    static void library() throws IOException {
        String v = CsraModel.nativeVersion();
        check(v.startsWith(Native.BINDING_MAJOR + "." + Native.BINDING_MINOR + "."), "version " + v);
        equal(Native.fmt(Native.version()), v, "csra_version() and csra_version_string()");
        System.out.println("native version " + v + ", loaded from " + NativeLibrary.loadedFrom() + " ("
                + NativeLibrary.platform() + ")");
        String expected = System.getProperty("csranet.test.expectedLib");
        if (expected != null) {
            // The process must map exactly this libcsranet.so (not a stale one on LD_LIBRARY_PATH).
            String real = Path.of(expected).toRealPath().toString();
            List<String> maps = Files.readAllLines(Path.of("/proc/self/maps"));
            List<String> libs = new ArrayList<>();
            for (String line : maps) {
                int i = line.indexOf('/');
                if (i >= 0 && line.matches(".*/libcsranet\\.so(\\.[0-9]+)*")) {
                    String p = line.substring(i);
                    if (!libs.contains(p)) {
                        libs.add(p);
                    }
                }
            }
            equal(List.of(real), libs, "libcsranet.so mapped in this process");
        }
    }

    static List<Instance> ref(String pass) {
        List<Instance> r = reference.get(pass);
        check(r != null, "no pass '" + pass + "' in the reference output");
        return r;
    }

    static int[] classCounts(List<Instance> list) {
        int[] c = new int[8];
        for (Instance i : list) {
            c[Math.min(i.classId(), 7)]++;
        }
        return c;
    }

    /** Same count, same classes, and every field of every instance bit for bit. */
    static void sameAs(List<Instance> expected, List<Instance> actual, String what) {
        equal(expected.size(), actual.size(), what + ": instance count");
        equal(Arrays.toString(classCounts(expected)), Arrays.toString(classCounts(actual)), what + ": per-class counts");
        for (int k = 0; k < expected.size(); k++) {
            equal(expected.get(k), actual.get(k), what + ": instance " + k);
        }
    }

    static void matchesC() {
        List<Instance> c = ref("tile");
        check(c.size() >= 10, "the C API found only " + c.size() + " nuclei on patch1");
        Segmentation s = model.segmentTile(patch1);
        equal(256, s.width(), "width");
        equal(256, s.height(), "height");
        equal(5, s.numClasses(), "classes");
        sameAs(c, s.instances(), "BufferedImage");
        System.out.println("patch1: C API " + c.size() + " instances, Java " + s.instances().size()
                + "; per class (0..4) C " + Arrays.toString(Arrays.copyOf(classCounts(c), 5)) + ", Java "
                + Arrays.toString(Arrays.copyOf(s.countsByClass(), 5)));

        int[] argb = patch1.getRGB(0, 0, 256, 256, null, 0, 256);
        sameAs(c, model.segmentTile(argb, 256, 256).instances(), "ARGB ints");
        Segmentation b = model.segmentTile(patch1Ppm.rgb, 256, 256, PixelFormat.RGB8, null);
        sameAs(c, b.instances(), "RGB bytes from the PPM");

        // Maps agree with the instances.
        int[] labels = s.labels();
        byte[] classes = s.classMap();
        equal(256 * 256, labels.length, "label map size");
        for (Instance i : s.instances()) {
            int n = 0;
            for (int y = i.boundsY0(); y < i.boundsY1(); y++) {
                for (int x = i.boundsX0(); x < i.boundsX1(); x++) {
                    if (labels[y * 256 + x] == i.id()) {
                        n++;
                    }
                }
            }
            equal(i.area(), n, "area of instance " + i.id() + " in the label map");
            int cx = (int) i.centroidX();
            int cy = (int) i.centroidY();
            check(cx >= i.boundsX0() && cx < i.boundsX1() && cy >= i.boundsY0() && cy < i.boundsY1(),
                    "centroid inside the box");
            check(i.numPoints() >= 3, "polygon of instance " + i.id());
            check(i.classId() >= 1 && i.classId() < 5, "class id " + i.classId());
            check(i.score() > 0 && i.score() <= 1, "score " + i.score());
        }
        check(classes[0] >= 0 || classes[0] < 0, "class map readable");
        check(s.hasProbabilities(), "probabilities kept by default");
        equal(5 * 256 * 256, s.probabilities().length, "probabilities length");
        Segmentation lean = model.segmentTile(patch1, new SegmentOptions().includeMaps(false));
        check(!lean.hasMaps() && !lean.hasProbabilities(), "includeMaps(false) copies no maps");
        fails(IllegalStateException.class, lean::labels);
        fails(CsraException.class, lean::probabilities);
        sameAs(c, lean.instances(), "includeMaps(false)");
    }

    static void matchesCTiled() {
        List<Instance> c = ref("image 128 32");
        List<int[]> calls = new ArrayList<>();
        Segmentation s = model.segmentImage(patch1,
                new SegmentOptions().tileSize(128).overlap(32).batchSize(2).keepProbabilities(false),
                (done, total) -> {
                    calls.add(new int[] {done, total});
                    return true;
                });
        sameAs(c, s.instances(), "segmentImage");
        check(!calls.isEmpty(), "the listener was never called");
        int total = calls.get(0)[1];
        check(total >= 4, "total tiles " + total);
        equal(total, calls.get(calls.size() - 1)[0], "last progress call reports every tile done");
        for (int k = 1; k < calls.size(); k++) {
            check(calls.get(k)[0] > calls.get(k - 1)[0], "progress increases");
        }
        System.out.println("tiled patch1: " + s.instances().size() + " instances (C " + c.size() + "), "
                + calls.size() + " progress calls over " + total + " tiles");
        // The simple overload.
        sameAs(c, model.segmentImage(patch1.getRGB(0, 0, 256, 256, null, 0, 256), 256, 256,
                new SegmentOptions().tileSize(128).overlap(32).batchSize(2), null).instances(), "ARGB segmentImage");
    }

    static BufferedImage convert(BufferedImage src, int type) {
        BufferedImage out = new BufferedImage(src.getWidth(), src.getHeight(), type);
        out.getGraphics().drawImage(src, 0, 0, null);
        return out;
    }

    static void layouts() {
        List<Instance> c = ref("tile");
        sameAs(c, model.segmentTile(convert(patch1, BufferedImage.TYPE_3BYTE_BGR)).instances(), "TYPE_3BYTE_BGR");
        sameAs(c, model.segmentTile(convert(patch1, BufferedImage.TYPE_INT_ARGB)).instances(), "TYPE_INT_ARGB");
        // A sub-image of a larger image (raster with an offset): the same pixels.
        BufferedImage big = new BufferedImage(300, 280, BufferedImage.TYPE_INT_RGB);
        big.getGraphics().drawImage(patch1, 20, 10, null);
        sameAs(c, model.segmentTile(big.getSubimage(20, 10, 256, 256)).instances(), "sub-image");
        // RGBA bytes with padded rows at an offset.
        int stride = 256 * 4 + 12;
        byte[] rgba = new byte[7 + stride * 256];
        for (int y = 0; y < 256; y++) {
            for (int x = 0; x < 256; x++) {
                int p = 3 * (y * 256 + x);
                int q = 7 + y * stride + 4 * x;
                rgba[q] = patch1Ppm.rgb[p];
                rgba[q + 1] = patch1Ppm.rgb[p + 1];
                rgba[q + 2] = patch1Ppm.rgb[p + 2];
                rgba[q + 3] = (byte) 0x80;
            }
        }
        sameAs(c, model.segmentTile(rgba, 7, 256, 256, stride, PixelFormat.RGBA8, null).instances(), "RGBA stride");
    }

    static void concurrent() throws Exception {
        List<Instance> c = ref("tile");
        int threads = 8;
        long t0 = System.nanoTime();
        for (int k = 0; k < 2; k++) {
            sameAs(c, model.segmentTile(patch1).instances(), "sequential");
        }
        double seq = (System.nanoTime() - t0) / 1e9 / 2;
        CyclicBarrier start = new CyclicBarrier(threads);
        AtomicReference<Throwable> error = new AtomicReference<>();
        AtomicInteger ok = new AtomicInteger();
        List<Thread> list = new ArrayList<>();
        long[] t1 = new long[1];
        for (int k = 0; k < threads; k++) {
            Thread t = new Thread(() -> {
                try {
                    start.await();
                    synchronized (t1) {
                        if (t1[0] == 0) {
                            t1[0] = System.nanoTime();
                        }
                    }
                    // Different entry points on different threads.
                    Segmentation s = Thread.currentThread().getName().endsWith("0")
                            ? model.segmentImage(patch1, new SegmentOptions().tileSize(512), null)
                            : model.segmentTile(patch1);
                    sameAs(c, s.instances(), Thread.currentThread().getName());
                    ok.incrementAndGet();
                } catch (Throwable e) {
                    error.compareAndSet(null, e);
                }
            }, "segmenter-" + k);
            t.start();
            list.add(t);
        }
        for (Thread t : list) {
            t.join();
        }
        double wall = (System.nanoTime() - t1[0]) / 1e9;
        if (error.get() != null) {
            throw new AssertionError("a segmenting thread failed", error.get());
        }
        equal(threads, ok.get(), "threads that finished with the C API's result");
        System.out.printf(Locale.ROOT,
                "%d threads x 1 segmentation of 256x256: %.2f s wall (%.2f s per tile sequentially, %d cores)%n",
                threads, wall, seq, Runtime.getRuntime().availableProcessors());
    }

    static void cancellation() {
        SegmentOptions small = new SegmentOptions().tileSize(64).overlap(16).batchSize(1);
        AtomicInteger calls = new AtomicInteger();
        CsraCancelledException e = fails(CsraCancelledException.class,
                () -> model.segmentImage(patch1, small, (d, t) -> calls.incrementAndGet() < 2));
        equal(Status.CANCELLED, e.status(), "status");
        equal(2, calls.get(), "listener calls before the cancellation took effect");

        IllegalArgumentException mine = new IllegalArgumentException("mine");
        RuntimeException r = fails(RuntimeException.class, () -> model.segmentImage(patch1, small, (d, t) -> {
            throw mine;
        }));
        check(r == mine, "the listener's own exception is rethrown, got " + r);

        Thread.currentThread().interrupt();
        try {
            CsraCancelledException i = fails(CsraCancelledException.class,
                    () -> model.segmentImage(patch1, small, null));
            check(i.getMessage().contains("interrupted"), i.getMessage());
            check(Thread.currentThread().isInterrupted(), "the interrupt flag is kept");
        } finally {
            Thread.interrupted();
        }
        // Still usable.
        sameAs(ref("tile"), model.segmentTile(patch1).instances(), "after cancellations");
    }

    static void reentrant() {
        SegmentOptions small = new SegmentOptions().tileSize(128).overlap(32);
        IllegalStateException e = fails(IllegalStateException.class, () -> model.segmentImage(patch1, small, (d, t) -> {
            model.close();
            return true;
        }));
        check(e.getMessage().contains("close()"), e.getMessage());
        check(!model.isClosed(), "the model is still open");
        fails(IllegalStateException.class, () -> model.segmentImage(patch1, small, (d, t) -> {
            model.loadWeights(new byte[0]);
            return true;
        }));
        sameAs(ref("tile"), model.segmentTile(patch1).instances(), "after re-entrant attempts");
    }

    static void badInputs() throws IOException {
        int[] argb = patch1.getRGB(0, 0, 256, 256, null, 0, 256);
        // Java-side argument errors.
        fails(NullPointerException.class, () -> model.segmentTile((BufferedImage) null));
        fails(NullPointerException.class, () -> model.segmentTile((int[]) null, 256, 256));
        fails(NullPointerException.class, () -> model.segmentTile((byte[]) null, 256, 256, PixelFormat.RGB8, null));
        fails(NullPointerException.class, () -> model.segmentTile(patch1Ppm.rgb, 256, 256, null, null));
        fails(NullPointerException.class, () -> CsraModel.load(null));
        fails(NullPointerException.class, () -> CsraModel.fromBytes(null));
        fails(NullPointerException.class, () -> CsraModel.create(null));
        fails(NullPointerException.class, () -> model.loadWeights((Path) null));
        fails(IllegalArgumentException.class, () -> model.segmentTile(argb, 256, 255));
        fails(IllegalArgumentException.class, () -> model.segmentTile(argb, -256, -256));
        fails(IllegalArgumentException.class, () -> model.segmentTile(argb, 256, -256));
        fails(IllegalArgumentException.class, () -> model.segmentTile(new int[0], 100000, 100000));
        fails(IllegalArgumentException.class, () -> model.segmentTile(new int[0], 65536, 65536));
        fails(IllegalArgumentException.class,
                () -> model.segmentTile(patch1Ppm.rgb, 256, 256, PixelFormat.RGBA8, null));
        fails(IllegalArgumentException.class,
                () -> model.segmentTile(patch1Ppm.rgb, -1, 256, 256, 768, PixelFormat.RGB8, null));
        fails(IllegalArgumentException.class,
                () -> model.segmentTile(patch1Ppm.rgb, 0, 256, 256, 700, PixelFormat.RGB8, null));
        fails(IllegalArgumentException.class,
                () -> model.segmentTile(patch1Ppm.rgb, 10, 256, 256, 768, PixelFormat.RGB8, null));
        fails(IllegalArgumentException.class, () -> new SegmentOptions().tileSize(-1));
        fails(IllegalArgumentException.class, () -> new SegmentOptions().minArea(-5));
        fails(IllegalArgumentException.class, () -> ModelConfig.lite().depth(-18));

        // Native errors carry the native message.
        CsraException small = fails(CsraException.class, () -> model.segmentTile(new int[16 * 16], 16, 16));
        equal(Status.INVALID_ARGUMENT, small.status(), "16x16 image");
        check(!small.nativeMessage().isEmpty(), "a native message");
        System.out.println("16x16 image: " + small.getMessage());
        CsraException zero = fails(CsraException.class, () -> model.segmentTile(new int[0], 0, 0));
        equal(Status.INVALID_ARGUMENT, zero.status(), "0x0 image");
        CsraException huge = fails(CsraException.class, () -> model.segmentTile(new int[4096 * 32], 4096, 32));
        equal(Status.INVALID_ARGUMENT, huge.status(), "4096x32 in one pass");
        System.out.println("4096x32 tile: " + huge.getMessage());
        CsraException tile0 = fails(CsraException.class,
                () -> model.segmentImage(patch1, new SegmentOptions().tileSize(0), null));
        equal(Status.INVALID_ARGUMENT, tile0.status(), "tileSize 0");
        CsraException nan = fails(CsraException.class,
                () -> model.segmentTile(patch1, new SegmentOptions().std(0, 0, 0)));
        System.out.println("std 0: " + nan.getMessage());
        fails(CsraException.class, () -> model.segmentTile(patch1, new SegmentOptions().h(Float.NaN)));

        Path missing = scratch.resolve("no-such-weights.safetensors");
        CsraException io = fails(CsraException.class, () -> CsraModel.load(missing));
        equal(Status.IO_ERROR, io.status(), "missing weights file");
        check(io.nativeMessage().contains("no-such-weights.safetensors"), "message names the file: " + io.nativeMessage());
        System.out.println("missing weights: " + io.getMessage());
        CsraException bad = fails(CsraException.class, () -> CsraModel.fromBytes(new byte[] {1, 2, 3}));
        equal(Status.BAD_WEIGHTS, bad.status(), "garbage weights");
        Path text = scratch.resolve("not-weights.safetensors");
        Files.writeString(text, "hello");
        equal(Status.BAD_WEIGHTS, fails(CsraException.class, () -> CsraModel.load(text)).status(), "text file");
        equal(Status.IO_ERROR, fails(CsraException.class, () -> CsraModel.load(scratch)).status(), "a directory");
        CsraException preset = fails(CsraException.class, () -> ModelConfig.preset("nope"));
        equal(Status.INVALID_ARGUMENT, preset.status(), "unknown preset");
        CsraException depth = fails(CsraException.class, () -> CsraModel.create(ModelConfig.lite().depth(7)));
        equal(Status.INVALID_ARGUMENT, depth.status(), "depth 7");
        System.out.println("depth 7: " + depth.getMessage());
        CsraException cuda = fails(CsraException.class, () -> CsraModel.create(ModelConfig.lite().device(1)));
        System.out.println("CUDA device: " + cuda.getMessage());
        fails(CsraException.class, () -> CsraModel.create(ModelConfig.lite().device(7)));
        fails(IllegalArgumentException.class, () -> ModelConfig.preset("li\0te"));
        equal(Status.NOT_AVAILABLE, new CsraException(Status.NOT_AVAILABLE, "x").status(), "constructor");
        equal(Status.UNKNOWN, ((CsraException) CsraException.fromNative(42, new byte[0])).status(), "unknown code");
    }

    static void weights() throws IOException {
        try (CsraModel random = CsraModel.create(ModelConfig.lite().seed(42))) {
            Path file = scratch.resolve("lite-seed42.safetensors");
            random.save(file);
            Segmentation a = random.segmentTile(patch1);
            try (CsraModel fromFile = CsraModel.load(file);
                    CsraModel fromBytes = CsraModel.fromBytes(Files.readAllBytes(file))) {
                sameAs(a.instances(), fromFile.segmentTile(patch1).instances(), "loaded from the file");
                sameAs(a.instances(), fromBytes.segmentTile(patch1).instances(), "loaded from bytes");
                equal(random.config().toString(), fromFile.config().toString(), "config");
                ModelConfig cfg = fromFile.config();
                equal(18, cfg.depth(), "lite depth");
                equal(5, cfg.numClasses(), "lite classes");
            }
            // The default model's weights loaded into it: it now gives the default's result.
            Path def = scratch.resolve("default.safetensors");
            model.save(def);
            random.loadWeights(def);
            sameAs(ref("tile"), random.segmentTile(patch1).instances(), "random model + default weights");
            // A failed load changes nothing.
            CsraException e = fails(CsraException.class, () -> random.loadWeights(new byte[] {0, 1, 2}));
            equal(Status.BAD_WEIGHTS, e.status(), "bad buffer");
            fails(CsraException.class, () -> random.loadWeights(scratch.resolve("missing.safetensors")));
            sameAs(ref("tile"), random.segmentTile(patch1).instances(), "after failed loads");
            random.loadWeights(Files.readAllBytes(file));
            sameAs(a.instances(), random.segmentTile(patch1).instances(), "weights back from bytes");
        }
    }

    /** {@code bytes} with the first occurrence of {@code from} replaced by {@code to} (same length). */
    static byte[] replaced(byte[] bytes, byte[] from, byte[] to) {
        check(from.length == to.length, "same length");
        byte[] out = bytes.clone();
        for (int i = 0; i + from.length <= out.length; i++) {
            if (Arrays.equals(out, i, i + from.length, from, 0, from.length)) {
                System.arraycopy(to, 0, out, i, to.length);
                return out;
            }
        }
        throw new AssertionError("not found: " + new String(from, java.nio.charset.StandardCharsets.UTF_8));
    }

    static void classes() throws IOException {
        // The bundled model: CoNSeP's classes; "other" in QuPath's colour of its class "Other".
        equal(5, model.numClasses(), "classes");
        List<String> names = new ArrayList<>();
        List<String> colours = new ArrayList<>();
        for (int k = 0; k < model.numClasses(); k++) {
            names.add(model.className(k));
            colours.add(Arrays.toString(model.classColour(k)));
        }
        equal(List.of("background", "other", "inflammatory", "epithelial", "spindle-shaped"), names, "names");
        equal(List.of("[0, 0, 0]", "[255, 200, 0]", "[0, 210, 0]", "[255, 140, 0]", "[0, 200, 255]"), colours,
                "colours");
        fails(IndexOutOfBoundsException.class, () -> model.className(5));
        fails(IndexOutOfBoundsException.class, () -> model.className(-1));
        fails(IndexOutOfBoundsException.class, () -> model.classColour(5));
        fails(IndexOutOfBoundsException.class, () -> model.classColour(Integer.MIN_VALUE));

        // Names travel with the weights: "inflammatory" renamed in the saved file's metadata
        // to a non-ASCII name of the same UTF-8 length.
        Path file = scratch.resolve("classes.safetensors");
        model.save(file);
        var utf8 = java.nio.charset.StandardCharsets.UTF_8;
        byte[] renamed = replaced(Files.readAllBytes(file), "inflammatory".getBytes(utf8), "lymphocytés".getBytes(utf8));
        try (CsraModel m = CsraModel.fromBytes(renamed);
                CsraModel six = CsraModel.create(ModelConfig.lite().numClasses(6))) {
            equal("lymphocytés", m.className(2), "a stored non-ASCII name");
            equal("[0, 210, 0]", Arrays.toString(m.classColour(2)), "the stored colour");
            equal("neoplastic", six.className(1), "PanNuke's names for 6 classes");
            equal(6, six.numClasses(), "six classes");
            m.loadWeights(file);
            equal("inflammatory", m.className(2), "names follow the weights loaded");
            m.loadWeights(renamed);
            equal("lymphocytés", m.className(2), "names follow the weights loaded");
            fails(CsraException.class, () -> m.loadWeights(new byte[] {1, 2, 3}));
            equal("lymphocytés", m.className(2), "a failed load keeps the names");
        }
    }

    static TiledSegmenter.Candidate square(int x, int y, int s, double centrality, int tile) {
        boolean[] mask = new boolean[s * s];
        Arrays.fill(mask, true);
        float[] poly = {x, y, x + s, y, x + s, y + s, x, y + s};
        Instance i = new Instance(1, 1, 0.9f, s * s, x + s / 2f, y + s / 2f, x, y, x + s, y + s, poly);
        return new TiledSegmenter.Candidate(i, mask, centrality, tile);
    }

    static void mergeLogic() {
        var a = square(10, 10, 8, 30, 0);
        var aDup = square(11, 10, 8, 50, 1); // the same nucleus seen more centrally by tile 1
        var b = square(40, 10, 8, 20, 0);
        var touching = square(17, 10, 8, 10, 0); // shares 1 column of 8 with a: 12.5% < 50%
        var far = square(500, 500, 8, 5, 3);
        List<TiledSegmenter.Candidate> kept = TiledSegmenter.merge(List.of(a, aDup, b, touching, far), 0.5);
        check(kept.contains(aDup) && !kept.contains(a), "the more central duplicate wins");
        check(kept.contains(b) && kept.contains(far), "disjoint candidates stay");
        check(!kept.contains(touching) || kept.size() == 4, "consistent result");
        equal(56, TiledSegmenter.shared(a, aDup), "shared pixels of two squares offset by 1");
        // `touching` overlaps aDup (kept) by 2 columns = 16 of 64 pixels: kept.
        check(kept.contains(touching), "a small overlap is not a duplicate");
        equal(4, kept.size(), "kept");
        // Order independence.
        List<TiledSegmenter.Candidate> shuffled = new ArrayList<>(List.of(far, touching, b, aDup, a));
        Collections.reverse(shuffled);
        equal(kept.size(), TiledSegmenter.merge(shuffled, 0.5).size(), "same result in another order");
    }

    static void tiled() throws IOException {
        BufferedImage he = ImageIO.read(fixtures.resolve("he_500.png").toFile());
        int w = he.getWidth();
        int h = he.getHeight();
        long t0 = System.nanoTime();
        List<Instance> whole = model.segmentTile(he, new SegmentOptions().includeMaps(false)).instances();
        double tWhole = (System.nanoTime() - t0) / 1e9;
        TiledSegmenter.TileReader reader = (x, y, tw, th) -> he.getSubimage(x, y, tw, th);
        AtomicInteger reads = new AtomicInteger();
        TiledSegmenter.TileReader counting = (x, y, tw, th) -> {
            reads.incrementAndGet();
            return reader.read(x, y, tw, th);
        };
        TiledSegmenter ts = TiledSegmenter.builder(model).tileSize(256).padding(48).threads(2).build();
        List<int[]> progress = Collections.synchronizedList(new ArrayList<>());
        long t1 = System.nanoTime();
        TiledSegmenter.Result r = ts.segment(counting, w, h, 0, 0, w, h, (d, t) -> {
            progress.add(new int[] {d, t});
            return true;
        });
        double tTiled = (System.nanoTime() - t1) / 1e9;
        List<Instance> tiled = r.instances();
        equal(r.tiles(), reads.get(), "tiles read");
        equal(r.tiles(), progress.size(), "progress calls");
        equal(r.tiles(), progress.get(progress.size() - 1)[0], "last progress");
        int matchedWhole = matched(whole, tiled, 4);
        int matchedTiled = matched(tiled, whole, 4);
        List<Instance> nativeTiled = model.segmentImage(he, new SegmentOptions().tileSize(256).overlap(96)
                .includeMaps(false).keepProbabilities(false), null).instances();
        System.out.printf(Locale.ROOT,
                "he_500: one pass %d nuclei (%.2f s); TiledSegmenter 256/48 x2 threads: %s (%.2f s); "
                        + "%d of the one-pass nuclei have a tiled one within 4 px (csra_segment_image 256/96: %d of %d)%n",
                whole.size(), tWhole, r, tTiled, matchedWhole, matched(whole, nativeTiled, 4), nativeTiled.size());
        // The network sees different context in a tile than in the whole image (its ASPP has an
        // image-level pooling branch), so tiled and one-pass results differ even in the C
        // library's own tiling; exactness is checked on periodic images in tiledExact().
        check(whole.size() >= 20, "one pass found " + whole.size());
        check(tiled.size() >= 0.7 * whole.size() && tiled.size() <= 1.3 * whole.size(), "tiled count " + tiled.size());
        check(matchedTiled > 0, "no tiled nucleus is near a one-pass one");
        check(r.duplicates() > 0 && r.droppedAtEdges() > 0, "overlap handling was exercised: " + r);
        // No two output nuclei are the same one (centroids within 2 px).
        for (int a = 0; a < tiled.size(); a++) {
            for (int b = a + 1; b < tiled.size(); b++) {
                check(dist(tiled.get(a), tiled.get(b)) > 2, "duplicate nuclei " + tiled.get(a) + " / " + tiled.get(b));
            }
            equal(a + 1, tiled.get(a).id(), "ids renumbered");
        }
        // One thread gives the same result.
        TiledSegmenter one = TiledSegmenter.builder(model).tileSize(256).padding(48).threads(1).build();
        equal(tiled, one.segment(reader, w, h, 0, 0, w, h, null).instances(), "1 thread vs 2");

        // A sub-region: only nuclei with centroids inside it, in image coordinates.
        TiledSegmenter.Result sub = ts.segment(reader, w, h, 100, 120, 200, 150, null);
        for (Instance i : sub.instances()) {
            check(i.centroidX() >= 100 && i.centroidX() < 300 && i.centroidY() >= 120 && i.centroidY() < 270,
                    "centroid outside the region: " + i);
        }
        check(!sub.instances().isEmpty(), "nuclei in the sub-region");
        // Clipping and tiny images.
        equal(0, ts.segment(reader, w, h, 600, 600, 10, 10, null).instances().size(), "region outside the image");
        BufferedImage tiny = he.getSubimage(0, 0, 20, 20);
        ts.segment((x, y, tw, th) -> tiny.getSubimage(x, y, tw, th), 20, 20, 0, 0, 20, 20, null);

        // Cancellation and errors.
        CsraCancelledException c = fails(CsraCancelledException.class,
                () -> ts.segment(reader, w, h, 0, 0, w, h, (d, t) -> false));
        check(c.getMessage().contains("ProgressListener"), c.getMessage());
        Thread.currentThread().interrupt();
        try {
            fails(CsraCancelledException.class, () -> ts.segment(reader, w, h, 0, 0, w, h, null));
            check(Thread.currentThread().isInterrupted(), "interrupt flag kept");
        } finally {
            Thread.interrupted();
        }
        IOException io = fails(IOException.class, () -> ts.segment((x, y, tw, th) -> {
            throw new IOException("cannot read tile");
        }, w, h, 0, 0, w, h, null));
        equal("cannot read tile", io.getMessage(), "reader's exception");
        fails(IOException.class, () -> ts.segment((x, y, tw, th) -> null, w, h, 0, 0, w, h, null));
        fails(IllegalArgumentException.class, () -> TiledSegmenter.builder(model).tileSize(100).padding(45).build());
        fails(IllegalArgumentException.class, () -> TiledSegmenter.builder(model).threads(0).build());
        fails(IllegalArgumentException.class, () -> TiledSegmenter.builder(model).tileSize(4096).build());
        fails(NullPointerException.class, () -> ts.segment(null, w, h, 0, 0, w, h, null));
        fails(IllegalArgumentException.class, () -> ts.segment(reader, 0, h, 0, 0, w, h, null));
        fails(IllegalArgumentException.class, () -> ts.segment(reader, w, h, 0, 0, -1, h, null));
    }

    /**
     * An image of 2x2 copies of patch1 read in 256-pixel tiles without padding: every tile sees
     * exactly patch1, so the result must be patch1's instances moved to each quadrant, minus those
     * touching an inner tile edge. One tile covering all of patch1 gives patch1's result.
     */
    static void tiledExact() throws IOException {
        List<Instance> p = ref("tile");
        BufferedImage quad = new BufferedImage(512, 512, BufferedImage.TYPE_INT_RGB);
        for (int q = 0; q < 4; q++) {
            quad.getGraphics().drawImage(patch1, 256 * (q % 2), 256 * (q / 2), null);
        }
        TiledSegmenter ts = TiledSegmenter.builder(model).tileSize(256).padding(0).threads(3).build();
        TiledSegmenter.Result r = ts.segment((x, y, w, h) -> quad.getSubimage(x, y, w, h), 512, 512, 0, 0, 512, 512,
                null);
        List<Instance> expected = new ArrayList<>();
        for (int q = 0; q < 4; q++) {
            int qx = q % 2;
            int qy = q / 2;
            for (Instance i : p) {
                boolean cut = (qx == 0 && i.boundsX1() >= 256) || (qx == 1 && i.boundsX0() <= 0)
                        || (qy == 0 && i.boundsY1() >= 256) || (qy == 1 && i.boundsY0() <= 0);
                if (!cut) {
                    expected.add(i.translate(256 * qx, 256 * qy, 0));
                }
            }
        }
        expected.sort(java.util.Comparator.comparingDouble(Instance::centroidY)
                .thenComparingDouble(Instance::centroidX));
        List<Instance> renumbered = new ArrayList<>();
        for (int k = 0; k < expected.size(); k++) {
            renumbered.add(expected.get(k).translate(0, 0, k + 1));
        }
        equal(4, r.tiles(), "tiles");
        equal(4 * p.size() - renumbered.size(), r.droppedAtEdges(), "dropped at inner edges");
        equal(0, r.duplicates(), "duplicates");
        sameAs(renumbered, r.instances(), "2x2 patch1");
        System.out.println("2x2 patch1: " + r);

        // One window holding all of patch1: its one-pass result, sorted and renumbered.
        TiledSegmenter big = TiledSegmenter.builder(model).tileSize(512).padding(64).build();
        TiledSegmenter.Result one = big.segment((x, y, w, h) -> patch1.getSubimage(x, y, w, h), 256, 256, 0, 0, 256,
                256, null);
        List<Instance> sorted = new ArrayList<>(p);
        sorted.sort(java.util.Comparator.comparingDouble(Instance::centroidY).thenComparingDouble(Instance::centroidX));
        List<Instance> ids = new ArrayList<>();
        for (int k = 0; k < sorted.size(); k++) {
            ids.add(sorted.get(k).translate(0, 0, k + 1));
        }
        sameAs(ids, one.instances(), "patch1 in one window");
    }

    static double dist(Instance a, Instance b) {
        return Math.hypot(a.centroidX() - b.centroidX(), a.centroidY() - b.centroidY());
    }

    /** How many of {@code a} have a nucleus of {@code b} within {@code tol} pixels. */
    static int matched(List<Instance> a, List<Instance> b, double tol) {
        int n = 0;
        for (Instance i : a) {
            for (Instance j : b) {
                if (dist(i, j) <= tol) {
                    n++;
                    break;
                }
            }
        }
        return n;
    }

    static byte[] labelsOf(String file, int x0, int y0, int s, int numClasses) throws IOException {
        BufferedImage t = ImageIO.read(fixtures.resolve(file).toFile());
        byte[] out = new byte[s * s];
        for (int y = 0; y < s; y++) {
            for (int x = 0; x < s; x++) {
                int v = t.getRaster().getSample(x0 + x, y0 + y, 0);
                out[y * s + x] = (byte) (v < numClasses ? v : 255);
            }
        }
        return out;
    }

    static void training() throws IOException {
        int s = 64;
        BufferedImage p2 = ImageIO.read(fixtures.resolve("patch2.png").toFile());
        List<TrainTile> labelled = List.of(
                TrainTile.of(patch1.getSubimage(32, 32, s, s), labelsOf("patch1_type.png", 32, 32, s, 5)),
                TrainTile.of(p2.getSubimage(96, 64, s, s), labelsOf("patch2_type.png", 96, 64, s, 5)));
        List<TrainTile> unlabelled = List.of(TrainTile.of(patch1.getSubimage(128, 128, s, s), null),
                TrainTile.of(p2.getSubimage(0, 128, s, s), null));
        ModelConfig cfg = ModelConfig.lite().seed(7);
        try (CsraModel m = CsraModel.create(cfg);
                CsraTrainer sup = CsraTrainer.create(m,
                        new TrainConfig().method(TrainConfig.Method.SUPERVISED).cropSize(s).totalSteps(10).seed(3))) {
            long t0 = System.nanoTime();
            StepReport r1 = sup.step(labelled, null);
            StepReport r2 = sup.step(labelled, List.of());
            System.out.printf(Locale.ROOT, "supervised: %s; %s (%.2f s per step)%n", r1, r2,
                    (System.nanoTime() - t0) / 2e9);
            equal(0L, r1.step(), "first step (0-based)");
            equal(1L, r2.step(), "second step");
            check(Double.isFinite(r1.loss()) && r1.loss() > 0, "loss " + r1.loss());
            check(r1.lr() > 0, "lr");
            // Training changed the weights: the model's output is the trained one.
            Path ckpt = scratch.resolve("trainer.ckpt");
            try (CsraSampler sampler = CsraSampler.create(new int[] {0, 1},
                    new boolean[][] {{true, false, true, false}, {false, true, true, true}}, 1.0f, 2, 10, 11)) {
                sampler.setEpoch(1);
                for (int k = 0; k < 20; k++) {
                    int i = sampler.next();
                    check(i == 0 || i == 1, "sampler index " + i);
                }
                sup.saveCheckpoint(ckpt, sampler);
                Segmentation after2 = m.segmentTile(patch1, new SegmentOptions().includeMaps(false));
                sup.step(labelled, null);
                sup.loadCheckpoint(ckpt, sampler);
                sameAs(after2.instances(), m.segmentTile(patch1, new SegmentOptions().includeMaps(false)).instances(),
                        "model restored from the checkpoint");
                StepReport r3 = sup.step(labelled, null);
                equal(2L, r3.step(), "step after restoring a 2-step checkpoint");
                sampler.close();
                fails(IllegalStateException.class, sampler::next);
                fails(IllegalStateException.class, () -> sup.saveCheckpoint(ckpt, sampler));
            }
            // Bad batches.
            fails(IllegalArgumentException.class, () -> sup.step(unlabelled, null));
            fails(IllegalArgumentException.class, () -> TrainTile.of(new byte[10], 4, 4, null));
            fails(IllegalArgumentException.class, () -> TrainTile.of(new byte[48], 4, 4, new byte[15]));
            fails(NullPointerException.class, () -> sup.step(null, null));
            CsraException tiny = fails(CsraException.class,
                    () -> sup.step(List.of(TrainTile.of(new byte[8 * 8 * 3], 8, 8, new byte[64])), null));
            System.out.println("8x8 training tile: " + tiny.getMessage());
            fails(CsraException.class, () -> sup.loadCheckpoint(scratch.resolve("missing.ckpt"), null));
            fails(IllegalArgumentException.class, () -> CsraSampler.create(null, new boolean[][] {{true}, {true, false}},
                    1f, 1, 1, 1));

            // Semi-supervised CSRA step (labelled + 2 unlabelled tiles) on a fresh trainer.
            try (CsraTrainer csra = CsraTrainer.create(m,
                    new TrainConfig().method(TrainConfig.Method.CSRA).cropSize(s).totalSteps(10))) {
                long t1 = System.nanoTime();
                StepReport r = csra.step(labelled, unlabelled);
                System.out.printf(Locale.ROOT, "CSRA: %s (%.2f s)%n", r, (System.nanoTime() - t1) / 1e9);
                check(Double.isFinite(r.loss()), "CSRA loss");
                CsraException noU = fails(CsraException.class, () -> csra.step(labelled, null));
                System.out.println("CSRA without unlabelled tiles: " + noU.getMessage());
            }
            sup.close();
            fails(IllegalStateException.class, () -> sup.step(labelled, null));
            sup.close();
        }
        fails(CsraException.class, () -> CsraTrainer.create(model, new TrainConfig().cropSize(0)));
    }

    static void closeDuringUse() throws Exception {
        CsraModel m = CsraModel.createDefault();
        int threads = 4;
        CountDownLatch started = new CountDownLatch(threads);
        AtomicInteger done = new AtomicInteger();
        AtomicInteger refused = new AtomicInteger();
        AtomicReference<Throwable> unexpected = new AtomicReference<>();
        List<Thread> list = new ArrayList<>();
        for (int k = 0; k < threads; k++) {
            Thread t = new Thread(() -> {
                boolean first = true;
                while (true) {
                    try {
                        if (first) {
                            started.countDown();
                            first = false;
                        }
                        Segmentation s = m.segmentTile(patch1, new SegmentOptions().includeMaps(false));
                        check(s.instances().size() == ref("tile").size(), "complete result while closing");
                        done.incrementAndGet();
                    } catch (IllegalStateException e) {
                        refused.incrementAndGet();
                        return;
                    } catch (Throwable e) {
                        unexpected.compareAndSet(null, e);
                        return;
                    }
                }
            }, "closer-victim-" + k);
            t.start();
            list.add(t);
        }
        started.await();
        Thread.sleep(300); // let them get into native code
        long t0 = System.nanoTime();
        m.close();
        double waited = (System.nanoTime() - t0) / 1e9;
        check(m.isClosed(), "closed");
        for (Thread t : list) {
            t.join(120_000);
            check(!t.isAlive(), "thread " + t.getName() + " did not stop");
        }
        if (unexpected.get() != null) {
            throw new AssertionError("unexpected failure while closing", unexpected.get());
        }
        equal(threads, refused.get(), "threads refused after close");
        System.out.printf(Locale.ROOT, "close() waited %.2f s for running segmentations; %d finished, %d refused%n",
                waited, done.get(), refused.get());
        m.close(); // idempotent
        fails(IllegalStateException.class, () -> m.segmentTile(patch1));
        fails(IllegalStateException.class, m::config);
        fails(IllegalStateException.class, () -> m.save(scratch.resolve("closed.safetensors")));
        fails(IllegalStateException.class, () -> m.loadWeights(new byte[0]));
        fails(IllegalStateException.class, () -> TiledSegmenter.builder(m).build()
                .segment((x, y, w, h) -> patch1, 256, 256, 0, 0, 256, 256, null));
        fails(IllegalStateException.class, () -> CsraTrainer.create(m, new TrainConfig()));
        check(m.toString().contains("closed"), m.toString());
    }

    static void cleaner() throws Exception {
        // Models dropped without close() are freed by the Cleaner: many of them do not pile up.
        java.lang.ref.ReferenceQueue<Object> q = new java.lang.ref.ReferenceQueue<>();
        List<java.lang.ref.PhantomReference<Object>> refs = new ArrayList<>();
        for (int k = 0; k < 5; k++) {
            CsraModel m = CsraModel.create(ModelConfig.lite().seed(k));
            refs.add(new java.lang.ref.PhantomReference<>(m, q));
        }
        int collected = 0;
        for (int k = 0; k < 50 && collected < refs.size(); k++) {
            System.gc();
            while (q.poll() != null) {
                collected++;
            }
            Thread.sleep(20);
        }
        check(collected == refs.size(), "only " + collected + " of " + refs.size() + " models became unreachable");
        System.out.println(collected + " unreachable models cleaned");
    }
}
