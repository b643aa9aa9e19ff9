package io.csranet;

/** Loss terms of one training step ({@code CsraStepReport}). */
public final class StepReport {
    private final long step;
    private final double[] v;

    StepReport(double[] v) {
        this.step = (long) v[0];
        this.v = v.clone();
    }

    /** Index of this step: 0 for the first step of a trainer (or the count restored from a checkpoint). */
    public long step() { return step; }
    public double loss() { return v[1]; }
    public double lossSupervised() { return v[2]; }
    public double lossUnsupervised() { return v[3]; }
    public double lossContrast() { return v[4]; }
    public double lossFeaturePerturbation() { return v[5]; }
    /** Fraction of valid unlabelled pixels above the confidence threshold. */
    public double confidentRatio() { return v[6]; }
    /** Learning rate used by this step. */
    public double lr() { return v[7]; }

    @Override
    public String toString() {
        return String.format(java.util.Locale.ROOT,
                "step %d: loss %.4f (sup %.4f, unsup %.4f, contrast %.4f, fp %.4f), confident %.3f, lr %.5f",
                step, v[1], v[2], v[3], v[4], v[5], v[6], v[7]);
    }
}
