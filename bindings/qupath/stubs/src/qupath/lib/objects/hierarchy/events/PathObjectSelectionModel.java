package qupath.lib.objects.hierarchy.events;
public class PathObjectSelectionModel {
    private final java.util.Set<qupath.lib.objects.PathObject> selected = new java.util.LinkedHashSet<>();
    public synchronized java.util.Set<qupath.lib.objects.PathObject> getSelectedObjects() { return selected; }
}
