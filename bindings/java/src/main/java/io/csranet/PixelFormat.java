package io.csranet;

/** 8-bit pixel layouts accepted by the native library ({@code CsraPixelFormat}). */
public enum PixelFormat {
    /** 3 bytes per pixel: R, G, B. */
    RGB8(0, 3),
    /** 4 bytes per pixel: R, G, B, A (alpha ignored). */
    RGBA8(1, 4),
    /** 3 bytes per pixel: B, G, R. */
    BGR8(2, 3),
    /** 4 bytes per pixel: B, G, R, A (alpha ignored). */
    BGRA8(3, 4);

    private final int code;
    private final int bytesPerPixel;

    PixelFormat(int code, int bytesPerPixel) {
        this.code = code;
        this.bytesPerPixel = bytesPerPixel;
    }

    /** The C enum value. */
    public int code() {
        return code;
    }

    /** Bytes per pixel (3 or 4). */
    public int bytesPerPixel() {
        return bytesPerPixel;
    }
}
