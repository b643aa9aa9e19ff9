package qupath.lib.common;
public final class ColorTools {
    public static int packRGB(int r, int g, int b) { return (255 << 24) | ((r & 255) << 16) | ((g & 255) << 8) | (b & 255); }
}
