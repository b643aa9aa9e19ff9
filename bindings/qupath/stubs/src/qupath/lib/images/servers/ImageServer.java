package qupath.lib.images.servers;
public interface ImageServer<T> {
    String getPath();
    int getWidth();
    int getHeight();
    boolean isRGB();
    default PixelCalibration getPixelCalibration() { throw new UnsupportedOperationException(); }
    default T readRegion(qupath.lib.regions.RegionRequest request) throws java.io.IOException { throw new UnsupportedOperationException(); }
}
