package qupath.lib.roi;
import java.awt.geom.Path2D;
import qupath.lib.regions.ImagePlane;
import qupath.lib.roi.interfaces.ROI;
public class ROIs {
    public static ROI createPolygonROI(double[] x, double[] y, ImagePlane plane) throws IllegalArgumentException {
        if (x.length != y.length) throw new IllegalArgumentException("x and y differ in length");
        Path2D.Double p = new Path2D.Double();
        for (int i = 0; i < x.length; i++) {
            if (i == 0) p.moveTo(x[i], y[i]); else p.lineTo(x[i], y[i]);
        }
        p.closePath();
        return new ShapeROI(p, plane, x.clone(), y.clone());
    }
    public static ROI createRectangleROI(double x, double y, double width, double height, ImagePlane plane) {
        return createPolygonROI(new double[] {x, x + width, x + width, x}, new double[] {y, y, y + height, y + height}, plane);
    }
    /** Fake polygon ROI backed by java.awt geometry. */
    public static final class ShapeROI implements ROI {
        private final Path2D.Double shape;
        private final ImagePlane plane;
        public final double[] xs;
        public final double[] ys;
        ShapeROI(Path2D.Double shape, ImagePlane plane, double[] xs, double[] ys) { this.shape = shape; this.plane = plane; this.xs = xs; this.ys = ys; }
        @Override public ImagePlane getImagePlane() { return plane; }
        @Override public int getZ() { return plane.getZ(); }
        @Override public int getT() { return plane.getT(); }
        @Override public double getBoundsX() { return shape.getBounds2D().getMinX(); }
        @Override public double getBoundsY() { return shape.getBounds2D().getMinY(); }
        @Override public double getBoundsWidth() { return shape.getBounds2D().getWidth(); }
        @Override public double getBoundsHeight() { return shape.getBounds2D().getHeight(); }
        @Override public boolean contains(double x, double y) { return shape.contains(x, y); }
    }
}
