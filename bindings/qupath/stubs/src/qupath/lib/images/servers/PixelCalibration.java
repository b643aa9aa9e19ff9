package qupath.lib.images.servers;
/** Fake: the real class is built with a Builder; only the getters below are used by the extension. */
public class PixelCalibration {
    private final double w;
    private final double h;
    public PixelCalibration(double widthMicrons, double heightMicrons) { w = widthMicrons; h = heightMicrons; }
    public boolean hasPixelSizeMicrons() { return Double.isFinite(w) && Double.isFinite(h); }
    public double getAveragedPixelSizeMicrons() { return (w + h) / 2; }
    public double getPixelWidthMicrons() { return w; }
    public double getPixelHeightMicrons() { return h; }
}
