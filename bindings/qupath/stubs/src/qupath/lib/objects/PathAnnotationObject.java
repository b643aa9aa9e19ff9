package qupath.lib.objects;
public class PathAnnotationObject extends PathObject {
    PathAnnotationObject(qupath.lib.roi.interfaces.ROI roi) { super(roi); }
    @Override public boolean isAnnotation() { return true; }
}
