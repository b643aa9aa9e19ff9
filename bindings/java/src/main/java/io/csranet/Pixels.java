package io.csranet;

import java.awt.image.BufferedImage;
import java.awt.image.ComponentSampleModel;
import java.awt.image.DataBufferByte;
import java.awt.image.DataBufferInt;
import java.awt.image.Raster;
import java.awt.image.SinglePixelPackedSampleModel;
import java.util.Objects;

/**
 * Pixels of a {@link BufferedImage} as the JNI glue takes them: the image's own array where its
 * layout allows (packed RGB ints, or interleaved 3-byte BGR), else a packed ARGB copy from
 * {@link BufferedImage#getRGB}.
 */
final class Pixels {
    final int[] ints; // packed ARGB, or null
    final byte[] bytes; // interleaved bytes, or null
    final int offset;
    final int width;
    final int height;
    final int stride; // ints or bytes per row
    final PixelFormat format; // for bytes

    private Pixels(int[] ints, byte[] bytes, int offset, int width, int height, int stride, PixelFormat format) {
        this.ints = ints;
        this.bytes = bytes;
        this.offset = offset;
        this.width = width;
        this.height = height;
        this.stride = stride;
        this.format = format;
    }

    static Pixels argb(int[] argb, int width, int height) {
        Objects.requireNonNull(argb, "argb");
        checkSize(width, height);
        long need = (long) width * height;
        if (argb.length != need) {
            throw new IllegalArgumentException("ARGB array has " + argb.length + " elements, width * height is " + need);
        }
        return new Pixels(argb, null, 0, width, height, width, null);
    }

    static Pixels bytes(byte[] data, int width, int height, PixelFormat format) {
        Objects.requireNonNull(data, "pixels");
        Objects.requireNonNull(format, "format");
        checkSize(width, height);
        long need = (long) width * height * format.bytesPerPixel();
        if (data.length != need) {
            throw new IllegalArgumentException("pixel array has " + data.length + " bytes, width * height * "
                    + format.bytesPerPixel() + " is " + need);
        }
        return new Pixels(null, data, 0, width, height, width * format.bytesPerPixel(), format);
    }

    static Pixels bytes(byte[] data, int offset, int width, int height, int stride, PixelFormat format) {
        Objects.requireNonNull(data, "pixels");
        Objects.requireNonNull(format, "format");
        checkSize(width, height);
        if (offset < 0 || stride < 0) {
            throw new IllegalArgumentException("offset and stride must not be negative");
        }
        if ((long) stride < (long) width * format.bytesPerPixel()) {
            throw new IllegalArgumentException("stride " + stride + " is below width * bytes per pixel");
        }
        long end = height == 0 ? offset : offset + (long) (height - 1) * stride + (long) width * format.bytesPerPixel();
        if (end > data.length) {
            throw new IllegalArgumentException("pixel array has " + data.length + " bytes, the image needs " + end);
        }
        return new Pixels(null, data, offset, width, height, stride, format);
    }

    static void checkSize(int width, int height) {
        if (width < 0 || height < 0) {
            throw new IllegalArgumentException("width and height must not be negative, got " + width + "x" + height);
        }
    }

    static Pixels of(BufferedImage image) {
        Objects.requireNonNull(image, "image");
        int w = image.getWidth();
        int h = image.getHeight();
        Raster r = image.getRaster();
        boolean whole = r.getSampleModelTranslateX() == 0 && r.getSampleModelTranslateY() == 0 && r.getParent() == null;
        int type = image.getType();
        if (whole && (type == BufferedImage.TYPE_INT_RGB || type == BufferedImage.TYPE_INT_ARGB)
                && r.getDataBuffer() instanceof DataBufferInt && r.getSampleModel() instanceof SinglePixelPackedSampleModel
                && r.getDataBuffer().getNumBanks() == 1) {
            SinglePixelPackedSampleModel sm = (SinglePixelPackedSampleModel) r.getSampleModel();
            int[] data = ((DataBufferInt) r.getDataBuffer()).getData();
            int off = r.getDataBuffer().getOffset();
            if ((long) off + (long) sm.getScanlineStride() * h <= data.length) {
                return new Pixels(data, null, off, w, h, sm.getScanlineStride(), null);
            }
        }
        if (whole && type == BufferedImage.TYPE_3BYTE_BGR && r.getDataBuffer() instanceof DataBufferByte
                && r.getSampleModel() instanceof ComponentSampleModel && r.getDataBuffer().getNumBanks() == 1) {
            ComponentSampleModel sm = (ComponentSampleModel) r.getSampleModel();
            int[] bo = sm.getBandOffsets();
            if (sm.getPixelStride() == 3 && bo.length == 3 && bo[0] == 2 && bo[1] == 1 && bo[2] == 0) {
                byte[] data = ((DataBufferByte) r.getDataBuffer()).getData();
                return bytes(data, r.getDataBuffer().getOffset(), w, h, sm.getScanlineStride(), PixelFormat.BGR8);
            }
        }
        int[] argb = image.getRGB(0, 0, w, h, null, 0, w);
        return new Pixels(argb, null, 0, w, h, w, null);
    }
}
