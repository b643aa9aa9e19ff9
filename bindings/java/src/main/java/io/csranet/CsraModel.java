package io.csranet;

import java.awt.image.BufferedImage;
import java.lang.ref.Cleaner;
import java.lang.ref.Reference;
import java.nio.file.Path;
import java.util.Objects;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * A CSRA-Net nucleus segmentation model (a native {@code CsraModel}).
 *
 * <p>Thread safety: segmentations, {@link #save(Path)}, {@link #config()} and the class queries
 * ({@link #className}, {@link #classColour}) run concurrently
 * from any number of threads (under a read lock); {@link #loadWeights}, {@link #close()} and
 * training steps of a {@link CsraTrainer} on this model take it exclusively (write lock) and wait
 * for running segmentations. After {@link #close()} every method throws
 * {@link IllegalStateException}; a model that is never closed is freed by a {@link Cleaner} once
 * unreachable.
 *
 * <pre>{@code
 * try (CsraModel model = CsraModel.createDefault()) {
 *     Segmentation seg = model.segmentTile(ImageIO.read(new File("tile.png")));
 *     for (Instance nucleus : seg.instances()) { ... }
 * }
 * }</pre>
 */
public final class CsraModel implements AutoCloseable {
    static final Cleaner CLEANER = Cleaner.create();

    /** The native handle; what the Cleaner frees. Holds no reference to the model. */
    static final class Handle implements Runnable {
        private volatile long ptr;
        private final int kind; // 0 model, 1 trainer, 2 sampler

        Handle(long ptr, int kind) {
            this.ptr = ptr;
            this.kind = kind;
        }

        long get() {
            return ptr;
        }

        @Override
        public synchronized void run() {
            long p = ptr;
            ptr = 0;
            if (p != 0) {
                switch (kind) {
                    case 0:
                        Native.modelFree(p);
                        break;
                    case 1:
                        Native.trainerFree(p);
                        break;
                    default:
                        Native.samplerFree(p);
                }
            }
        }
    }

    final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
    private final Handle handle;
    private final Cleaner.Cleanable cleanable;

    private CsraModel(long ptr) {
        handle = new Handle(ptr, 0);
        cleanable = CLEANER.register(this, handle);
    }

    /** A model from a safetensors file written by csranet (its configuration is in the file). */
    public static CsraModel load(Path weights) {
        byte[] p = Strings.path(weights);
        return new CsraModel(Native.modelFromFile(p));
    }

    /** A model from the bytes of a safetensors file written by csranet (copied). */
    public static CsraModel fromBytes(byte[] safetensors) {
        Objects.requireNonNull(safetensors, "safetensors");
        return new CsraModel(Native.modelFromBytes(safetensors));
    }

    /**
     * The bundled default model (lite, trained on CoNSeP: classes 1 other, 2 inflammatory,
     * 3 epithelial, 4 spindle-shaped, see {@link #className}). Throws {@link CsraException} with
     * {@link Status#NOT_AVAILABLE} when the native library was built without it.
     */
    public static CsraModel createDefault() {
        return new CsraModel(Native.modelCreateDefault());
    }

    /** A randomly initialised model (e.g. to train it with {@link CsraTrainer}). */
    public static CsraModel create(ModelConfig config) {
        Objects.requireNonNull(config, "config");
        return new CsraModel(Native.modelCreate(config.toNative()));
    }

    /** The native library's version, e.g. "0.1.0". */
    public static String nativeVersion() {
        return new String(Native.versionString(), java.nio.charset.StandardCharsets.UTF_8);
    }

    // ------------------------------------------------------------------------------------
    // Locking

    /** Runs under the read lock with the live handle. */
    private <T> T shared(java.util.function.LongFunction<T> body) {
        lock.readLock().lock();
        try {
            long p = handle.get();
            if (p == 0) {
                throw new IllegalStateException("CsraModel is closed");
            }
            return body.apply(p);
        } finally {
            lock.readLock().unlock();
            Reference.reachabilityFence(this);
        }
    }

    /** Takes the write lock; refuses (instead of deadlocking) inside this model's segmentation. */
    void lockExclusive(String what) {
        if (lock.getReadHoldCount() > 0) {
            throw new IllegalStateException(what + " called on a thread that is segmenting with this model "
                    + "(e.g. from a ProgressListener); it would wait for itself");
        }
        lock.writeLock().lock();
    }

    long handleForTrainer() {
        long p = handle.get();
        if (p == 0) {
            throw new IllegalStateException("CsraModel is closed");
        }
        return p;
    }

    private void exclusive(String what, java.util.function.LongConsumer body) {
        lockExclusive(what);
        try {
            long p = handle.get();
            if (p == 0) {
                throw new IllegalStateException("CsraModel is closed");
            }
            body.accept(p);
        } finally {
            lock.writeLock().unlock();
            Reference.reachabilityFence(this);
        }
    }

    /** True after {@link #close()}. */
    public boolean isClosed() {
        return handle.get() == 0;
    }

    /**
     * Frees the native model. Waits for running segmentations; idempotent. Trainers created from
     * this model keep working (they hold the native network).
     */
    @Override
    public void close() {
        if (handle.get() == 0) {
            return;
        }
        lockExclusive("close()");
        try {
            cleanable.clean();
        } finally {
            lock.writeLock().unlock();
        }
    }

    // ------------------------------------------------------------------------------------
    // Weights and configuration

    /** Replaces the weights from a safetensors file; on error the model keeps its weights. */
    public void loadWeights(Path weights) {
        byte[] p = Strings.path(weights);
        exclusive("loadWeights", h -> Native.modelLoadFile(h, p));
    }

    /** Replaces the weights from safetensors bytes; on error the model keeps its weights. */
    public void loadWeights(byte[] safetensors) {
        Objects.requireNonNull(safetensors, "safetensors");
        exclusive("loadWeights", h -> Native.modelLoadBytes(h, safetensors));
    }

    /** Writes the weights (f32, with the configuration) atomically. */
    public void save(Path path) {
        byte[] p = Strings.path(path);
        shared(h -> {
            Native.modelSave(h, p);
            return null;
        });
    }

    /** The network configuration. */
    public ModelConfig config() {
        return shared(h -> ModelConfig.fromNative(Native.modelConfig(h)));
    }

    /** Number of classes, background (class 0) included. */
    public int numClasses() {
        return shared(Native::modelNumClasses);
    }

    /**
     * Name of class {@code index} (0 = background): the name stored with the weights, or the
     * default for the class count (CoNSeP's for 5 classes, PanNuke's for 6, "class N"
     * otherwise). Names are as stored (e.g. "other"); QuPath writes them with a capital first
     * letter.
     *
     * @throws IndexOutOfBoundsException unless {@code 0 <= index < numClasses()}
     */
    public String className(int index) {
        return shared(h -> {
            Objects.checkIndex(index, Native.modelNumClasses(h));
            return new String(Native.modelClassName(h, index), java.nio.charset.StandardCharsets.UTF_8);
        });
    }

    /**
     * Colour of class {@code index} as {@code {red, green, blue}} (0..255): the colour stored with
     * the weights, or the default for its name (QuPath's own colour for the classes QuPath
     * predefines, such as "Other").
     *
     * @throws IndexOutOfBoundsException unless {@code 0 <= index < numClasses()}
     */
    public int[] classColour(int index) {
        int rgb = shared(h -> {
            Objects.checkIndex(index, Native.modelNumClasses(h));
            return Native.modelClassColour(h, index);
        });
        return new int[] {(rgb >> 16) & 0xff, (rgb >> 8) & 0xff, rgb & 0xff};
    }

    // ------------------------------------------------------------------------------------
    // Segmentation

    private Segmentation run(Pixels px, SegmentOptions options, boolean tiled, ProgressListener listener) {
        SegmentOptions o = options == null ? new SegmentOptions() : options;
        float[] f = o.floats();
        int[] i = o.ints();
        boolean maps = o.includeMaps();
        Native.ProgressBridge bridge = tiled ? new Native.ProgressBridge(listener) : null;
        try {
            Object[] r = shared(h -> px.ints != null
                    ? Native.segmentArgb(h, px.ints, px.offset, px.width, px.height, px.stride, f, i, tiled, bridge, maps)
                    : Native.segmentBytes(h, px.bytes, px.offset, px.width, px.height, px.stride, px.format.code(), f, i,
                            tiled, bridge, maps));
            return Segmentation.fromNative(r);
        } catch (CsraCancelledException e) {
            throw cancellation(bridge, e);
        }
    }

    private static RuntimeException cancellation(Native.ProgressBridge bridge, CsraCancelledException e) {
        if (bridge == null) {
            return e;
        }
        Throwable t = bridge.failure;
        if (t instanceof RuntimeException) {
            return (RuntimeException) t;
        }
        if (t instanceof Error) {
            throw (Error) t;
        }
        if (t != null) {
            return new CsraCancelledException("the ProgressListener threw " + t);
        }
        if (bridge.interrupted) {
            return new CsraCancelledException("cancelled: the thread was interrupted");
        }
        return new CsraCancelledException("cancelled by the ProgressListener");
    }

    /** Segments a whole image (32x32 up to 2048x2048) in one pass with the default options. */
    public Segmentation segmentTile(BufferedImage image) {
        return segmentTile(image, null);
    }

    /** Segments a whole image in one pass; {@code options} null for the defaults. */
    public Segmentation segmentTile(BufferedImage image, SegmentOptions options) {
        return run(Pixels.of(image), options, false, null);
    }

    /** Segments packed ARGB pixels ({@code width * height} ints, alpha ignored) in one pass. */
    public Segmentation segmentTile(int[] argb, int width, int height) {
        return segmentTile(argb, width, height, null);
    }

    /** As {@link #segmentTile(int[], int, int)} with options. */
    public Segmentation segmentTile(int[] argb, int width, int height, SegmentOptions options) {
        return run(Pixels.argb(argb, width, height), options, false, null);
    }

    /** Segments tightly packed 8-bit pixels ({@code width * height * bytesPerPixel} bytes). */
    public Segmentation segmentTile(byte[] pixels, int width, int height, PixelFormat format,
            SegmentOptions options) {
        return run(Pixels.bytes(pixels, width, height, format), options, false, null);
    }

    /** Segments 8-bit pixels at {@code offset} with {@code stride} bytes per row. */
    public Segmentation segmentTile(byte[] pixels, int offset, int width, int height, int stride,
            PixelFormat format, SegmentOptions options) {
        return run(Pixels.bytes(pixels, offset, width, height, stride, format), options, false, null);
    }

    /**
     * Segments a large image by overlapping tiles without seams (nuclei cut by an inner tile edge
     * come from the tile holding them whole; duplicates merged). {@code listener} (may be null)
     * is called after each batch of tiles; returning false, or interrupting the thread, cancels
     * with {@link CsraCancelledException}.
     */
    public Segmentation segmentImage(BufferedImage image, int tileSize, int overlap, ProgressListener listener) {
        return segmentImage(image, new SegmentOptions().tileSize(tileSize).overlap(overlap), listener);
    }

    /** As {@link #segmentImage(BufferedImage, int, int, ProgressListener)} with full options. */
    public Segmentation segmentImage(BufferedImage image, SegmentOptions options, ProgressListener listener) {
        return run(Pixels.of(image), options, true, listener);
    }

    /** Tiled segmentation of packed ARGB pixels. */
    public Segmentation segmentImage(int[] argb, int width, int height, int tileSize, int overlap,
            ProgressListener listener) {
        return segmentImage(argb, width, height, new SegmentOptions().tileSize(tileSize).overlap(overlap), listener);
    }

    /** Tiled segmentation of packed ARGB pixels with full options. */
    public Segmentation segmentImage(int[] argb, int width, int height, SegmentOptions options,
            ProgressListener listener) {
        return run(Pixels.argb(argb, width, height), options, true, listener);
    }

    /** Tiled segmentation of tightly packed 8-bit pixels. */
    public Segmentation segmentImage(byte[] pixels, int width, int height, PixelFormat format, SegmentOptions options,
            ProgressListener listener) {
        return run(Pixels.bytes(pixels, width, height, format), options, true, listener);
    }

    @Override
    public String toString() {
        return isClosed() ? "CsraModel[closed]" : "CsraModel[" + Long.toHexString(handle.get()) + "]";
    }
}
