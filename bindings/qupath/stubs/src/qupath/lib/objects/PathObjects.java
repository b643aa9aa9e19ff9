package qupath.lib.objects;
public class PathObjects {
    public static PathObject createDetectionObject(final qupath.lib.roi.interfaces.ROI roi, final qupath.lib.objects.classes.PathClass pathClass) {
        PathObject p = new PathDetectionObject(roi);
        p.setPathClass(pathClass);
        return p;
    }
    public static PathObject createAnnotationObject(final qupath.lib.roi.interfaces.ROI roi) { return new PathAnnotationObject(roi); }
}
