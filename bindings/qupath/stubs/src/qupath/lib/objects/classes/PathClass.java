package qupath.lib.objects.classes;
public final class PathClass {
    private static final java.util.Map<String, PathClass> CLASSES = new java.util.HashMap<>();
    /** As QuPath (PathClass.StandardPathClasses, listed in its GUI from the start): these exist with these colours. */
    static {
        int[][] rgb = {{200, 0, 0}, {150, 200, 150}, {160, 90, 160}, {180, 180, 180}, {128, 128, 128}, {50, 50, 50},
            {255, 200, 0}, {0, 0, 180}, {250, 62, 62}, {112, 112, 225}};
        String[] names = {"Tumor", "Stroma", "Immune cells", "Ignore*", "Image", "Necrosis", "Other", "Region*",
            "Positive", "Negative"};
        for (int i = 0; i < names.length; i++) {
            fromString(names[i], qupath.lib.common.ColorTools.packRGB(rgb[i][0], rgb[i][1], rgb[i][2]));
        }
    }
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
