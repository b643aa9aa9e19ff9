package qupath.lib.common;
public final class Version {
    private final String s;
    private Version(String s) { this.s = s; }
    public static Version parse(String s) { return new Version(s); }
    @Override public String toString() { return s; }
}
