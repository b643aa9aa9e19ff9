package qupath.lib.regions;
public class RegionRequest {
    private final String path;
    private final double downsample;
    private final int x, y, width, height, z, t;
    private RegionRequest(String path, double downsample, int x, int y, int width, int height, int z, int t) {
        this.path = path; this.downsample = downsample; this.x = x; this.y = y; this.width = width; this.height = height; this.z = z; this.t = t;
    }
    public static RegionRequest createInstance(String path, double downsample, int x, int y, int width, int height, int z, int t) {
        return new RegionRequest(path, downsample, x, y, width, height, z, t);
    }
    public String getPath() { return path; }
    public double getDownsample() { return downsample; }
    public int getX() { return x; }
    public int getY() { return y; }
    public int getWidth() { return width; }
    public int getHeight() { return height; }
    public int getZ() { return z; }
    public int getT() { return t; }
}
