package io.csranet;

import java.util.Arrays;

/**
 * One nucleus: class, score, area, centroid, bounding box and outline, in pixel-corner
 * coordinates of the segmented image (the centre of pixel (0,0) is (0.5, 0.5)). Immutable.
 */
public final class Instance {
    private final int id;
    private final int classId;
    private final float score;
    private final int area;
    private final float centroidX;
    private final float centroidY;
    private final int x0;
    private final int y0;
    private final int x1;
    private final int y1;
    private final float[] polygon;

    /** An instance; {@code polygon} holds x, y pairs (copied). */
    public Instance(int id, int classId, float score, int area, float centroidX, float centroidY,
            int x0, int y0, int x1, int y1, float[] polygon) {
        if (polygon.length % 2 != 0) {
            throw new IllegalArgumentException("polygon must hold x, y pairs");
        }
        this.id = id;
        this.classId = classId;
        this.score = score;
        this.area = area;
        this.centroidX = centroidX;
        this.centroidY = centroidY;
        this.x0 = x0;
        this.y0 = y0;
        this.x1 = x1;
        this.y1 = y1;
        this.polygon = polygon.clone();
    }

    /** 1-based id: its value in the label map of the segmentation it came from. */
    public int id() { return id; }
    /** Class index, >= 1 (0 is background). */
    public int classId() { return classId; }
    /** Mean probability of the class over the nucleus. */
    public float score() { return score; }
    /** Area in pixels. */
    public int area() { return area; }
    public float centroidX() { return centroidX; }
    public float centroidY() { return centroidY; }
    /** Bounding box {@code [x0, x1) x [y0, y1)}, pixels. */
    public int boundsX0() { return x0; }
    public int boundsY0() { return y0; }
    public int boundsX1() { return x1; }
    public int boundsY1() { return y1; }
    public int boundsWidth() { return x1 - x0; }
    public int boundsHeight() { return y1 - y0; }

    /** Number of outline points (a simple, implicitly closed polygon). */
    public int numPoints() { return polygon.length / 2; }

    /** The outline as x, y pairs (a copy). */
    public float[] polygon() { return polygon.clone(); }

    /** Outline x coordinates. */
    public double[] polygonX() {
        double[] x = new double[numPoints()];
        for (int i = 0; i < x.length; i++) {
            x[i] = polygon[2 * i];
        }
        return x;
    }

    /** Outline y coordinates. */
    public double[] polygonY() {
        double[] y = new double[numPoints()];
        for (int i = 0; i < y.length; i++) {
            y[i] = polygon[2 * i + 1];
        }
        return y;
    }

    /** This instance moved by (dx, dy) pixels and given a new id. */
    public Instance translate(int dx, int dy, int newId) {
        float[] p = polygon.clone();
        for (int i = 0; i < p.length; i += 2) {
            p[i] += dx;
            p[i + 1] += dy;
        }
        return new Instance(newId, classId, score, area, centroidX + dx, centroidY + dy, x0 + dx, y0 + dy, x1 + dx,
                y1 + dy, p);
    }

    @Override
    public boolean equals(Object o) {
        if (this == o) {
            return true;
        }
        if (!(o instanceof Instance)) {
            return false;
        }
        Instance i = (Instance) o;
        return id == i.id && classId == i.classId && Float.compare(score, i.score) == 0 && area == i.area
                && Float.compare(centroidX, i.centroidX) == 0 && Float.compare(centroidY, i.centroidY) == 0
                && x0 == i.x0 && y0 == i.y0 && x1 == i.x1 && y1 == i.y1 && Arrays.equals(polygon, i.polygon);
    }

    @Override
    public int hashCode() {
        int h = Integer.hashCode(id);
        h = 31 * h + classId;
        h = 31 * h + area;
        h = 31 * h + Float.hashCode(centroidX);
        h = 31 * h + Float.hashCode(centroidY);
        return 31 * h + Arrays.hashCode(polygon);
    }

    @Override
    public String toString() {
        return "Instance{id=" + id + ", class=" + classId + ", score=" + score + ", area=" + area + ", centroid=("
                + centroidX + ", " + centroidY + "), bounds=[" + x0 + "," + x1 + ")x[" + y0 + "," + y1 + "), points="
                + numPoints() + "}";
    }
}
