package qupath.lib.objects;
public class PathDetectionObject extends PathObject {
    PathDetectionObject(qupath.lib.roi.interfaces.ROI roi) { super(roi); }
    @Override public boolean isDetection() { return true; }
}
