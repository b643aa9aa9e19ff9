package io.csranet;

/**
 * The JNI entry points ({@code src/main/c/csranet_jni.c}). Package-private: the public classes
 * check every argument, hold the locks, and keep handles alive around these calls.
 *
 * <p>Every method that fails throws {@link CsraException} (built by
 * {@link CsraException#fromNative}) with the native message, or a standard Java exception for
 * arguments the glue itself rejects. Handles are {@code long} pointers, 0 meaning none.
 */
final class Native {
    /** Major and minor version this binding was written for. */
    static final int BINDING_MAJOR = 0;
    static final int BINDING_MINOR = 1;

    static {
        NativeLibrary.ensureLoaded();
        int lib = version();
        int header = headerVersion();
        if ((lib >>> 8) != (header >>> 8) || (header >>> 16) != BINDING_MAJOR || ((header >>> 8) & 0xff) != BINDING_MINOR) {
            throw new UnsatisfiedLinkError("csranet version mismatch: native library " + fmt(lib)
                    + ", JNI glue compiled against " + fmt(header) + ", Java binding written for "
                    + BINDING_MAJOR + "." + BINDING_MINOR + ".x");
        }
    }

    private Native() {}

    static String fmt(int v) {
        return (v >>> 16) + "." + ((v >>> 8) & 0xff) + "." + (v & 0xff);
    }

    /**
     * Receives progress from {@code csra_segment_image} on the calling thread. Never throws:
     * a listener's exception is kept and the native call cancelled.
     */
    static final class ProgressBridge {
        final ProgressListener listener;
        Throwable failure;
        boolean interrupted;
        boolean stopped;
        int calls;

        ProgressBridge(ProgressListener listener) {
            this.listener = listener;
        }

        /** Called from C; true to continue. */
        boolean onProgress(int done, int total) {
            calls++;
            try {
                if (Thread.currentThread().isInterrupted()) {
                    interrupted = true;
                    return false;
                }
                if (listener != null && !listener.progress(done, total)) {
                    stopped = true;
                    return false;
                }
                return true;
            } catch (Throwable t) {
                failure = t;
                return false;
            }
        }
    }

    // Versions
    static native int version();

    static native int headerVersion();

    static native byte[] versionString();

    // Models
    /** [depth, output_stride, num_classes, raa, raa_region, seed, device, float bits of width]. */
    static native long[] configPreset(byte[] name);

    static native long modelCreate(long[] config);

    static native long modelCreateDefault();

    static native long modelFromFile(byte[] path);

    static native long modelFromBytes(byte[] data);

    static native void modelLoadFile(long model, byte[] path);

    static native void modelLoadBytes(long model, byte[] data);

    static native void modelSave(long model, byte[] path);

    static native long[] modelConfig(long model);

    static native int modelNumClasses(long model);

    /** The UTF-8 bytes of a class name; {@code index} checked by the caller. */
    static native byte[] modelClassName(long model, int index);

    /** A class colour as {@code 0xRRGGBB}; {@code index} checked by the caller. */
    static native int modelClassColour(long model, int index);

    static native void modelFree(long model);

    // Segmentation
    /** [mean0..2, std0..2, h, sigma, polygon_tolerance, min_area, tile_size, overlap, batch_size, keep_probabilities]. */
    static native float[] segmentOptionsDefaults();

    /**
     * Segments bytes {@code data[offset ..]} ({@code height} rows of {@code stride} bytes).
     * {@code optF} = [mean0..2, std0..2, h, sigma, polygon_tolerance]; {@code optI} = [min_area,
     * tile_size, overlap, batch_size, keep_probabilities]. Returns
     * [int[] {width, height, num_classes, n}, int[] 9 per instance {id, class, area, x0, y0, x1,
     * y1, first point, points}, float[] 3 per instance {score, cx, cy}, float[] polygons,
     * byte[] class map or null, int[] labels or null, float[] probabilities or null].
     */
    static native Object[] segmentBytes(long model, byte[] data, int offset, int width, int height, int stride,
            int format, float[] optF, int[] optI, boolean tiled, ProgressBridge progress, boolean includeMaps);

    /** As {@link #segmentBytes}, from packed ARGB ints ({@code stride} ints per row). */
    static native Object[] segmentArgb(long model, int[] data, int offset, int width, int height, int stride,
            float[] optF, int[] optI, boolean tiled, ProgressBridge progress, boolean includeMaps);

    // Training
    /** [method, total_steps, crop_size, contrastive] and [lr, momentum, weight_decay, head_lr_mult, clip_norm, tau, lambda_u, lambda_c], seed. */
    static native int[] trainConfigDefaultInts();

    static native float[] trainConfigDefaultFloats();

    static native long trainConfigDefaultSeed();

    static native long trainerCreate(long model, int[] ints, float[] floats, long seed);

    /**
     * One step. {@code dims} holds width and height per tile; images are tightly packed RGB8;
     * labels {@code width * height} bytes. Returns [step, loss, loss_sup, loss_unsup,
     * loss_contrast, loss_fp, confident_ratio, lr].
     */
    static native double[] trainerStep(long trainer, byte[][] images, int[] dims, byte[][] labels,
            byte[][] unlabelledImages, int[] unlabelledDims);

    static native void trainerSave(long trainer, long sampler, byte[] path);

    static native void trainerLoad(long trainer, long sampler, byte[] path);

    static native void trainerFree(long trainer);

    // CAS sampler
    static native long samplerCreate(int[] tissueIds, byte[] presence, int n, int numClasses, float alpha0,
            int period, int totalEpochs, long seed);

    static native void samplerSetEpoch(long sampler, int epoch);

    static native long samplerNext(long sampler);

    static native void samplerFree(long sampler);
}
