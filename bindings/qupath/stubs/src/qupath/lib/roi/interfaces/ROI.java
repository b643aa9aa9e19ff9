package qupath.lib.roi.interfaces;
public interface ROI {
    qupath.lib.regions.ImagePlane getImagePlane();
    int getZ();
    int getT();
    double getBoundsX();
    double getBoundsY();
    double getBoundsWidth();
    double getBoundsHeight();
    boolean contains(double x, double y);
}
