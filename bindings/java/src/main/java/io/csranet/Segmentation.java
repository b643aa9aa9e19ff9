package io.csranet;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * The result of a segmentation, copied out of the native library (nothing native is held):
 * instances, and unless switched off the class map, the instance label map and the
 * per-class probabilities.
 */
public final class Segmentation {
    private final int width;
    private final int height;
    private final int numClasses;
    private final List<Instance> instances;
    private final byte[] classMap;
    private final int[] labels;
    private final float[] probabilities;

    Segmentation(int width, int height, int numClasses, List<Instance> instances, byte[] classMap, int[] labels,
            float[] probabilities) {
        this.width = width;
        this.height = height;
        this.numClasses = numClasses;
        this.instances = Collections.unmodifiableList(instances);
        this.classMap = classMap;
        this.labels = labels;
        this.probabilities = probabilities;
    }

    /** Unpacks the array the JNI glue returns (see {@code Native.segmentBytes}). */
    static Segmentation fromNative(Object[] r) {
        int[] header = (int[]) r[0];
        int[] ints = (int[]) r[1];
        float[] floats = (float[]) r[2];
        float[] poly = (float[]) r[3];
        int n = header[3];
        List<Instance> list = new ArrayList<>(n);
        for (int k = 0; k < n; k++) {
            int b = 9 * k;
            int first = ints[b + 7];
            int len = ints[b + 8];
            float[] p = new float[2 * len];
            System.arraycopy(poly, 2 * first, p, 0, 2 * len);
            list.add(new Instance(ints[b], ints[b + 1], floats[3 * k], ints[b + 2], floats[3 * k + 1],
                    floats[3 * k + 2], ints[b + 3], ints[b + 4], ints[b + 5], ints[b + 6], p));
        }
        return new Segmentation(header[0], header[1], header[2], list, (byte[]) r[4], (int[]) r[5], (float[]) r[6]);
    }

    public int width() { return width; }
    public int height() { return height; }
    /** Classes including background. */
    public int numClasses() { return numClasses; }

    /** The nuclei, in id order (unmodifiable). */
    public List<Instance> instances() { return instances; }

    /** Number of instances of each class id (index 0, background, is always 0). */
    public int[] countsByClass() {
        int[] c = new int[Math.max(numClasses, 1)];
        for (Instance i : instances) {
            if (i.classId() >= 0 && i.classId() < c.length) {
                c[i.classId()]++;
            }
        }
        return c;
    }

    /** True when the class and label maps were copied ({@link SegmentOptions#includeMaps}). */
    public boolean hasMaps() { return classMap != null; }

    /** {@code width * height} class indices, row-major, 0 = background (unsigned bytes); a copy. */
    public byte[] classMap() {
        if (classMap == null) {
            throw new IllegalStateException("maps were not kept (SegmentOptions.includeMaps(false))");
        }
        return classMap.clone();
    }

    /** {@code width * height} instance ids, row-major, 0 = background; a copy. */
    public int[] labels() {
        if (labels == null) {
            throw new IllegalStateException("maps were not kept (SegmentOptions.includeMaps(false))");
        }
        return labels.clone();
    }

    /** The label map without copying (package use). */
    int[] labelsNoCopy() { return labels; }

    /** True when probabilities were kept. */
    public boolean hasProbabilities() { return probabilities != null; }

    /** {@code numClasses * height * width} probabilities, class-major; a copy. */
    public float[] probabilities() {
        if (probabilities == null) {
            throw new CsraException(Status.NOT_AVAILABLE,
                    "probabilities were not kept (SegmentOptions.keepProbabilities(false) or includeMaps(false))");
        }
        return probabilities.clone();
    }
}
