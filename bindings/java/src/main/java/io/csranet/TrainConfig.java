package io.csranet;

/**
 * Training configuration ({@code CsraTrainConfig}); a new object holds the native defaults.
 * Fluent setters; the native library validates the values in {@link CsraTrainer#create}.
 */
public final class TrainConfig {
    /** Training methods ({@code CSRA_METHOD_*}). */
    public enum Method {
        SUPERVISED, FIXMATCH, UNIMATCH, CSRA
    }

    private Method method;
    private int totalSteps;
    private int cropSize;
    private boolean contrastive;
    private float lr;
    private float momentum;
    private float weightDecay;
    private float headLrMult;
    private float clipNorm;
    private float tau;
    private float lambdaU;
    private float lambdaC;
    private long seed;

    /** The native defaults. */
    public TrainConfig() {
        int[] i = Native.trainConfigDefaultInts();
        float[] f = Native.trainConfigDefaultFloats();
        method = Method.values()[Math.min(Math.max(i[0], 0), Method.values().length - 1)];
        totalSteps = i[1];
        cropSize = i[2];
        contrastive = i[3] != 0;
        lr = f[0];
        momentum = f[1];
        weightDecay = f[2];
        headLrMult = f[3];
        clipNorm = f[4];
        tau = f[5];
        lambdaU = f[6];
        lambdaC = f[7];
        seed = Native.trainConfigDefaultSeed();
    }

    int[] ints() {
        return new int[] {method.ordinal(), totalSteps, cropSize, contrastive ? 1 : 0};
    }

    float[] floats() {
        return new float[] {lr, momentum, weightDecay, headLrMult, clipNorm, tau, lambdaU, lambdaC};
    }

    private static int nonNegative(int v, String what) {
        if (v < 0) {
            throw new IllegalArgumentException(what + " must not be negative, got " + v);
        }
        return v;
    }

    public Method method() { return method; }
    public int totalSteps() { return totalSteps; }
    public int cropSize() { return cropSize; }
    public boolean contrastive() { return contrastive; }
    public float lr() { return lr; }
    public float momentum() { return momentum; }
    public float weightDecay() { return weightDecay; }
    public float headLrMult() { return headLrMult; }
    public float clipNorm() { return clipNorm; }
    public float tau() { return tau; }
    public float lambdaU() { return lambdaU; }
    public float lambdaC() { return lambdaC; }
    public long seed() { return seed; }

    public TrainConfig method(Method v) { method = java.util.Objects.requireNonNull(v, "method"); return this; }
    /** Steps of the cosine learning-rate schedule. */
    public TrainConfig totalSteps(int v) { totalSteps = nonNegative(v, "totalSteps"); return this; }
    /** Square training crop side. */
    public TrainConfig cropSize(int v) { cropSize = nonNegative(v, "cropSize"); return this; }
    /** SWC's contrastive term (CSRA only). */
    public TrainConfig contrastive(boolean v) { contrastive = v; return this; }
    public TrainConfig lr(float v) { lr = v; return this; }
    public TrainConfig momentum(float v) { momentum = v; return this; }
    public TrainConfig weightDecay(float v) { weightDecay = v; return this; }
    public TrainConfig headLrMult(float v) { headLrMult = v; return this; }
    /** Global gradient-norm clip (0 = off). */
    public TrainConfig clipNorm(float v) { clipNorm = v; return this; }
    /** Pseudo-label confidence threshold. */
    public TrainConfig tau(float v) { tau = v; return this; }
    public TrainConfig lambdaU(float v) { lambdaU = v; return this; }
    public TrainConfig lambdaC(float v) { lambdaC = v; return this; }
    public TrainConfig seed(long v) { seed = v; return this; }
}
