package qupath.lib.objects;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import qupath.lib.measurements.MeasurementList;
import qupath.lib.objects.classes.PathClass;
import qupath.lib.roi.interfaces.ROI;
public abstract class PathObject {
    private final List<PathObject> children = new ArrayList<>();
    private boolean locked;
    private PathClass pathClass;
    private final ROI roi;
    private final Map<String, Number> measurements = new LinkedHashMap<>();
    protected PathObject(ROI roi) { this.roi = roi; }
    public void setLocked(boolean locked) { this.locked = locked; }
    public boolean isLocked() { return locked; }
    public boolean isRootObject() { return false; }
    public boolean isAnnotation() { return false; }
    public boolean isDetection() { return false; }
    public void clearChildObjects() { children.clear(); }
    public synchronized void addChildObjects(Collection<? extends PathObject> pathObjects) { children.addAll(pathObjects); }
    public Collection<PathObject> getChildObjects() { return java.util.Collections.unmodifiableList(children); }
    public PathClass getPathClass() { return pathClass; }
    public void setPathClass(PathClass c) { pathClass = c; }
    public synchronized MeasurementList getMeasurementList() {
        return new MeasurementList() {
            private static final long serialVersionUID = 1L;
            @Override public void put(String name, double value) { measurements.put(name, value); }
            @Override public double get(String name) { Number n = measurements.get(name); return n == null ? Double.NaN : n.doubleValue(); }
            @Override public Map<String, Number> asMap() { return java.util.Collections.unmodifiableMap(measurements); }
        };
    }
    public ROI getROI() { return roi; }
}
