package qupath.lib.objects.classes;
public final class PathClass {
    private static final java.util.Map<String, PathClass> CLASSES = new java.util.HashMap<>();
    private final String name;
    private final Integer color;
    private PathClass(String name, Integer color) { this.name = name; this.color = color; }
    /** As QuPath: the color is used only when a new class is created. */
    public static synchronized PathClass fromString(String string, Integer color) {
        return CLASSES.computeIfAbsent(string, n -> new PathClass(n, color));
    }
    public String getName() { return name; }
    public Integer getColor() { return color; }
    @Override public String toString() { return name; }
}
