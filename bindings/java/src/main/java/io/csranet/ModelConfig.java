package io.csranet;

/**
 * Network configuration ({@code CsraModelConfig}): start from {@link #preset(String)}, then
 * change fields with the fluent setters. The native library validates it when a model is
 * created ({@link CsraModel#create(ModelConfig)}).
 */
public final class ModelConfig {
    private int depth;
    private float width;
    private int outputStride;
    private int numClasses;
    private boolean raa;
    private int raaRegion;
    private long seed;
    private int device;

    private ModelConfig(long[] v) {
        depth = (int) v[0];
        outputStride = (int) v[1];
        numClasses = (int) v[2];
        raa = v[3] != 0;
        raaRegion = (int) v[4];
        seed = v[5];
        device = (int) v[6];
        width = Float.intBitsToFloat((int) v[7]);
    }

    static ModelConfig fromNative(long[] v) {
        return new ModelConfig(v);
    }

    long[] toNative() {
        return new long[] {depth, outputStride, numClasses, raa ? 1 : 0, raaRegion, seed, device,
            Float.floatToRawIntBits(width) & 0xffffffffL};
    }

    /** A preset: {@code "lite"} (ResNet-18 at half width) or {@code "paper"} (ResNet-50). */
    public static ModelConfig preset(String name) {
        java.util.Objects.requireNonNull(name, "name");
        return new ModelConfig(Native.configPreset(Strings.utf8(name, "preset name")));
    }

    /** The {@code lite} preset. */
    public static ModelConfig lite() {
        return preset("lite");
    }

    private static int nonNegative(int v, String what) {
        if (v < 0) {
            throw new IllegalArgumentException(what + " must not be negative, got " + v);
        }
        return v;
    }

    public int depth() { return depth; }
    public float width() { return width; }
    public int outputStride() { return outputStride; }
    public int numClasses() { return numClasses; }
    public boolean raa() { return raa; }
    public int raaRegion() { return raaRegion; }
    public long seed() { return seed; }
    /** 0 = CPU, 1 = CUDA. */
    public int device() { return device; }

    /** ResNet depth: 18, 34, 50 or 101. */
    public ModelConfig depth(int v) { depth = nonNegative(v, "depth"); return this; }
    /** Width multiplier (1.0 = torchvision's widths). */
    public ModelConfig width(float v) { width = v; return this; }
    /** Output stride: 8 or 16. */
    public ModelConfig outputStride(int v) { outputStride = nonNegative(v, "outputStride"); return this; }
    /** Classes including background. */
    public ModelConfig numClasses(int v) { numClasses = nonNegative(v, "numClasses"); return this; }
    /** Region-adaptive attention on or off. */
    public ModelConfig raa(boolean v) { raa = v; return this; }
    /** RAA region size in feature pixels. */
    public ModelConfig raaRegion(int v) { raaRegion = nonNegative(v, "raaRegion"); return this; }
    /** Seed of the random initialisation. */
    public ModelConfig seed(long v) { seed = v; return this; }
    /** 0 = CPU, 1 = CUDA (needs a library built with the {@code cuda} feature). */
    public ModelConfig device(int v) { device = nonNegative(v, "device"); return this; }

    @Override
    public String toString() {
        return "ModelConfig{depth=" + depth + ", width=" + width + ", outputStride=" + outputStride
                + ", numClasses=" + numClasses + ", raa=" + raa + ", raaRegion=" + raaRegion
                + ", seed=" + seed + ", device=" + device + "}";
    }
}
