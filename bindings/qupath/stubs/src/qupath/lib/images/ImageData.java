package qupath.lib.images;
public class ImageData<T> {
    private final qupath.lib.images.servers.ImageServer<T> server;
    private final qupath.lib.objects.hierarchy.PathObjectHierarchy hierarchy = new qupath.lib.objects.hierarchy.PathObjectHierarchy();
    private final qupath.lib.plugins.workflow.Workflow workflow = new qupath.lib.plugins.workflow.Workflow();
    public ImageData(qupath.lib.images.servers.ImageServer<T> server) { this.server = server; }
    public qupath.lib.images.servers.ImageServer<T> getServer() { return server; }
    public qupath.lib.objects.hierarchy.PathObjectHierarchy getHierarchy() { return hierarchy; }
    public qupath.lib.plugins.workflow.Workflow getHistoryWorkflow() { return workflow; }
}
