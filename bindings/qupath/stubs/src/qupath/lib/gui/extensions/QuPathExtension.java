package qupath.lib.gui.extensions;
public interface QuPathExtension {
    void installExtension(qupath.lib.gui.QuPathGUI qupath);
    String getName();
    String getDescription();
    default qupath.lib.common.Version getQuPathVersion() { throw new UnsupportedOperationException(); }
}
