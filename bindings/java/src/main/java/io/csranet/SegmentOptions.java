package io.csranet;

import java.util.Arrays;

/**
 * Options of a segmentation ({@code CsraSegmentOptions}); a new object holds the native
 * library's defaults (read from {@code csra_segment_options_default}). Fluent setters; the
 * native library validates the values when a segmentation runs.
 *
 * <p>{@link #includeMaps(boolean)} is Java-only: whether the class map and instance label map
 * are copied into the {@link Segmentation} (instances are always copied).
 */
public final class SegmentOptions {
    private final float[] mean = new float[3];
    private final float[] std = new float[3];
    private float h;
    private float sigma;
    private float polygonTolerance;
    private int minArea;
    private int tileSize;
    private int overlap;
    private int batchSize;
    private boolean keepProbabilities;
    private boolean includeMaps = true;

    /** The native defaults. */
    public SegmentOptions() {
        float[] d = Native.segmentOptionsDefaults();
        System.arraycopy(d, 0, mean, 0, 3);
        System.arraycopy(d, 3, std, 0, 3);
        h = d[6];
        sigma = d[7];
        polygonTolerance = d[8];
        minArea = (int) d[9];
        tileSize = (int) d[10];
        overlap = (int) d[11];
        batchSize = (int) d[12];
        keepProbabilities = d[13] != 0;
    }

    /** A copy. */
    public SegmentOptions copy() {
        SegmentOptions o = new SegmentOptions();
        System.arraycopy(mean, 0, o.mean, 0, 3);
        System.arraycopy(std, 0, o.std, 0, 3);
        o.h = h;
        o.sigma = sigma;
        o.polygonTolerance = polygonTolerance;
        o.minArea = minArea;
        o.tileSize = tileSize;
        o.overlap = overlap;
        o.batchSize = batchSize;
        o.keepProbabilities = keepProbabilities;
        o.includeMaps = includeMaps;
        return o;
    }

    float[] floats() {
        return new float[] {mean[0], mean[1], mean[2], std[0], std[1], std[2], h, sigma, polygonTolerance};
    }

    int[] ints() {
        return new int[] {minArea, tileSize, overlap, batchSize, keepProbabilities ? 1 : 0};
    }

    private static int nonNegative(int v, String what) {
        if (v < 0) {
            throw new IllegalArgumentException(what + " must not be negative, got " + v);
        }
        return v;
    }

    public float[] mean() { return mean.clone(); }
    public float[] std() { return std.clone(); }
    public float h() { return h; }
    public float sigma() { return sigma; }
    public float polygonTolerance() { return polygonTolerance; }
    public int minArea() { return minArea; }
    public int tileSize() { return tileSize; }
    public int overlap() { return overlap; }
    public int batchSize() { return batchSize; }
    public boolean keepProbabilities() { return keepProbabilities; }
    public boolean includeMaps() { return includeMaps; }

    /** Per-channel mean of {@code pixel / 255} (R, G, B). */
    public SegmentOptions mean(float r, float g, float b) { mean[0] = r; mean[1] = g; mean[2] = b; return this; }
    /** Per-channel standard deviation (R, G, B). */
    public SegmentOptions std(float r, float g, float b) { std[0] = r; std[1] = g; std[2] = b; return this; }
    /** h-maxima height that separates touching nuclei. */
    public SegmentOptions h(float v) { h = v; return this; }
    /** Gaussian smoothing of the distance map, pixels. */
    public SegmentOptions sigma(float v) { sigma = v; return this; }
    /** Polygon simplification tolerance, pixels. */
    public SegmentOptions polygonTolerance(float v) { polygonTolerance = v; return this; }
    /** Instances below this many pixels are dropped. */
    public SegmentOptions minArea(int v) { minArea = nonNegative(v, "minArea"); return this; }
    /** Tile side for tiled segmentation. */
    public SegmentOptions tileSize(int v) { tileSize = nonNegative(v, "tileSize"); return this; }
    /** Overlap between tiles (keep above twice the largest nucleus). */
    public SegmentOptions overlap(int v) { overlap = nonNegative(v, "overlap"); return this; }
    /** Tiles per forward pass. */
    public SegmentOptions batchSize(int v) { batchSize = nonNegative(v, "batchSize"); return this; }
    /** Keep the per-class probability maps (copied into the result). */
    public SegmentOptions keepProbabilities(boolean v) { keepProbabilities = v; return this; }
    /** Copy the class map and label map into the result (default true). */
    public SegmentOptions includeMaps(boolean v) { includeMaps = v; return this; }

    @Override
    public String toString() {
        return "SegmentOptions{mean=" + Arrays.toString(mean) + ", std=" + Arrays.toString(std) + ", h=" + h
                + ", sigma=" + sigma + ", polygonTolerance=" + polygonTolerance + ", minArea=" + minArea
                + ", tileSize=" + tileSize + ", overlap=" + overlap + ", batchSize=" + batchSize
                + ", keepProbabilities=" + keepProbabilities + ", includeMaps=" + includeMaps + "}";
    }
}
