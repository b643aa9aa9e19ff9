package qupath.lib.regions;
public class ImagePlane {
    private final int z;
    private final int t;
    private ImagePlane(int z, int t) { this.z = z; this.t = t; }
    public static ImagePlane getDefaultPlane() { return new ImagePlane(0, 0); }
    public static ImagePlane getPlane(final int z, final int t) { return new ImagePlane(z, t); }
    public int getZ() { return z; }
    public int getT() { return t; }
}
