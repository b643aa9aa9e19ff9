package io.csranet;

import java.awt.image.BufferedImage;
import java.util.Objects;

/**
 * A training tile: tightly packed RGB8 pixels and, for labelled batches, a class map of
 * {@code width * height} bytes (class ids, 255 = ignore). Arrays are copied.
 */
public final class TrainTile {
    final byte[] rgb;
    final byte[] label;
    final int width;
    final int height;

    private TrainTile(byte[] rgb, byte[] label, int width, int height) {
        this.rgb = rgb;
        this.label = label;
        this.width = width;
        this.height = height;
    }

    /** From RGB bytes ({@code width * height * 3}) and a label map (may be null: unlabelled). */
    public static TrainTile of(byte[] rgb, int width, int height, byte[] label) {
        Objects.requireNonNull(rgb, "rgb");
        Pixels.checkSize(width, height);
        long n = (long) width * height;
        if (rgb.length != n * 3) {
            throw new IllegalArgumentException("rgb has " + rgb.length + " bytes, width * height * 3 is " + n * 3);
        }
        if (label != null && label.length != n) {
            throw new IllegalArgumentException("label has " + label.length + " bytes, width * height is " + n);
        }
        return new TrainTile(rgb.clone(), label == null ? null : label.clone(), width, height);
    }

    /** From an image and a label map (may be null: unlabelled). */
    public static TrainTile of(BufferedImage image, byte[] label) {
        Objects.requireNonNull(image, "image");
        int w = image.getWidth();
        int h = image.getHeight();
        int[] argb = image.getRGB(0, 0, w, h, null, 0, w);
        byte[] rgb = new byte[argb.length * 3];
        for (int i = 0; i < argb.length; i++) {
            rgb[3 * i] = (byte) (argb[i] >> 16);
            rgb[3 * i + 1] = (byte) (argb[i] >> 8);
            rgb[3 * i + 2] = (byte) argb[i];
        }
        return of(rgb, w, h, label);
    }

    public int width() { return width; }
    public int height() { return height; }
    public boolean isLabelled() { return label != null; }
}
