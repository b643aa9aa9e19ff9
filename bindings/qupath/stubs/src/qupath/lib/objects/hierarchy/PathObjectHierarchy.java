package qupath.lib.objects.hierarchy;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import qupath.lib.objects.PathObject;
public final class PathObjectHierarchy implements java.io.Serializable {
    private static final long serialVersionUID = 1L;
    private final PathObject root = new qupath.lib.objects.PathRootObject();
    private final qupath.lib.objects.hierarchy.events.PathObjectSelectionModel selection = new qupath.lib.objects.hierarchy.events.PathObjectSelectionModel();
    /** Fake only: the events fired, for tests. */
    public final List<PathObject> events = new ArrayList<>();
    public PathObject getRootObject() { return root; }
    public qupath.lib.objects.hierarchy.events.PathObjectSelectionModel getSelectionModel() { return selection; }
    public Collection<PathObject> getAnnotationObjects() {
        List<PathObject> out = new ArrayList<>();
        for (PathObject p : root.getChildObjects()) if (p.isAnnotation()) out.add(p);
        return out;
    }
    public void fireHierarchyChangedEvent(Object source, PathObject pathObject) { events.add(pathObject); }
}
