package qupath.lib.objects;
public class PathRootObject extends PathObject {
    public PathRootObject() { super(null); }
    @Override public boolean isRootObject() { return true; }
}
